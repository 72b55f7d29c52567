"""Key policies are least privilege (control: encryption and key management).

- a key without a policy gets AWS's default, `kms:*` for the whole account through IAM;
- no Allow to any principal (`*`) without a condition;
- no Allow with `NotAction` or `NotPrincipal`: they grant everything they do not name, which no
  least-privilege review can bound;
- no `kms:*` (or `*`) except for the configured break-glass principals;
- no principal that both administers a key (PutKeyPolicy) and uses it, in one statement or
  across several (a use grant to an administrator, e.g. the key rotation role, is caught).
  Across statements a principal is compared as IAM would see it: an assumed-role session
  (`arn:aws:sts::<account>:assumed-role/<role>/<session>`) and a role with a path are the role
  `arn:aws:iam::<account>:role/<role>`, and `Principal "*"` restricted by an `aws:PrincipalArn`
  condition (StringEquals, StringLike, ArnEquals, ArnLike) is the principals it names, patterns
  included. Two uses do not count there, each an Allow of named actions (no wildcard) whose
  Condition has StringEquals `kms:ViaService` naming the service (`<service>.<region>...`) and
  StringEquals on the service's own encryption context naming concrete resources (no `*`, `?` or
  policy variable); condition keys compare ignoring case, values as written:
  - S3: only kms:Decrypt and kms:GenerateDataKey under `kms:EncryptionContext:aws:s3:arn` (bucket
    or object ARNs). That is KeyHierarchy.allow_administrators_through_s3: the deploying role, a
    key administrator, writes the API's mutual-TLS truststore into its SSE-KMS bucket and API
    Gateway reads it with the deployer's credentials. S3 sets that context to the bucket's ARN
    with S3 Bucket Keys, else to the object's;
  - DynamoDB: only Encrypt, Decrypt, ReEncryptFrom, ReEncryptTo, GenerateDataKey and
    GenerateDataKeyWithoutPlaintext under `kms:EncryptionContext:aws:dynamodb:tableName` (table
    names). That is KeyHierarchy.allow_service_resource_creation: the deploying role creates the
    token vault's table, and DynamoDB uses the key as its creator (KMS Developer Guide, "How
    Amazon DynamoDB uses AWS KMS"), setting that context on every call.
  - EventBridge Scheduler: only Encrypt, GenerateDataKey and Decrypt under StringEquals
    `kms:EncryptionContext:aws:scheduler:schedule-arn` (schedule ARNs). That is
    KeyHierarchyArgs.schedules: Scheduler encrypts a schedule's payload as its creator under that
    context (Scheduler User Guide, "Encryption at rest"). No kms:ViaService is required (not
    documented as set): a direct call still gets only ciphertexts bound to the named schedules;
  - EC2 Image Builder: only Encrypt, GenerateDataKey and Decrypt under StringEquals
    kms:ViaService `imagebuilder.*` and StringLike `kms:EncryptionContext:aws:imagebuilder:arn`
    naming components as `arn:...:component/<name>/*` (a concrete name, any version: the one
    pattern accepted). That is KeyHierarchyArgs.image_builder_components.
  KMS then answers only the service, only for the named resources; a direct KMS call has no
  kms:ViaService, so no ciphertext outside them can be decrypted. Anything looser still counts
  as use: StringLike or an `...IfExists` operator (which holds when the key is absent), a
  pattern, another or a wildcard action (ReEncrypt* would also cover what the list does not
  name), a missing ViaService or context condition;
- no kms:CreateGrant (a grant hands out use of the key) except for AWS services acting for a
  resource (`kms:GrantIsForAWSResource`) or break-glass.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from pulumi_policy import Severity

from ztpolicy.graph import UNKNOWN, PolicyDocumentError, allow_statements, as_list, known
from ztpolicy.rule import Resource, Rule

KEY = "aws:kms/key:Key"
# Replicas of multi-Region keys have policies and deletion windows of their own.
REPLICA_KEY = "aws:kms/replicaKey:ReplicaKey"
KEY_POLICY = "aws:kms/keyPolicy:KeyPolicy"
# Every KMS API action (lower case): what an IAM pattern such as `kms:*crypt` may match.
KMS_ACTIONS = tuple(f"kms:{name.lower()}" for name in (
    "CancelKeyDeletion", "ConnectCustomKeyStore", "CreateAlias", "CreateCustomKeyStore",
    "CreateGrant", "CreateKey", "Decrypt", "DeleteAlias", "DeleteCustomKeyStore",
    "DeleteImportedKeyMaterial", "DeriveSharedSecret", "DescribeCustomKeyStores", "DescribeKey",
    "DisableKey", "DisableKeyRotation", "DisconnectCustomKeyStore", "EnableKey",
    "EnableKeyRotation", "Encrypt", "GenerateDataKey", "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext", "GenerateDataKeyWithoutPlaintext", "GenerateMac",
    "GenerateRandom", "GetKeyPolicy", "GetKeyRotationStatus", "GetParametersForImport",
    "GetPublicKey", "ImportKeyMaterial", "ListAliases", "ListGrants", "ListKeyPolicies",
    "ListKeyRotations", "ListKeys", "ListResourceTags", "ListRetirableGrants", "PutKeyPolicy",
    "ReEncryptFrom", "ReEncryptTo", "ReplicateKey", "RetireGrant", "RevokeGrant",
    "RotateKeyOnDemand", "ScheduleKeyDeletion", "Sign", "SynchronizeMultiRegionKey", "TagResource",
    "UntagResource", "UpdateAlias", "UpdateCustomKeyStore", "UpdateKeyDescription",
    "UpdatePrimaryRegion", "Verify", "VerifyMac"))
_ADMIN = ("kms:putkeypolicy",)
_DELEGATE = ("kms:creategrant",)
_USE_PREFIXES = ("kms:decrypt", "kms:encrypt", "kms:generatedatakey", "kms:reencrypt",
                 "kms:generatemac", "kms:verifymac", "kms:sign", "kms:derivesharedsecret")
# Condition operators under which aws:PrincipalArn names who the statement is for. The IfExists
# forms are not among them: without the key they match anyone.
_PRINCIPAL_ARN_OPERATORS = {"stringequals", "stringlike", "arnequals", "arnlike"}
_ASSUMED_ROLE = re.compile(r"^arn:(aws[\w-]*):sts::(\d{12}):assumed-role/([^/]+)/[^/]+$")
_ROLE = re.compile(r"^arn:(aws[\w-]*):iam::(\d{12}):role/(?:.*/)?([^/]+)$")
_VIA_SERVICE = "kms:viaservice"


@dataclass(frozen=True)
class _ServiceUse:
    """An administrator use the cross-statement check leaves alone (see the module docstring)."""

    service: str | None  # the kms:ViaService prefix, e.g. "s3."; None: not required
    actions: frozenset[str]  # lower case, exact names
    context_key: str  # lower case
    resource: re.Pattern[str]  # what one context value must be
    operator: str = "stringequals"  # the one operator the context condition may use


_SERVICE_USES = (
    _ServiceUse("s3.", frozenset({"kms:decrypt", "kms:generatedatakey"}),
                "kms:encryptioncontext:aws:s3:arn", re.compile(r"^arn:aws[\w-]*:s3:::[^*?$]+$")),
    _ServiceUse("dynamodb.", frozenset({"kms:encrypt", "kms:decrypt", "kms:reencryptfrom",
                                        "kms:reencryptto", "kms:generatedatakey",
                                        "kms:generatedatakeywithoutplaintext"}),
                "kms:encryptioncontext:aws:dynamodb:tablename",
                # DynamoDB table names: 3-255 of [a-zA-Z0-9_.-]
                re.compile(r"^[A-Za-z0-9_.-]{3,255}$")),
    # Scheduler encrypts a schedule's payload as its creator under the schedule's ARN.
    _ServiceUse(None, frozenset({"kms:encrypt", "kms:generatedatakey", "kms:decrypt"}),
                "kms:encryptioncontext:aws:scheduler:schedule-arn",
                re.compile(r"^arn:aws[\w-]*:scheduler:[a-z0-9-]+:\d{12}:schedule/[^/*?$]+/[^/*?$]+$")),
    # Image Builder encrypts a component as its creator; its ARN's version part may be `*`.
    _ServiceUse("imagebuilder.", frozenset({"kms:encrypt", "kms:generatedatakey", "kms:decrypt"}),
                "kms:encryptioncontext:aws:imagebuilder:arn",
                re.compile(r"^arn:aws[\w-]*:imagebuilder:[a-z0-9-]+:\d{12}:component/[^/*?$]+/\*$"),
                operator="stringlike"),
)


def _principals(principal: Any) -> list[str]:
    if isinstance(principal, str):
        return [principal]
    if isinstance(principal, Mapping):
        return [str(v) for values in principal.values() for v in as_list(values)]
    return []


def identity(principal: str) -> str:
    """A principal as IAM evaluates it: sessions and role paths map to `...:role/<name>`."""
    match = _ASSUMED_ROLE.match(principal) or _ROLE.match(principal)
    return f"arn:{match[1]}:iam::{match[2]}:role/{match[3]}" if match else principal


def _principal_arn_condition(condition: Any) -> list[str]:
    """The ARNs (or ARN patterns) an `aws:PrincipalArn` condition restricts a statement to."""
    if not isinstance(condition, Mapping):
        return []
    return [str(value) for operator, block in condition.items()
            if str(operator).lower() in _PRINCIPAL_ARN_OPERATORS and isinstance(block, Mapping)
            for key, values in block.items() if str(key).lower() == "aws:principalarn"
            for value in as_list(values)]


def statement_principals(statement: Mapping[str, Any]) -> list[str]:
    """Who a statement is for: its principals, `*` narrowed by an aws:PrincipalArn condition."""
    principals = _principals(statement.get("Principal"))
    if "*" in principals and (named := _principal_arn_condition(statement.get("Condition"))):
        principals = [p for p in principals if p != "*"] + named
    return principals


def same_principal(first: str, second: str) -> bool:
    """Can two principals of a policy be one caller? Patterns (from ArnLike/StringLike) match
    what they cover; a bare `*` (everyone, narrowed by other conditions) only itself."""
    first, second = identity(first), identity(second)
    if first == second:
        return True
    if "*" in (first, second):
        return False
    return fnmatchcase(first, second) or fnmatchcase(second, first)


def _string_equals(condition: Any, key: str, operator: str = "stringequals") -> list[list[str]]:
    """The value lists `key` (lower case) takes under plain `operator` (StringEquals unless
    told), one per block: every block must hold, so any one of them narrows the statement."""
    if not isinstance(condition, Mapping):
        return []
    return [[str(value) for value in as_list(values)]
            for name_of_operator, block in condition.items()
            if str(name_of_operator).lower() == operator and isinstance(block, Mapping)
            for name, values in block.items() if str(name).lower() == key]


def through_service_for_named_resources(statement: Mapping[str, Any]) -> bool:
    """Does the statement allow only S3, DynamoDB, Scheduler or Image Builder to use the key for
    named resources on the caller's behalf, in one of the shapes of `_SERVICE_USES` (module
    docstring)?"""
    actions = {str(a).lower() for a in as_list(statement.get("Action"))}
    if not actions or "NotAction" in statement:
        return False
    condition = statement.get("Condition")
    for use in _SERVICE_USES:
        if not actions <= use.actions:
            continue
        via = use.service is None or any(
            values and all(value.startswith(use.service) for value in values)
            for values in _string_equals(condition, _VIA_SERVICE))
        named = any(values and all(use.resource.match(value) for value in values)
                    for values in _string_equals(condition, use.context_key, use.operator))
        if via and named:
            return True
    return False


def _covers(action: str, names: tuple[str, ...]) -> bool:
    """Does the IAM action pattern `action` (`*` and `?` anywhere, as IAM matches them) include
    any KMS action whose name starts with one of `names`? An action KMS does not have (a typo, a
    future API) is compared by prefix, as before the list."""
    pattern = action.lower()
    candidates = [known for known in KMS_ACTIONS if known.startswith(names)]
    if any(fnmatchcase(known, pattern) for known in candidates):
        return True
    return not any(c in pattern for c in "*?") and pattern.startswith(names)


@dataclass(frozen=True)
class _Holder:
    principal: str
    sid: str


def document_problems(document: Any, label: str, break_glass: set[str]) -> list[str]:
    try:
        statements = allow_statements(document, f"{label} policy")
    except PolicyDocumentError as error:
        return [str(error)]
    problems = []
    break_glass_identities = {identity(p) for p in break_glass}
    administers: list[_Holder] = []
    uses: list[_Holder] = []
    for index, statement in statements:
        sid = statement.get("Sid") or f"#{index}"
        negated = [element for element in ("NotAction", "NotPrincipal") if element in statement]
        if negated:
            problems.append(f"{label} statement {sid} allows with {' and '.join(negated)}: it "
                            "grants everything it does not name; name the principals and actions")
        principals = statement_principals(statement)
        actions = [str(a) for a in as_list(statement.get("Action"))]
        break_glass_only = bool(principals) and {identity(p) for p in principals} <= break_glass_identities
        if not break_glass_only:
            for principal in principals:
                if any(_covers(a, _ADMIN) for a in actions):
                    administers.append(_Holder(principal, sid))
                if any(_covers(a, _USE_PREFIXES) for a in actions) and not (
                        through_service_for_named_resources(statement)):
                    uses.append(_Holder(principal, sid))
        if "*" in _principals(statement.get("Principal")) and not statement.get("Condition"):
            problems.append(f"{label} statement {sid} allows any principal without a condition")
        if break_glass_only:
            continue  # break-glass may hold everything
        if any(a in ("*", "kms:*") for a in actions):
            problems.append(f"{label} statement {sid} grants kms:* to {', '.join(principals)}; "
                            "only break-glass principals may hold it")
        elif any(_covers(a, _ADMIN) for a in actions) and any(_covers(a, _USE_PREFIXES)
                                                              for a in actions):
            problems.append(f"{label} statement {sid} lets the same principals administer and "
                            "use the key")
        elif any(_covers(a, _DELEGATE) for a in actions) and "kms:grantisforawsresource" not in {
                key.lower() for block in (statement.get("Condition") or {}).values()
                if isinstance(block, Mapping) for key in block}:
            problems.append(f"{label} statement {sid} allows kms:CreateGrant, with which its "
                            "holders can hand out use of the key")
    # Across statements: one caller administering in one and using in another.
    pairs: dict[tuple[str, str], tuple[dict[str, None], dict[str, None]]] = {}
    for admin in administers:
        for user in uses:
            if same_principal(admin.principal, user.principal):
                admin_sids, use_sids = pairs.setdefault((admin.principal, user.principal), ({}, {}))
                admin_sids[admin.sid] = use_sids[user.sid] = None  # ordered sets
    for (admin_principal, use_principal), (admin_sids, use_sids) in sorted(pairs.items()):
        if set(admin_sids) & set(use_sids):
            continue  # one statement doing both is reported above
        as_whom = "" if use_principal == admin_principal else f", as {use_principal}"
        problems.append(f"{label} lets {admin_principal} administer the key (statement "
                        f"{', '.join(admin_sids)}) and use it{as_whom} (statement "
                        f"{', '.join(use_sids)})")
    return problems


def kms_key_policy_least_privilege(resource: Resource, config: Mapping[str, Any]) -> list[str]:
    document = known(resource, "policy")
    if document is UNKNOWN:
        return []  # computed from resources of this update; checked again when known
    if not document:
        if resource.type in (KEY, REPLICA_KEY):
            return [f"key {resource.name} has no policy: AWS's default grants kms:* to every "
                    "IAM principal of the account that is allowed it"]
        return [f"{resource.name} sets an empty key policy"]
    break_glass = set(as_list(config.get("breakGlassPrincipalArns")))
    return document_problems(document, resource.name, break_glass)


RULE = Rule(
    name="kms-key-policy-least-privilege",
    description="KMS key policies must name their principals, keep kms:* for break-glass only, "
                "and separate administration from use.",
    control="key hierarchy",
    severity=Severity.CRITICAL,
    remediation="Let KeyHierarchy write the policy and grant use with grant_encrypt/"
                "grant_decrypt/...; list the break-glass role in breakGlassPrincipalArns.",
    resource_check=kms_key_policy_least_privilege,
    resource_types=frozenset({KEY, KEY_POLICY, REPLICA_KEY}),
    config={"breakGlassPrincipalArns": {"type": "array", "items": {"type": "string"}, "default": [],
                                        "description": "Principals allowed kms:* (break glass)."}},
)
