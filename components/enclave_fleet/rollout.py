"""Image rollout: a new image of the AMI pipeline becomes an instance refresh of the fleet.

`ImageRollout` (type token `zero-trust-ai:inference:ImageRollout`) closes the loop from a new image
to running instances: an EventBridge rule on Image Builder's "Image State Change" events (state
AVAILABLE, images of the pipeline's recipe) invokes a small function (`ztai_runtime.instance_refresh`)
that starts an instance refresh of the group unless one that began after the image is running,
and only for an AMI the pipeline produced (`verify_pipeline_ami`: owner, Image Builder record of
the declared recipe version, snapshots under the AMI key). Because the launch template resolves
the parameter at every launch, a second rule runs the same function on every change of the
parameter, which puts back the pipeline's last AMI when the new value is not one of its own.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.alarm_topics import AlarmActions
from components.alarms import checked_actions, occurrence_alarm
from components.aws_facts import LOG_RETENTION_DAYS
from components.enclave_fleet.settings import (
    INSTANCE_WARMUP_SECONDS,
    MAX_HEALTHY_PERCENTAGE,
    MIN_HEALTHY_PERCENTAGE,
)
from components.functions import log_group_name, logged_function, policy_document

ROLLOUT_HANDLER = "ztai_runtime.instance_refresh.handler"
# The function's code: the runtime modules it imports and nothing else (a test checks the imports).
ROLLOUT_MODULES: tuple[str, ...] = ("__init__.py", "jsonlog.py", "retries.py", "instance_refresh.py")
IMAGE_STATE_CHANGE = "EC2 Image Builder Image State Change"
PARAMETER_STORE_CHANGE = "Parameter Store Change"
# The function's decisions that mean someone other than the pipeline chose the fleet's image
# (ztai_runtime.instance_refresh.UNTRUSTED_ACTIONS; a test holds the two lists equal).
UNTRUSTED_IMAGE_ACTIONS: tuple[str, ...] = ("parameter-mismatch", "untrusted-image",
                                            "parameter-reverted", "parameter-untrusted")
ROLLOUT_METRIC_NAMESPACE = "zero-trust-ai/ImageRollout"
# Lambda's asynchronous retries (a rerun is idempotent) and how long an event may wait for them.
ROLLOUT_RETRY_ATTEMPTS = 2
ROLLOUT_MAX_EVENT_AGE = 3600


def image_available_pattern(image_arn_prefix: str) -> str:
    """The EventBridge pattern: Image Builder says an image of the recipe is AVAILABLE (built,
    tested, distributed: the image parameter already holds its AMI)."""
    return json.dumps({
        "source": ["aws.imagebuilder"], "detail-type": [IMAGE_STATE_CHANGE],
        "resources": [{"prefix": image_arn_prefix}],
        "detail": {"state": {"status": ["AVAILABLE"]}},
    }, sort_keys=True)


def parameter_changed_pattern(ami_parameter_arn: str) -> str:
    """The EventBridge pattern of the parameter watch: SSM reports a change of the fleet's image
    parameter (any operation; the function reads the current value)."""
    return json.dumps({
        "source": ["aws.ssm"], "detail-type": [PARAMETER_STORE_CHANGE],
        "resources": [ami_parameter_arn],
    }, sort_keys=True)


def untrusted_image_filter_pattern() -> str:
    """The metric filter on the function's JSON lines that counts untrusted-image decisions."""
    return "{ " + " || ".join(f'($.action = "{action}")' for action in UNTRUSTED_IMAGE_ACTIONS) + " }"


def rollout_policy(*, group_arn: str, log_group_arn: str, ami_parameter_arn: str,
                   image_arn_prefix: str) -> str:
    """The rollout function's role: start a refresh of this group, see its refreshes, write its
    own log group. DescribeInstanceRefreshes takes no resource (Auto Scaling's Describe actions
    have no resource-level permissions); StartInstanceRefresh names the group. Before a refresh,
    and on every change of the fleet's AMI-id parameter, it reads that parameter and its history
    (that one only), the pipeline's images (the recipe's image ARNs only) and the AMI and its
    snapshots (EC2's Describe actions take no resource) to check the AMI is one the pipeline
    produced; it may write that parameter, only to put back the last such value
    (`guard_parameter`): the SCP that keeps the parameter to the pipeline must let this role too."""
    return policy_document([
        {"Sid": "ReadAmiIdParameter", "Effect": "Allow",
         "Action": ["ssm:GetParameter", "ssm:GetParameterHistory"], "Resource": ami_parameter_arn},
        {"Sid": "RestoreAmiIdParameter", "Effect": "Allow", "Action": "ssm:PutParameter",
         "Resource": ami_parameter_arn},
        {"Sid": "DescribeAmis", "Effect": "Allow",
         "Action": ["ec2:DescribeImages", "ec2:DescribeSnapshots"], "Resource": "*"},
        {"Sid": "ReadPipelineImages", "Effect": "Allow", "Action": "imagebuilder:GetImage",
         "Resource": f"{image_arn_prefix}*"},
        {"Sid": "RefreshThisGroup", "Effect": "Allow", "Action": "autoscaling:StartInstanceRefresh",
         "Resource": group_arn},
        {"Sid": "SeeRefreshes", "Effect": "Allow", "Action": "autoscaling:DescribeInstanceRefreshes",
         "Resource": "*"},
        {"Sid": "WriteOwnLogGroup", "Effect": "Allow",
         "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
         "Resource": [log_group_arn, f"{log_group_arn}:log-stream:*"]},
    ])


@dataclass
class ImageRolloutArgs:
    """Inputs of `ImageRollout`; every default is the secure one.

    environment, owner, region: names, tags and ARNs.
    group_name, group_arn: the fleet's Auto Scaling group (`fleet.group.name`, `fleet.group.arn`).
    image_arn_prefix: images whose AVAILABLE state starts a refresh: the AMI pipeline's
        (`ImmutableAmiPipeline.image_arn_prefix`, `arn:...:image/<recipe>/`).
    logs_key_arn: CMK of the function's log group (the hierarchy's logs key, with
        `grant_cloudwatch_logs(log_group_prefix)`).
    ami_parameter_name, ami_parameter_arn: the fleet's AMI-id parameter (`fleet.image_parameter`);
        the function refuses to refresh unless it names the new image's AMI, and watches it.
    recipe_arn: the pipeline's recipe (`ImmutableAmiPipeline.recipe.arn`, name and version): an
        AMI is the pipeline's only if its Image Builder record was built from it.
    ami_key_arn: the key the pipeline encrypts the AMI with (its `ami_key_arn`): an AMI whose
        snapshots use another key is not the pipeline's.
    pipeline_arn, infrastructure_configuration_arn, distribution_configuration_arn,
    build_subnet_id, build_security_group_ids, execution_role_arn, workflow_arns: how the
        pipeline builds, as declared (`ImmutableAmiPipeline`: `pipeline.arn`,
        `infrastructure_configuration.arn`, `distribution_configuration.arn`, `build_subnet_id`,
        `security_group.id`, `execution_role.arn`, `workflow_arns`): an AMI is the pipeline's only
        if its Image Builder record shows that pipeline (or the stack's deploy-time build, run as
        that execution role), tests and scanning on, that distribution, that infrastructure with
        no key pair, that subnet and those security groups, and no other workflow
        (`ztai_runtime.instance_refresh.build_problems`).
    min_healthy_percentage, max_healthy_percentage, instance_warmup_seconds: the refresh's
        preferences; defaults are the fleet's own (100, 200, 300 s).
    log_retention_days: CloudWatch retention of the function's logs; default 365.
    alarm_actions: the stack's alarm topics (AlarmTopics.actions); required. An untrusted image
        notifies `critical`, a failed rollout or invocation `high`.
    protect: `protect` and deletion protection on the log group; default False, True in prod.
    reserve_concurrency: reserve concurrency 1 for the function; default True. False (accounts
        whose Lambda concurrency quota cannot spare it) lets two events run at once: the second
        StartInstanceRefresh then meets InstanceRefreshInProgress (`already-refreshing`), harmless.
    """

    environment: str
    owner: str
    region: str
    group_name: pulumi.Input[str]
    group_arn: pulumi.Input[str]
    image_arn_prefix: pulumi.Input[str]
    logs_key_arn: pulumi.Input[str]
    ami_parameter_name: pulumi.Input[str]
    ami_parameter_arn: pulumi.Input[str]
    recipe_arn: pulumi.Input[str]
    ami_key_arn: pulumi.Input[str]
    pipeline_arn: pulumi.Input[str]
    infrastructure_configuration_arn: pulumi.Input[str]
    distribution_configuration_arn: pulumi.Input[str]
    build_subnet_id: pulumi.Input[str]
    build_security_group_ids: Sequence[pulumi.Input[str]]
    execution_role_arn: pulumi.Input[str]
    workflow_arns: Sequence[str]
    min_healthy_percentage: int = MIN_HEALTHY_PERCENTAGE
    max_healthy_percentage: int = MAX_HEALTHY_PERCENTAGE
    instance_warmup_seconds: int = INSTANCE_WARMUP_SECONDS
    log_retention_days: int = 365
    alarm_actions: AlarmActions | None = None
    protect: bool = False
    reserve_concurrency: bool = True


class ImageRollout(pulumi.ComponentResource):
    """A new image of the AMI pipeline → an instance refresh of the fleet.

    What it builds: an EventBridge rule on the default bus matching `image_available_pattern`; the
    function (`ztai_runtime.instance_refresh`, only the modules it imports, reserved concurrency 1
    so two events never race, asynchronous retries) with its own log group, encrypted with the
    given CMK, created before it; its role, trusted by lambda.amazonaws.com of this account only,
    holding `rollout_policy`; the permission for EventBridge to invoke it from that rule only; and
    two alarms, function errors (a failed or overtaken rollout: the log line says which) and
    failed rule invocations. A second rule sends every change of the AMI-id parameter to the
    same function (`guard_parameter`: a value the pipeline did not produce is replaced with its
    last one), and a metric filter on the function's JSON lines raises an untrusted-image alarm
    (UNTRUSTED_IMAGE_ACTIONS) whenever the parameter or a new image names an AMI the pipeline did
    not produce. The function runs outside any VPC: it calls the Auto Scaling API, which no
    segment has an interface endpoint for, Image Builder GetImage on the pipeline's images, SSM
    on the AMI-id parameter only and EC2's image and snapshot descriptions; it touches no data.
    An event that fails every retry goes to the function's failure queue (`logged_function`),
    encrypted with logs_key_arn: its owner grants the role that key's use through SQS
    (`grant_use_through_service("logs", rollout.role, "sqs")`).

    Type token `zero-trust-ai:inference:ImageRollout`.
    """

    role: aws.iam.Role
    function: aws.lambda_.Function
    rule: aws.cloudwatch.EventRule
    parameter_rule: aws.cloudwatch.EventRule
    log_group_prefix: str

    def __init__(self, name: str, args: ImageRolloutArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        _validate_rollout(args)
        checked_actions(args.alarm_actions, "critical", "ImageRolloutArgs.alarm_actions")
        super().__init__("zero-trust-ai:inference:ImageRollout", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        account_id = aws.get_caller_identity_output(opts=pulumi.InvokeOptions(parent=self)).account_id
        tags = {"data-classification": "internal", "ztai:segment": "inference"}
        function_name = f"zero-trust-ai-{args.environment}-inference-image-rollout"
        self.log_group_prefix = log_group_name(function_name)

        def role_policy(log_group_arn: pulumi.Output[str]) -> pulumi.Output[str]:
            return pulumi.Output.all(args.group_arn, log_group_arn, args.ami_parameter_arn,
                                     args.image_arn_prefix).apply(
                lambda arns: rollout_policy(group_arn=arns[0], log_group_arn=arns[1],
                                            ami_parameter_arn=arns[2], image_arn_prefix=arns[3]))

        # Reserved concurrency 1 (logged_function): two events (or a retry) never race on the group.
        rollout = logged_function(
            name, parent=self, account_id=account_id, function_name=function_name,
            description="Instance refresh of the inference fleet when a new enclave parent image "
                        "is available",
            role_description="Starts an instance refresh of the inference fleet when a new enclave "
                             "parent image is available",
            handler=ROLLOUT_HANDLER, modules=ROLLOUT_MODULES, role_policy=role_policy,
            logs_key_arn=args.logs_key_arn, log_retention_days=args.log_retention_days,
            memory_size=128, timeout=60,
            retry_attempts=ROLLOUT_RETRY_ATTEMPTS, max_event_age=ROLLOUT_MAX_EVENT_AGE,
            errors_alarm_description="A new enclave parent image did not reach the fleet: see the "
                                     "instance-refresh log lines (README, image rollout runbook)",
            errors_alarm_period=300, alarm_actions=args.alarm_actions, tags=tags, protect=args.protect,
            environment={
                "ZTAI_AUTO_SCALING_GROUP": args.group_name,
                "ZTAI_IMAGE_ARN_PREFIX": args.image_arn_prefix,
                "ZTAI_AMI_ID_PARAMETER": args.ami_parameter_name,
                "ZTAI_IMAGE_RECIPE_ARN": args.recipe_arn,
                "ZTAI_AMI_KEY_ARN": args.ami_key_arn,
                "ZTAI_IMAGE_PIPELINE_ARN": args.pipeline_arn,
                "ZTAI_INFRASTRUCTURE_CONFIGURATION_ARN": args.infrastructure_configuration_arn,
                "ZTAI_DISTRIBUTION_CONFIGURATION_ARN": args.distribution_configuration_arn,
                "ZTAI_BUILD_SUBNET_ID": args.build_subnet_id,
                "ZTAI_BUILD_SECURITY_GROUP_IDS": pulumi.Output.all(
                    *args.build_security_group_ids).apply(lambda ids: ",".join(ids)),
                "ZTAI_IMAGE_EXECUTION_ROLE_ARN": args.execution_role_arn,
                "ZTAI_IMAGE_WORKFLOW_ARNS": ",".join(args.workflow_arns),
                "ZTAI_MIN_HEALTHY_PERCENTAGE": str(args.min_healthy_percentage),
                "ZTAI_MAX_HEALTHY_PERCENTAGE": str(args.max_healthy_percentage),
                "ZTAI_INSTANCE_WARMUP_SECONDS": str(args.instance_warmup_seconds),
            }, reserve_concurrency=args.reserve_concurrency)
        log_group, self.role, self.function = rollout.log_group, rollout.role, rollout.function
        self.log_group = log_group  # subscribed to the SIEM stream (components/siem_stream.py)

        self.rule = aws.cloudwatch.EventRule(
            f"{name}-image-available",
            name=f"zero-trust-ai-{args.environment}-enclave-parent-image-available",
            description="A new enclave parent image is available: refresh the inference fleet",
            event_pattern=pulumi.Output.from_input(args.image_arn_prefix).apply(image_available_pattern),
            state="ENABLED", tags=tags, opts=child)
        permission = aws.lambda_.Permission(
            f"{name}-invoke", action="lambda:InvokeFunction", function=self.function.name,
            principal="events.amazonaws.com", source_arn=self.rule.arn,
            opts=pulumi.ResourceOptions(parent=self.function))
        aws.cloudwatch.EventTarget(
            f"{name}-target", rule=self.rule.name, arn=self.function.arn,
            retry_policy=aws.cloudwatch.EventTargetRetryPolicyArgs(
                maximum_event_age_in_seconds=ROLLOUT_MAX_EVENT_AGE, maximum_retry_attempts=10),
            opts=pulumi.ResourceOptions(parent=self.rule, depends_on=[permission]))

        # The launch template resolves the parameter at every launch, so a refused rollout is not
        # enough: every change of the parameter runs the function's watch (`guard_parameter`),
        # which puts back the pipeline's last AMI when the new value is not one of its own.
        self.parameter_rule = aws.cloudwatch.EventRule(
            f"{name}-parameter-changed",
            name=f"zero-trust-ai-{args.environment}-enclave-parent-parameter-changed",
            description="The enclave parent image parameter changed: check it is the pipeline's AMI",
            event_pattern=pulumi.Output.from_input(args.ami_parameter_arn).apply(
                parameter_changed_pattern),
            state="ENABLED", tags=tags, opts=child)
        parameter_permission = aws.lambda_.Permission(
            f"{name}-invoke-on-parameter", action="lambda:InvokeFunction",
            function=self.function.name, principal="events.amazonaws.com",
            source_arn=self.parameter_rule.arn, opts=pulumi.ResourceOptions(parent=self.function))
        aws.cloudwatch.EventTarget(
            f"{name}-parameter-target", rule=self.parameter_rule.name, arn=self.function.arn,
            retry_policy=aws.cloudwatch.EventTargetRetryPolicyArgs(
                maximum_event_age_in_seconds=ROLLOUT_MAX_EVENT_AGE, maximum_retry_attempts=10),
            opts=pulumi.ResourceOptions(parent=self.parameter_rule, depends_on=[parameter_permission]))
        untrusted_metric = f"UntrustedImage-{args.environment}"
        aws.cloudwatch.LogMetricFilter(
            f"{name}-untrusted-image", name=f"{function_name}-untrusted-image",
            log_group_name=log_group.name, pattern=untrusted_image_filter_pattern(),
            metric_transformation=aws.cloudwatch.LogMetricFilterMetricTransformationArgs(
                name=untrusted_metric, namespace=ROLLOUT_METRIC_NAMESPACE, value="1", unit="Count"),
            opts=pulumi.ResourceOptions(parent=log_group))
        occurrence_alarm(
            f"{name}-untrusted-image-alarm", alarm_name=f"{function_name}-untrusted-image",
            description="The fleet's image parameter or a new image names an AMI the pipeline did "
                        "not produce (README, image rollout runbook: untrusted image)",
            namespace=ROLLOUT_METRIC_NAMESPACE, metric_name=untrusted_metric, dimensions=None,
            statistic="Sum", period=60, actions=args.alarm_actions, severity="critical", tags=tags,
            parent=self.function)
        occurrence_alarm(
            f"{name}-parameter-failed-invocations-alarm",
            alarm_name=f"{function_name}-parameter-failed-invocations",
            description="EventBridge could not invoke the image parameter watch",
            namespace="AWS/Events", metric_name="FailedInvocations",
            dimensions={"RuleName": self.parameter_rule.name}, statistic="Sum", period=300,
            actions=args.alarm_actions, severity="high", tags=tags, parent=self.parameter_rule)
        occurrence_alarm(
            f"{name}-failed-invocations-alarm", alarm_name=f"{function_name}-failed-invocations",
            description="EventBridge could not invoke the image rollout function",
            namespace="AWS/Events", metric_name="FailedInvocations", dimensions={"RuleName": self.rule.name},
            statistic="Sum", period=300, actions=args.alarm_actions, severity="high", tags=tags,
            parent=self.rule)

        self.register_outputs({
            "functionArn": self.function.arn,
            "roleArn": self.role.arn,
            "ruleArn": self.rule.arn,
            "parameterRuleArn": self.parameter_rule.arn,
            "logGroup": log_group.name,
        })


def _validate_rollout(args: ImageRolloutArgs) -> None:
    """What Auto Scaling or CloudWatch would refuse, before anything is declared."""
    problems = []
    if not 0 <= args.min_healthy_percentage <= 100:
        problems.append(f"min_healthy_percentage {args.min_healthy_percentage}: 0-100")
    if not 100 <= args.max_healthy_percentage <= 200:
        problems.append(f"max_healthy_percentage {args.max_healthy_percentage}: 100-200")
    elif args.max_healthy_percentage - args.min_healthy_percentage > 100:
        problems.append("max_healthy_percentage - min_healthy_percentage: at most 100")
    if args.instance_warmup_seconds < 0:
        problems.append(f"instance_warmup_seconds {args.instance_warmup_seconds}: not negative")
    if args.log_retention_days not in LOG_RETENTION_DAYS:
        problems.append(f"log_retention_days {args.log_retention_days}: a CloudWatch Logs retention "
                        f"({', '.join(map(str, LOG_RETENTION_DAYS))})")
    if not args.build_security_group_ids:
        problems.append("build_security_group_ids is empty: name the pipeline's build security group")
    if not args.workflow_arns:
        problems.append("workflow_arns is empty: name the pipeline's workflows")
    if problems:
        raise ValueError("ImageRollout: " + "; ".join(problems))
