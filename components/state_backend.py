"""The Pulumi state backend of one environment: where the CI roles keep the stacks' state.

What it builds (docs/ci-identity.md):

- the state bucket: public access blocked, ACLs off, versioned (every write of a stack's state
  keeps the one before), encrypted by default with its own customer managed key (rotation on),
  S3 server access logs into a bucket of their own, and a policy that refuses plain HTTP, any
  object not encrypted with that key, the state to anyone but the CI roles, writes to anyone but
  the two deployers, and changes to the bucket's configuration or its history (object versions,
  retention) to anyone but the named administrators;
- optionally S3 Object Lock (`object_lock_days` > 0): a default retention on every object
  version, `compliance` (nobody, the account root included, can shorten or remove it) or
  `governance`. The Pulumi S3 backend overwrites the same keys (the stack's checkpoint, its
  backup) and deletes its lock files; in a versioned bucket an overwrite adds a version and a
  delete without a version id adds a delete marker, neither of which retention forbids, so the
  backend keeps working and every earlier version is kept for the retention period (S3 User Guide,
  "How S3 Object Lock works"). S3 refuses an upload to a bucket with default retention that
  carries neither Content-MD5 nor a checksum header; AWS SDKs compute a checksum by default, but
  the Pulumi CLI's S3 client has not been checked here: try `pulumi stack init` against the bucket
  before relying on it. Object Lock can be turned on only when the bucket is created here (the
  provider replaces the bucket to change it), so it is off by default: a forgotten compliance
  retention on a dev bucket cannot be undone by anyone;
- the secrets-provider key (`awskms://<key id>?region=...`, by id, not alias: whoever could move
  an alias would choose the key new secrets are encrypted under), which only the two deployers may
  use (Encrypt, Decrypt, GenerateDataKey) and which its policy denies to the preview role outright.

Both keys are administered by the named roles only (never the account root, which would let any
IAM policy grant their use), without use. Their full policies name the CI roles, which KMS checks
exist, so they are written by `grant_ci_roles` once the roles are declared.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components.aws_facts import partition_for_region
from components.buckets import access_log_bucket, kms_only_bucket_policy, log_to
from components.ci_identity import (
    DEPLOY_KEYS,
    DEPLOY_WORKLOAD,
    PREVIEW,
    STATE_BUCKET_CHANGES,
    STATE_HISTORY_CHANGES,
    STATE_READ_OBJECT_ACTIONS,
    STATE_WRITE_OBJECT_ACTIONS,
    role_arn,
)
from components.keys import ADMIN_ACTIONS, DELETION_WINDOW_DAYS, SHORTEST_ROTATION_DAYS

# What the Pulumi KMS secrets provider does with its key: wrap and unwrap the stack's data key.
SECRETS_USE_ACTIONS = ("kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey")
# Everything a key's material can be used for: denied to the preview role on the secrets key.
SECRETS_DENIED_TO_PREVIEW = ("kms:Decrypt", "kms:Encrypt", "kms:ReEncryptFrom", "kms:ReEncryptTo",
                             "kms:GenerateDataKey", "kms:GenerateDataKeyWithoutPlaintext",
                             "kms:CreateGrant")


@dataclass(frozen=True)
class CiRoleArns:
    preview: str
    workload: str
    keys: str

    @property
    def deployers(self) -> list[str]:
        return sorted([self.workload, self.keys])

    @property
    def all(self) -> list[str]:
        return sorted([self.preview, self.workload, self.keys])


def ci_role_arns(partition: str, account: str, environment: str) -> CiRoleArns:
    return CiRoleArns(preview=role_arn(partition, account, environment, PREVIEW),
                      workload=role_arn(partition, account, environment, DEPLOY_WORKLOAD),
                      keys=role_arn(partition, account, environment, DEPLOY_KEYS))


def _principal_deny(sid: str, actions: Sequence[str], resource: Any,
                    allowed: Sequence[str]) -> dict[str, Any]:
    """Deny `actions` to every principal whose ARN is not one of `allowed` (aws:PrincipalArn is the
    role's ARN for its sessions; absent for a service principal, which is then denied too)."""
    return {"Sid": sid, "Effect": "Deny", "Principal": {"AWS": "*"}, "Action": sorted(actions),
            "Resource": resource, "Condition": {"ArnNotEquals": {"aws:PrincipalArn": sorted(allowed)}}}


def state_bucket_policy(*, bucket_arn: str, key_arn: str, roles: CiRoleArns,
                        administrators: Sequence[str]) -> str:
    """TLS only and the bucket's key only (components/buckets.py), plus who reaches what."""
    statements = json.loads(kms_only_bucket_policy(bucket_arn, key_arn))["Statement"]
    objects = f"{bucket_arn}/*"
    statements += [
        _principal_deny("StateOnlyForTheCiRoles",
                        [*STATE_READ_OBJECT_ACTIONS, *STATE_WRITE_OBJECT_ACTIONS], objects, roles.all),
        _principal_deny("StateWrittenOnlyByTheDeployers", STATE_WRITE_OBJECT_ACTIONS, objects,
                        roles.deployers),
        _principal_deny("ConfigurationOnlyByTheAdministrators", STATE_BUCKET_CHANGES, bucket_arn,
                        administrators),
        _principal_deny("HistoryOnlyByTheAdministrators", STATE_HISTORY_CHANGES, objects,
                        administrators),
    ]
    return json.dumps({"Version": "2012-10-17", "Statement": statements}, sort_keys=True)


def _administer(administrators: Sequence[str]) -> dict[str, Any]:
    return {"Sid": "AdministerWithoutUse", "Effect": "Allow",
            "Principal": {"AWS": sorted(administrators)}, "Action": list(ADMIN_ACTIONS),
            "Resource": "*"}


def _key_policy(statements: Sequence[Mapping[str, Any]]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)}, sort_keys=True)


def administrators_only_policy(administrators: Sequence[str]) -> str:
    """A key's policy until the CI roles exist: its administrators, without use."""
    return _key_policy([_administer(administrators)])


def state_key_policy(*, administrators: Sequence[str], roles: CiRoleArns, bucket_arn: str,
                     region: str) -> str:
    """The state key: used only by S3 for the state bucket (kms:ViaService and the bucket's
    encryption context, which S3 sets to the bucket's ARN with S3 Bucket Keys), by the deployers
    to read and write, by the preview role to read."""
    through_s3 = {"StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com",
                                   "kms:EncryptionContext:aws:s3:arn": bucket_arn}}
    return _key_policy([
        _administer(administrators),
        {"Sid": "DeployersThroughS3", "Effect": "Allow", "Principal": {"AWS": roles.deployers},
         "Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": "*", "Condition": through_s3},
        {"Sid": "PreviewReadsThroughS3", "Effect": "Allow", "Principal": {"AWS": roles.preview},
         "Action": ["kms:Decrypt"], "Resource": "*", "Condition": through_s3},
    ])


def secrets_key_policy(*, administrators: Sequence[str], roles: CiRoleArns) -> str:
    """The secrets-provider key: the deployers only; the preview role denied outright (a Deny
    in the key policy binds whatever IAM later grants it)."""
    return _key_policy([
        _administer(administrators),
        {"Sid": "DeployersUseTheSecretsProvider", "Effect": "Allow",
         "Principal": {"AWS": roles.deployers}, "Action": list(SECRETS_USE_ACTIONS), "Resource": "*"},
        {"Sid": "NeverThePreview", "Effect": "Deny", "Principal": {"AWS": roles.preview},
         "Action": list(SECRETS_DENIED_TO_PREVIEW), "Resource": "*"},
    ])


@dataclass(frozen=True)
class StateBackendArgs:
    """environment: names the roles the policies admit (`zero-trust-ai-<env>-...`).
    administrator_role_arns: administrators of the keys and the bucket's configuration.
    bucket_name: None: generated by Pulumi.
    object_lock_days: 0: no Object Lock; otherwise the default retention, `object_lock_mode`
        (compliance or governance).
    """

    environment: str
    region: str
    administrator_role_arns: tuple[str, ...]
    bucket_name: str | None = None
    object_lock_days: int = 0
    object_lock_mode: str = "compliance"
    protect: bool = True


class StateBackend(pulumi.ComponentResource):
    """The state bucket, its key and the secrets-provider key (module docstring)."""

    def __init__(self, name: str, args: StateBackendArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("zero-trust-ai:state_backend:StateBackend", name, None, opts)
        if not args.administrator_role_arns:
            raise ValueError("StateBackend: administrator_role_arns must name the keys' administrators")
        if args.object_lock_mode not in ("compliance", "governance"):
            raise ValueError(f"StateBackend: object_lock_mode {args.object_lock_mode!r}: compliance "
                             "or governance")
        self._args = args
        self._component_name = name
        partition = partition_for_region(args.region)
        account = aws.get_caller_identity_output(opts=pulumi.InvokeOptions(parent=self)).account_id
        admins = sorted(args.administrator_role_arns)
        restricted = {"data-classification": "restricted"}

        def key(purpose: str, description: str) -> aws.kms.Key:
            return aws.kms.Key(
                f"{name}-{purpose}-key", description=f"zero-trust-ai {args.environment}: {description}",
                enable_key_rotation=True, rotation_period_in_days=SHORTEST_ROTATION_DAYS,
                deletion_window_in_days=DELETION_WINDOW_DAYS,
                policy=administrators_only_policy(admins),
                tags={**restricted, "ztai:key-purpose": purpose},
                # grant_ci_roles's KeyPolicy owns the policy from then on.
                opts=pulumi.ResourceOptions(parent=self, protect=args.protect, ignore_changes=["policy"]))

        self.state_key = key("pulumi-state", "Pulumi state bucket")
        self.secrets_key = key("pulumi-secrets", "Pulumi secrets provider")
        aws.kms.Alias(f"{name}-pulumi-state-key-alias",
                      name=f"alias/zero-trust-ai/{args.environment}/pulumi-state",
                      target_key_id=self.state_key.key_id,
                      opts=pulumi.ResourceOptions(parent=self.state_key))
        self.secrets_alias = aws.kms.Alias(
            f"{name}-pulumi-secrets-key-alias", name=f"alias/zero-trust-ai/{args.environment}/pulumi-secrets",
            target_key_id=self.secrets_key.key_id, opts=pulumi.ResourceOptions(parent=self.secrets_key))

        locked = args.object_lock_days > 0
        self.bucket = aws.s3.Bucket(
            f"{name}-bucket", bucket=args.bucket_name, force_destroy=False, object_lock_enabled=locked,
            tags=restricted, opts=pulumi.ResourceOptions(parent=self, protect=args.protect))
        child = pulumi.ResourceOptions(parent=self.bucket)
        public_access = aws.s3.BucketPublicAccessBlock(
            f"{name}-bucket-public-access", bucket=self.bucket.id, block_public_acls=True,
            block_public_policy=True, ignore_public_acls=True, restrict_public_buckets=True, opts=child)
        aws.s3.BucketOwnershipControls(
            f"{name}-bucket-ownership", bucket=self.bucket.id,
            rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
            opts=child)
        versioning = aws.s3.BucketVersioning(
            f"{name}-bucket-versioning", bucket=self.bucket.id,
            versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(status="Enabled"),
            opts=child)
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-bucket-encryption", bucket=self.bucket.id,
            rules=[aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                apply_server_side_encryption_by_default=aws.s3.
                BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                    sse_algorithm="aws:kms", kms_master_key_id=self.state_key.arn),
                bucket_key_enabled=True)],
            opts=child)
        if locked:
            aws.s3.BucketObjectLockConfiguration(
                f"{name}-bucket-object-lock", bucket=self.bucket.id, object_lock_enabled="Enabled",
                rule=aws.s3.BucketObjectLockConfigurationRuleArgs(
                    default_retention=aws.s3.BucketObjectLockConfigurationRuleDefaultRetentionArgs(
                        mode=args.object_lock_mode.upper(), days=args.object_lock_days)),
                opts=pulumi.ResourceOptions(parent=self.bucket, depends_on=[versioning]))
        self.policy = aws.s3.BucketPolicy(
            f"{name}-bucket-policy", bucket=self.bucket.id,
            policy=pulumi.Output.all(self.bucket.arn, self.state_key.arn, account).apply(
                lambda v: state_bucket_policy(
                    bucket_arn=v[0], key_arn=v[1], roles=ci_role_arns(partition, v[2], args.environment),
                    administrators=admins)),
            # A bucket policy is public-access-checked: the block must be in place first.
            opts=pulumi.ResourceOptions(parent=self.bucket, depends_on=[public_access]))

        logs = access_log_bucket(f"{name}-access-logs", partition=partition, region=args.region,
                                 account_id=account, source_bucket_arns=[self.bucket.arn],
                                 tags={"data-classification": "internal"}, protect=args.protect,
                                 parent=self)
        log_to(f"{name}-bucket-logging", bucket=self.bucket, log_bucket=logs.bucket, after=logs.policy)
        self._account = account
        self._partition = partition
        self.register_outputs({"bucket": self.bucket.bucket, "stateKeyArn": self.state_key.arn,
                               "secretsKeyArn": self.secrets_key.arn})

    def grant_ci_roles(self, roles: Sequence[aws.iam.Role]) -> list[aws.kms.KeyPolicy]:
        """Write both keys' full policies, naming the CI roles, once `roles` exist (KMS refuses a
        policy naming a principal that does not)."""
        args, partition = self._args, self._partition
        admins = sorted(args.administrator_role_arns)
        state = aws.kms.KeyPolicy(
            f"{self._component_name}-pulumi-state-key-policy", key_id=self.state_key.key_id,
            policy=pulumi.Output.all(self._account, self.bucket.arn).apply(
                lambda v: state_key_policy(administrators=admins,
                                           roles=ci_role_arns(partition, v[0], args.environment),
                                           bucket_arn=v[1], region=args.region)),
            opts=pulumi.ResourceOptions(parent=self.state_key, depends_on=list(roles)))
        secrets = aws.kms.KeyPolicy(
            f"{self._component_name}-pulumi-secrets-key-policy", key_id=self.secrets_key.key_id,
            policy=self._account.apply(lambda account: secrets_key_policy(
                administrators=admins, roles=ci_role_arns(partition, account, args.environment))),
            opts=pulumi.ResourceOptions(parent=self.secrets_key, depends_on=list(roles)))
        return [state, secrets]
