"""The training-data bucket: where curated, tokenized data and training outputs live.

One private bucket (components/buckets.py: public access blocked, ACLs off, versioned, TLS only,
every object encrypted with the `training-data` key) with three prefixes, each with one job:

- `raw/`: what the data curators bring in, before tokenization;
- `curated/`: tokenized data, what model engineers train on;
- `outputs/`: what training writes (checkpoints, metrics).

Its S3 server access logs (who read or wrote which object, beside CloudTrail's data events) go to
an access-log bucket of its own, `<name>-access-logs`, under `s3/<bucket>/`, built as the model
bucket's is (`components/buckets.py` `access_log_bucket` and `log_to`; SSE-S3, because S3 delivers
server access logs to no other encryption, and written by the logging service only).

The bucket owns who may use it: `grant_read_prefix` and `grant_write_prefix` write a role's
policy for one prefix. Nobody is granted s3:DeleteObject: the bucket is versioned, so an upload
never destroys what was there, and removing data is a reviewed, out-of-band act. The key's use
through S3 is granted by the key's owner (`keys.grant_use_through_service("training-data", role,
"s3")`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from components import role_policies
from components.aws_facts import partition_for_region
from components.buckets import access_log_bucket, log_to, private_bucket

PREFIXES: tuple[str, ...] = ("raw/", "curated/", "outputs/")
READ_ACTIONS = ("s3:GetObject", "s3:GetObjectVersion")
WRITE_ACTIONS = ("s3:PutObject", "s3:AbortMultipartUpload")
# The data bucket's tag: how the policy pack finds the training data whose object reads and
# writes the audit trail must record (cloudtrail-data-events-cover). Set after the caller's tags,
# so none of them can drop it.
PURPOSE_TAG = ("ztai:purpose", "training-data")


@dataclass
class TrainingDataBucketArgs:
    """Inputs of `TrainingDataBucket`.

    environment, owner, region: tags and ARNs.
    key_arn: the `training-data` key (`keys.key_arn("training-data")`).
    protect: Pulumi `protect` on the bucket (prod). Default False.
    """

    environment: str
    owner: str
    region: str
    key_arn: pulumi.Input[str]
    protect: bool = False
    tags: dict[str, str] = field(default_factory=dict)


def prefix_policy(partition: str, bucket: str, prefix: str, *, write: bool) -> str:
    """A role's policy for one prefix: read (GetObject, and ListBucket of that prefix only) or
    write (PutObject, AbortMultipartUpload), nothing else."""
    statements: list[dict[str, Any]]
    if write:
        statements = [{"Sid": "WritePrefix", "Effect": "Allow", "Action": list(WRITE_ACTIONS),
                       "Resource": f"arn:{partition}:s3:::{bucket}/{prefix}*"}]
    else:
        statements = [
            {"Sid": "ReadPrefix", "Effect": "Allow", "Action": list(READ_ACTIONS),
             "Resource": f"arn:{partition}:s3:::{bucket}/{prefix}*"},
            {"Sid": "ListPrefix", "Effect": "Allow", "Action": "s3:ListBucket",
             "Resource": f"arn:{partition}:s3:::{bucket}",
             "Condition": {"StringLike": {"s3:prefix": f"{prefix}*"}}},
        ]
    return json.dumps({"Version": "2012-10-17", "Statement": statements}, sort_keys=True)


class TrainingDataBucket(pulumi.ComponentResource):
    """The bucket and its grants. Type token `zero-trust-ai:data:TrainingDataBucket`."""

    def __init__(self, name: str, args: TrainingDataBucketArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        for label, value in (("environment", args.environment), ("owner", args.owner)):
            if not value:
                raise ValueError(f"TrainingDataBucket: {label} must not be empty")
        super().__init__("zero-trust-ai:data:TrainingDataBucket", name, None, opts)
        self._name = name
        self._partition = partition_for_region(args.region)
        self._granted: set[tuple[str, str, str]] = set()
        made = private_bucket(f"{name}-bucket", key_arn=args.key_arn,
                              tags={"data-classification": "restricted", **args.tags,
                                    PURPOSE_TAG[0]: PURPOSE_TAG[1]},
                              protect=args.protect, parent=self)
        self.bucket = made.bucket
        self.bucket_name: pulumi.Output[str] = made.bucket.bucket
        self.bucket_arn: pulumi.Output[str] = made.bucket.arn
        account_id = aws.get_caller_identity_output(opts=pulumi.InvokeOptions(parent=self)).account_id
        self.access_logs = access_log_bucket(
            f"{name}-access-logs", partition=self._partition, region=args.region, account_id=account_id,
            source_bucket_arns=[made.bucket.arn], tags={"data-classification": "restricted", **args.tags},
            protect=args.protect, parent=self)
        self.logging = log_to(f"{name}-logging", bucket=made.bucket, log_bucket=self.access_logs.bucket,
                              after=self.access_logs.policy)
        self.register_outputs({"bucketName": self.bucket_name,
                               "accessLogBucketName": self.access_logs.bucket.bucket})

    def grant_read_prefix(self, role: aws.iam.Role, prefix: str) -> pulumi.CustomResource:
        """Let `role` read (and list) the objects under `prefix`, one of PREFIXES."""
        return self._grant(role, prefix, write=False)

    def grant_write_prefix(self, role: aws.iam.Role, prefix: str, *,
                           managed_policy_name: str | None = None) -> pulumi.CustomResource:
        """Let `role` upload objects under `prefix`, one of PREFIXES (no read, no delete). With
        `managed_policy_name` (a just-in-time elevation's role), as that managed policy
        (components/role_policies.py)."""
        return self._grant(role, prefix, write=True, managed_policy_name=managed_policy_name)

    def _grant(self, role: aws.iam.Role, prefix: str, *, write: bool,
               managed_policy_name: str | None = None) -> pulumi.CustomResource:
        if prefix not in PREFIXES:
            raise ValueError(f"{self._name}: prefix {prefix!r} is not one of {', '.join(PREFIXES)}")
        kind = "write" if write else "read"
        role_name = role.pulumi_resource_name
        if (kind, prefix, role_name) in self._granted:
            raise ValueError(f"{self._name}: {kind} on {prefix} is already granted to role {role_name}")
        self._granted.add((kind, prefix, role_name))
        partition = self._partition
        return role_policies.grant(
            f"{self._name}-{kind}-{prefix.rstrip('/')}-{role_name}", role,
            self.bucket_name.apply(lambda bucket: prefix_policy(partition, bucket, prefix, write=write)),
            managed_policy_name=managed_policy_name, parent=self)
