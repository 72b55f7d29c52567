"""Key hierarchy: one customer-managed KMS key per purpose.

Purposes: training data, model weights, logs, secrets, inference (symmetric, automatic rotation
every 90 days, the shortest KMS allows) and tokens (HMAC_256 for deterministic tokens; KMS rotates
no HMAC key). Each has an alias `alias/zero-trust-ai/<environment>/<purpose>`. The inference key
encrypts what the inference fleet stores at rest: its EBS volumes and AMI snapshots, and the
server-side layer of its model-object bucket (the weights in it are encrypted under model-weights).

Key policies are written here and nowhere else:

- administrators (the roles given, or else the account through IAM) may manage a key but not
  use it (one named exception, `allow_administrators_through_s3`, below), and may not create
  grants (a grant would let them hand themselves its use); a key with an attested grant
  (model-weights) needs named administrator roles: `seal()` refuses the account;
- the break-glass role, if given, is the only principal with `kms:*`, and only with MFA;
- usage is granted by the hierarchy's owner methods (`grant_encrypt`, `grant_decrypt`,
  `grant_generate_data_key`, `grant_generate_mac`, `grant_verify_mac`, `grant_cloudwatch_logs`),
  which take a role, never by other components writing key ARNs into their own policies;
- `grant_key_rotation` lets the monthly rotation function's role inspect and rotate the
  symmetric keys, without any use; only with `create_successors=True` does it also make the role
  an administrator of their policies (see its docstring);
- `allow_administrators_through_s3` is the one use the administrators get: writing and reading the
  SSE-KMS objects of one named bucket, only through S3 (the deployer publishes the API's
  mutual-TLS truststore, which API Gateway reads with the deployer's credentials; see its
  docstring). Never on the model-weights or the HMAC key;
- `grant_decrypt_with_attestation` lets a role decrypt only from inside a Nitro Enclave whose
  measurements are pinned, and makes the key refuse the plaintext of its ciphertexts to everyone,
  break-glass included, outside an enclave with those measurements (see its docstring).

Usage grants are collected while the program composes the stack and written when `seal()` is
called, as one `aws.kms.KeyPolicy` per key, which depends on the roles it names (KMS refuses a
principal that does not exist; the provider retries PutKeyPolicy while IAM propagates a new role,
MalformedPolicyDocumentException, for up to two minutes). A hierarchy that is never sealed keeps
its creation policy, which lets no role of the stack use any key: it fails safe.

Order on a first `pulumi up` (a key must admit a service before the service uses it): what a
service checks the moment a resource is created with a key is in the policy the key is created
with, and stays in the sealed one, so no resource races the sealed policy, on the first deploy or
any later one:

- CloudWatch Logs, which checks the key when a log group is created or associated with it: on the
  logs key, for the stack's log-group name prefixes (`KeyHierarchyArgs.log_group_prefixes`,
  default the names every component uses); `grant_cloudwatch_logs(prefix)` refuses a prefix
  outside them, at composition;
- DynamoDB creating a table encrypted under a key as the deploying role
  (`KeyHierarchyArgs.dynamodb_tables`): the administrators, through DynamoDB, for those tables;
- EventBridge Scheduler creating a schedule with a key as the deploying role
  (`KeyHierarchyArgs.schedules`): the administrators, under those schedules' ARNs as context;
- Image Builder creating a component encrypted under a key as the deploying role
  (`KeyHierarchyArgs.image_builder_components`): the administrators, through Image Builder, for
  those components.

A resource that uses a key at creation through a statement naming a role of the stack waits for
the sealed policy: the truststore upload, the deploy-time image build and the launches that follow
it do, through `seal()`'s return value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from fnmatch import fnmatchcase
from typing import Any

import pulumi
import pulumi_aws as aws

from components.aws_facts import REGION_AZ_COUNT, partition_for_region
from components.key_grants import recorded

SYMMETRIC_PURPOSES: tuple[str, ...] = ("training-data", "model-weights", "logs", "secrets",
                                       "inference", "audit")
HMAC_PURPOSE = "tokens"
PURPOSES: tuple[str, ...] = (*SYMMETRIC_PURPOSES, HMAC_PURPOSE)

# Named action sets: every grant method is one line over `_grant`.
ENCRYPT_ACTIONS = ("kms:Encrypt", "kms:GenerateDataKey", "kms:GenerateDataKeyWithoutPlaintext")
DECRYPT_ACTIONS = ("kms:Decrypt",)
GENERATE_DATA_KEY_ACTIONS = ("kms:GenerateDataKey",)
GENERATE_MAC_ACTIONS = ("kms:GenerateMac",)
VERIFY_MAC_ACTIONS = ("kms:VerifyMac",)
DESCRIBE_ACTIONS = ("kms:DescribeKey",)
# What a caller needs on a resource's customer managed key for the service (e.g. DynamoDB
# encryption at rest) to use it on the caller's behalf. Granted only under kms:ViaService.
SERVICE_USE_ACTIONS = ("kms:Encrypt", "kms:Decrypt", "kms:ReEncryptFrom", "kms:ReEncryptTo",
                       "kms:GenerateDataKey", "kms:GenerateDataKeyWithoutPlaintext", "kms:DescribeKey")
SERVICE_GRANT_ACTIONS = ("kms:CreateGrant",)
# What the principal that creates a DynamoDB table encrypted under a customer managed key needs
# through DynamoDB (AWS KMS Developer Guide, "How Amazon DynamoDB uses AWS KMS", "Authorizing use
# of your KMS key": Encrypt, Decrypt, ReEncrypt*, GenerateDataKey*, DescribeKey and CreateGrant).
# The data-key actions are named one by one: the pack's least-privilege rule accepts an
# administrator's use only in that shape, under one table's encryption context, which DynamoDB
# sets on every KMS call ("DynamoDB uses the same encryption context in all AWS KMS cryptographic
# operations": aws:dynamodb:tableName, aws:dynamodb:subscriberId).
TABLE_CREATION_USE_ACTIONS = ("kms:Encrypt", "kms:Decrypt", "kms:ReEncryptFrom", "kms:ReEncryptTo",
                              "kms:GenerateDataKey", "kms:GenerateDataKeyWithoutPlaintext")
DYNAMODB_TABLE_CONTEXT = "kms:EncryptionContext:aws:dynamodb:tableName"
# What CloudWatch Logs asks for a log group's key (CloudWatch Logs User Guide, "Encrypt log data
# in CloudWatch Logs using AWS KMS": Encrypt*, Decrypt*, ReEncrypt*, GenerateDataKey*, Describe*).
CLOUDWATCH_LOGS_ACTIONS = ("kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*",
                           "kms:Describe*")
LOGS_PURPOSE = "logs"
# The audit trail's own key (components/audit.py): its log files in the archive and its CloudWatch
# Logs copy. Not the logs key: whoever may disable or re-policy the key a trail writes with
# silences the trail ("a disabled key stops delivery", CloudTrail User Guide, "How AWS CloudTrail
# uses AWS KMS"), and the logs key takes new grants with every component, so it is administered
# by one person. This one takes none after creation and is two-person by default.
AUDIT_PURPOSE = "audit"
# What CloudTrail does with a trail's key (CloudTrail User Guide, "Configure AWS KMS key policies
# for CloudTrail"): data keys for each log file, under the encryption context
# `aws:cloudtrail:arn`, and DescribeKey when the trail is created or updated. No Decrypt: that is
# needed only with an S3 Bucket Key, which the archive does not use.
CLOUDTRAIL_SERVICE = "cloudtrail.amazonaws.com"
CLOUDTRAIL_ENCRYPT_ACTIONS = ("kms:GenerateDataKey*",)
CLOUDTRAIL_CONTEXT = "kms:EncryptionContext:aws:cloudtrail:arn"
# The only uses of the audit key (`_allow_audit_trail`, `grant_trail_read`); `_grant` refuses any
# other grant that encrypts, decrypts, makes data keys or hands them out (CreateGrant) on it.
_AUDIT_KEY_USES = ("CloudTrailEncrypt", "CloudWatchLogsForTheTrail", "ReadTrailLogs")
_USE_ACTION_PREFIXES = ("kms:encrypt", "kms:decrypt", "kms:reencrypt", "kms:generatedatakey",
                        "kms:creategrant")
# Matched against a grant's actions as patterns too (`kms:De*`, `kms:*`), whatever their case.
_USE_ACTIONS = ("kms:encrypt", "kms:decrypt", "kms:reencryptfrom", "kms:reencryptto",
                "kms:generatedatakey", "kms:generatedatakeywithoutplaintext", "kms:generatedatakeypair",
                "kms:creategrant")
_TRAIL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{2,127}$")
# What a service publishing to an SSE topic asks of the topic's key, and the context SNS sets
# (KeyHierarchy.grant_alarm_topics).
ALARM_TOPIC_ACTIONS = ("kms:GenerateDataKey*", "kms:Decrypt")
ALARM_TOPIC_CONTEXT = "kms:EncryptionContext:aws:sns:topicArn"
# EventBridge Scheduler with a customer managed key (Scheduler User Guide, "Encryption at rest in
# EventBridge Scheduler"): it encrypts a schedule's payload (the target input) when the schedule
# is created or updated, as the caller, and decrypts it as the schedule's execution role when it
# invokes the target, each time under the encryption context `aws:scheduler:schedule-arn` = the
# schedule's ARN. The caller's actions are listed one by one (Encrypt, GenerateDataKey: the exact
# call is not documented; Decrypt: UpdateSchedule and GetSchedule read the payload back; not
# confirmed against the current page offline). DescribeKey the administrators already hold.
SCHEDULE_CREATION_USE_ACTIONS = ("kms:Encrypt", "kms:GenerateDataKey", "kms:Decrypt")
SCHEDULE_CONTEXT = "kms:EncryptionContext:aws:scheduler:schedule-arn"
# EC2 Image Builder with a customer managed key on a component: Image Builder encrypts the
# document as the caller of CreateComponent (and decrypts it for GetComponent, which the provider
# calls after creating it), and the build instance reads it through Image Builder
# (imagebuilder:GetComponent) with its instance profile. AWS's own EC2InstanceProfileForImageBuilder
# policy grants that read as `kms:Decrypt` when `kms:EncryptionContextKeys` has
# `aws:imagebuilder:arn` and `aws:CalledVia` is imagebuilder.amazonaws.com (Image Builder User
# Guide, "Use AWS managed policies for EC2 Image Builder"). The context's value is not documented:
# the statements here bind it to the stack's component names (`component/<name>/*`, any version),
# which a StringLike also requires to be present.
COMPONENT_CREATION_USE_ACTIONS = ("kms:Encrypt", "kms:GenerateDataKey", "kms:Decrypt")
COMPONENT_CONTEXT = "kms:EncryptionContext:aws:imagebuilder:arn"
# A schedule name (Scheduler: 1-64 of letters, digits, . - _) in the default group, and an Image
# Builder component name (letters, digits, - _ and spaces; the stack's use no spaces).
_SCHEDULE_NAME = re.compile(r"^[0-9A-Za-z_.-]{1,64}$")
_COMPONENT_NAME = re.compile(r"^[A-Za-z0-9_-]{1,126}$")
# A DynamoDB table name: 3-255 of a-z, A-Z, 0-9, _ . -
_TABLE_NAME = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")
# A Firehose stream name: 1-64 of letters, digits, _ . -
_STREAM_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_LOG_GROUP_PREFIX = re.compile(r"^/[A-Za-z0-9_./#-]{1,510}$")
# What S3 asks KMS for, as the caller, on an SSE-KMS bucket's key: GenerateDataKey to write an
# object (PutObject, CreateMultipartUpload), Decrypt to read one (GetObject) and to finish a
# multipart upload or a copy. Not Encrypt: S3 never calls it for SSE-KMS (an old revision of the
# S3 User Guide listed it; the current pages name GenerateDataKey and Decrypt only).
S3_OBJECT_ACTIONS = ("kms:GenerateDataKey", "kms:Decrypt")
# Attested decryption (Nitro Enclaves). KMS sets the kms:RecipientAttestation:* keys only when a
# request carries a Recipient with a signed attestation document, which only Decrypt,
# GenerateDataKey(Pair), GenerateRandom and DeriveSharedSecret accept. ReEncrypt accepts none, so
# ReEncryptFrom (and a re-wrap to a key the caller can decrypt) is plaintext without attestation.
ATTESTED_DECRYPT_ACTIONS = ("kms:Decrypt",)
# Denied to the attested role whenever the attestation is absent: no plaintext data key from
# Decrypt or GenerateDataKey*, no re-wrap. (The per-PCR denies below already cover its Decrypt and
# ReEncryptFrom; GenerateDataKey* and ReEncryptTo are what this statement adds.)
ATTESTED_ROLE_DENY_ACTIONS = ("kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*")
# Denied to every principal, break-glass, key administrators and grant holders included, unless the
# request attests the pinned enclave: one Deny per pinned PCR (see `_pinned_enclave_denies`).
# Only what returns the plaintext of an EXISTING ciphertext: GenerateDataKey* makes a new data key
# and is how weights are published (without Recipient), so it is not denied to everyone.
ATTESTED_EVERYONE_DENY_ACTIONS = ("kms:Decrypt", "kms:ReEncryptFrom")
# What `seal()` refuses to Allow anyone else on an attested key: plaintext without attestation, and
# CreateGrant (a KMS grant cannot carry attestation conditions; nothing needs one on that key).
ATTESTED_KEY_REFUSED_ACTIONS = (*ATTESTED_EVERYONE_DENY_ACTIONS, "kms:CreateGrant")
ATTESTATION_PRESENT_KEY = "kms:RecipientAttestation:PCR0"
# Administration without use, listed one by one: `kms:Create*` would include CreateGrant.
# DisableKeyRotation is left out on purpose: turning rotation off takes the break-glass role.
ADMIN_ACTIONS = (
    "kms:DescribeKey", "kms:GetKeyPolicy", "kms:GetKeyRotationStatus", "kms:ListAliases",
    "kms:ListGrants", "kms:ListKeyPolicies", "kms:ListResourceTags", "kms:ListKeyRotations",
    "kms:PutKeyPolicy", "kms:CreateAlias", "kms:UpdateAlias", "kms:DeleteAlias",
    "kms:UpdateKeyDescription", "kms:EnableKeyRotation", "kms:RotateKeyOnDemand",
    "kms:TagResource", "kms:UntagResource", "kms:RevokeGrant", "kms:RetireGrant", "kms:EnableKey",
    "kms:DisableKey", "kms:ScheduleKeyDeletion", "kms:CancelKeyDeletion",
)
# The monthly rotation function (components/key_rotation.py, ztai_runtime/rotation.py), on every
# symmetric key: inspect and rotate; read the policy and tags to check a successor the alias may
# name (same policy, predecessor tag). No use action, no CreateGrant, no administration.
# What a drift check reads of a key (`ztai verify`, docs/drift.md): its state, policy, rotation and
# tags; no use, no change.
INSPECT_ACTIONS = ("kms:DescribeKey", "kms:GetKeyPolicy", "kms:GetKeyRotationStatus",
                   "kms:ListGrants", "kms:ListKeyRotations", "kms:ListResourceTags")
KEY_ROTATION_ACTIONS = (
    "kms:DescribeKey", "kms:GetKeyPolicy", "kms:GetKeyRotationStatus", "kms:ListKeyRotations",
    "kms:ListResourceTags", "kms:RotateKeyOnDemand",
)
# Added only when the function creates successors: what the copy of the key's policy must grant
# it. KMS refuses a CreateKey policy that does not let the caller PutKeyPolicy on the new key (the
# lockout safety check, never bypassed), so PutKeyPolicy is here although the function never calls
# it; EnableKeyRotation and UpdateAlias act on the successor (UpdateAlias on the old key too);
# TagResource covers the tags set at creation.
KEY_SUCCESSOR_ACTIONS = ("kms:PutKeyPolicy", "kms:TagResource", "kms:EnableKeyRotation",
                         "kms:UpdateAlias")
# What only an approved two-person elevation may do on a two-person key (`two_person_purposes`):
# rewrite its policy (drop the attestation denies, then decrypt), delete or disable it, or move or
# drop its alias (point publishing at a key the insider controls). Denied in the key policy to
# every principal but the key-admin elevation roles, deployers, break-glass and the account root
# included. ReplicateKey carries the new replica's whole key policy (AWS KMS API Reference,
# ReplicateKey, `Policy`) and UpdatePrimaryRegion hands the key to a replica's policy: both would
# copy the key out from under this policy. An explicit Deny in a key policy binds everyone (AWS KMS
# Developer Guide, "Key policies in AWS KMS": "If a key policy explicitly denies a principal...
# the principal is denied even if IAM policies allow it"). CreateAlias stays with the deployers
# (Pulumi names the key at creation, before the sealed policy); CreateGrant is not here because a
# service may need it through kms:GrantIsForAWSResource on another two-person key (a key with an
# attested grant refuses every CreateGrant anyway, see ATTESTED_KEY_REFUSED_ACTIONS).
TWO_PERSON_ACTIONS = ("kms:PutKeyPolicy", "kms:ScheduleKeyDeletion", "kms:DisableKey",
                      "kms:UpdateAlias", "kms:DeleteAlias", "kms:ReplicateKey",
                      "kms:UpdatePrimaryRegion")
DEFAULT_TWO_PERSON_PURPOSES: tuple[str, ...] = ("model-weights",)
# What a key-admin elevation may do on its key: administration without use, plus the multi-Region
# moves only it may make (a new replica Region of a multi-Region key, a new primary).
ELEVATION_ADMIN_ACTIONS = (*ADMIN_ACTIONS, "kms:ReplicateKey", "kms:UpdatePrimaryRegion")
# Two-person actions whose request carries a key policy document: only the JIT API writes one,
# the document two other people approved (`grant_key_administration`'s policy_writer).
DOCUMENT_ACTIONS = ("kms:PutKeyPolicy", "kms:ReplicateKey")
SHORTEST_ROTATION_DAYS = 90
DELETION_WINDOW_DAYS = 30
_MEASUREMENT = re.compile(r"^[0-9a-fA-F]{96}$")
# A general purpose bucket's ARN (bucket naming rules), never an object's or a pattern.
_BUCKET_ARN = re.compile(r"^arn:aws[a-z-]*:s3:::[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_SID = re.compile(r"^[A-Za-z0-9]+$")

# A role, a service-linked role, or a role ARN: whom a grant names.
Grantee = aws.iam.Role | aws.iam.ServiceLinkedRole | pulumi.Input[str]


def measurement_problem(value: str) -> str | None:
    """Why `value` cannot pin an enclave PCR, or None: SHA-384 (96 hex digits), never all zero."""
    if not _MEASUREMENT.match(value):
        return f"{len(value)} characters; a PCR is a SHA-384 digest, 96 hex digits"
    if set(value) == {"0"}:
        return ("all zeros: that is what an enclave started with --debug-mode reports, whose memory "
                "the parent can read; pin the measurements of the production EIF")
    return None


@dataclass(frozen=True)
class EnclaveMeasurements:
    """The measurements an enclave must attest before KMS releases plaintext to it.

    pcr0: the enclave image file; pcr1: the kernel and boot ramdisk; pcr2: the application;
    pcr8: the EIF signing certificate (None for an unsigned EIF). `nitro-cli build-enclave` prints
    them (enclave_images/measurements.py turns its output into stack configuration).
    """

    pcr0: str
    pcr1: str
    pcr2: str
    pcr8: str | None = None

    def __post_init__(self) -> None:
        for name, value in self.pcrs().items():
            if (problem := measurement_problem(value)) is not None:
                raise ValueError(f"enclave measurement {name} {value!r}: {problem}")

    def pcrs(self) -> dict[str, str]:
        pcrs = {"PCR0": self.pcr0, "PCR1": self.pcr1, "PCR2": self.pcr2}
        return {**pcrs, "PCR8": self.pcr8} if self.pcr8 is not None else pcrs

    def conditions(self) -> dict[str, str]:
        """`kms:RecipientAttestation:PCR<n>` → lower-case digest, for StringEqualsIgnoreCase."""
        return {f"kms:RecipientAttestation:{name}": value.lower()
                for name, value in self.pcrs().items()}


@dataclass
class KeyHierarchyArgs:
    """Inputs of `KeyHierarchy`; every default is the secure one.

    environment, owner, region: tags, alias names and the CloudWatch Logs service principal.
    administrator_role_arns: roles that administer, not use, the keys (the one exception:
        `allow_administrators_through_s3`). Default empty: the account administers through IAM,
        still without any usage action; `seal()` then refuses a key with an attested grant (any
        IAM principal allowed kms:PutKeyPolicy could rewrite its policy). The role that runs
        `pulumi up` must be one of them: KMS refuses a policy that would lock out the principal
        writing it.
    break_glass_role_arn: the only principal allowed `kms:*`, with MFA. Default None: nobody.
    deletion_window_in_days: 7-30; default 30 (the policy pack requires 30 unless configured).
    protect: `protect` on the keys (prod). Default False.
    log_group_prefixes: log-group name prefixes CloudWatch Logs may encrypt under the logs key,
        from the key's creation. Default: the names this project's components use,
        `log_group_prefixes_for(environment)`.
    dynamodb_tables: purpose -> names of DynamoDB tables the deploying (administrator) roles
        create encrypted under that key. Default none. Refused on model-weights.
    schedules: purpose -> names of EventBridge Scheduler schedules (default group) the deploying
        roles create with that key (`kmsKeyArn`). Default none. Refused on model-weights and the
        HMAC key. `grant_schedule_decrypt` lets each schedule's execution role read it.
    image_builder_components: purpose -> names of Image Builder components the deploying roles
        create encrypted under that key (`kmsKeyId`). Default none. Refused on model-weights and
        the HMAC key. `grant_component_decrypt` lets the build instance read them.
    two_person_purposes: keys whose policy, deletion, disabling and alias (TWO_PERSON_ACTIONS)
        only a just-in-time key-admin elevation may change, once two other people approved it
        (`grant_key_administration`); everyone else, the administrators and break-glass included,
        is denied them in the key's policy. Default: model-weights (the stack configuration adds
        audit). `seal()` refuses a two-person
        key that no elevation administers (nobody could ever change its policy again). An empty
        tuple is a relaxation: the pack's kms-two-person-key-administration rule reports it.
    replica_regions: regions that get a replica of every key. Default empty: single-Region keys.
        Replicas have policies of their own in KMS; each gets the same statements (rendered for
        its region) and the same grants. Adding the first region replaces the keys: multi-Region
        is fixed at creation.
    s3_buckets: purpose -> names of buckets (Bucket Keys on) whose SSE-KMS objects the deploying
        roles write and read through S3 under that key, from its creation (the API's truststore,
        which Pulumi uploads and API Gateway reads with the deployer's credentials); the
        statement is `allow_administrators_through_s3`'s. Default none. Refused on model-weights
        and the HMAC key.
    inspector_role_arns: roles that read every key's state, policy, rotation and tags
        (INSPECT_ACTIONS) and nothing else, from its creation: the drift check's (`ztai verify`),
        which must see a policy someone rewrote without being a key administrator. Default none.
    deployer_role_arns: roles that create the stack's resources encrypted under the keys (the
        tables, schedules and Image Builder components above, the truststore upload of
        `allow_administrators_through_s3`), which the keys admit for those uses only. Default
        empty: the administrators, who deploy everything in a combined stack. In a split
        deployment the key layer names the workload's deployer here, and administrators keep no
        use but administrator_tables' (docs/deploying.md).
    administrator_tables: as dynamodb_tables, for tables the key administrators create whoever
        the deployers are: the just-in-time requests table, which a split deployment's key layer
        declares with the keys (its identity part). Default none.
    audit_trail_name: the name of the account's audit trail (components/audit.py), in this
        account and the keys' home region: from its creation the audit key lets CloudTrail
        encrypt that trail's log files and describe the key (both pinned to the trail by
        aws:SourceArn), and CloudWatch Logs encrypt that trail's log group
        (`audit_log_group_name`). Nothing else is ever granted on the audit key but reading
        (`grant_trail_read`). Default None: the key admits neither.
    alarm_topics: the stack's alarm topics (components/alarm_topics.py) are encrypted with the
        logs key: CloudWatch and EventBridge may use it for them, from its creation
        (`grant_alarm_topics`), and EventBridge for the dead-letter queues of the stack's watch
        rules (`grant_watch_dead_letters`). Default False.
    firehose_streams: purpose -> names of Firehose streams (the SIEM streams) the deploying roles,
        and the key administrators, create server-side encrypted under that key
        (`_allow_firehose_stream_creation`). Default none. Refused on model-weights and the HMAC
        key.
    """

    environment: str
    owner: str
    region: str
    administrator_role_arns: Sequence[pulumi.Input[str]] = field(default_factory=tuple)
    break_glass_role_arn: pulumi.Input[str] | None = None
    deletion_window_in_days: int = DELETION_WINDOW_DAYS
    protect: bool = False
    replica_regions: Sequence[str] = field(default_factory=tuple)
    log_group_prefixes: Sequence[str] | None = None
    dynamodb_tables: Mapping[str, Sequence[str]] = field(default_factory=dict)
    schedules: Mapping[str, Sequence[str]] = field(default_factory=dict)
    image_builder_components: Mapping[str, Sequence[str]] = field(default_factory=dict)
    two_person_purposes: Sequence[str] = DEFAULT_TWO_PERSON_PURPOSES
    deployer_role_arns: Sequence[pulumi.Input[str]] = field(default_factory=tuple)
    s3_buckets: Mapping[str, Sequence[pulumi.Input[str]]] = field(default_factory=dict)
    inspector_role_arns: Sequence[pulumi.Input[str]] = field(default_factory=tuple)
    administrator_tables: Mapping[str, Sequence[str]] = field(default_factory=dict)
    audit_trail_name: str | None = None
    alarm_topics: bool = False
    firehose_streams: Mapping[str, Sequence[str]] = field(default_factory=dict)


def audit_log_group_name(environment: str) -> str:
    """The audit trail's CloudWatch Logs copy: encrypted with the audit key, not the logs key."""
    return f"/zero-trust-ai/{environment}/cloudtrail"


def log_group_prefixes_for(environment: str) -> tuple[str, ...]:
    """Where the components put their log groups: `/zero-trust-ai/<env>/...` (flow logs and the
    stack's own), and the names AWS services expect, `/aws/<service>/zero-trust-ai-<env>-...`
    (Lambda, Image Builder, API Gateway, vended logs)."""
    return (f"/zero-trust-ai/{environment}/",
            *(f"/aws/{service}/zero-trust-ai-{environment}-"
              for service in ("lambda", "imagebuilder", "apigateway", "vendedlogs")))


@dataclass(frozen=True)
class _Grant:
    sid: str
    principal: dict[str, pulumi.Input[str]]
    actions: tuple[str, ...]
    # Built per key once the account id and the key's region are known (replicas differ), and
    # `inputs` resolved: called as condition(account, region, *inputs).
    condition: Callable[..., dict[str, Any]] | None = None
    service: str | None = None  # an AWS service principal, `<service>.<region>.amazonaws.com`
    # The statement goes to the deploying roles: deployer_role_arns, else the key administrators
    # (the configured roles, else the account).
    to_administrators: bool = False
    # ... to the key administrators themselves, even when deployer_role_arns are named (what a
    # split deployment's key layer creates: administrator_tables).
    to_key_administrators: bool = False
    effect: str = "Allow"
    # Values the condition needs that may be known only once other resources exist (a bucket's
    # ARN); resolved with the principals when the policy is rendered, then passed to `condition`.
    inputs: tuple[pulumi.Input[str], ...] = ()


class KeyHierarchy(pulumi.ComponentResource):
    """The per-purpose keys. Type token `zero-trust-ai:keys:KeyHierarchy`."""

    keys: dict[str, aws.kms.Key]
    aliases: dict[str, aws.kms.Alias]

    def __init__(self, name: str, args: KeyHierarchyArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        _validate(args)
        super().__init__("zero-trust-ai:keys:KeyHierarchy", name, None, opts)
        self._name = name
        self._args = args
        self._partition = partition_for_region(args.region)
        self._account_id = aws.get_caller_identity_output(
            opts=pulumi.InvokeOptions(parent=self)).account_id
        # purpose -> the measurements pinned by its attested grants (the per-PCR denies, at seal)
        self._attested: dict[str, list[EnclaveMeasurements]] = {}
        self._sealed = False
        # Every grant call, as the key layer's grants file holds it (components/key_grants.py).
        self.ledger: list[dict[str, Any]] = []
        # purpose -> the key-admin elevation roles that alone may make its TWO_PERSON_ACTIONS
        self._elevated_administrators: dict[str, list[Grantee]] = {p: [] for p in PURPOSES}
        self._log_group_prefixes = tuple(args.log_group_prefixes if args.log_group_prefixes is not None
                                         else log_group_prefixes_for(args.environment))
        # Statements a key is created with (see the module docstring), then the sealed grants.
        self._grants: dict[str, list[_Grant]] = {purpose: [] for purpose in PURPOSES}
        self._grant_cloudwatch_logs_from_creation()
        for purpose, tables in sorted(args.dynamodb_tables.items()):
            self._allow_table_creation(purpose, tables)
        for purpose, tables in sorted(args.administrator_tables.items()):
            self._allow_table_creation(purpose, tables, by_key_administrators=True)
        for purpose, schedules in sorted(args.schedules.items()):
            self._allow_schedule_creation(purpose, schedules)
        for purpose, components in sorted(args.image_builder_components.items()):
            self._allow_component_creation(purpose, components)
        if args.audit_trail_name is not None:
            self._allow_audit_trail(args.audit_trail_name)
        if args.alarm_topics:
            self.grant_alarm_topics()
            self.grant_watch_dead_letters()  # the watches that publish to them
        for purpose, streams in sorted(args.firehose_streams.items()):
            self._allow_firehose_stream_creation(purpose, streams)
        for inspector in args.inspector_role_arns:
            for purpose in PURPOSES:  # reading, not using: the HMAC key's too
                self._grants[purpose].append(_Grant("InspectWithoutUse", {"AWS": inspector},
                                                    INSPECT_ACTIONS))
        for purpose, buckets in sorted(args.s3_buckets.items()):
            for bucket in buckets:
                self._allow_deployers_through_s3(
                    purpose, pulumi.Output.concat(f"arn:{self._partition}:s3:::", bucket))
        self.keys, self.aliases = {}, {}
        self.replicas: dict[str, dict[str, aws.kms.ReplicaKey]] = {p: {} for p in PURPOSES}
        tags = {"data-classification": "restricted"}
        for purpose in PURPOSES:
            hmac = purpose == HMAC_PURPOSE
            key = aws.kms.Key(
                f"{name}-{purpose}",
                description=f"zero-trust-ai {args.environment}: {purpose}",
                customer_master_key_spec="HMAC_256" if hmac else "SYMMETRIC_DEFAULT",
                key_usage="GENERATE_VERIFY_MAC" if hmac else "ENCRYPT_DECRYPT",
                # KMS rotates only symmetric encryption keys automatically.
                enable_key_rotation=not hmac,
                rotation_period_in_days=None if hmac else SHORTEST_ROTATION_DAYS,
                deletion_window_in_days=args.deletion_window_in_days,
                multi_region=bool(args.replica_regions),
                policy=self._policy_output(purpose, list(self._grants[purpose]), args.region),
                tags={**tags, "ztai:key-purpose": purpose},
                # The sealed KeyPolicy owns the policy from then on; without this the key and
                # the KeyPolicy would rewrite each other on every update.
                opts=pulumi.ResourceOptions(parent=self, protect=args.protect,
                                            ignore_changes=["policy"]),
            )
            self.keys[purpose] = key
            key_alias = alias_name(args.environment, purpose)
            self.aliases[purpose] = aws.kms.Alias(
                f"{name}-{purpose}-alias", name=key_alias, target_key_id=key.key_id,
                # A successor (made by the pipeline, or by the rotation function with
                # create_successors) takes over a symmetric key's alias before the stack adopts
                # it; without this the next `pulumi up` would move it back (docs/runbooks/key-rotation.md).
                # Other moves are caught by the rotation function, which fails when an
                # alias names neither the declared key nor a valid successor of it. The HMAC key
                # is never replaced, so drift of its alias is still corrected. Nor is the
                # model-weights alias left to drift: whoever moves it chooses the key weights are
                # published under (pack rule model-key-alias-pinned); its successor is adopted in
                # the program, alias included, in one reviewed change.
                opts=pulumi.ResourceOptions(
                    parent=key,
                    ignore_changes=[] if hmac or purpose == "model-weights" else ["targetKeyId"]))
            for region in args.replica_regions:
                replica = aws.kms.ReplicaKey(
                    f"{name}-{purpose}-{region}",
                    region=region,
                    primary_key_arn=key.arn,
                    description=f"zero-trust-ai {args.environment}: {purpose} (replica)",
                    deletion_window_in_days=args.deletion_window_in_days,
                    policy=self._policy_output(purpose, list(self._grants[purpose]), region),
                    tags={**tags, "ztai:key-purpose": purpose},
                    opts=pulumi.ResourceOptions(parent=key, protect=args.protect,
                                                ignore_changes=["policy"]),
                )
                self.replicas[purpose][region] = replica
                aws.kms.Alias(f"{name}-{purpose}-{region}-alias", region=region, name=key_alias,
                              target_key_id=replica.key_id,
                              opts=pulumi.ResourceOptions(parent=replica))
        self.register_outputs({purpose: key.arn for purpose, key in self.keys.items()})

    # -- policy ----------------------------------------------------------------------------------
    def _policy_output(self, purpose: str, grants: Sequence[_Grant], region: str,
                       two_person: bool = False) -> pulumi.Output[str]:
        principals = [self._account_id, pulumi.Output.all(*self._args.administrator_role_arns),
                      pulumi.Output.from_input(self._args.break_glass_role_arn or ""),
                      pulumi.Output.all(*[pulumi.Output.all(**g.principal) for g in grants]),
                      pulumi.Output.all(*[pulumi.Output.all(*g.inputs) for g in grants]),
                      pulumi.Output.all(*self._args.deployer_role_arns)]

        def document(values: list[Any]) -> str:
            resolved = [(replace(grant, inputs=tuple(inputs)), principal)
                        for grant, principal, inputs in zip(grants, values[3], values[4], strict=True)]
            return _policy_document(self._partition, values[0], region, values[1], values[2], resolved,
                                    two_person=two_person, deployers=values[5])

        return pulumi.Output.all(*principals).apply(document)

    def _grant(self, purpose: str, sid: str, principal: dict[str, pulumi.Input[str]],
               actions: Sequence[str],
               condition: Callable[..., dict[str, Any]] | None = None,
               service: str | None = None, to_administrators: bool = False,
               effect: str = "Allow", inputs: Sequence[pulumi.Input[str]] = (),
               to_key_administrators: bool = False) -> None:
        """Collect a statement for `seal()`. `condition(account, region, *inputs)` builds its
        Condition per key, with `inputs` resolved (they may be Outputs of other resources)."""
        if purpose not in self._grants:
            raise ValueError(f"unknown key purpose {purpose!r}; purposes are {', '.join(PURPOSES)}")
        if self._sealed:
            raise RuntimeError(f"{self._name}: grant after seal(); grant everything first, then seal")
        if (purpose == AUDIT_PURPOSE and sid not in _AUDIT_KEY_USES
                and any(fnmatchcase(use, action.lower()) or action.lower().startswith(_USE_ACTION_PREFIXES)
                        for action in actions for use in _USE_ACTIONS)):
            raise ValueError(f"{sid}: the audit key is used only by CloudTrail and CloudWatch Logs "
                             "for the audit trail, and read with grant_trail_read; grant this use "
                             "on another key (whoever may use the trail's key may forge what it "
                             "protects or read it unseen)")
        wants_mac = any(action.endswith("Mac") for action in actions)
        if wants_mac != (purpose == HMAC_PURPOSE):
            raise ValueError(f"{'MAC' if wants_mac else 'encryption'} actions do not fit the "
                             f"{purpose} key")
        self._grants[purpose].append(_Grant(sid, principal, tuple(actions), condition, service,
                                            to_administrators, to_key_administrators, effect,
                                            tuple(inputs)))

    def _role(self, role: Grantee) -> dict[str, pulumi.Input[str]]:
        if isinstance(role, (aws.iam.Role, aws.iam.ServiceLinkedRole)):
            return {"AWS": role.arn}
        return {"AWS": role}

    @recorded
    def grant_encrypt(self, purpose: str, role: aws.iam.Role) -> None:
        self._grant(purpose, "Encrypt", self._role(role), (*ENCRYPT_ACTIONS, *DESCRIBE_ACTIONS))

    @recorded
    def grant_decrypt(self, purpose: str, role: aws.iam.Role, *,
                      encryption_context: Mapping[str, Sequence[str]] | None = None) -> None:
        """Decrypt under the key; with `encryption_context`, only ciphertexts whose context has,
        for each key named, one of the values listed (e.g. one tenant's domain)."""
        self._grant(purpose, "Decrypt", self._role(role), (*DECRYPT_ACTIONS, *DESCRIBE_ACTIONS),
                    _context_condition(encryption_context))

    @recorded
    def grant_generate_data_key(self, purpose: str, role: aws.iam.Role, *,
                                encryption_context: Mapping[str, Sequence[str]] | None = None) -> None:
        """GenerateDataKey under the key, optionally only with the given context values."""
        self._grant(purpose, "GenerateDataKey", self._role(role),
                    (*GENERATE_DATA_KEY_ACTIONS, *DESCRIBE_ACTIONS), _context_condition(encryption_context))

    @recorded
    def grant_session_decrypt(self, purpose: str, role: Grantee) -> None:
        """Let `role` (an instance's SSM agent) decrypt Session Manager data keys, and nothing
        else: only ciphertexts whose encryption context names a session and an instance, which is
        what the agent and the client set (`aws:ssm:SessionId`, `aws:ssm:TargetId`, as in the
        amazon-ssm-agent's session encryption). A StringLike on a key absent from the request is
        false, so a ciphertext without that context (log data, queue messages) is refused."""
        self._grant(purpose, "DecryptSessionData", self._role(role), DECRYPT_ACTIONS,
                    lambda account, region: {"StringLike": {
                        "kms:EncryptionContext:aws:ssm:SessionId": "*",
                        "kms:EncryptionContext:aws:ssm:TargetId": "i-*"}})

    @recorded
    def grant_generate_mac(self, role: aws.iam.Role) -> None:
        self._grant(HMAC_PURPOSE, "GenerateMac", self._role(role),
                    (*GENERATE_MAC_ACTIONS, *DESCRIBE_ACTIONS))

    @recorded
    def grant_verify_mac(self, role: aws.iam.Role) -> None:
        self._grant(HMAC_PURPOSE, "VerifyMac", self._role(role), (*VERIFY_MAC_ACTIONS, *DESCRIBE_ACTIONS))

    @recorded
    def grant_cloudwatch_logs(self, log_group_prefix: str) -> None:
        """Check that CloudWatch Logs may encrypt the log groups under `log_group_prefix` with the
        logs key. It may from the key's creation, for `log_group_prefixes` only (module
        docstring): a log group outside them would be refused by CloudWatch Logs at creation, so
        it is refused here, at composition, with the fix."""
        if not any(log_group_prefix.startswith(prefix) for prefix in self._log_group_prefixes):
            raise ValueError(
                f"log group prefix {log_group_prefix!r} is not under the prefixes the logs key admits "
                f"CloudWatch Logs for ({', '.join(self._log_group_prefixes)}): name the log group "
                "under one of them, or add its prefix to KeyHierarchyArgs.log_group_prefixes")

    def _grant_cloudwatch_logs_from_creation(self) -> None:
        prefixes = self._log_group_prefixes
        for prefix in prefixes:
            if not _LOG_GROUP_PREFIX.match(prefix):
                raise ValueError(f"log_group_prefixes: {prefix!r} is not a log-group name prefix "
                                 "(/, then letters, digits, _ . / # -)")
        partition = self._partition
        self._grant(LOGS_PURPOSE, "CloudWatchLogs", {}, CLOUDWATCH_LOGS_ACTIONS,
                    lambda account, region: {"ArnLike": {"kms:EncryptionContext:aws:logs:arn": [
                        f"arn:{partition}:logs:{region}:{account}:log-group:{prefix}*"
                        for prefix in prefixes]}},
                    service="logs")

    def _allow_audit_trail(self, name: str) -> None:
        """From the audit key's creation (the trail waits for nothing else): CloudTrail encrypts
        the log files of the trail `name` of this account, in the keys' home region, and
        describes the key; CloudWatch Logs encrypts that trail's log group. Statements as the
        CloudTrail User Guide's "Configure AWS KMS key policies for CloudTrail" writes them: the
        data keys only with a CloudTrail encryption context of this account's trails, both only
        for this trail (aws:SourceArn). The ARN is built from this key's own account, so no
        other account's trail is ever admitted."""
        if not _TRAIL_NAME.match(name):
            raise ValueError(f"audit_trail_name {name!r}: 3-128 letters, digits, . _ -, starting "
                             "with a letter or digit (CloudTrail trail names)")
        partition, home = self._partition, self._args.region
        principal: dict[str, pulumi.Input[str]] = {"Service": CLOUDTRAIL_SERVICE}

        def trail(account: str) -> str:
            return f"arn:{partition}:cloudtrail:{home}:{account}:trail/{name}"

        self._grant(AUDIT_PURPOSE, "CloudTrailEncrypt", principal, CLOUDTRAIL_ENCRYPT_ACTIONS,
                    lambda account, region: {
                        "StringEquals": {"aws:SourceArn": trail(account)},
                        "StringLike": {CLOUDTRAIL_CONTEXT:
                                       f"arn:{partition}:cloudtrail:*:{account}:trail/*"}})
        self._grant(AUDIT_PURPOSE, "CloudTrailDescribeKey", principal, DESCRIBE_ACTIONS,
                    lambda account, region: {"StringEquals": {"aws:SourceArn": trail(account)}})
        group = audit_log_group_name(self._args.environment)
        self._grant(AUDIT_PURPOSE, "CloudWatchLogsForTheTrail", {}, CLOUDWATCH_LOGS_ACTIONS,
                    lambda account, region: {"ArnEquals": {"kms:EncryptionContext:aws:logs:arn":
                        f"arn:{partition}:logs:{region}:{account}:log-group:{group}"}},
                    service="logs")

    @recorded
    def grant_trail_read(self, role: Grantee) -> None:
        """Let `role` read the audit trail's log files: kms:Decrypt on the audit key only for
        data encrypted under a CloudTrail context (the statement the CloudTrail User Guide gives
        readers), so never the CloudWatch Logs copy's data keys. Reading the archive's objects is
        the bucket's grant (AuditTrail.grant_read)."""
        self._grant(AUDIT_PURPOSE, "ReadTrailLogs", self._role(role), DECRYPT_ACTIONS,
                    lambda account, region: {"Null": {CLOUDTRAIL_CONTEXT: "false"}})

    @recorded
    def grant_use_through_service(self, purpose: str, role: Grantee, service: str) -> None:
        """Let `service` (e.g. "dynamodb") use the key on `role`'s behalf, and only through it.

        Encryption at rest of a DynamoDB table under a customer managed key makes DynamoDB call
        KMS as the caller, for reads and writes. The conditions keep it to that path:
        `kms:ViaService` is set only when the service calls, so the role still cannot Decrypt
        directly (the vault's client-side ciphertext needs `grant_decrypt` for that). `role` may
        be a service-linked role or a role ARN (e.g. Auto Scaling's, launching encrypted volumes
        through "ec2").
        """
        def via(account: str, region: str) -> dict[str, Any]:
            return _through_service(service, account, region)

        def via_for_resource(account: str, region: str) -> dict[str, Any]:
            return _through_service(service, account, region, for_aws_resource=True)

        label = service.capitalize()
        self._grant(purpose, f"Through{label}", self._role(role), SERVICE_USE_ACTIONS, via)
        self._grant(purpose, f"GrantThrough{label}", self._role(role), SERVICE_GRANT_ACTIONS,
                    via_for_resource)

    @recorded
    def grant_decrypt_through_service(self, purpose: str, role: Grantee, service: str) -> None:
        """Decrypt only through `service` (e.g. "s3" reading SSE-KMS objects for `role`): the read
        half of `grant_use_through_service`, without encrypt, re-encrypt or CreateGrant."""
        def via(account: str, region: str) -> dict[str, Any]:
            return _through_service(service, account, region)

        self._grant(purpose, f"DecryptThrough{service.capitalize()}", self._role(role),
                    DECRYPT_ACTIONS, via)

    @recorded
    def grant_decrypt_with_attestation(self, purpose: str, role: Grantee,
                                       measurements: EnclaveMeasurements) -> None:
        """Let `role` decrypt only inside a Nitro Enclave that attests `measurements`.

        Writes, on the key and each replica:

        - Allow `kms:Decrypt` to the role when the request's attestation document (KMS `Recipient`)
          has PCR0, PCR1, PCR2 (and PCR8 if given) equal, ignoring case, to the measurements.
          KMS then returns the plaintext only encrypted to the enclave's own public key
          (`CiphertextForRecipient`), so the parent instance, which holds the same role
          credentials, never sees it.
        - Deny the role Decrypt, ReEncrypt* and GenerateDataKey* whenever the attestation is absent
          (`Null kms:RecipientAttestation:PCR0 = true`): no plaintext data key for the parent,
          not even a fresh one, whatever another statement, an IAM policy or a KMS grant allows.
        - At `seal()`, one Deny per pinned PCR for every principal (`AWS: *`) of Decrypt and
          ReEncryptFrom unless `kms:RecipientAttestation:PCR<n>` equals the pinned value
          (`StringNotEqualsIgnoreCase`). A negated operator holds when the key is absent, so a
          request without attestation is denied too, and ReEncrypt, which cannot carry one, always.
          One statement per PCR because the keys of one condition block are ANDed: a single
          statement would deny only an enclave that differs in EVERY PCR. PCR8 gets its statement
          when every attested grant on the key pins it; with several grants a statement lists every
          value pinned for its PCR.

        What holds then: an existing ciphertext under the key is decrypted only into an enclave
        with the pinned measurements, for every caller and every authorization path. The key
        administrators, any principal a KMS grant names, and break-glass (`kms:*` with MFA) are
        denied Decrypt for a request attesting any other enclave (another EIF, or a debug-mode
        enclave whose PCRs are zero and whose memory the parent can read) or none. An explicit Deny
        in the key policy overrides an Allow from the policy, IAM or a grant (AWS KMS developer
        guide, "Key policies": nobody has a permission unless it is "explicitly allowed, and never
        denied"; "Grants": a grant "can allow access ... but not deny access"). Break-glass can still
        decrypt into the pinned enclave, which keeps the weights to itself, and can still publish
        (GenerateDataKey). To get plaintext anywhere else a principal must first change the policy:
        PutKeyPolicy (break-glass; the key administrators; the rotation role with
        `create_successors=True`), or for a multi-Region key ReplicateKey with a policy of its own
        (break-glass). Both are logged in CloudTrail, and a rewritten policy shows as drift at the
        next preview.

        `seal()` refuses a key that has both an attested grant and an Allow for anyone else of
        Decrypt, ReEncryptFrom or CreateGrant (`grant_decrypt`, `grant_decrypt_through_service`,
        `grant_use_through_service`, `KeyHierarchyArgs.dynamodb_tables`). Publishing weights
        (`grant_generate_data_key`, `grant_encrypt`) stays possible.
        """
        self._grant(purpose, "DecryptWithAttestation", self._role(role), ATTESTED_DECRYPT_ACTIONS,
                    lambda account, region: {"StringEqualsIgnoreCase": measurements.conditions()})
        self._grant(purpose, "DenyWithoutAttestation", self._role(role), ATTESTED_ROLE_DENY_ACTIONS,
                    _attestation_absent, effect="Deny")
        self._attested.setdefault(purpose, []).append(measurements)

    def _allow_table_creation(self, purpose: str, tables: Sequence[str], *,
                              by_key_administrators: bool = False) -> None:
        """Let the key administrators (the deploying roles) create the DynamoDB `tables` encrypted
        with the key: DynamoDB then uses the key as the creator (TABLE_CREATION_USE_ACTIONS,
        DescribeKey, CreateGrant). Three statements, each only through DynamoDB in the key's region
        for this account: DescribeKey; CreateGrant for an AWS resource; the data-key actions only
        under the encryption context naming one of the tables. A direct KMS call carries no
        kms:ViaService and gets nothing, and neither does DynamoDB for any other table."""
        names = list(tables)
        if purpose == HMAC_PURPOSE or purpose == "model-weights":
            raise ValueError(f"dynamodb_tables: the {purpose} key cannot encrypt a table (HMAC key, "
                             "or plaintext only in attested enclaves); use another purpose")
        if not names or any(not isinstance(n, str) or not _TABLE_NAME.match(n) for n in names):
            raise ValueError(f"dynamodb_tables[{purpose!r}] = {names!r}: name each table in plain text "
                             "(3-255 of letters, digits, _ . -; no pattern)")

        def via(account: str, region: str) -> dict[str, Any]:
            return _through_service("dynamodb", account, region)

        def via_for_resource(account: str, region: str) -> dict[str, Any]:
            return _through_service("dynamodb", account, region, for_aws_resource=True)

        def via_for_tables(account: str, region: str) -> dict[str, Any]:
            condition = _through_service("dynamodb", account, region)
            condition["StringEquals"][DYNAMODB_TABLE_CONTEXT] = sorted(names)
            return condition

        for sid, actions, condition in (("Describe", DESCRIBE_ACTIONS, via),
                                        ("Grant", SERVICE_GRANT_ACTIONS, via_for_resource),
                                        ("Use", TABLE_CREATION_USE_ACTIONS, via_for_tables)):
            self._grant(purpose, f"CreateDynamodbTables{sid}", {}, actions, condition, to_administrators=True,
                        to_key_administrators=by_key_administrators)

    def _allow_schedule_creation(self, purpose: str, schedules: Sequence[str]) -> None:
        """Let the key administrators (the deploying roles) create the EventBridge Scheduler
        `schedules` (default group) with the key: SCHEDULE_CREATION_USE_ACTIONS, only under the
        encryption context naming one of those schedules' ARNs (StringEquals; the ARN is known
        before the schedule exists). No kms:ViaService condition: whether Scheduler sets it for
        the caller is not documented, and a direct call gets no more than Scheduler would: the
        payload of those schedules, which the deployer writes and can read with GetSchedule."""
        names = _checked_names("schedules", purpose, schedules, _SCHEDULE_NAME,
                               "1-64 of letters, digits, . - _")
        partition = self._partition
        self._grant(purpose, "CreateSchedules", {}, SCHEDULE_CREATION_USE_ACTIONS,
                    lambda account, region: {"StringEquals": {SCHEDULE_CONTEXT: [
                        _schedule_arn(partition, region, account, name) for name in names]}},
                    to_administrators=True)

    @recorded
    def grant_schedule_decrypt(self, purpose: str, role: aws.iam.Role, schedule_name: str) -> None:
        """Let a schedule's execution role `role` decrypt that schedule's payload, and nothing
        else: kms:Decrypt under the context `aws:scheduler:schedule-arn` = its ARN. The schedule
        must be one the key admits at creation (`KeyHierarchyArgs.schedules`)."""
        if schedule_name not in self._args.schedules.get(purpose, ()):
            raise ValueError(f"schedule {schedule_name!r} is not among KeyHierarchyArgs.schedules"
                             f"[{purpose!r}]: the deployer could not create it with the key; add it")
        partition = self._partition
        self._grant(purpose, "DecryptSchedulePayload", self._role(role), DECRYPT_ACTIONS,
                    lambda account, region: {"StringEquals": {SCHEDULE_CONTEXT: _schedule_arn(
                        partition, region, account, schedule_name)}})

    def _allow_component_creation(self, purpose: str, components: Sequence[str]) -> None:
        """Let the key administrators create the Image Builder `components` encrypted with the
        key: COMPONENT_CREATION_USE_ACTIONS only through Image Builder in the key's region for
        this account (kms:ViaService, kms:CallerAccount) and only under an `aws:imagebuilder:arn`
        context naming one of those components (any version)."""
        names = _checked_names("image_builder_components", purpose, components, _COMPONENT_NAME,
                               "letters, digits, - _")
        partition = self._partition
        self._grant(purpose, "CreateImageBuilderComponents", {}, COMPONENT_CREATION_USE_ACTIONS,
                    lambda account, region: _through_image_builder_for_components(
                        partition, account, region, names), to_administrators=True)

    @recorded
    def grant_component_decrypt(self, purpose: str, role: Grantee) -> None:
        """Let a build instance's role read the components the key encrypts
        (`KeyHierarchyArgs.image_builder_components[purpose]`) through Image Builder only:
        kms:Decrypt under the same conditions as their creation, nothing else."""
        names = list(self._args.image_builder_components.get(purpose, ()))
        if not names:
            raise ValueError(f"no image_builder_components on the {purpose} key: name them in "
                             "KeyHierarchyArgs.image_builder_components")
        partition = self._partition
        self._grant(purpose, "DecryptComponentsThroughImagebuilder", self._role(role),
                    DECRYPT_ACTIONS,
                    lambda account, region: _through_image_builder_for_components(
                        partition, account, region, names))

    @recorded
    def allow_administrators_through_s3(self, purpose: str, bucket_arn: pulumi.Input[str],
                                        sid: str = "AdministratorsPublishThroughS3") -> None:
        """Let the key administrators write and read the objects of one SSE-KMS bucket, `bucket_arn`,
        only through S3: the one use of a key they are given.

        Why: the API's mutual-TLS truststore is a PEM bundle in a private bucket encrypted under
        `purpose` with S3 Bucket Keys. The deploying role, an administrator, writes it (Pulumi
        uploads the object) and API Gateway reads it with the caller's credentials, the deployer's,
        when it creates or updates the custom domain; without this KMS refuses both.

        What it allows, on the key and each replica, to the administrator roles: S3_OBJECT_ACTIONS
        (GenerateDataKey, Decrypt; no Encrypt, no ReEncrypt, no CreateGrant) when
        `kms:ViaService` is S3 in the key's region, `kms:CallerAccount` is the account and
        `kms:EncryptionContext:aws:s3:arn` equals `bucket_arn` (StringEquals). With S3 Bucket Keys
        S3 passes the bucket's ARN as that context, without them each object's ARN (S3 User Guide,
        "Encryption context" and "Reducing the cost of SSE-KMS with Amazon S3 Bucket Keys"), so the
        bucket must have Bucket Keys on, and then only objects of that one bucket qualify. A direct
        KMS call carries no `kms:ViaService` and gets nothing; neither does S3 for any other bucket.
        The pack's kms-key-policy-least-privilege rule accepts exactly this statement from an
        administrator and nothing looser.

        purpose: a symmetric key other than model-weights. Refused on the HMAC key (S3 encrypts
            only with symmetric encryption keys) and on model-weights, whose plaintext must stay in
            attested enclaves.
        bucket_arn: `arn:<partition>:s3:::<bucket>`, e.g. `bucket.arn` of an auto-named bucket
            (an Output, checked once known). Not an object ARN or a pattern.
        sid: the statement's Sid prefix (letters and digits), one per bucket.

        Refused without named `administrator_role_arns`: the statement would go to the account
        root, i.e. to every IAM principal of the account that IAM allows kms:Decrypt.
        """
        self._allow_deployers_through_s3(purpose, bucket_arn, sid)

    def _allow_deployers_through_s3(self, purpose: str, bucket_arn: pulumi.Input[str],
                                    sid: str = "AdministratorsPublishThroughS3") -> None:
        if purpose == HMAC_PURPOSE:
            raise ValueError(f"the {purpose} key is an HMAC key: S3 encrypts objects only with "
                             "symmetric encryption keys; use another purpose for the bucket")
        if purpose == "model-weights":
            raise ValueError("the model-weights key's plaintext must stay in attested enclaves; "
                             "administrators may not use it, not even through S3: encrypt the "
                             "bucket under another purpose")
        if not self._args.administrator_role_arns and not self._args.deployer_role_arns:
            raise ValueError("allow_administrators_through_s3 needs named administrator_role_arns "
                             "(stack config zero-trust-ai:keyAdministratorRoleArns): without them "
                             "the statement would let every IAM principal of the account allowed "
                             "kms:Decrypt use the key through S3")
        if not _SID.match(sid):
            raise ValueError(f"sid {sid!r}: letters and digits only")
        if isinstance(bucket_arn, str):
            _checked_bucket_arn(bucket_arn)
        self._grant(purpose, sid, {}, S3_OBJECT_ACTIONS, _through_s3_for_bucket,
                    to_administrators=True, inputs=(bucket_arn,))

    @recorded
    def grant_key_rotation(self, role: aws.iam.Role, *, create_successors: bool = False) -> None:
        """Let the monthly rotation function's role rotate every symmetric key
        (KEY_ROTATION_ACTIONS): describe, read the policy, tags and rotation state, rotate on
        demand. No use, no administration. The HMAC key gets nothing: KMS cannot rotate HMAC keys
        on demand.

        create_successors: also let the role replace a worn key with a successor
            (KEY_SUCCESSOR_ACTIONS). Default False. A relaxation, and a large one: KMS lets a
            caller create a key with a policy only if that policy lets it PutKeyPolicy, so the role
            becomes an administrator of every symmetric key's policy, model-weights included.
            Anyone who can run code as the role could rewrite a policy (strip attestation
            conditions, grant itself use). Must match MonthlyKeyRotationArgs.create_successors.
        """
        for purpose in SYMMETRIC_PURPOSES:
            # A two-person key's policy and alias change only in an approved elevation: its
            # successor is made by people (docs/runbooks/key-rotation.md), never by the function.
            successors = create_successors and purpose not in self._args.two_person_purposes
            self._grant(purpose, "KeyRotationWithoutUse", self._role(role),
                        (*KEY_ROTATION_ACTIONS, *(KEY_SUCCESSOR_ACTIONS if successors else ())))

    @recorded
    def grant_key_administration(self, purpose: str, role: Grantee, *, policy_writer: Grantee) -> None:
        """Make the `purpose` key administered in an approved two-person elevation.

        role: the just-in-time key-admin elevation role. It administers the key without using it
            (ELEVATION_ADMIN_ACTIONS) except what carries a key policy document (DOCUMENT_ACTIONS:
            PutKeyPolicy, ReplicateKey): it may disable or schedule the deletion of the key, or
            move its alias, in the minutes an approved grant lasts. Its trust admits nobody until
            two other people approve a request, and its window policy ends the grant (components/
            jit.py, docs/jit.md); its human boundary exempts it from the key-policy deny by its
            `ztai:grant=key-admin` tag (components/identity.py).
        policy_writer: the JIT API function's role, the one principal that writes the key's
            policy: it writes only the document two other people approved by its SHA-256, when the
            last approval arrives (ztai_runtime/jit/grants.py). Two people approve what is
            written, not a person who may then write anything.

        On a two-person key both are the only principals the two-person deny leaves out.
        """
        if self._sealed:
            raise RuntimeError(f"{self._name}: grant after seal(); grant everything first, then seal")
        self._grant(purpose, "AdministerInApprovedElevation", self._role(role),
                    tuple(a for a in ELEVATION_ADMIN_ACTIONS if a not in DOCUMENT_ACTIONS))
        self._grant(purpose, "WriteApprovedPolicy", self._role(policy_writer),
                    ("kms:PutKeyPolicy", "kms:GetKeyPolicy", "kms:DescribeKey"))
        self._elevated_administrators[purpose] += [role, policy_writer]

    def seal(self) -> list[aws.kms.KeyPolicy]:
        """Write every key's policy with the grants made so far; no grant is accepted after.
        Returns the policies, so resources that need a grant in place (a build that encrypts
        with a key) can depend on them.

        Refuses a key with an attested grant while its administrators are the account root (no
        `administrator_role_arns`): the root principal delegates to IAM, so any principal an IAM
        policy allows kms:PutKeyPolicy (PowerUserAccess does) could rewrite that key's policy,
        drop the attestation denies and decrypt.
        """
        if self._attested and not self._args.administrator_role_arns:
            raise ValueError(
                f"the {', '.join(sorted(self._attested))} key decrypts only with enclave attestation, "
                "but its administrators would be the account root, which lets any IAM principal "
                "allowed kms:PutKeyPolicy rewrite its policy and drop the attestation; set "
                "administrator_role_arns (stack config zero-trust-ai:keyAdministratorRoleArns) to "
                "named roles, e.g. arn:aws:iam::111122223333:role/zero-trust-ai-key-admin")
        for purpose in sorted(self._attested):
            unattested = sorted({grant.sid for grant in self._grants[purpose]
                                 if grant.effect == "Allow" and grant.sid != "DecryptWithAttestation"
                                 and any(fnmatchcase(action, pattern)
                                         for action in ATTESTED_KEY_REFUSED_ACTIONS
                                         for pattern in grant.actions)})
            if unattested:
                raise ValueError(f"the {purpose} key decrypts only with enclave attestation; "
                                 "remove the grants that decrypt without it or hand out its use "
                                 f"({', '.join(unattested)})")
        orphaned = [p for p in self._args.two_person_purposes if not self._elevated_administrators[p]]
        if orphaned:
            raise ValueError(
                f"the {', '.join(orphaned)} key is a two-person key (two_person_purposes, stack config "
                "zero-trust-ai:twoPersonKeys) but no key-admin elevation administers it, so nobody "
                "could ever change its policy again: add a `key-admin` elevation for it to the JIT "
                "catalogue (keys.grant_key_administration), or take it out of twoPersonKeys (a "
                "relaxation the policy pack reports)")
        for purpose, pinned in sorted(self._attested.items()):
            self._grants[purpose].extend(_pinned_enclave_denies(pinned))
        for purpose in self._args.two_person_purposes:
            roles = [self._role(role)["AWS"] for role in self._elevated_administrators[purpose]]
            self._grants[purpose].append(_Grant(
                "TwoPersonChangesOnly", {"AWS": "*"}, TWO_PERSON_ACTIONS,
                lambda account, region, *arns: {"ArnNotEquals": {"aws:PrincipalArn": sorted(arns)}},
                effect="Deny", inputs=tuple(roles)))
        self._sealed = True
        policies = []
        for purpose, key in self.keys.items():
            grants = self._grants[purpose]
            # KMS refuses a policy that would not let its writer PutKeyPolicy again (the lockout
            # safety check) unless told to bypass it (AWS KMS API Reference, PutKeyPolicy,
            # BypassPolicyLockoutSafetyCheck). A two-person key's sealed policy lets only the
            # key-admin elevation PutKeyPolicy, so the deployer writes it once, on the first
            # deploy, with the bypass; every later change is refused to the deployer and made in an
            # approved elevation (docs/runbooks/key-administration.md).
            two_person = purpose in self._args.two_person_purposes
            # After the replicas: the sealed policy of a two-person key denies kms:ReplicateKey to the
            # deployer, who makes them.
            policies.append(aws.kms.KeyPolicy(
                f"{self._name}-{purpose}-policy", key_id=key.key_id,
                policy=self._policy_output(purpose, grants, self._args.region, two_person),
                bypass_policy_lockout_safety_check=two_person,
                opts=pulumi.ResourceOptions(parent=key,
                                            depends_on=list(self.replicas[purpose].values()))))
            for region, replica in self.replicas[purpose].items():
                policies.append(aws.kms.KeyPolicy(
                    f"{self._name}-{purpose}-{region}-policy", region=region, key_id=replica.key_id,
                    policy=self._policy_output(purpose, grants, region, two_person),
                    bypass_policy_lockout_safety_check=two_person,
                    opts=pulumi.ResourceOptions(parent=replica)))
        return policies

    def key_arn(self, purpose: str) -> pulumi.Output[str]:
        return self.keys[purpose].arn

    def key_arns(self) -> dict[str, pulumi.Output[str]]:
        return {purpose: key.arn for purpose, key in self.keys.items()}

    def alias_name(self, purpose: str) -> str:
        return alias_name(self._args.environment, purpose)

    def grant_alarm_topics(self) -> None:
        """Let CloudWatch alarms and EventBridge rules publish to the stack's alarm topics, which
        the logs key encrypts: kms:GenerateDataKey* and kms:Decrypt, the publisher's use of an
        encrypted topic's key ("Enable compatibility between event sources from AWS services and
        encrypted topics", Amazon SNS developer guide). Called from the key's creation with
        `KeyHierarchyArgs.alarm_topics` (the alarms of the key layer's own functions exist
        before any seal); called later, it takes effect at `seal()`.

        Both statements hold only under the encryption context SNS gives its data keys,
        `aws:sns:topicArn`, naming the three topics (the key-policy example of "Set up an SNS
        topic with server-side encryption", Amazon GameLift FlexMatch guide): no other topic or
        use of the logs key is opened. CloudWatch's also requires `aws:SourceAccount` and alarms of
        this account (`aws:SourceArn`), as the SNS guide advises. EventBridge's does not: KMS is
        not documented to see those keys for an EventBridge target's publish, and a condition KMS
        never sees would drop every event silently; the topic ARNs still bind it to these topics,
        and the topics' policy admits this account's rules only."""
        from components.alarm_topics import SEVERITIES, alarm_topic_arn  # imports nothing of keys

        partition, environment = self._partition, self._args.environment

        def topics(account: str, region: str) -> dict[str, Any]:
            return {ALARM_TOPIC_CONTEXT: [alarm_topic_arn(partition, region, account, environment, s)
                                          for s in SEVERITIES]}

        self._grant(LOGS_PURPOSE, "CloudWatchAlarmsPublish", {"Service": "cloudwatch.amazonaws.com"},
                    ALARM_TOPIC_ACTIONS, lambda account, region: {
                        "StringEquals": {**topics(account, region), "aws:SourceAccount": account},
                        "ArnLike": {"aws:SourceArn":
                                    f"arn:{partition}:cloudwatch:{region}:{account}:alarm:*"}})
        self._grant(LOGS_PURPOSE, "EventBridgeRulesPublish", {"Service": "events.amazonaws.com"},
                    ALARM_TOPIC_ACTIONS,
                    lambda account, region: {"StringEquals": topics(account, region)})
    def _allow_firehose_stream_creation(self, purpose: str, streams: Sequence[str]) -> None:
        """Let the deploying roles, and the key administrators (a split deployment's key layer
        creates its own stream), create the Firehose `streams` server-side encrypted with the key.
        With CUSTOMER_MANAGED_CMK, Firehose calls kms:CreateGrant as the caller of
        CreateDeliveryStream and manages that grant (Firehose API Reference,
        DeliveryStreamEncryptionConfigurationInput). Two statements, each only through Firehose in
        the key's region for this account: DescribeKey, and CreateGrant for an AWS resource. The
        names are checked, not bound: Firehose documents no encryption context or grant constraint
        naming the stream, so the condition cannot name it; what the statement admits is a grant
        to Firehose itself, never a use by the caller."""
        _checked_names("firehose_streams", purpose, streams, _STREAM_NAME, "1-64 of letters, digits, . - _")

        def via(account: str, region: str) -> dict[str, Any]:
            return _through_service("firehose", account, region)

        def via_for_resource(account: str, region: str) -> dict[str, Any]:
            return _through_service("firehose", account, region, for_aws_resource=True)

        for sid, actions, condition in (("Describe", DESCRIBE_ACTIONS, via),
                                        ("Grant", SERVICE_GRANT_ACTIONS, via_for_resource)):
            self._grant(purpose, f"CreateFirehoseStreams{sid}", {}, actions, condition,
                        to_administrators=True)
            if self._args.deployer_role_arns:
                self._grant(purpose, f"CreateFirehoseStreams{sid}", {}, actions, condition,
                            to_key_administrators=True)

    def grant_watch_dead_letters(self) -> None:
        """Let EventBridge write the dead letters of the stack's watch rules (components/alarms.py,
        `notify_on_rule`) to their SQS queues, which the logs key encrypts: kms:GenerateDataKey and
        kms:Decrypt, what a service sending to an SSE-KMS queue needs ("Access management for
        encrypted Amazon SQS queues with least privilege policies", Amazon SQS developer guide;
        "Using dead-letter queues to process undelivered events in EventBridge", EventBridge user
        guide: a KMS-encrypted dead-letter queue needs the key policy to admit EventBridge).
        Called from the key's creation with `KeyHierarchyArgs.alarm_topics`, so the key admits
        the queues before any exists, on the first deploy too.

        Only under the encryption context SQS gives every data key of a queue, `aws:sqs:arn`
        (as components/key_rotation.py's dead-letter statements rely on), naming this account's
        queues of the watch dead-letter form `zero-trust-ai-<env>-*-used-dlq`: no other queue or
        use of the logs key is opened. Like `grant_alarm_topics`'s EventBridge statement, it
        carries no aws:SourceArn: KMS is not documented to see it when SQS encrypts for
        EventBridge, and a condition KMS never sees would lose every dead letter; each queue's
        own policy admits its one rule."""
        from components.alarms import WATCH_DEAD_LETTER_SUFFIX, WATCH_RULE_SUFFIX  # imports nothing of keys

        partition, environment = self._partition, self._args.environment

        def queues(account: str, region: str) -> dict[str, Any]:
            name = f"zero-trust-ai-{environment}-*{WATCH_RULE_SUFFIX}{WATCH_DEAD_LETTER_SUFFIX}"
            return {"StringLike": {"kms:EncryptionContext:aws:sqs:arn":
                                   f"arn:{partition}:sqs:{region}:{account}:{name}"}}

        self._grant(LOGS_PURPOSE, "EventBridgeWatchDeadLetters", {"Service": "events.amazonaws.com"},
                    ("kms:GenerateDataKey", "kms:Decrypt"), queues)


def alias_name(environment: str, purpose: str) -> str:
    """The alias every key of the hierarchy has: `alias/zero-trust-ai/<environment>/<purpose>`."""
    return f"alias/zero-trust-ai/{environment}/{purpose}"


def _context_condition(context: Mapping[str, Sequence[str]] | None
                       ) -> Callable[[str, str], dict[str, Any]] | None:
    """kms:EncryptionContext:<key> conditions. A DescribeKey request carries no context, so a
    statement conditioned this way does not grant DescribeKey (nothing here needs it)."""
    if not context:
        return None
    for key, values in context.items():
        if not key or not values or any(not value for value in values):
            raise ValueError(f"encryption_context {dict(context)!r}: every key needs non-empty values")
    condition = {f"kms:EncryptionContext:{key}": sorted(values) for key, values in context.items()}
    return lambda account, region: {"StringEquals": condition}


def _checked_names(field_name: str, purpose: str, names: Sequence[str], pattern: re.Pattern[str],
                   allowed: str) -> list[str]:
    if purpose in (HMAC_PURPOSE, "model-weights"):
        raise ValueError(f"{field_name}: the {purpose} key cannot encrypt them (HMAC key, or "
                         "plaintext only in attested enclaves); use another purpose")
    listed = list(names)
    if not listed or any(not isinstance(n, str) or not pattern.match(n) for n in listed):
        raise ValueError(f"{field_name}[{purpose!r}] = {listed!r}: name each in plain text "
                         f"({allowed}; no pattern)")
    return listed


def _schedule_arn(partition: str, region: str, account: str, name: str) -> str:
    """A schedule of the default group (Scheduler: `schedule/<group>/<name>`)."""
    return f"arn:{partition}:scheduler:{region}:{account}:schedule/default/{name}"


def _through_image_builder_for_components(partition: str, account: str, region: str,
                                          names: Sequence[str]) -> dict[str, Any]:
    condition = _through_service("imagebuilder", account, region)
    condition["StringLike"] = {COMPONENT_CONTEXT: [
        f"arn:{partition}:imagebuilder:{region}:{account}:component/{name}/*" for name in names]}
    return condition


def _checked_bucket_arn(arn: str) -> str:
    if not _BUCKET_ARN.match(arn):
        raise ValueError(f"bucket_arn {arn!r} is not a bucket ARN (arn:<partition>:s3:::<bucket>): "
                         "with S3 Bucket Keys the encryption context is the bucket's ARN, never an "
                         "object's or a pattern")
    return arn


def _through_service(service: str, account: str, region: str, *,
                     for_aws_resource: bool = False) -> dict[str, Any]:
    """Only when `service` in the key's region calls KMS for this account (and, with
    `for_aws_resource`, only for a grant to an AWS resource)."""
    condition: dict[str, Any] = {"StringEquals": {
        "kms:ViaService": f"{service}.{region}.amazonaws.com", "kms:CallerAccount": account}}
    if for_aws_resource:
        condition["Bool"] = {"kms:GrantIsForAWSResource": "true"}
    return condition


def _through_s3_for_bucket(account: str, region: str, bucket_arn: str) -> dict[str, Any]:
    """Only S3 in the key's region, for this account, for the objects of `bucket_arn` (its ARN
    is their encryption context under S3 Bucket Keys); checked again here when it was an Output."""
    condition = _through_service("s3", account, region)
    condition["StringEquals"]["kms:EncryptionContext:aws:s3:arn"] = _checked_bucket_arn(bucket_arn)
    return condition


def _attestation_absent(account: str, region: str) -> dict[str, Any]:
    return {"Null": {ATTESTATION_PRESENT_KEY: "true"}}


def _pinned_enclave_denies(pinned: Sequence[EnclaveMeasurements]) -> list[_Grant]:
    """One Deny per pinned PCR: every principal, Decrypt and ReEncryptFrom, unless the request's
    attested PCR<n> is one of the values pinned for it.

    IAM User Guide, "IAM JSON policy elements: Condition operators": "If the policy condition
    requires that the key is not matched, such as StringNotLike or ArnNotLike, and the right key is
    not present, the condition is true" (every operator but ...IfExists and Null); and "Conditions
    with multiple context keys or values": the values of one negated matching operator "are
    evaluated using a logical NOR". So a request without attestation (no Recipient, or ReEncrypt),
    or attesting a value not pinned, is denied.
    """
    every = [measurements.pcrs() for measurements in pinned]
    names = [name for name in every[0] if all(name in pcrs for pcrs in every)]  # PCR8 if all pin it

    def unless_pinned(name: str) -> Callable[[str, str], dict[str, Any]]:
        values = sorted({pcrs[name].lower() for pcrs in every})
        condition = {"StringNotEqualsIgnoreCase": {
            f"kms:RecipientAttestation:{name}": values[0] if len(values) == 1 else values}}
        return lambda account, region: condition

    return [_Grant(f"DenyPlaintextUnless{name}Pinned", {"AWS": "*"}, ATTESTED_EVERYONE_DENY_ACTIONS,
                   unless_pinned(name), effect="Deny") for name in names]


def _validate(args: KeyHierarchyArgs) -> None:
    """Reject what KMS would reject, before anything is declared."""
    if not 7 <= args.deletion_window_in_days <= 30:
        raise ValueError(f"deletion_window_in_days must be 7 to 30 (KMS limits), got "
                         f"{args.deletion_window_in_days}")
    regions = list(args.replica_regions)
    if len(set(regions)) != len(regions) or args.region in regions:
        raise ValueError(f"replica_regions {regions} must be distinct and exclude the primary "
                         f"region {args.region}")
    two_person = list(args.two_person_purposes)
    unknown = [p for p in two_person if p not in PURPOSES]
    if unknown or len(set(two_person)) != len(two_person):
        raise ValueError(f"two_person_purposes {two_person}: distinct purposes of {', '.join(PURPOSES)}")
    for region in regions:
        if region not in REGION_AZ_COUNT or partition_for_region(region) != partition_for_region(
                args.region):
            raise ValueError(f"replica region {region!r} is not a known region of the "
                             f"{partition_for_region(args.region)} partition")


def _policy_document(partition: str, account_id: str, region: str, administrators: Sequence[str],
                     break_glass: str, grants: Sequence[tuple[_Grant, dict[str, str]]], *,
                     two_person: bool = False, deployers: Sequence[str] = ()) -> str:
    """two_person: the sealed policy of a two-person key, whose standing administrators lose
    TWO_PERSON_ACTIONS (the key's creation policy keeps them: KMS refuses a CreateKey policy that
    would not let its caller PutKeyPolicy, and the deployer creates the key)."""
    admin_principal: dict[str, Any] = (
        {"AWS": sorted(administrators)} if administrators
        else {"AWS": f"arn:{partition}:iam::{account_id}:root"})
    statements: list[dict[str, Any]] = [{
        "Sid": "AdministerWithoutUse", "Effect": "Allow", "Principal": admin_principal,
        "Action": [a for a in ADMIN_ACTIONS if not (two_person and a in TWO_PERSON_ACTIONS)],
        "Resource": "*",
    }]
    if break_glass:
        statements.append({
            "Sid": "BreakGlass", "Effect": "Allow", "Principal": {"AWS": break_glass},
            "Action": "kms:*", "Resource": "*",
            "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"}},
        })
    deployer_principal: dict[str, Any] = {"AWS": sorted(deployers)} if deployers else admin_principal
    for index, (grant, grantee) in enumerate(grants):
        principal: dict[str, Any] = dict(grantee)
        if grant.service is not None:
            principal = {"Service": f"{grant.service}.{region}.amazonaws.com"}
        elif grant.to_key_administrators:  # the key layer's own creation (administrator_tables)
            principal = admin_principal
        elif grant.to_administrators:  # a deployer's use at creation (deployer_role_arns)
            principal = deployer_principal
        statement: dict[str, Any] = {"Sid": f"{grant.sid}{index}", "Effect": grant.effect,
                                     "Principal": principal, "Action": list(grant.actions),
                                     "Resource": "*"}
        if grant.condition is not None:
            statement["Condition"] = grant.condition(account_id, region, *grant.inputs)
        statements.append(statement)
    return json.dumps({"Version": "2012-10-17", "Statement": statements}, sort_keys=True)
