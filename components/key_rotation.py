"""Monthly rotation of the key hierarchy's symmetric keys.

KMS automatic rotation runs at most every 90 days. This component adds a monthly on-demand
rotation: an EventBridge Scheduler schedule invokes a Lambda function (`ztai_runtime.rotation`)
every day with the aliases of the symmetric keys and the key each alias should name; the first run
of a month rotates each key, the other runs of the month find that rotation and do nothing, so a
failed run is made up the next day. Three rotations before a key reaches 24 of its 25 on-demand
rotations the function starts warning (`successor-due-soon`, an alarm); at 24 it answers
`successor-required` and fails, and the pipeline creates the successor (docs/runbooks/key-rotation.md). With
`create_successors=True` it creates the successor itself instead, which costs the role
kms:PutKeyPolicy on every symmetric key (see `MonthlyKeyRotationArgs`).

What it builds, secure by default:

- the function: the runtime modules it needs and nothing else (they depend on boto3 only), a
  supported Python runtime, reserved concurrency 1 so two runs never race on a successor,
  asynchronous retries (the rerun is idempotent), and its own log group, `/aws/lambda/<name>`,
  created before the function, encrypted with the given CMK and kept `log_retention_days`;
- its execution role, trusted only by lambda.amazonaws.com of this account. Its IAM policy holds
  writing to its log group and an explicit Deny of CreateKey/PutKeyPolicy with the lockout-check
  bypass; with `create_successors` also what KMS authorises through IAM for a successor:
  `kms:CreateKey` and `kms:TagResource` only for requests tagged as the successor of one of the
  given keys (CreateKey also only symmetric, single-Region, AWS_KMS), `kms:ListKeys` (to find a
  successor left by a crash) and `kms:UpdateAlias` on the given aliases. Everything it does on the
  keys themselves comes from the key policies (`KeyHierarchy.grant_key_rotation`);
- the schedule: a fixed cron in UTC (default 03:00 every day), no flexible window, a retry
  policy, and a dead-letter SQS queue encrypted with a CMK. The scheduler's role is trusted only
  by scheduler.amazonaws.com of this account and may only invoke this function and send to that
  queue; explicit Denies keep its use of the queue's key to SQS and that queue;
- three alarms: function errors, dead letters, and a successor falling due (a metric filter on
  the function's `successor-due-soon` lines). Scheduler retries and the dead-letter queue cover
  failures to *deliver* the invocation only: Scheduler invokes Lambda asynchronously, so an error
  the function raises (a failing run) reaches Lambda's own retries and the error alarm, not the
  queue; after the last retry Lambda sends its record to the function's own failure queue
  (`logged_function`). Each alarm notifies the topic of its severity (`alarm_actions`, the
  stack's AlarmTopics): errors, failed events and dead letters `high`, a successor due `medium`.
- a fourth: the function did not run (`missed_run_alarm`, `high`): no invocation in two
  consecutive days, whoever stopped the schedule. The schedule must therefore run at least daily.

Network: with `subnet_ids`, `vpc_id` and `vpc_cidr` (the stack passes the management segment) the
function runs in those private subnets with a security group that allows only HTTPS to the VPC's
own CIDR, where the KMS interface endpoint and its data-perimeter policy are. The function calls
KMS only; Lambda delivers its logs outside the VPC. Without them it runs outside any VPC.

Grants the key owner must make, because components never write key policies:
`keys.grant_key_rotation(rotation.role, create_successors=rotation.create_successors)` on the
symmetric keys; on the dead-letter key, `keys.grant_use_through_service(<purpose>,
rotation.scheduler_role, "sqs")` (SQS needs GenerateDataKey and Decrypt from a producer, through
SQS only); on the logs key, the same for `rotation.role` (its failure queue); and
`keys.grant_cloudwatch_logs(rotation.log_group_prefix)` on the logs key. Type token
`zero-trust-ai:keys:MonthlyKeyRotation`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from components.alarm_topics import AlarmActions
from components.alarms import checked_actions, missed_run_alarm, occurrence_alarm
from components.aws_facts import LOG_RETENTION_DAYS, partition_for_region
from components.functions import (
    log_group_name,
    logged_function,
    policy_document,
    service_trust_policy,
)

# The modules the function imports, shipped alone: the function holds key-policy administration,
# so it carries no code it does not run (and none that needs `cryptography`, which the Lambda
# runtime lacks). A test checks that rotation.py imports nothing else from the package.
RUNTIME_MODULES: tuple[str, ...] = ("__init__.py", "jsonlog.py", "retries.py", "rotation.py")
HANDLER = "ztai_runtime.rotation.handler"
PREDECESSOR_TAG = "zero-trust-ai:predecessor-key-id"  # must match ztai_runtime.rotation

# 03:00 UTC every day: the function rotates once a month and does nothing on the other days, so a
# run that fails on the 1st is made up on the 2nd instead of a month later.
DEFAULT_SCHEDULE = "cron(0 3 * * ? *)"
_CRON = re.compile(r"^cron\(\S+ \S+ \S+ \S+ \S+ \S+\)$")
_RATE = re.compile(r"^rate\(\d+ (minute|minutes|hour|hours|day|days)\)$")
# The missed-run alarm: daily periods, alarming after two without an invocation (2 of 2: the day in
# progress is empty until its run and alone never alarms).
MISSED_RUN_PERIOD, MISSED_RUN_PERIODS = 86_400, 2
_RATE_SECONDS = {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86_400, "days": 86_400}
# Lambda allows at most 900 s. A successor scan lists every key of the account and reads its tags,
# and every call may back off up to 8 attempts, so leave room.
MIN_TIMEOUT, MAX_TIMEOUT = 60, 900
# Scheduler: 0-185 retries, event age 60-86400 s. Lambda asynchronous invocation: 0-2 retries.
SCHEDULE_RETRY_ATTEMPTS = 10
SCHEDULE_MAX_EVENT_AGE = 86400
FUNCTION_RETRY_ATTEMPTS = 2
FUNCTION_MAX_EVENT_AGE = 6 * 3600
DLQ_RETENTION_SECONDS = 14 * 24 * 3600  # the SQS maximum: time to notice and investigate
# The function's decision that a successor falls due within months (ztai_runtime.rotation).
SUCCESSOR_DUE_SOON = "successor-due-soon"
METRIC_NAMESPACE = "zero-trust-ai/KeyRotation"


@dataclass
class MonthlyKeyRotationArgs:
    """Inputs of `MonthlyKeyRotation`; every default is the secure one.

    environment, owner, region: names, tags and ARNs.
    key_aliases: aliases of the keys to rotate monthly (the hierarchy's symmetric keys; never an
        HMAC or asymmetric key, which KMS cannot rotate on demand). With create_successors the
        function may move these aliases, and only these.
    key_arns: the ARN of the key each alias names, in the same order. The function fails for an
        alias that names anything else than that key or a valid successor of it (a moved alias),
        and with create_successors the role may create successors of these keys only.
    logs_key_arn: CMK that encrypts the function's log group (the hierarchy's logs key, with
        `grant_cloudwatch_logs(log_group_prefix)`).
    dead_letter_key_arn: CMK that encrypts the dead-letter queue; its owner must grant the
        scheduler role its use through SQS (`grant_use_through_service(..., "sqs")`).
    create_successors: let the function create a successor key and move the alias when a key
        reaches 24 on-demand rotations (or KMS reports the quota spent). Default False: it
        answers `successor-required`, a failing run, after months of `successor-due-soon`
        warnings, and the pipeline creates the successor (docs/runbooks/key-rotation.md). A named relaxation:
        True costs kms:PutKeyPolicy for the role on every symmetric key, model-weights included
        (KMS's lockout check on the copied policy), plus CreateKey, TagResource, ListKeys and
        UpdateAlias in its IAM policy. Pass `rotation.create_successors` to
        `KeyHierarchy.grant_key_rotation`.
    schedule_expression: Scheduler expression in UTC; default DEFAULT_SCHEDULE (daily). The
        policy pack requires at least monthly (`kms-monthly-rotation-scheduled`); run it more
        often than monthly so that a failed run is retried before the month ends.
    subnet_ids, vpc_id, vpc_cidr: run the function in these private subnets, reaching KMS through
        the VPC's interface endpoint. Default: all empty, no VPC. Give all three or none.
    log_retention_days: CloudWatch retention of the function's logs; default 365.
    timeout_seconds: function timeout, 60-900; default 600.
    alarm_actions: the stack's alarm topics (AlarmTopics.actions, or alarm_actions_by_name in a
        workload stack); required: an alarm that notifies nobody is refused.
    protect: `protect` and deletion protection on the log group; default False, True in prod.
    schedule_key_arn: CMK that encrypts the schedule's payload (the aliases and key ARNs the
        function gets) at rest in EventBridge Scheduler. Default None: an AWS owned key (the pack's
        scheduler-schedule-encrypted rule refuses it). The key must admit the deploying role for
        this schedule from its creation (`KeyHierarchyArgs.schedules` with
        `rotation_schedule_name(environment)`) and the scheduler role's Decrypt
        (`keys.grant_schedule_decrypt(purpose, rotation.scheduler_role, rotation.schedule_name)`).
    reserve_concurrency: reserve concurrency 1 for the function; default True. False (accounts
        whose Lambda concurrency quota cannot spare it) lets two runs overlap: both may rotate a
        key on the 1st (one more of its 25 on-demand rotations spent), and with create_successors
        both may create a successor, which the next run refuses as several tagged keys (possible
        tampering) until one is deleted.
    """

    environment: str
    owner: str
    region: str
    key_aliases: Sequence[pulumi.Input[str]]
    key_arns: Sequence[pulumi.Input[str]]
    logs_key_arn: pulumi.Input[str]
    dead_letter_key_arn: pulumi.Input[str]
    create_successors: bool = False
    schedule_expression: str = DEFAULT_SCHEDULE
    subnet_ids: Sequence[pulumi.Input[str]] = field(default_factory=tuple)
    vpc_id: pulumi.Input[str] | None = None
    vpc_cidr: pulumi.Input[str] | None = None
    log_retention_days: int = 365
    timeout_seconds: int = 600
    alarm_actions: AlarmActions | None = None
    protect: bool = False
    reserve_concurrency: bool = True
    schedule_key_arn: pulumi.Input[str] | None = None


def rotation_schedule_name(environment: str) -> str:
    """The schedule's name (default group), which is also the function's: known before deploy, so
    the key that encrypts the schedule can admit it at creation (`KeyHierarchyArgs.schedules`)."""
    return f"zero-trust-ai-{environment}-key-rotation"


def key_id_of(key_arn: str) -> str:
    """The key id at the end of a KMS key ARN (`...:key/<id>`), which the predecessor tag holds."""
    return key_arn.rsplit("/", 1)[-1]


def rotation_policy(*, partition: str, region: str, account_id: str, alias_names: Sequence[str],
                    log_group_arn: str, create_successors: bool = False,
                    key_arns: Sequence[str] = (), subnet_ids: Sequence[str] = (),
                    security_group_id: str | None = None) -> str:
    """The execution role's IAM policy: only what KMS authorises through IAM, plus logging.

    Without create_successors that is nothing on KMS: rotating is granted by the key policies.
    """
    kms_arn = f"arn:{partition}:kms:{region}:{account_id}"
    statements: list[dict[str, Any]] = [
        {"Sid": "WriteOwnLogGroup", "Effect": "Allow",
         "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
         "Resource": [log_group_arn, f"{log_group_arn}:log-stream:*"]},
    ]
    if create_successors:
        # Only requests that name one of the rotated keys as predecessor. A successor of a
        # successor (a second one before the stack adopted the first) is refused: adopt first.
        successor_of_these = {f"aws:RequestTag/{PREDECESSOR_TAG}": sorted(map(key_id_of, key_arns))}
        statements += [
            # CreateKey has no resource to scope; the conditions pin what the function creates to
            # a successor of a hierarchy key: symmetric, single-Region, material made by KMS.
            {"Sid": "CreateSuccessorKeysOnly", "Effect": "Allow", "Action": "kms:CreateKey",
             "Resource": "*",
             "Condition": {
                 "StringEquals": {"kms:KeySpec": "SYMMETRIC_DEFAULT",
                                  "kms:KeyUsage": "ENCRYPT_DECRYPT", "kms:KeyOrigin": "AWS_KMS",
                                  **successor_of_these},
                 "Bool": {"kms:MultiRegion": "false"},
             }},
            # Tags given to CreateKey are authorised by kms:TagResource in an IAM policy that
            # covers all keys of the account and region (KMS developer guide, "Controlling access
            # to tags"); the condition keeps every tagging request to one naming a predecessor.
            {"Sid": "TagSuccessorKeysAtCreation", "Effect": "Allow", "Action": "kms:TagResource",
             "Resource": f"{kms_arn}:key/*", "Condition": {"StringEquals": successor_of_these}},
            # KMS cannot search by tag: a successor left by a crash is found by listing the keys.
            {"Sid": "ListKeysToFindSuccessors", "Effect": "Allow", "Action": "kms:ListKeys",
             "Resource": "*"},
            # Aliases have no policy of their own; the keys on both sides allow UpdateAlias too.
            {"Sid": "MoveOnlyTheseAliases", "Effect": "Allow", "Action": "kms:UpdateAlias",
             "Resource": [f"{kms_arn}:{name}" for name in alias_names]},
        ]
    statements.append(
        {"Sid": "NeverBypassTheLockoutCheck", "Effect": "Deny",
         "Action": ["kms:CreateKey", "kms:PutKeyPolicy"], "Resource": "*",
         "Condition": {"Bool": {"kms:BypassPolicyLockoutSafetyCheck": "true"}}})
    if subnet_ids:
        ec2_arn = f"arn:{partition}:ec2:{region}:{account_id}"
        statements += [
            # What Lambda needs to attach the function to the VPC (AWSLambdaVPCAccessExecutionRole,
            # narrowed): Describe* take no resource; the rest stay in this account and region,
            # and new interfaces only in the given subnets and security group.
            {"Sid": "DescribeNetwork", "Effect": "Allow",
             "Action": ["ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets"], "Resource": "*"},
            {"Sid": "CreateInterfacesInOwnSubnets", "Effect": "Allow",
             "Action": "ec2:CreateNetworkInterface",
             "Resource": [f"{ec2_arn}:network-interface/*",
                          *(f"{ec2_arn}:subnet/{subnet}" for subnet in subnet_ids),
                          f"{ec2_arn}:security-group/{security_group_id}"]},
            {"Sid": "ManageOwnInterfaces", "Effect": "Allow",
             "Action": ["ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses",
                        "ec2:UnassignPrivateIpAddresses"],
             "Resource": f"{ec2_arn}:network-interface/*"},
        ]
    return policy_document(statements)


def schedule_input(alias_names: Sequence[str], key_arns: Sequence[str],
                   create_successors: bool) -> str:
    """The function's event (ztai_runtime.rotation.parse_event)."""
    return json.dumps({"aliases": list(alias_names),
                       "expectedKeyArns": dict(zip(alias_names, key_arns, strict=True)),
                       "createSuccessors": create_successors})


def scheduler_policy(*, region: str, function_arn: str, queue_arn: str) -> str:
    """The scheduler role: invoke this function, dead-letter into this queue, nothing else.

    The queue's key grants this role its use through SQS (kms:ViaService; SQS needs GenerateDataKey
    and Decrypt from a producer). The Denies repeat the SQS condition and add this queue's
    encryption context: were the schedule re-pointed at another target (a universal target can
    call any API), the role still could not use the key for anything else.
    """
    return policy_document([
        {"Sid": "InvokeRotationFunction", "Effect": "Allow", "Action": "lambda:InvokeFunction",
         "Resource": function_arn},
        {"Sid": "SendDeadLetters", "Effect": "Allow", "Action": "sqs:SendMessage",
         "Resource": queue_arn},
        {"Sid": "KeyOnlyThroughSqs", "Effect": "Deny", "Action": "kms:*", "Resource": "*",
         "Condition": {"StringNotEquals": {"kms:ViaService": f"sqs.{region}.amazonaws.com"}}},
        {"Sid": "KeyOnlyForThisQueue", "Effect": "Deny",
         "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*"],
         "Resource": "*",
         "Condition": {"StringNotEquals": {"kms:EncryptionContext:aws:sqs:arn": queue_arn}}},
    ])


def dead_letter_queue_policy(queue_arn: str, scheduler_role_arn: str) -> str:
    return policy_document([
        {"Sid": "SchedulerRoleSends", "Effect": "Allow", "Principal": {"AWS": scheduler_role_arn},
         "Action": "sqs:SendMessage", "Resource": queue_arn},
        {"Sid": "TlsOnly", "Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "sqs:*",
         "Resource": queue_arn, "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
    ])


class MonthlyKeyRotation(pulumi.ComponentResource):
    """The monthly rotation function, its schedule and its roles.
    Type token `zero-trust-ai:keys:MonthlyKeyRotation`."""

    role: aws.iam.Role
    scheduler_role: aws.iam.Role
    function: aws.lambda_.Function
    schedule: aws.scheduler.Schedule
    dead_letter_queue: aws.sqs.Queue
    log_group_prefix: str
    schedule_name: str
    # Whether the function creates successors: pass it to KeyHierarchy.grant_key_rotation.
    create_successors: bool

    def __init__(self, name: str, args: MonthlyKeyRotationArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        _validate(args)  # before registering anything
        super().__init__("zero-trust-ai:keys:MonthlyKeyRotation", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        partition = partition_for_region(args.region)
        account_id = aws.get_caller_identity_output(opts=pulumi.InvokeOptions(parent=self)).account_id
        tags = {"data-classification": "internal"}
        function_name = rotation_schedule_name(args.environment)
        self.log_group_prefix = log_group_name(function_name)
        self.schedule_name = function_name
        self.create_successors = args.create_successors

        vpc_config = None
        security_group: aws.ec2.SecurityGroup | None = None
        if args.subnet_ids and args.vpc_cidr is not None:  # _validate: all three or none
            security_group = aws.ec2.SecurityGroup(
                f"{name}-sg", vpc_id=args.vpc_id,
                description="Key rotation function: HTTPS to the VPC's interface endpoints only",
                ingress=[],  # nothing connects to the function
                egress=[aws.ec2.SecurityGroupEgressArgs(
                    protocol="tcp", from_port=443, to_port=443, cidr_blocks=[args.vpc_cidr],
                    description="HTTPS to the KMS interface endpoint in this VPC")],
                tags={**tags, "Name": f"{function_name}-sg"}, opts=child)
            vpc_config = aws.lambda_.FunctionVpcConfigArgs(
                subnet_ids=list(args.subnet_ids), security_group_ids=[security_group.id])

        alias_names = pulumi.Output.all(*args.key_aliases)
        key_arns = pulumi.Output.all(*args.key_arns)

        def role_policy(log_group_arn: pulumi.Output[str]) -> pulumi.Output[str]:
            return pulumi.Output.all(account_id, alias_names, log_group_arn, key_arns,
                                     pulumi.Output.all(*args.subnet_ids),
                                     security_group.id if security_group else None).apply(
                lambda values: rotation_policy(
                    partition=partition, region=args.region, account_id=values[0],
                    alias_names=values[1], log_group_arn=values[2],
                    create_successors=args.create_successors, key_arns=values[3],
                    subnet_ids=values[4], security_group_id=values[5]))

        # Reserved concurrency 1 (logged_function, unless reserve_concurrency is False): two
        # concurrent runs could both create a successor.
        rotation = logged_function(
            name, parent=self, account_id=account_id, function_name=function_name,
            description="Monthly on-demand rotation of the zero-trust-ai symmetric keys (runs daily)",
            role_description="Monthly KMS key rotation function (key-policy administrator, no key use)",
            handler=HANDLER, modules=RUNTIME_MODULES, role_policy=role_policy,
            logs_key_arn=args.logs_key_arn, log_retention_days=args.log_retention_days,
            memory_size=256, timeout=args.timeout_seconds,
            retry_attempts=FUNCTION_RETRY_ATTEMPTS, max_event_age=FUNCTION_MAX_EVENT_AGE,
            errors_alarm_description="The monthly key rotation failed: see its key-rotation log lines",
            errors_alarm_period=3600, alarm_actions=args.alarm_actions, tags=tags, protect=args.protect,
            vpc_config=vpc_config, reserve_concurrency=args.reserve_concurrency)
        log_group, self.role, self.function = rotation.log_group, rotation.role, rotation.function
        self.log_group = log_group  # subscribed to the SIEM stream (components/siem_stream.py)

        self.dead_letter_queue = aws.sqs.Queue(
            f"{name}-dlq", name=f"{function_name}-dlq",
            kms_master_key_id=args.dead_letter_key_arn, kms_data_key_reuse_period_seconds=300,
            message_retention_seconds=DLQ_RETENTION_SECONDS,
            tags={**tags, "Name": f"{function_name}-dlq"}, opts=child)

        self.scheduler_role = aws.iam.Role(
            f"{name}-scheduler-role",
            description="EventBridge Scheduler: invoke the key rotation function only",
            max_session_duration=3600,
            assume_role_policy=account_id.apply(
                lambda account: service_trust_policy("scheduler.amazonaws.com", account)),
            tags={**tags, "Name": f"{function_name}-scheduler-role"}, opts=child)
        scheduler_role_policy = aws.iam.RolePolicy(
            f"{name}-scheduler-role-policy", role=self.scheduler_role.id,
            policy=pulumi.Output.all(self.function.arn, self.dead_letter_queue.arn).apply(
                lambda arns: scheduler_policy(region=args.region, function_arn=arns[0],
                                              queue_arn=arns[1])),
            opts=pulumi.ResourceOptions(parent=self.scheduler_role))
        aws.sqs.QueuePolicy(
            f"{name}-dlq-policy", queue_url=self.dead_letter_queue.id,  # a queue's id is its URL
            policy=pulumi.Output.all(self.dead_letter_queue.arn, self.scheduler_role.arn).apply(
                lambda arns: dead_letter_queue_policy(arns[0], arns[1])),
            opts=pulumi.ResourceOptions(parent=self.dead_letter_queue))

        self.schedule = aws.scheduler.Schedule(
            f"{name}-schedule", name=function_name,
            description="Monthly on-demand rotation of the zero-trust-ai symmetric keys: daily "
                        "runs, the first of each month rotates",
            schedule_expression=args.schedule_expression, schedule_expression_timezone="UTC",
            flexible_time_window=aws.scheduler.ScheduleFlexibleTimeWindowArgs(mode="OFF"),
            state="ENABLED", kms_key_arn=args.schedule_key_arn,
            target=aws.scheduler.ScheduleTargetArgs(
                arn=self.function.arn, role_arn=self.scheduler_role.arn,
                input=pulumi.Output.all(alias_names, key_arns).apply(
                    lambda values: schedule_input(values[0], values[1], args.create_successors)),
                retry_policy=aws.scheduler.ScheduleTargetRetryPolicyArgs(
                    maximum_retry_attempts=SCHEDULE_RETRY_ATTEMPTS,
                    maximum_event_age_in_seconds=SCHEDULE_MAX_EVENT_AGE),
                dead_letter_config=aws.scheduler.ScheduleTargetDeadLetterConfigArgs(
                    arn=self.dead_letter_queue.arn)),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[scheduler_role_policy]))

        occurrence_alarm(
            f"{name}-dead-letters-alarm", alarm_name=f"{function_name}-dead-letters",
            description="The scheduler could not invoke the key rotation function",
            namespace="AWS/SQS", metric_name="ApproximateNumberOfMessagesVisible",
            dimensions={"QueueName": self.dead_letter_queue.name}, statistic="Maximum", period=300,
            actions=args.alarm_actions, severity="high", tags=tags, parent=self.dead_letter_queue)
        # The schedule runs daily: two whole days without an invocation is a stopped schedule (or a
        # deleted one), never a late run.
        missed_run_alarm(
            f"{name}-missed-run-alarm", alarm_name=f"{function_name}-missed-run",
            description="The key rotation function did not run for two days: its schedule is "
                        "disabled, deleted or cannot invoke it (docs/alarms.md)",
            function_name=self.function.name, period=MISSED_RUN_PERIOD,
            evaluation_periods=MISSED_RUN_PERIODS, actions=args.alarm_actions, severity="high",
            tags=tags, parent=self.function)

        # Months of notice before a key needs a successor that a human must create.
        due_soon_metric = f"SuccessorDueSoon-{args.environment}"
        aws.cloudwatch.LogMetricFilter(
            f"{name}-successor-due-soon", name=f"{function_name}-successor-due-soon",
            log_group_name=log_group.name,
            pattern=f'{{ $.event = "key-rotation" && $.action = "{SUCCESSOR_DUE_SOON}" }}',
            metric_transformation=aws.cloudwatch.LogMetricFilterMetricTransformationArgs(
                name=due_soon_metric, namespace=METRIC_NAMESPACE, value="1", unit="Count"),
            opts=pulumi.ResourceOptions(parent=log_group))
        occurrence_alarm(
            f"{name}-successor-due-soon-alarm", alarm_name=f"{function_name}-successor-due-soon",
            description="A rotated key will need a successor within months: create it through "
                        "the pipeline (docs/runbooks/key-rotation.md)",
            namespace=METRIC_NAMESPACE, metric_name=due_soon_metric, dimensions=None, statistic="Sum",
            period=3600, actions=args.alarm_actions, severity="medium", tags=tags, parent=self.function)

        self.register_outputs({
            "functionArn": self.function.arn,
            "roleArn": self.role.arn,
            "schedulerRoleArn": self.scheduler_role.arn,
            "scheduleArn": self.schedule.arn,
            "deadLetterQueueArn": self.dead_letter_queue.arn,
            "logGroup": log_group.name,
        })


def runs_at_least_daily(expression: str) -> bool:
    """Whether a Scheduler expression fires at least once every day: a rate of a day or less, or
    a cron on every day of every month (`*` or `?` for day of month, month and day of week)."""
    if rate := _RATE.match(expression):
        count = int(expression[len("rate("):].split()[0])
        return 0 < count * _RATE_SECONDS[rate.group(1)] <= 86_400
    if _CRON.match(expression):
        _minutes, _hours, day_of_month, month, day_of_week, _year = expression[5:-1].split()
        return day_of_month in ("*", "?") and month == "*" and day_of_week in ("*", "?")
    return False


def _validate(args: MonthlyKeyRotationArgs) -> None:
    """Reject what AWS (or the rotation function) would reject, before anything is declared."""
    if not args.key_aliases:
        raise ValueError("key_aliases is empty: name the aliases of the keys to rotate")
    if len(args.key_arns) != len(args.key_aliases):
        raise ValueError(f"key_arns must give the ARN of the key of each alias, in the same order: "
                         f"{len(args.key_aliases)} aliases, {len(args.key_arns)} key ARNs")
    names = [alias for alias in args.key_aliases if isinstance(alias, str)]
    if len(set(names)) != len(names) or any(not n.startswith("alias/") for n in names):
        raise ValueError(f"key_aliases must be distinct alias names (alias/...), got {names}")
    if not (_CRON.match(args.schedule_expression) or _RATE.match(args.schedule_expression)):
        raise ValueError(f"schedule_expression {args.schedule_expression!r} is not a recurring "
                         "Scheduler expression: cron(min hour day-of-month month day-of-week year) "
                         "or rate(n minutes|hours|days)")
    if not runs_at_least_daily(args.schedule_expression):
        raise ValueError(f"schedule_expression {args.schedule_expression!r} does not run every day: the "
                         "missed-run alarm counts two days without a run as a stopped schedule; run "
                         f"it daily (the default, {DEFAULT_SCHEDULE}, rotates on the first of the month)")
    checked_actions(args.alarm_actions, "high", "MonthlyKeyRotationArgs.alarm_actions")
    if args.log_retention_days not in LOG_RETENTION_DAYS:
        raise ValueError(f"log_retention_days {args.log_retention_days} is not a CloudWatch Logs "
                         f"retention; allowed: {', '.join(map(str, LOG_RETENTION_DAYS))}")
    if not MIN_TIMEOUT <= args.timeout_seconds <= MAX_TIMEOUT:
        raise ValueError(f"timeout_seconds must be {MIN_TIMEOUT} to {MAX_TIMEOUT} (Lambda allows at "
                         f"most {MAX_TIMEOUT}), got {args.timeout_seconds}")
    network = (bool(args.subnet_ids), args.vpc_id is not None, args.vpc_cidr is not None)
    if any(network) and not all(network):
        raise ValueError("subnet_ids, vpc_id and vpc_cidr go together: give all three to run the "
                         "function in a VPC, or none")
