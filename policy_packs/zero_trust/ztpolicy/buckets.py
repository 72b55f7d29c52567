"""What the S3 bucket rules share: a bucket and the resources that configure it.

In pulumi-aws v7 a bucket's controls are separate resources (public access block, ownership
controls, versioning, default encryption, policy), each naming the bucket in its `bucket`
property. `graph.refers_to` links them: by property dependency in a preview, where the bucket's
name may still be unknown, and by the bucket's id (its name) in an export.

A control set on the bucket itself (the deprecated inline `versioning`,
`serverSideEncryptionConfiguration`, `policy` of `aws.s3.Bucket`; the plural lists of
`aws.s3.BucketV2`) counts only when no separate resource configures it: the bucket's own copy of
those attributes is read when the bucket is, so in state it is stale once a separate resource
changed the setting, and the separate resource is what the next update writes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ztpolicy.graph import (
    UNKNOWN,
    as_list,
    known,
    known_field,
    known_items,
    names_by_value,
    of_type,
    refers_to,
    refers_to_by_value,
    sets_a_key,
)
from ztpolicy.rule import Finding, Resource

BUCKETS = ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2")
PUBLIC_ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
OWNERSHIP_CONTROLS = "aws:s3/bucketOwnershipControls:BucketOwnershipControls"
VERSIONING = ("aws:s3/bucketVersioning:BucketVersioning",
              "aws:s3/bucketVersioningV2:BucketVersioningV2")
ENCRYPTION = ("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
              "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2")
BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
KMS_ALGORITHMS = {"aws:kms", "aws:kms:dsse"}

# (companion, bucket, all resources) -> problems of that companion
CompanionCheck = Callable[[Resource, Resource, Sequence[Resource]], list[str]]
# bucket -> None when the bucket sets nothing inline, else the problems of what it sets
InlineCheck = Callable[[Resource], list[str] | None]


def attached(resources: Sequence[Resource], bucket: Resource, *types: str) -> list[Resource]:
    """The resources of `types` whose `bucket` property names `bucket`."""
    return [resource for resource in of_type(resources, *types) if refers_to(resource, "bucket", bucket)]


def bucket_findings(resources: Sequence[Resource], companion_types: Sequence[str],
                    companion_problems: CompanionCheck, missing: Callable[[Resource], str],
                    inline_problems: InlineCheck | None = None) -> list[Finding]:
    """For every bucket: the problems of each resource of `companion_types` attached to it (all
    must be right: S3 keeps whichever wrote last), else of what the bucket sets inline, else
    `missing(bucket)`."""
    findings: list[Finding] = []
    for bucket in of_type(resources, *BUCKETS):
        linked = attached(resources, bucket, *companion_types)
        if linked:
            for companion in linked:
                findings += [Finding(companion.urn, message)
                             for message in companion_problems(companion, bucket, resources)]
            continue
        inline = inline_problems(bucket) if inline_problems is not None else None
        if inline is None:
            findings.append(Finding(bucket.urn, missing(bucket)))
        else:
            findings += [Finding(bucket.urn, message) for message in inline]
    return findings


def _blocks(value: Any) -> list[Any]:
    """A nested block that is a single object in one provider version and a list in another."""
    return known_items(value) if isinstance(value, Sequence) and not isinstance(value, str) \
        else [value]


def default_encryptions(resource: Resource) -> list[Any] | None:
    """The `applyServerSideEncryptionByDefault` blocks a default-encryption resource or a bucket
    declares (each a mapping, or UNKNOWN), or None when it declares no rule at all.

    Shapes: the separate resource, `rules[].applyServerSideEncryptionByDefault`; `aws.s3.Bucket`,
    `serverSideEncryptionConfiguration.rule.applyServerSideEncryptionByDefault`;
    `aws.s3.BucketV2`, `serverSideEncryptionConfigurations[].rules[].applyServerSideEncryptionByDefaults[]`.
    """
    if resource.type in ENCRYPTION:
        rules = known(resource, "rules")
    elif resource.type == BUCKETS[0]:
        configuration = known(resource, "serverSideEncryptionConfiguration")
        rules = known_field(configuration, "rule") if configuration else None
    else:
        rules = [rule for configuration in known_items(known(resource, "serverSideEncryptionConfigurations"))
                 for rule in _blocks(known_field(configuration, "rules"))]
    if rules is UNKNOWN:
        return [UNKNOWN]
    if not rules:
        return None
    found: list[Any] = []
    for rule in _blocks(rules):
        for name in ("applyServerSideEncryptionByDefault", "applyServerSideEncryptionByDefaults"):
            value = known_field(rule, name)
            if value:
                found += _blocks(value) if value is not UNKNOWN else [UNKNOWN]
    return found


def encryption_key(block: Any) -> Any:
    """The `kmsMasterKeyId` of one default-encryption block (UNKNOWN, None, or the value)."""
    return known_field(block, "kmsMasterKeyId") if isinstance(block, Mapping) or block is UNKNOWN \
        else None


LOG_DELIVERY_SERVICES = frozenset({"delivery.logs.amazonaws.com", "logging.s3.amazonaws.com"})
BUCKET_LOGGING = ("aws:s3/bucketLogging:BucketLogging", "aws:s3/bucketLoggingV2:BucketLoggingV2")
LOAD_BALANCERS = ("aws:lb/loadBalancer:LoadBalancer", "aws:alb/loadBalancer:LoadBalancer",
                  "aws:elb/loadBalancer:LoadBalancer")
# Resources that write objects of their own into the bucket their `bucket` property names.
OBJECT_WRITERS = ("aws:s3/bucketObject:BucketObject", "aws:s3/bucketObjectv2:BucketObjectv2",
                  "aws:s3/objectCopy:ObjectCopy")
# The writes the exception's Deny must cover: PutObject, and s3:ReplicateObject, the action a
# replication role writes replicas with (S3 User Guide, "Setting up permissions for live
# replication"), which a Deny of PutObject alone leaves open.
LOG_BUCKET_DENIED_WRITES = ("s3:putobject", "s3:replicateobject")


def _load_balancer_logs_to(load_balancer: Resource, bucket: Resource) -> bool:
    """Does the load balancer deliver its access logs (`accessLogs.bucket`) to `bucket`?"""
    logs = known(load_balancer, "accessLogs")
    if logs is None or (logs is not UNKNOWN and not isinstance(logs, Mapping)):
        return False
    if known_field(logs, "enabled") is False:
        return False
    target, names = known_field(logs, "bucket"), (known(bucket, "id"), known(bucket, "bucket"))
    if isinstance(target, str) and target and any(isinstance(n, str) and n for n in names):
        return target in names
    return bucket.urn in load_balancer.property_dependencies.get("accessLogs", ())


def log_destination(resources: Sequence[Resource], bucket: Resource) -> bool:
    """Is `bucket` where this stack delivers access logs, and nothing else writes objects?

    Logs are delivered to it when an `aws.s3.BucketLogging` (or `...V2`) names it as its
    `targetBucket`, or a load balancer's `accessLogs.bucket` is it; an `aws.s3.BucketObject*` or
    `ObjectCopy` into it means it holds more than logs. The policy shape alone would let any
    bucket, a model bucket given the log bucket's policy, claim the SSE-S3 exception.
    """
    delivered = any(refers_to_by_value(logging, "targetBucket", bucket, "bucket")
                    for logging in of_type(resources, *BUCKET_LOGGING)) \
        or any(_load_balancer_logs_to(lb, bucket) for lb in of_type(resources, *LOAD_BALANCERS))
    # A writer counts if either its value or its recorded dependency names the bucket: any sign
    # of objects of another origin ends the exception.
    written = any(refers_to(writer, "bucket", bucket) or names_by_value(writer, "bucket", bucket, "bucket")
                  for writer in of_type(resources, *OBJECT_WRITERS))
    return delivered and not written


def log_delivery_only(resources: Sequence[Resource], bucket: Resource) -> bool | None:
    """Is `bucket` an access-log destination that only the log-delivery services can write?

    S3 server access logs go only to a bucket whose default encryption is SSE-S3 (S3 User Guide,
    "Enabling Amazon S3 server access logging"), so such a bucket cannot meet the CMK rules; it
    is accepted in their place only when this stack delivers access logs to it and writes no
    object of its own into it (`log_destination`), and only in this exact shape, which keeps
    anything but logs out of it: every policy of the bucket (one `aws.s3.BucketPolicy` at least,
    all known) has a Deny, to everyone, of `s3:PutObject` and `s3:ReplicateObject` (or `s3:*`)
    whose only condition is StringNotEquals `aws:PrincipalServiceName` with log-delivery services
    only, and Allows only to those services.
    None when a policy is not known yet (a first preview): the rules decide once it is.
    """
    if not log_destination(resources, bucket):
        return False
    return written_only_by(resources, bucket, LOG_DELIVERY_SERVICES)


CLOUDTRAIL_SERVICES = frozenset({"cloudtrail.amazonaws.com"})
TRAILS = ("aws:cloudtrail/trail:Trail",)


def cloudtrail_archive_only(resources: Sequence[Resource], bucket: Resource) -> bool | None:
    """Is `bucket` an audit trail's archive that only CloudTrail can write, each log file under a
    customer managed key?

    CloudTrail encrypts each log file with the trail's KMS key (it asks for SSE-KMS on every
    one), and its digest files with SSE-S3 ("Encrypting CloudTrail log files with AWS KMS keys",
    CloudTrail User Guide): a bucket default of SSE-KMS would have S3 ask the key for the digests
    on CloudTrail's behalf under a context the key's CloudTrail statement does not admit. So the
    archive's default may be SSE-S3 when: a trail of this stack names it (`s3BucketName`) and
    sets a `kmsKeyId`, nothing of the stack writes objects into it, and its policy has the
    log-delivery shape with CloudTrail as the only service (`written_only_by`). None when a
    policy is not known yet."""
    trails = [trail for trail in of_type(resources, *TRAILS)
              if refers_to(trail, "s3BucketName", bucket)
              or refers_to_by_value(trail, "s3BucketName", bucket, "bucket", "id")]
    if not trails or not all(sets_a_key(trail, "kmsKeyId") for trail in trails):
        return False
    if any(refers_to(writer, "bucket", bucket) or names_by_value(writer, "bucket", bucket, "bucket")
           for writer in of_type(resources, *OBJECT_WRITERS)):
        return False
    # Each Allow to CloudTrail pinned to a trail or this account: otherwise any account's trail
    # could write here (the confused deputy the CloudTrail User Guide's bucket policy guards against).
    return written_only_by(resources, bucket, CLOUDTRAIL_SERVICES, pinned=True)


def written_only_by(resources: Sequence[Resource], bucket: Resource, services: frozenset[str], *,
                    pinned: bool = False) -> bool | None:
    """Does every policy of `bucket` (one at least, all known) Deny writes to everyone but
    `services` and Allow only to them? With `pinned`, each Allow must also carry an
    `aws:SourceArn` or `aws:SourceAccount` condition. None when a policy is not known yet."""
    policies = attached(resources, bucket, BUCKET_POLICY)
    if not policies:
        return False
    for policy in policies:
        document = known(policy, "policy")
        if document is UNKNOWN:
            return None
        if not document:
            return False
        try:
            parsed = json.loads(document) if isinstance(document, str) else document
        except json.JSONDecodeError:
            return False
        statements = [s for s in as_list(parsed.get("Statement") if isinstance(parsed, Mapping) else None)
                      if isinstance(s, Mapping)]
        if not any(_denies_writes_but(s, services) for s in statements):
            return False
        for statement in statements:
            if statement.get("Effect") == "Allow":
                principal = statement.get("Principal")
                allowed = as_list(principal.get("Service")) if isinstance(principal, Mapping) else []
                only_services = isinstance(principal, Mapping) and set(principal) == {"Service"}
                if not only_services or not set(map(str, allowed)) <= services:
                    return False
                if pinned and not _pinned_to_a_source(statement.get("Condition")):
                    return False
    return True


def _pinned_to_a_source(condition: Any) -> bool:
    if not isinstance(condition, Mapping):
        return False
    keys = {str(key).lower() for block in condition.values() if isinstance(block, Mapping) for key in block}
    return bool(keys & {"aws:sourcearn", "aws:sourceaccount"})


def _denies_writes_but(statement: Mapping[str, Any], services: frozenset[str]) -> bool:
    principal = statement.get("Principal")
    everyone = principal == "*" or (isinstance(principal, Mapping) and set(principal) == {"AWS"}
                                    and [str(p) for p in as_list(principal["AWS"])] == ["*"])
    if statement.get("Effect") != "Deny" or not everyone or \
            {"NotPrincipal", "NotAction", "NotResource"} & set(statement):
        return False
    actions = {str(action).lower() for action in as_list(statement.get("Action"))}
    if not ({"s3:*", "*"} & actions or set(LOG_BUCKET_DENIED_WRITES) <= actions):
        return False
    condition = statement.get("Condition")
    if not isinstance(condition, Mapping) or len(condition) != 1:
        return False
    [(operator, block)] = condition.items()
    if str(operator).lower() != "stringnotequals" or not isinstance(block, Mapping) or len(block) != 1:
        return False
    [(key, values)] = block.items()
    return str(key).lower() == "aws:principalservicename" and bool(as_list(values)) and \
        set(map(str, as_list(values))) <= services


def bucket_keys(resources: Sequence[Resource], bucket: Resource) -> list[Any]:
    """The KMS keys the bucket's default encryption names (from its separate resources, else
    inline): what its policy must pin."""
    sources = attached(resources, bucket, *ENCRYPTION) or [bucket]
    return [encryption_key(block) for source in sources for block in default_encryptions(source) or []]
