"""The trail records who read or wrote the model weights, the training data and the token vault
(control: logs that last).

Management events show who changed a bucket or a table, not who read an object or an item: that
takes data events ("Logging data events", CloudTrail User Guide). How a selector is read (every
field selector must match, narrowing fields do not count, each `resources.ARN` operator against
the target) is in ztpolicy.trails. What must be covered depends on the stack's layer:

- a combined stack: one of its trails logs every data event on every object of each model bucket
  (tagged `ztai:workload` = `enclave-inference`, not an access-log destination) and each
  training-data bucket (tagged `ztai:purpose` = `training-data`), resource type
  `AWS::S3::Object`, and on each token vault table (tagged `ztai:purpose` = `token-vault`),
  `AWS::DynamoDB::Table`;
- a key layer: the workload's buckets, tables and functions are in another stack and cannot be
  listed here, so one of its trails must log them all: every S3 object, every DynamoDB table and
  every Lambda function. A selector counts when its `resources.ARN` is absent or leaves out
  nothing but what would log without end:
  - the objects of its own trails' archive buckets and their access-log buckets (a trail that
    logged its own deliveries), NotStartsWith or NotEquals under `<bucket ARN>/`;
  - the SIEM streams' own plumbing (components/siem_stream.py): the copy of the trail is one of
    their sources, so their transforms' invocations and their backup buckets' writes would come
    back to them in a loop. By their fixed names, in the trail's partition, home Region and
    account, for the stack's environment (any environment when the stack's config is not known)
    and both layers of a split deployment, which share the account: the objects under
    `arn:<partition>:s3:::zero-trust-ai-<env>-<keys|workload>-siem-<account>/` and
    `...-siem-a-<account>/` (NotStartsWith or NotEquals), and the function
    `arn:<partition>:lambda:<region>:<account>:function:zero-trust-ai-<env>-<keys|workload>-siem-transform`
    (NotEquals only: a NotStartsWith would also leave out any function whose name extends it);
    and likewise the detection function beside each stream (components/detection.py), which
    watches the same copy: its state buckets `...-siem-d-<account>/` and `...-siem-l-<account>/`
    and its function `...-siem-detect`.
  Any other exclusion (the model bucket, the vault, another function, a wider prefix) is a
  finding. Until the trail's ARN is known (a preview that creates it) the SIEM names are not, and
  an exclusion is checked when they are;
- a workload: nothing to check here. It declares no trail (cloudtrail-trail-secure), and its key
  layer's selectors, checked above, cover its resources account-wide.

A stack without a trail is left to cloudtrail-trail-secure. A value not known yet (a preview) is
checked when it is.

Excludable, with a reason.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import Severity

from ztpolicy.buckets import BUCKET_LOGGING, BUCKETS, log_destination
from ztpolicy.graph import known, of_type, refers_to, refers_to_by_value
from ztpolicy.rule import Finding, Resource, Rule
from ztpolicy.stack import ENVIRONMENTS, StackSettings, stack_settings
from ztpolicy.trails import Target, stack_anchor, tagged, trail_logs, trails

TABLE = "aws:dynamodb/table:Table"
OBJECT, TABLE_EVENTS, FUNCTION_EVENTS = "AWS::S3::Object", "AWS::DynamoDB::Table", "AWS::Lambda::Function"
MODEL_BUCKET_TAG = ("ztai:workload", "enclave-inference")
# components/training_data.py PURPOSE_TAG and components/token_vault.py's table tag (a test keeps
# them equal).
TRAINING_DATA_TAG = ("ztai:purpose", "training-data")
VAULT_TAG = ("ztai:purpose", "token-vault")
# The layers of a split deployment, which share one account and so one trail.
SPLIT_LAYERS = ("keys", "workload")
_TRAIL_ARN = re.compile(r"^arn:([a-z-]+):cloudtrail:([a-z0-9-]+):([0-9]{12}):trail/")


def siem_stream_name(environment: str, layer: str) -> str:
    """components/siem_stream.py stream_name (a test keeps them equal)."""
    return f"zero-trust-ai-{environment}-{layer}-siem"


def siem_plumbing(partition: str, region: str, account: str,
                  environments: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(object prefixes, function ARNs) of the SIEM streams' own buckets and transforms a key
    layer's trail may leave out: components/audit.py siem_exclusions, by the same fixed names."""
    streams = [siem_stream_name(env, layer) for env in environments for layer in SPLIT_LAYERS]
    # The backup bucket and its access logs; the detection function's state bucket (-d) and its
    # access logs (-l) (components/detection.py).
    prefixes = tuple(f"arn:{partition}:s3:::{stream}{infix}-{account}/"
                     for stream in streams for infix in ("", "-a", "-d", "-l"))
    functions = tuple(f"arn:{partition}:lambda:{region}:{account}:function:{stream}-{kind}"
                      for stream in streams for kind in ("transform", "detect"))
    return prefixes, functions


def _trail_plumbing(trail: Resource, settings: StackSettings
                    ) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """What of the SIEM streams `trail` may leave out, from its ARN; None while the ARN is not
    known; nothing for an ARN that is not a trail's."""
    arn = known(trail, "arn")
    if not isinstance(arn, str) or not arn:
        return None
    found = _TRAIL_ARN.match(arn)
    if found is None:
        return (), ()
    partition, region, account = found.groups()
    environments = (settings.environment,) if settings.environment else ENVIRONMENTS
    return siem_plumbing(partition, region, account, environments)


def _combined_targets(resources: Sequence[Resource]) -> list[tuple[Resource, str, str]]:
    """(resource, data resource type, what it holds) of every target a combined stack covers."""
    targets = [(bucket, OBJECT, "the model weights") for bucket in of_type(resources, *BUCKETS)
               if tagged(bucket, *MODEL_BUCKET_TAG) and not log_destination(resources, bucket)]
    targets += [(bucket, OBJECT, "training data") for bucket in of_type(resources, *BUCKETS)
                if tagged(bucket, *TRAINING_DATA_TAG)]
    targets += [(table, TABLE_EVENTS, "the token vault") for table in of_type(resources, TABLE)
                if tagged(table, *VAULT_TAG)]
    return targets


def _combined_findings(resources: Sequence[Resource], found: list[Resource]) -> list[Finding]:
    findings: list[Finding] = []
    for target, resource_type, what in _combined_targets(resources):
        # Created in this update, its ARN is not known yet: only what holds whatever the ARN
        # decides now (a narrowing field, a NotEndsWith), the rest when it is known.
        arn = known(target, "arn")
        unknown = not isinstance(arn, str) or not arn
        arn = "" if unknown else arn
        wanted = (Target(under=f"{arn}/", unknown=unknown) if resource_type == OBJECT
                  else Target(exact=arn, unknown=unknown))
        answers = [trail_logs(trail, resource_type, wanted) for trail in found]
        if any(answers) or None in answers:
            continue
        findings.append(Finding(target.urn, (
            f"{target.name} ({arn or 'ARN not known yet'}, {what}): no trail of the stack logs every "
            f"data event on {'every object of it' if resource_type == OBJECT else 'it'} "
            f"({resource_type} in an advanced event selector of {', '.join(t.name for t in found)}, "
            "without a narrowing field or an ARN condition that leaves part of it out), so who read it "
            "is not on record")))
    return findings


def _archive_buckets(resources: Sequence[Resource], found: list[Resource]) -> list[Resource] | None:
    """The buckets the stack's trails write to, and the buckets their access logs go to; None when
    a link is not known yet."""
    buckets = of_type(resources, *BUCKETS)
    archives = [bucket for bucket in buckets for trail in found
                if refers_to_by_value(trail, "s3BucketName", bucket, "bucket")]
    logs = [bucket for bucket in buckets for archive in archives
            for logging in of_type(resources, *BUCKET_LOGGING)
            if refers_to(logging, "bucket", archive)
            and refers_to_by_value(logging, "targetBucket", bucket, "bucket")]
    chosen = [*archives, *(b for b in logs if b not in archives)]
    return None if any(not isinstance(known(b, "arn"), str) for b in chosen) else chosen


def _key_layer_findings(resources: Sequence[Resource], found: list[Resource],
                        settings: StackSettings) -> list[Finding]:
    excluded = _archive_buckets(resources, found)
    # Archive buckets created in this update: their ARNs are not known, so only what holds
    # whatever they are decides now.
    archives = tuple(f"{known(bucket, 'arn')}/" for bucket in excluded or ())
    missing = []
    for resource_type, what in (
            (OBJECT, "every S3 object (but the trail's own archive and access-log buckets and the "
                     "SIEM streams' buckets)"),
            (TABLE_EVENTS, "every DynamoDB table"),
            (FUNCTION_EVENTS, "every Lambda function (but the SIEM streams' transforms)")):
        answers = [trail_logs(trail, resource_type, _key_layer_target(resource_type, archives,
                                                                     excluded is None, trail, settings))
                   for trail in found]
        if not any(answers) and None not in answers:
            missing.append(f"{what} ({resource_type})")
    if not missing:
        return []
    return [Finding(stack_anchor(resources), (
        f"the key layer's trails ({', '.join(t.name for t in found)}) do not log the data events of "
        f"{'; '.join(missing)}: the workload's buckets, tables and functions are in another stack, "
        "so only an account-wide selector (no resources.ARN, or one that leaves out only the "
        "archive's own buckets and the SIEM streams' own buckets and transforms, by their fixed "
        "names) records who read the weights, the training data or the vault"))]


def _key_layer_target(resource_type: str, archives: tuple[str, ...], archives_unknown: bool,
                      trail: Resource, settings: StackSettings) -> Target:
    """What `trail` must log of `resource_type`: all of it but what may be left out."""
    if resource_type == TABLE_EVENTS:
        return Target(all_but=())
    plumbing = _trail_plumbing(trail, settings)
    prefixes, functions = plumbing or ((), ())
    if resource_type == OBJECT:
        return Target(all_but=(*archives, *prefixes), unknown=archives_unknown or plumbing is None)
    return Target(all_but=(), all_but_exact=functions, unknown=plumbing is None)


def cloudtrail_data_events_cover(resources: Sequence[Resource],
                                 config: Mapping[str, Any]) -> list[Finding]:
    settings = stack_settings(config)
    found = trails(resources)
    if not found or settings.is_workload:
        return []
    if settings.is_keys:
        return _key_layer_findings(resources, found, settings)
    return _combined_findings(resources, found)


RULE = Rule(
    name="cloudtrail-data-events-cover",
    description="The stack's trail logs the data events of every model bucket, training-data "
                "bucket and token vault table (a key layer's: of every S3 object, DynamoDB table "
                "and Lambda function of the account).",
    control="logs that last",
    severity=Severity.HIGH,
    remediation="Build the trail with components.audit.AuditTrail, whose advanced event selectors "
                "log every S3 object but the archive's and the SIEM streams' own, every DynamoDB "
                "table and every Lambda function but the SIEM streams' transforms; do not narrow "
                "them with readOnly, eventName, eventSource or resources.ARN.",
    stack_check=cloudtrail_data_events_cover,
)
