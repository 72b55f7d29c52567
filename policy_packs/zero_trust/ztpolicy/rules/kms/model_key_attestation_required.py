"""The model-weights key gives plaintext only to an attested Nitro Enclave (control: encryption and
key management).

Which keys are model keys is decided by their role, not by one name, because an insider who wants
plaintext weights creates a second key, labels it differently and points the publisher at it. A
key (or replica) is a model key, and must pass every check below, when

- its `ztai:key-purpose` tag, or the last part of the name of an alias naming it, matches one of
  `attestedKeyPurposes` (globs, case and `_`/`-` ignored; default `model-weights*`, so
  `model-weights-v2` and `Model_Weights` claim the role too), or an alias naming it matches
  `attestedAliases` (full alias-name globs, default none);
- the stack exports its ARN as `keyArns.<purpose>` for such a purpose: the key `ztai weights
  encrypt --stack-outputs` pins, i.e. the key weights are actually published under;
- its policy uses a `kms:RecipientAttestation:*` condition anywhere: it claims enclave-only
  decryption, so it must hold it completely;
- a principal that decrypts a model key under attestation (the enclave fleet's role) is allowed
  `kms:Decrypt` on it with neither attestation nor a `kms:ViaService` condition: the parent
  instance holds that role's credentials, so whatever is encrypted under that key, weights
  included, is plaintext to the parent. (Through a service, e.g. S3 objects, is another control;
  so is a Decrypt bound to Session Manager's encryption context, `aws:ssm:SessionId` and
  `aws:ssm:TargetId` under StringEquals or StringLike, which the SSM agent on the parent needs to
  open encrypted sessions: it decrypts only ciphertexts made with a session's context.)

Its effective policy (each `aws.kms.KeyPolicy` for it, else the key's own `policy`) must

- allow `kms:Decrypt` to named principals (never `*`: anyone holding a copy of the EIF could then
  decrypt) only under `StringEqualsIgnoreCase` (or `StringEquals`) conditions on
  `kms:RecipientAttestation:PCR0` (or `ImageSha384`, the same digest), `PCR1` and `PCR2`, each a
  96-hex-digit SHA-384 that is not all zero (the PCRs of a debug-mode enclave). `...IfExists`
  and set operators do not count: they hold when the attestation is absent;
- allow nobody else `kms:Decrypt` without those conditions, and nobody `kms:ReEncryptFrom`
  (ReEncrypt takes no attestation), except the `breakGlassPrincipalArns` of this rule's
  configuration;
- deny every principal (`*`, break-glass included) `kms:Decrypt` and `kms:ReEncryptFrom` unless the
  request attests the pinned enclave: for PCR0, PCR1, PCR2, and every other PCR all the attested
  Allows pin (PCR8 for a signed EIF), a Deny whose single condition is
  `StringNotEqualsIgnoreCase` (or `StringNotEquals`) on `kms:RecipientAttestation:PCR<n>` (for
  PCR0 also `ImageSha384`) with exactly the values the Allows pin. A negated operator holds when the key is
  absent, so the deny also covers a request without attestation (and ReEncrypt, which never has
  one). One statement per PCR: the keys of one condition block are ANDed, so a statement naming
  several PCRs would deny only an enclave that differs in all of them. A deny that only checks
  that some attestation is present (`Null ... = true`) does not count: break-glass, or any
  principal a KMS grant names, could then have the data key wrapped for any attested enclave, a
  debug-mode one or its own EIF, whose memory the parent reads. A value the Allows do not pin
  would open the key to another enclave; a pinned value missing would lock the enclave out.
- deny each attested principal also `kms:ReEncrypt*` and `kms:GenerateDataKey*`, with the single
  condition `Null: {"kms:RecipientAttestation:PCR0": "true"}` (or `ImageSha384`): no plaintext
  data key for the parent instance. KMS sets those keys only when the request carries a signed
  attestation document; any further condition would narrow the deny, so it does not count.

- allow `kms:PutKeyPolicy` (also through `kms:*`, `kms:Put*`) to no account root
  (`arn:<partition>:iam::<account>:root`, or the bare account id) and not to `*`: the root delegates
  to IAM, so any principal an IAM policy allows PutKeyPolicy could drop the attestation denies.

A `keyId` (or alias `targetKeyId`) given as the key ARN links like the key id. More than one
`aws.kms.KeyPolicy` for one model key is a violation (KMS keeps the last write). KMS resources of
the aws-native provider (`aws-native:kms:*`) are reported as unsupported: no rule reads them.
KMS grants (`aws.kms.Grant`) on a model key that allow Decrypt, ReEncryptFrom or CreateGrant are
violations too: a grant cannot carry attestation conditions. Policies not known yet (a real
preview) are checked when they are. Not suppressible.

A key layer's first deployment (stack keys `layer: keys` and `workloadGrantsFile: ""`, read from
the stack's config, docs/deploying.md) creates the keys before the workload exists, so no role
can be granted attested decryption yet: the model key has only its creation policy. The rule then
accepts a model key that no Allow of its policy lets anyone use to get plaintext (kms:Decrypt,
kms:ReEncryptFrom, kms:GenerateDataKey*, kms:CreateGrant; break-glass included), which fails safe:
nothing can be decrypted under it, the weights are not published yet. An Allow of such a use
(break-glass's `kms:*`) is accepted only under the per-PCR denies above pinned to the stack's own
`enclavePcr0..2`. Everything else is checked as usual (no account root or `*` may rewrite the
policy). Any other layer, a key layer with a grants file, or a config that does not say, gets the
full check; once the grants file is set the sealed policy must pass it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from fnmatch import fnmatchcase
from typing import Any

from pulumi_policy import Severity
from pulumi_policy.proxy import UnknownValueError

from ztpolicy.graph import UNKNOWN, as_list, known, known_field, of_type, refers_to_key
from ztpolicy.rule import Finding, Resource, Rule
from ztpolicy.rules.kms.kms_key_policy_least_privilege import (
    KEY,
    KEY_POLICY,
    REPLICA_KEY,
    identity,
    same_principal,
    statement_principals,
)
from ztpolicy.stack import StackSettings, stack_settings

ALIAS = "aws:kms/alias:Alias"
# aws-native:kms:Key (its KeyPolicy a property), ReplicaKey, Alias: read by no rule of this pack.
NATIVE_KMS_PREFIX = "aws-native:kms:"
GRANT = "aws:kms/grant:Grant"
PURPOSE_TAG = "ztai:key-purpose"
MODEL_PURPOSE = "model-weights"
STACK = "pulumi:pulumi:Stack"
DEFAULT_ATTESTED_PURPOSES = [f"{MODEL_PURPOSE}*"]
# Shared with model-key-alias-pinned: give both rules the same values.
ATTESTED_KEY_CONFIG: dict[str, dict[str, Any]] = {
    "attestedKeyPurposes": {
        "type": "array", "items": {"type": "string"}, "default": DEFAULT_ATTESTED_PURPOSES,
        "description": "Globs over `ztai:key-purpose` tags, alias-name endings and `keyArns` output "
                       "names whose keys must decrypt only in an attested enclave."},
    "attestedAliases": {
        "type": "array", "items": {"type": "string"}, "default": [],
        "description": "Alias names (globs, e.g. alias/acme/llm-weights) whose keys must decrypt only "
                       "in an attested enclave."},
}
_ATTESTATION = "kms:recipientattestation:"
_REQUIRED_PCRS = ("pcr0", "pcr1", "pcr2")
_REQUIRED_PCRS_UPPER = ("PCR0", "PCR1", "PCR2")
_MATCH_OPERATORS = {"stringequalsignorecase", "stringequals"}
# Negated operators hold when the key is absent (IAM), so these denies also cover no attestation.
_UNLESS_OPERATORS = {"stringnotequalsignorecase", "stringnotequals"}
_PRESENCE_KEYS = {f"{_ATTESTATION}pcr0", f"{_ATTESTATION}imagesha384"}
_MEASUREMENT = re.compile(r"^[0-9a-fA-F]{96}$")
EVERYONE_DENIED = ("kms:Decrypt", "kms:ReEncryptFrom")
ATTESTED_ROLE_DENIED = ("kms:Decrypt", "kms:ReEncryptFrom", "kms:ReEncryptTo", "kms:GenerateDataKey",
                        "kms:GenerateDataKeyWithoutPlaintext", "kms:GenerateDataKeyPair",
                        "kms:GenerateDataKeyPairWithoutPlaintext")
_GRANT_OPERATIONS = {"decrypt", "reencryptfrom", "creategrant"}
# What gives plaintext of the key's data, or hands that on: none may be allowed before the grants
# (a key layer's first deployment) unless the pinned-enclave denies stand.
PLAINTEXT_USES = ("kms:Decrypt", "kms:ReEncryptFrom", "kms:GenerateDataKey",
                  "kms:GenerateDataKeyPair", "kms:CreateGrant")
# `arn:<partition>:iam::<account>:root`, or the bare account id, which IAM reads as the same.
_ACCOUNT_ROOT = re.compile(r"^(arn:aws[\w-]*:iam::\d{12}:root|\d{12})$")


def _policy_rewriters(statement: Mapping[str, Any]) -> list[str]:
    """The account root or `*` among the principals an Allow of kms:PutKeyPolicy names: the root
    delegates to IAM, so any principal an IAM policy allows PutKeyPolicy (PowerUserAccess does)
    could rewrite the policy and drop the attestation."""
    if statement.get("Effect") != "Allow" or not _covers(statement, "kms:PutKeyPolicy"):
        return []
    return [p for p in statement_principals(statement) if p == "*" or _ACCOUNT_ROOT.match(p)]


def _covers(statement: Mapping[str, Any], action: str) -> bool:
    """Does the statement's Action (or NotAction) include `action`?"""
    if "NotAction" in statement:
        return not any(fnmatchcase(action.lower(), str(p).lower()) for p in as_list(statement["NotAction"]))
    return any(fnmatchcase(action.lower(), str(p).lower()) for p in as_list(statement.get("Action")))


def _measurement_problem(value: Any) -> str | None:
    if not isinstance(value, str) or not _MEASUREMENT.match(value):
        return f"{value!r} is not a SHA-384 digest (96 hex digits)"
    if set(value) == {"0"}:
        return "is all zeros, the measurement of a debug-mode enclave"
    return None


def _pcr_name(key: Any) -> str | None:
    """`kms:RecipientAttestation:PCR<n>` -> "pcr<n>" (ImageSha384 is PCR0), else None."""
    name = str(key).lower()
    if not name.startswith(_ATTESTATION):
        return None
    return name.removeprefix(_ATTESTATION).replace("imagesha384", "pcr0")


def pinned_values(condition: Any) -> dict[str, list[Any]]:
    """PCR name -> the values a Decrypt Allow's condition requires (StringEquals[IgnoreCase])."""
    pinned: dict[str, list[Any]] = {}
    for operator, block in (condition.items() if isinstance(condition, Mapping) else ()):
        if str(operator).lower() not in _MATCH_OPERATORS or not isinstance(block, Mapping):
            continue
        for key, values in block.items():
            if (name := _pcr_name(key)) is not None:
                pinned.setdefault(name, []).extend(as_list(values))
    return pinned


def attestation_issue(condition: Any) -> str | None:
    """Why a Decrypt Allow's condition does not pin an attested enclave; None when it does."""
    pinned = pinned_values(condition)
    missing = [name.upper() for name in _REQUIRED_PCRS if not pinned.get(name)]
    if missing:
        return (f"without attestation conditions on {', '.join(missing)} (StringEqualsIgnoreCase "
                "kms:RecipientAttestation:PCR<n>)")
    for name, values in sorted(pinned.items()):
        for value in values:
            if (problem := _measurement_problem(value)) is not None:
                return f"with {name.upper()} {problem}"
    return None


def _absent_attestation_only(condition: Any) -> bool:
    """A condition that holds exactly when the request carries no attestation document."""
    if not isinstance(condition, Mapping) or len(condition) != 1:
        return False
    [(operator, block)] = condition.items()
    if str(operator).lower() != "null" or not isinstance(block, Mapping) or len(block) != 1:
        return False
    [(key, value)] = block.items()
    values = [str(v).lower() for v in as_list(value)]
    return str(key).lower() in _PRESENCE_KEYS and values == ["true"]


def _unconditional_deny(statement: Mapping[str, Any]) -> bool:
    """A Deny that no element but its Condition narrows."""
    return (statement.get("Effect") == "Deny" and "NotPrincipal" not in statement
            and "NotResource" not in statement and "NotAction" not in statement
            and "*" in as_list(statement.get("Resource")))


def _denies_without_attestation(statement: Mapping[str, Any]) -> bool:
    return _unconditional_deny(statement) and _absent_attestation_only(statement.get("Condition"))


def _unless_pinned(statement: Mapping[str, Any]) -> tuple[str, list[str]] | None:
    """(PCR name, values) for a Deny whose only condition is "PCR<n> is none of these values"."""
    condition = statement.get("Condition")
    if not _unconditional_deny(statement) or not isinstance(condition, Mapping) or len(condition) != 1:
        return None
    [(operator, block)] = condition.items()
    if str(operator).lower() not in _UNLESS_OPERATORS or not isinstance(block, Mapping) or len(block) != 1:
        return None
    [(key, values)] = block.items()
    name = _pcr_name(key)
    return (name, [str(v) for v in as_list(values)]) if name is not None else None


def _pinned_enclave_problems(statements: Sequence[tuple[int, Mapping[str, Any]]], label: str,
                             pins: Sequence[Mapping[str, list[Any]]]) -> list[str]:
    """The per-PCR denies for everyone (see the module docstring), against the Allows' pins."""
    shape = ("(Deny, Principal *, StringNotEqualsIgnoreCase kms:RecipientAttestation:PCR<n>: the "
             "pinned value, no other condition; one statement per PCR)")
    if not pins:
        return [f"{label} does not deny {', '.join(EVERYONE_DENIED)} to every principal outside a "
                f"pinned enclave {shape}"]
    required = [name for name in pins[0] if all(name in pin for pin in pins)]
    required = sorted(set(required) | set(_REQUIRED_PCRS))
    problems: list[str] = []
    for name in required:
        expected = {str(value).lower() for pin in pins for value in pin.get(name, [])}
        candidates = [(index, statement, unless) for index, statement in statements
                      if (unless := _unless_pinned(statement)) is not None and unless[0] == name
                      and _applies_to(statement, "*")]
        for index, statement, (_, values) in candidates:
            sid = statement.get("Sid") or f"#{index}"
            for value in values:
                if (problem := _measurement_problem(value)) is not None:
                    problems.append(f"{label} statement {sid} denies unless {name.upper()} {problem}")
            if {value.lower() for value in values} != expected:
                problems.append(f"{label} statement {sid} denies unless {name.upper()} is one of "
                                f"{sorted(values)}, but the attested Allows pin {sorted(expected)}")
        matching = [statement for _, statement, (_, values) in candidates
                    if {value.lower() for value in values} == expected]
        missing = [action for action in EVERYONE_DENIED
                   if not any(_covers(statement, action) for statement in matching)]
        if missing:
            problems.append(f"{label} does not deny {', '.join(missing)} to every principal unless "
                            f"{name.upper()} is the pinned value {shape}")
    return problems


def _applies_to(statement: Mapping[str, Any], principal: str) -> bool:
    principals = statement_principals(statement)
    return "*" in principals or any(same_principal(principal, p) for p in principals)


def _read_policy(document: Any, label: str) -> tuple[Any, list[tuple[int, Mapping[str, Any]]], list[str]]:
    """(the policy, its statements with their index, why it cannot be read: empty when it can)."""
    try:
        parsed = json.loads(document) if isinstance(document, str) else document
    except json.JSONDecodeError as error:
        return None, [], [f"{label} policy is not valid JSON ({error.msg})"]
    if not isinstance(parsed, Mapping):
        return None, [], [f"{label} policy is not a JSON object"]
    return parsed, [(index, s) for index, s in enumerate(as_list(parsed.get("Statement")))
                    if isinstance(s, Mapping)], []


def document_problems(document: Any, label: str, break_glass: set[str]) -> list[str]:
    _, statements, unreadable = _read_policy(document, label)
    if unreadable:
        return unreadable
    glass = {identity(p) for p in break_glass}
    problems: list[str] = []
    rewrite_problems: list[str] = []
    attested: list[str] = []
    pins: list[dict[str, list[Any]]] = []
    for index, statement in statements:
        if statement.get("Effect") != "Allow":
            continue
        sid = statement.get("Sid") or f"#{index}"
        if rewriters := _policy_rewriters(statement):
            rewrite_problems.append(f"{label} statement {sid} allows kms:PutKeyPolicy to "
                            f"{', '.join(rewriters)}: any IAM principal allowed kms:PutKeyPolicy "
                            "could rewrite the policy, drop the attestation denies and decrypt; "
                            "name the key administrator roles (keyAdministratorRoleArns)")
        principals = statement_principals(statement)
        if principals and {identity(p) for p in principals} <= glass:
            continue
        who = ", ".join(principals) or "nobody named"
        if _covers(statement, "kms:ReEncryptFrom"):
            problems.append(f"{label} statement {sid} allows kms:ReEncryptFrom to {who}: ReEncrypt "
                            "takes no attestation, so it re-wraps weights' data keys for use outside "
                            "an enclave")
        if not _covers(statement, "kms:Decrypt"):
            continue
        issue = attestation_issue(statement.get("Condition"))
        if issue is not None:
            problems.append(f"{label} statement {sid} allows kms:Decrypt to {who} {issue}")
        elif "*" in principals or not principals:
            problems.append(f"{label} statement {sid} allows attested kms:Decrypt to any principal: "
                            "anyone with a copy of the enclave image could decrypt; name the role")
        else:
            attested += principals
            pins.append(pinned_values(statement.get("Condition")))
    if not attested and not problems:
        problems.append(f"{label} allows no principal kms:Decrypt under enclave attestation "
                        "(KeyHierarchy.grant_decrypt_with_attestation)")
    problems += _pinned_enclave_problems(statements, label, pins)
    # Absent attestation: the Null denies, and the per-PCR ones (a negated operator holds then).
    denies = [s for _, s in statements
              if _denies_without_attestation(s) or _unless_pinned(s) is not None]
    for principal in dict.fromkeys(attested):
        gaps = [action for action in ATTESTED_ROLE_DENIED
                if not any(_covers(s, action) and _applies_to(s, principal) for s in denies)]
        if gaps:
            problems.append(f"{label} does not deny {principal} {', '.join(gaps)} when the "
                            "attestation is absent")
    return rewrite_problems + problems


def plaintext_users(document: Any) -> list[str]:
    """Sid and principals of each Allow of the document that covers a use in PLAINTEXT_USES."""
    parsed = _parsed(document)
    statements = as_list(parsed.get("Statement")) if parsed is not None else []
    return [f"{s.get('Sid') or f'#{index}'} ({', '.join(statement_principals(s)) or 'nobody named'})"
            for index, s in enumerate(statements) if isinstance(s, Mapping) and s.get("Effect") == "Allow"
            and any(_covers(s, action) for action in PLAINTEXT_USES)]


def before_grants_problems(document: Any, label: str, settings: StackSettings) -> list[str]:
    """A key layer's model key before the workload's grants (see the module docstring)."""
    parsed, statements, unreadable = _read_policy(document, label)
    if unreadable:
        return unreadable
    problems = [f"{label} statement {s.get('Sid') or f'#{index}'} allows kms:PutKeyPolicy to "
                f"{', '.join(rewriters)}: any IAM principal allowed kms:PutKeyPolicy could rewrite "
                "the policy; name the key administrator roles (keyAdministratorRoleArns)"
                for index, s in statements if (rewriters := _policy_rewriters(s))]
    users = plaintext_users(parsed)
    if not users:
        return problems
    if set(settings.measurements) != set(_REQUIRED_PCRS_UPPER):
        return [*problems, f"{label} allows {', '.join(users)} a use that yields plaintext before "
                "the workload's grants, and the stack config pins no enclavePcr0, enclavePcr1 and "
                "enclavePcr2 for denies to hold it to"]
    pins = [{name.lower(): [value] for name, value in settings.measurements.items()}]
    pinned = _pinned_enclave_problems(statements, label, pins)
    if pinned:
        return [*problems, f"{label} allows {', '.join(users)} a use that yields plaintext before "
                "the workload's grants, without the denies that hold it to the stack's pinned "
                "enclave", *pinned]
    return problems


def claims_purpose(value: Any, patterns: Sequence[Any]) -> bool:
    """Does a purpose tag or alias segment claim one of `patterns` (case and `_`/`-` ignored)?"""
    if not isinstance(value, str) or not value:
        return False
    normal = value.casefold().replace("_", "-")
    return any(fnmatchcase(normal, str(p).casefold().replace("_", "-")) for p in patterns)


def _purpose_tag(key: Resource) -> Any:
    try:
        return key.tags().get(PURPOSE_TAG)
    except UnknownValueError:
        return None


def _key_documents(key: Resource, policies: Sequence[Resource],
                   among: Sequence[Resource] = ()) -> list[tuple[Resource, Any]]:
    """(holder, policy) of a key: each KeyPolicy for it, else the key's own `policy`."""
    linked = [policy for policy in policies if refers_to_key(policy, "keyId", key, among=among)]
    return [(holder, known(holder, "policy")) for holder in (linked or [key])]


def _parsed(document: Any) -> Mapping[str, Any] | None:
    if document is UNKNOWN or not document:
        return None
    try:
        parsed = json.loads(document) if isinstance(document, str) else document
    except json.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, Mapping) else None


def _decrypt_allows(document: Any) -> list[Mapping[str, Any]]:
    parsed = _parsed(document)
    statements = as_list(parsed.get("Statement")) if parsed is not None else []
    return [s for s in statements if isinstance(s, Mapping) and s.get("Effect") == "Allow"
            and _covers(s, "kms:Decrypt")]


def _condition_keys(condition: Any) -> set[str]:
    return {str(key).lower() for block in (condition.values() if isinstance(condition, Mapping) else ())
            if isinstance(block, Mapping) for key in block}


_SESSION_CONTEXT = ("kms:encryptioncontext:aws:ssm:sessionid", "kms:encryptioncontext:aws:ssm:targetid")


def _session_data_only(condition: Any) -> bool:
    """Is the statement bound to Session Manager data keys: both of the session's context keys
    required by a positive, non-IfExists string operator?"""
    if not isinstance(condition, Mapping):
        return False
    required = {str(key).lower() for operator, block in condition.items()
                if str(operator).lower() in ("stringequals", "stringlike") and isinstance(block, Mapping)
                for key, values in block.items() if as_list(values)}
    return all(key in required for key in _SESSION_CONTEXT)


def _mentions_attestation(document: Any) -> bool:
    parsed = _parsed(document)
    statements = as_list(parsed.get("Statement")) if parsed is not None else []
    return any(key.startswith(_ATTESTATION) for s in statements if isinstance(s, Mapping)
               for key in _condition_keys(s.get("Condition")))


def _exported_key_arns(resources: Sequence[Resource], patterns: Sequence[Any]) -> dict[str, str]:
    """ARN -> `keyArns.<purpose>` for the purposes the stack exports that claim the role."""
    exported: dict[str, str] = {}
    for stack in of_type(resources, STACK):
        arns = known(stack, "keyArns")
        if not isinstance(arns, Mapping):
            continue
        for purpose in list(arns):
            arn = known_field(arns, purpose)
            if claims_purpose(purpose, patterns) and isinstance(arn, str) and arn:
                exported[arn] = f"keyArns.{purpose}"
    return exported


def attested_keys(resources: Sequence[Resource],
                  config: Mapping[str, Any]) -> dict[str, tuple[Resource, str]]:
    """URN -> (key, why it is a model key) for every key or replica that must be attested."""
    purposes = list(as_list(config.get("attestedKeyPurposes", DEFAULT_ATTESTED_PURPOSES)))
    alias_patterns = [str(p) for p in as_list(config.get("attestedAliases", []))]
    aliases = [(alias, name) for alias in of_type(resources, ALIAS)
               if isinstance(name := known(alias, "name", ""), str) and name
               and (claims_purpose(name.rsplit("/", 1)[-1], purposes)
                    or any(fnmatchcase(name, pattern) for pattern in alias_patterns))]
    exported = _exported_key_arns(resources, purposes)
    policies = of_type(resources, KEY_POLICY)
    keys = of_type(resources, KEY, REPLICA_KEY)
    found: dict[str, tuple[Resource, str]] = {}
    for key in keys:
        tag = _purpose_tag(key)
        named = next((name for alias, name in aliases
                      if refers_to_key(alias, "targetKeyId", key, "targetKeyArn", among=keys)), None)
        arn = known(key, "arn")
        if claims_purpose(tag, purposes):
            found[key.urn] = (key, f"tagged {PURPOSE_TAG}={tag}")
        elif named is not None:
            found[key.urn] = (key, f"named by alias {named}")
        elif isinstance(arn, str) and arn in exported:
            found[key.urn] = (key, f"exported as {exported[arn]}, the key publishers pin")
        elif any(_mentions_attestation(document) for _, document in _key_documents(key, policies, keys)):
            found[key.urn] = (key, "its policy uses enclave attestation conditions")
    # The principals that decrypt a model key only under attestation: the enclave fleet's roles.
    enclave_roles = {principal for key, _ in found.values()
                     for _, document in _key_documents(key, policies, keys)
                     for statement in _decrypt_allows(document)
                     if attestation_issue(statement.get("Condition")) is None
                     for principal in statement_principals(statement) if principal != "*"}
    for key in keys:
        if key.urn in found:
            continue
        for _, document in _key_documents(key, policies, keys):
            for statement in _decrypt_allows(document):
                keys_used = _condition_keys(statement.get("Condition"))
                if ("kms:viaservice" in keys_used or attestation_issue(statement.get("Condition")) is None
                        or _session_data_only(statement.get("Condition"))):
                    continue
                shared = [p for p in statement_principals(statement)
                          if any(same_principal(p, role) for role in enclave_roles)]
                if shared and key.urn not in found:
                    found[key.urn] = (key, f"the enclave role {shared[0]} may decrypt under it "
                                           "without attestation, so the parent instance can too")
    return found


def model_key_attestation_required(resources: Sequence[Resource],
                                   config: Mapping[str, Any]) -> list[Finding]:
    break_glass = {str(p) for p in as_list(config.get("breakGlassPrincipalArns"))}
    settings = stack_settings(config)
    policies = of_type(resources, KEY_POLICY)
    grants = of_type(resources, GRANT)
    all_keys = of_type(resources, KEY, REPLICA_KEY)
    findings: list[Finding] = []
    for key, why in attested_keys(resources, config).values():
        linked = [policy for policy in policies if refers_to_key(policy, "keyId", key, among=all_keys)]
        if len(linked) > 1:
            names = ", ".join(policy.name for policy in linked)
            findings += [Finding(policy.urn, f"model key {key.name} has {len(linked)} key policies "
                                 f"({names}): KMS keeps one policy per key and the last write wins, "
                                 "so which one holds depends on the order of the update; keep one")
                         for policy in linked]
        holders = linked or [key]
        for holder in holders:
            document = known(holder, "policy")
            if document is UNKNOWN:
                continue  # computed from this update's resources; checked when known
            label = f"model key {key.name}" + (f" (policy {holder.name})" if holder is not key else "")
            if not why.startswith(("tagged", "named by alias")):
                label += f" ({why})"
            if not document:
                findings.append(Finding(holder.urn, f"{label} has no policy: AWS's default lets "
                                        "every IAM principal of the account decrypt"))
                continue
            if settings.keys_before_grants and holder is key:
                # A key layer's first deployment: the creation policy, no grant possible yet.
                findings += [Finding(holder.urn, problem)
                             for problem in before_grants_problems(document, label, settings)]
                continue
            findings += [Finding(holder.urn, problem)
                         for problem in document_problems(document, label, break_glass)]
        for grant in grants:
            operations = {str(op).lower() for op in as_list(known(grant, "operations", []))}
            if refers_to_key(grant, "keyId", key, among=all_keys) and operations & _GRANT_OPERATIONS:
                findings.append(Finding(grant.urn, f"KMS grant {grant.name} on model key {key.name} "
                                        f"allows {', '.join(sorted(operations & _GRANT_OPERATIONS))}: "
                                        "a grant cannot require enclave attestation"))
    findings += [Finding(resource.urn, f"{resource.type} {resource.name}: KMS resources of the "
                         "aws-native provider are not supported; no rule of this pack reads them, so "
                         "a model key or key policy declared with it escapes every check; declare "
                         "keys with the aws provider (components/keys.py KeyHierarchy)")
                 for resource in resources if resource.type.startswith(NATIVE_KMS_PREFIX)]
    return findings


RULE = Rule(
    name="model-key-attestation-required",
    description="The model-weights key must allow kms:Decrypt only under Nitro Enclave attestation "
                "(non-zero PCR0/1/2) and deny plaintext to everyone, break-glass included, outside "
                "an enclave with the pinned measurements.",
    control="enclave-only decryption",
    severity=Severity.CRITICAL,
    remediation="Grant with KeyHierarchy.grant_decrypt_with_attestation(\"model-weights\", role, "
                "measurements) and no other decrypt grant on that key; pin the PCRs that "
                "enclave_images/build.sh prints.",
    stack_check=model_key_attestation_required,
    # The one control that keeps weights out of the parent's reach: never waived.
    suppressible=False,
    config={"breakGlassPrincipalArns": {"type": "array", "items": {"type": "string"}, "default": [],
                                        "description": "Principals allowed kms:* (break glass)."},
            **ATTESTED_KEY_CONFIG},
)
