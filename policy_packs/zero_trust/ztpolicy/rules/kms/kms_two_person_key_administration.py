"""Only an approved two-person elevation may change the model-weights key's policy (control: just-in-time
access).

A key administrator who can rewrite the model key's policy can drop its attestation denies,
decrypt the weights and put the policy back, unseen. So on every model key (the keys
model-key-attestation-required finds, with the same `attestedKeyPurposes` and `attestedAliases`
settings) the effective policy must

- deny `kms:PutKeyPolicy`, `kms:ScheduleKeyDeletion`, `kms:DisableKey`, `kms:UpdateAlias`,
  `kms:DeleteAlias`, `kms:ReplicateKey` and `kms:UpdatePrimaryRegion` (a replica gets a key policy
  of its own) to every principal (`*`) except the roles listed in one `ArnNotEquals`
  (or `ArnNotLike`) condition on `aws:PrincipalArn`, the statement's only condition; a
  listed ARN may hold no wildcard (a pattern would admit roles made later);
- list only the role of the stack's JIT API function (`zero-trust-ai-<env>-jit-api`, handler
  `ztai_runtime.jit.handler.api`, whose role Lambda alone may assume and no other function runs
  with: it writes a key policy only once two other people approved the document's SHA-256), and
  roles of this stack that are just-in-time key-admin elevations (tags
  `ztai:access=jit-elevation` and `ztai:grant=key-admin`), matched by their ARN once known (a role
  of another account with the same name is not one), else by name in the key's account;
- allow calls that carry a key policy (`kms:PutKeyPolicy`, `kms:ReplicateKey`) to no elevation;
- and each elevation role's trust admits nobody (the closed trust the program writes), or, deployed
  while a grant lasts, one person: one human role of this stack (`ztai:access=human`), bound to
  their `sts:SourceIdentity`, until an expiry no later than the longest two-person grant (60
  minutes) from now. A trust that admits the deployer, or anyone for hours, is a finding.

An explicit Deny in a key policy binds everyone, administrators, break-glass and the account root
included, whatever their IAM policies say. Stack key `twoPersonKeys: []` turns this off: the rule
then fails, and an exclusion with a reason is how a fork records that relaxation. Policies not
known yet are checked when they are.

A split deployment (stack key `layer`, docs/deploying.md) puts the model key in the key layer's
stack together with the roles the deny exempts: the JIT API's function and role and the elevation
roles are the key layer's identity part (`compose_identity`), because whoever controls them holds
the policy. So:

- a key layer (`layer: keys`) gets every check above, as a combined stack does, and in addition
  every exempted ARN must be a role of the key's account, without a path, named like the JIT API's
  role (`zero-trust-ai-<env>-jit-api-role`, the only one that may write the policy) or an
  elevation role (`zero-trust-ai-<env>-jit-<name>`) of the stack's environment: the names the CI
  boundary and the guardrails protect from the workload's deployer. Before the workload's grants
  (a first deployment: `workloadGrantsFile: ""`) the model key keeps its creation policy, which
  lets the deploying key administrators change it (KMS refuses a CreateKey policy its caller
  could not change); a missing deny is then accepted, since nothing can yet be decrypted under
  the key (model-key-attestation-required holds that), and the sealed policy must have it;
- a workload (`layer: workload`) hands the key layer no key administration: a
  `grant_key_administration` entry in its `keyGrants` output (which the key layer refuses in a
  grants file too) is a finding, as is declaring the JIT there (identity-part-in-key-layer).

What the key layer's half does not see: that its grants file is the workload's `keyGrants` output
as deployed (a reviewed copy: CODEOWNERS and the review hold it; `ztai verify` reads the deployed
policies).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from typing import Any

from pulumi_policy import Severity

from ztpolicy.graph import UNKNOWN, as_list, known, known_field, of_type, refers_to_key
from ztpolicy.rule import Finding, Resource, Rule
from ztpolicy.rules.kms.kms_key_policy_least_privilege import (
    KEY,
    KEY_POLICY,
    REPLICA_KEY,
    statement_principals,
)
from ztpolicy.rules.kms.model_key_attestation_required import ATTESTED_KEY_CONFIG, attested_keys
from ztpolicy.stack import StackSettings, stack_settings

ROLE = "aws:iam/role:Role"
FUNCTION = "aws:lambda/function:Function"
# components/jit_catalogue.py jit_api_function_name: `zero-trust-ai-<env>-jit-api`, with the
# environments components/stack_config.py allows (a test keeps them equal).
JIT_API_SUFFIX = "-jit-api"
ENVIRONMENTS = ("dev", "staging", "prod")
JIT_API_NAME = re.compile(rf"zero-trust-ai-(?:{'|'.join(ENVIRONMENTS)}){re.escape(JIT_API_SUFFIX)}")
JIT_API_HANDLER = "ztai_runtime.jit.handler.api"
# Calls whose request carries a key policy document (components/keys.py DOCUMENT_ACTIONS).
DOCUMENT_ACTIONS = ("kms:PutKeyPolicy", "kms:ReplicateKey")
_ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::(\d{12}):role/(.+)")
# components/jit_catalogue.py jit_api_role_name, elevation_role_name and NAME (a test keeps them
# equal): the names a key layer can check.
JIT_API_ROLE_SUFFIX = "-jit-api-role"
ELEVATION_NAME = re.compile(r"[a-z][a-z0-9-]{0,30}[a-z0-9]")
STACK = "pulumi:pulumi:Stack"
KEY_ADMINISTRATION = "grant_key_administration"
# components/jit.py CLOSED_BEFORE: the closed trust's Allow holds only before this date.
_CLOSED = datetime(2000, 1, 1, tzinfo=UTC)
# components/jit_catalogue.py MAX_TWO_PERSON_MINUTES (the pack imports no component; a test keeps
# them equal), and the skew jit-grant-expiry also allows.
MAX_TWO_PERSON_MINUTES = 60
CLOCK_SKEW_MINUTES = 5
TWO_PERSON_ACTIONS = ("kms:PutKeyPolicy", "kms:ScheduleKeyDeletion", "kms:DisableKey",
                      "kms:UpdateAlias", "kms:DeleteAlias", "kms:ReplicateKey",
                      "kms:UpdatePrimaryRegion")
_NEGATED_ARN_OPERATORS = {"arnnotequals", "arnnotlike"}
_EVERYONE = ("*", {"AWS": "*"}, {"AWS": ["*"]})


def _covers(statement: Mapping[str, Any], action: str) -> bool:
    return any(fnmatchcase(action.lower(), str(p).lower()) for p in as_list(statement.get("Action")))


def _exempted(statement: Mapping[str, Any]) -> list[str] | None:
    """The ARNs a Deny to everyone leaves out through its only condition, or None when the
    statement is not such a Deny."""
    if (statement.get("Effect") != "Deny" or statement.get("Principal") not in _EVERYONE
            or "NotPrincipal" in statement or "NotAction" in statement or "NotResource" in statement
            or "*" not in as_list(statement.get("Resource"))):
        return None
    condition = statement.get("Condition")
    if not isinstance(condition, Mapping) or len(condition) != 1:
        return None
    [(operator, block)] = condition.items()
    if str(operator).lower() not in _NEGATED_ARN_OPERATORS or not isinstance(block, Mapping) \
            or len(block) != 1:
        return None
    [(key, values)] = block.items()
    if str(key).lower() != "aws:principalarn":
        return None
    return [str(value) for value in as_list(values)]


def two_person_exemptions(document: Any) -> tuple[list[str], list[str]]:
    """(the ARNs the two-person Deny leaves out, the actions no such Deny covers) of a policy
    document (JSON text or a mapping); ([], every action) when it has none."""
    try:
        parsed = json.loads(document) if isinstance(document, str) else document
    except json.JSONDecodeError:
        return [], list(TWO_PERSON_ACTIONS)
    statements = as_list(parsed.get("Statement")) if isinstance(parsed, Mapping) else []
    exempt: list[str] = []
    uncovered = []
    for action in TWO_PERSON_ACTIONS:
        denies = [arns for s in statements if isinstance(s, Mapping) and _covers(s, action)
                  and (arns := _exempted(s)) is not None and arns]
        if not denies:
            uncovered.append(action)
        for arns in denies:
            exempt += [arn for arn in arns if arn not in exempt]
    return exempt, uncovered


def _elevation_roles(resources: Sequence[Resource]) -> list[Resource]:
    return [role for role in of_type(resources, ROLE) if role.tags().get("ztai:access") == "jit-elevation"
            and role.tags().get("ztai:grant") == "key-admin"]


def _elevation_for(arn: str, roles: Sequence[Resource], key_account: str | None) -> Resource | None:
    """The role among `roles` that `arn` names: by its ARN when known (exactly: a role of another
    account with the same name is another role); else by name, in the key's account when that is
    known (a real preview knows neither until the deploy)."""
    match = _ROLE_ARN.fullmatch(arn)
    if match is None:
        return None
    account, role_name = match[1], match[2].rsplit("/", 1)[-1]
    for role in roles:
        known_arn = known(role, "arn")
        if isinstance(known_arn, str) and known_arn:
            if known_arn == arn:
                return role
            continue
        if known(role, "name") == role_name and key_account in (None, account):
            return role
    return None


def _trust_problem(role: Resource, resources: Sequence[Resource]) -> str | None:
    """Why the elevation role's trust lets someone in without the JIT runtime's approval, or None.

    In the program the trust is the closed one (admits nobody: every Allow holds only before
    CLOSED_BEFORE). Once deployed, the JIT API writes an open one while a grant lasts: one Allow
    for one person's role of this stack (tagged `ztai:access=human`), bound to their source
    identity, until an expiry within the longest two-person grant from now."""
    trust = known(role, "assumeRolePolicy")
    if trust is UNKNOWN or trust is None:
        return None
    try:
        document = json.loads(trust) if isinstance(trust, str) else trust
    except json.JSONDecodeError:
        return "its trust policy is not JSON"
    allows = [s for s in as_list(document.get("Statement")) if isinstance(s, Mapping)
              and s.get("Effect") == "Allow"] if isinstance(document, Mapping) else []
    people = {known(r, "arn") for r in of_type(resources, ROLE) if r.tags().get("ztai:access") == "human"}
    latest = datetime.now(UTC) + timedelta(minutes=MAX_TWO_PERSON_MINUTES + CLOCK_SKEW_MINUTES)
    for statement in allows:
        raw = statement.get("Condition")
        condition: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
        before = condition.get("DateLessThan")
        dates = [_date(str(v)) for k, values in (before.items() if isinstance(before, Mapping) else ())
                 if str(k).lower() == "aws:currenttime" for v in as_list(values)]
        known_dates = [d for d in dates if d is not None]
        if dates and len(known_dates) == len(dates) and all(d <= _CLOSED for d in known_dates):
            continue  # the closed trust
        principal = statement.get("Principal")
        arns = as_list(principal.get("AWS")) if isinstance(principal, Mapping) else []
        equals = condition.get("StringEquals")
        bound = isinstance(equals, Mapping) and any(str(k).lower() == "sts:sourceidentity" for k in equals)
        if (len(arns) != 1 or arns[0] not in people or not bound or not dates
                or len(known_dates) != len(dates) or any(d > latest for d in known_dates)):
            return ("its trust admits someone other than one approved person of this stack (one "
                    "human role, bound to their source identity, until an expiry within "
                    f"{MAX_TWO_PERSON_MINUTES} minutes): only the JIT runtime may open it")
    return None


def _role_of(function: Resource, roles: Sequence[Resource]) -> list[Resource]:
    arn = known(function, "role")
    linked = set(function.property_dependencies.get("role", ()))
    return [role for role in roles if role.urn in linked
            or (isinstance(arn, str) and arn and known(role, "arn") == arn)]


def _policy_writers(resources: Sequence[Resource]) -> list[Resource]:
    """The role of the stack's JIT API function (`zero-trust-ai-<env>-jit-api`, handler
    `ztai_runtime.jit.handler.api`), which writes a key policy only once two other people approved
    its SHA-256. Linked by the function's `role` (the role's ARN once known, else the dependency
    Pulumi records)."""
    roles = of_type(resources, ROLE)
    found: list[Resource] = []
    for function in of_type(resources, FUNCTION):
        name, handler = known(function, "name"), known(function, "handler")
        if isinstance(name, str) and JIT_API_NAME.fullmatch(name) and handler in (JIT_API_HANDLER, UNKNOWN):
            found += _role_of(function, roles)
    return found


def _shared_writer(writer: Resource, resources: Sequence[Resource]) -> str | None:
    """Another function that runs with the writer's role: its code writes policies unapproved."""
    for function in of_type(resources, FUNCTION):
        name = known(function, "name")
        if isinstance(name, str) and JIT_API_NAME.fullmatch(name):
            continue
        if writer in _role_of(function, [writer]):
            return str(name if isinstance(name, str) else function.name)
    return None


def _document_writers(document: Any) -> set[str]:
    """Principals an Allow of the document lets make a call that carries a key policy."""
    try:
        parsed = json.loads(document) if isinstance(document, str) else document
    except json.JSONDecodeError:
        return set()
    statements = as_list(parsed.get("Statement")) if isinstance(parsed, Mapping) else []
    return {principal for s in statements if isinstance(s, Mapping) and s.get("Effect") == "Allow"
            and any(_covers(s, action) for action in DOCUMENT_ACTIONS)
            for principal in statement_principals(s)}


def _writer_problem(role: Resource) -> str | None:
    """A function's role is trusted by Lambda alone: no person or account may assume it."""
    trust = known(role, "assumeRolePolicy")
    if trust is UNKNOWN or trust is None:
        return None
    try:
        document = json.loads(trust) if isinstance(trust, str) else trust
    except json.JSONDecodeError:
        return "its role's trust policy is not JSON"
    for statement in as_list(document.get("Statement")) if isinstance(document, Mapping) else []:
        if not isinstance(statement, Mapping) or statement.get("Effect") != "Allow":
            continue
        principal = statement.get("Principal")
        services = as_list(principal.get("Service")) if isinstance(principal, Mapping) else []
        if (not isinstance(principal, Mapping) or set(principal) != {"Service"}
                or services != ["lambda.amazonaws.com"]):
            return (f"the JIT API's role {role.name} may be assumed by {principal!r}, not by Lambda "
                    "alone: whoever assumes it writes the key policy without approvals")
    return None


def _date(text: str) -> datetime | None:
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def jit_role_names(environment: str) -> tuple[str, str]:
    """(the JIT API's role name, the prefix of every elevation role's name) of an environment."""
    return f"zero-trust-ai-{environment}{JIT_API_ROLE_SUFFIX}", f"zero-trust-ai-{environment}-jit-"


def _is_elevation_name(name: Any, prefix: str) -> bool:
    return isinstance(name, str) and name.startswith(prefix) \
        and ELEVATION_NAME.fullmatch(name[len(prefix):]) is not None


def _key_layer_problem(arn: str, label: str, key_account: str | None, settings: StackSettings,
                       document_writers: set[str]) -> str | None:
    """An exempted ARN in a key layer: a role of the key's account named as the stack's JIT API
    role or one of its elevation roles (the names the CI boundary and the guardrails protect);
    the roles themselves are then checked as in a combined stack."""
    if settings.environment is None:
        return (f"{label} exempts {arn} from its two-person deny, but the stack config gives no "
                "environment (dev, staging or prod), so which JIT roles it may exempt is not known")
    match = _ROLE_ARN.fullmatch(arn)
    writer_name, prefix = jit_role_names(settings.environment)
    if match is None:
        return f"{label} exempts {arn} from its two-person deny, which is not an IAM role ARN"
    account, name = match[1], match[2]
    if key_account is not None and account != key_account:
        return (f"{label} exempts {arn}, a role of account {account}, from its two-person deny; "
                f"the key is in account {key_account}, and only its JIT roles may be exempted")
    if name == writer_name:
        return None
    if not _is_elevation_name(name, prefix):
        return (f"{label} exempts {arn} from its two-person deny, which is named neither as the JIT "
                f"API's role ({writer_name}) nor as an elevation role ({prefix}<elevation>, no "
                "path) of this environment: it could change the policy without two approvals")
    if arn in document_writers:
        return (f"{label} lets {arn}, an elevation role, make calls that carry a key policy "
                f"({', '.join(DOCUMENT_ACTIONS)}): two people would approve a reason, not the "
                f"document; only the JIT API's role ({writer_name}) may write it")
    return None


def _exported_key_administration(resources: Sequence[Resource]) -> list[tuple[str, Any, Any]]:
    """(purpose, role, policy_writer) of each key-administration grant in the stack's `keyGrants`
    output (components/key_grants.py); UNKNOWN where a preview does not know a value yet."""
    found = []
    for stack in of_type(resources, STACK):
        ledger = known(stack, "keyGrants")
        for entry in as_list(known_field(ledger, "grants")) if isinstance(ledger, Mapping) else []:
            if isinstance(entry, Mapping) and known_field(entry, "grant") == KEY_ADMINISTRATION:
                found.append((str(known_field(entry, "purpose")), known_field(entry, "role"),
                              known_field(entry, "policy_writer")))
    return found


def _workload_findings(resources: Sequence[Resource]) -> list[Finding]:
    """A workload's half: it hands the key layer no key administration (the key layer grants its
    own elevations and JIT API, its identity part)."""
    anchor = next((r.urn for r in resources if r.type == STACK), "")
    return [Finding(anchor, (
        f"keyGrants hands the key layer a key-administration grant for the {purpose} key (elevation "
        f"{role}, policy writer {writer}): who may change a key's policy is the key layer's own "
        "choice (its identity part, compose_identity), never the workload's; the key layer refuses "
        "such an entry in its grants file"))
        for purpose, role, writer in _exported_key_administration(resources)]


def two_person_findings(key: Resource, resources: Sequence[Resource], settings: StackSettings,
                        what: str, harm: str) -> list[Finding]:
    """The findings on one key whose effective policy must keep the two-person deny (the model
    key here; the audit trail's key in cloudtrail-trail-secure): the deny covers every
    TWO_PERSON_ACTIONS, exempts only the stack's JIT API role and key-admin elevations, and each
    of those is what it claims to be (module docstring). The effective policy is the key's
    `aws.kms.KeyPolicy` when it has one, else its creation policy, which a key layer's first
    deployment may leave without the deny. `what` names the key in messages ("model key"), `harm`
    says what a standing administrator could do ("decrypt the weights")."""
    policies = of_type(resources, KEY_POLICY)
    keys = of_type(resources, KEY, REPLICA_KEY)
    roles = _elevation_roles(resources)
    writers = _policy_writers(resources)
    findings: list[Finding] = []
    key_arn = known(key, "arn")
    key_account = key_arn.split(":")[4] if isinstance(key_arn, str) and key_arn.count(":") >= 5 else None
    linked = [policy for policy in policies if refers_to_key(policy, "keyId", key, among=keys)]
    for holder in linked or [key]:
        document = known(holder, "policy")
        if document is UNKNOWN or document is None:
            continue
        label = f"{what} {key.name}" + (f" (policy {holder.name})" if holder is not key else "")
        exempt, uncovered = two_person_exemptions(document)
        document_writers = _document_writers(document)
        if uncovered and settings.keys_before_grants and holder is key:
            continue  # a key layer's first deployment: its creation policy (module docstring)
        if uncovered:
            findings.append(Finding(holder.urn, (
                f"{label} does not deny {', '.join(uncovered)} to every principal but its key-admin "
                "elevation (a Deny to `*` with only an ArnNotEquals aws:PrincipalArn condition): a "
                f"standing administrator could rewrite the policy, {harm} and put it back")))
            continue
        for arn in exempt:
            if "*" in arn or "?" in arn:
                findings.append(Finding(holder.urn, f"{label} exempts the pattern {arn} from its "
                                        "two-person deny: name each key-admin elevation role exactly"))
            elif settings.is_keys and (problem := _key_layer_problem(
                    arn, label, key_account, settings, document_writers)) is not None:
                findings.append(Finding(holder.urn, problem))
            elif (writer := _elevation_for(arn, writers, key_account)) is not None:
                if (problem := _writer_problem(writer)) is not None:
                    findings.append(Finding(holder.urn, f"{label} exempts {arn}, but {problem}"))
                elif (other := _shared_writer(writer, resources)) is not None:
                    findings.append(Finding(holder.urn, (
                        f"{label} exempts {arn}, the JIT API's role, which the function {other} "
                        "runs with too: its code could write the policy without approvals")))
            elif (elevation := _elevation_for(arn, roles, key_account)) is None:
                findings.append(Finding(holder.urn, (
                    f"{label} exempts {arn} from its two-person deny, which is neither the JIT "
                    "API's role (of the Lambda function *-jit-api) nor a just-in-time key-admin "
                    "elevation role of this stack (tags ztai:access=jit-elevation, "
                    "ztai:grant=key-admin): it could change the policy without two approvals")))
            elif arn in document_writers:
                findings.append(Finding(holder.urn, (
                    f"{label} lets {arn}, a key-admin elevation, make calls that carry a key "
                    f"policy ({', '.join(DOCUMENT_ACTIONS)}): two people would approve a reason, "
                    "not the document; only the JIT API's role may write it")))
            elif (problem := _trust_problem(elevation, resources)) is not None:
                findings.append(Finding(elevation.urn, (
                    f"{label} exempts the elevation role {elevation.name}, but {problem}")))
    return findings


def kms_two_person_key_administration(resources: Sequence[Resource],
                                      config: Mapping[str, Any]) -> list[Finding]:
    settings = stack_settings(config)
    findings: list[Finding] = _workload_findings(resources) if settings.is_workload else []
    for key, _why in attested_keys(resources, config).values():
        findings += two_person_findings(key, resources, settings, "model key", "decrypt the weights")
    return findings


RULE = Rule(
    name="kms-two-person-key-administration",
    description="Only an approved two-person key-admin elevation may change the model key's policy, "
                "alias, state or deletion.",
    control="just-in-time access",
    severity=Severity.CRITICAL,
    remediation="Keep the model key in twoPersonKeys and give it a key-admin elevation in the JIT "
                "catalogue (keys.grant_key_administration); name only that role in the deny's "
                "ArnNotEquals aws:PrincipalArn.",
    stack_check=kms_two_person_key_administration,
    config=ATTESTED_KEY_CONFIG,
)
