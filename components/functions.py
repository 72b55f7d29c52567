"""The Lambda functions of the stack, declared one way (`logged_function`).

Every function runs runtime code: the `ztai_runtime` modules it imports, shipped as an asset and
nothing else (components package the runtime, they never import it), and the third-party packages
it names (`packages`), at the archive's root beside `ztai_runtime/`, from wheels checked against
requirements-lambda.txt's hashes and the runtime (components/lambda_packages.py; a missing or
unfit wheel stops the program before any resource of the function is declared). What
`logged_function` declares, secure by default:

- the log group `/aws/lambda/<function name>` (`<name>-logs`), created before the function so that
  Lambda never creates an unencrypted one; encrypted with the given CMK, kept `log_retention_days`,
  with `protect` and deletion protection when asked;
- the execution role (`<name>-role`), trusted only by lambda.amazonaws.com of this account, for
  sessions of at most one hour, and its one inline policy (`<name>-role-policy`, parented to the
  role), which the caller writes from the log group's ARN;
- the function (`<name>-function`): a supported Python runtime on arm64, reserved concurrency 1
  (two runs never race; `reserve_concurrency=False` leaves it unreserved, for accounts whose
  Lambda concurrency quota cannot spare it), Text logs to its group; created after the group and
  the policy, so the first invocation can log and act;
- its asynchronous invocation settings (`<name>-async`, parented to the function): Lambda retries a
  failed run, which is safe because the runtime functions are idempotent, and sends the record of
  an event that failed every attempt (or aged out) to the failure queue;
- the failure queue (`<name>-failures`, parented to the function): a standard SQS queue (Lambda
  refuses FIFO destinations), encrypted with the logs CMK, kept 14 days, TLS only, written only by
  the function's role (`<name>-role-failures`, its second inline policy: sqs:SendMessage on that
  queue, and an explicit Deny of every KMS data-key use except for that queue's messages), with
  an alarm when a record arrives (`<name>-failures-alarm`). Lambda sends destination records with
  the execution role's credentials, so the logs key's owner must also let the role use the key
  through SQS: `keys.grant_use_through_service("logs", fn.role, "sqs")`;
- an alarm on its errors (`<name>-errors-alarm`, parented to the function).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws

from components.alarm_topics import AlarmActions
from components.alarms import checked_actions, occurrence_alarm
from components.lambda_packages import package_assets

RUNTIME_DIR = Path(__file__).resolve().parent.parent / "ztai_runtime"
RUNTIME = "python3.13"
MAX_SESSION_SECONDS = 3600
FAILURE_RETENTION_SECONDS = 14 * 24 * 3600  # the SQS maximum: time to notice and replay


def policy_document(statements: list[dict[str, Any]]) -> str:
    """An IAM policy document of these statements, serialised stably (sorted keys)."""
    return json.dumps({"Version": "2012-10-17", "Statement": statements}, sort_keys=True)


def service_trust_policy(service: str, account_id: str) -> str:
    """Trust for one AWS service acting for this account only (confused-deputy guard)."""
    return policy_document([{
        "Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole",
        "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
    }])


def tls_only_queue_policy(queue_arn: str) -> str:
    """A queue policy refusing plain HTTP; who may send is the senders' IAM policies' business."""
    return policy_document([
        {"Sid": "TlsOnly", "Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "sqs:*",
         "Resource": queue_arn, "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
    ])


def failure_destination_policy(queue_arn: str) -> str:
    """The execution role's second policy: send failure records to its own queue, and use any KMS
    key for data only for that queue's messages (SQS passes the queue's ARN as the encryption
    context), whatever a key policy grants it."""
    return policy_document([
        {"Sid": "SendFailureRecords", "Effect": "Allow", "Action": "sqs:SendMessage",
         "Resource": queue_arn},
        {"Sid": "DataKeysOnlyForTheFailureQueue", "Effect": "Deny",
         "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*"],
         "Resource": "*",
         "Condition": {"StringNotEquals": {"kms:EncryptionContext:aws:sqs:arn": queue_arn}}},
    ])


def runtime_archive(modules: Sequence[str], packages: Sequence[str] = ()) -> pulumi.AssetArchive:
    """The Lambda code: `ztai_runtime/<module>` for each module the function imports, and the files
    of each package in `packages` at the root, where Lambda's /var/task is on sys.path. Raises
    `LambdaPackageError` when a package's wheel is missing or does not fit (one that would ship
    files under `ztai_runtime/` among them: components/lambda_packages.py)."""
    files = package_assets(packages)
    return pulumi.AssetArchive({"ztai_runtime": pulumi.AssetArchive({
        module: pulumi.FileAsset(str(RUNTIME_DIR / module)) for module in modules}), **files})


def log_group_name(function_name: str) -> str:
    """Where Lambda writes a function's logs."""
    return f"/aws/lambda/{function_name}"


@dataclass(frozen=True)
class LoggedFunction:
    """What `logged_function` declared."""

    log_group: aws.cloudwatch.LogGroup
    role: aws.iam.Role
    role_policy: aws.iam.RolePolicy
    function: aws.lambda_.Function
    # Records of events that failed every attempt; its key's owner grants `role` its use via SQS.
    failure_queue: aws.sqs.Queue


def logged_function(
        name: str, *, parent: pulumi.Resource, account_id: pulumi.Output[str], function_name: str,
        description: str, role_description: str, handler: str, modules: Sequence[str],
        role_policy: Callable[[pulumi.Output[str]], pulumi.Input[str]],
        logs_key_arn: pulumi.Input[str], log_retention_days: int, memory_size: int, timeout: int,
        retry_attempts: int, max_event_age: int, errors_alarm_description: str,
        errors_alarm_period: int, alarm_actions: AlarmActions | None, tags: Mapping[str, str],
        protect: bool = False, environment: Mapping[str, pulumi.Input[str]] | None = None,
        vpc_config: aws.lambda_.FunctionVpcConfigArgs | None = None,
        reserve_concurrency: bool = True, keep_role: bool = False,
        role_name: str | None = None, errors_alarm_severity: str = "high",
        packages: Sequence[str] = ()) -> LoggedFunction:
    """Declare one function with its log group, role, role policy, retries and error alarm.

    name: prefix of the children's resource names; parent: the component that owns them.
    account_id: this account (the role's trust condition).
    function_name: the function's AWS name; its log group is `log_group_name(function_name)`.
    description, role_description: of the function and of its role.
    handler, modules: the entry point and the `ztai_runtime` modules shipped (all it imports).
    role_policy: the role's inline policy, given the log group's ARN.
    logs_key_arn, log_retention_days: the log group's CMK and retention; the key also encrypts the
        failure queue.
    memory_size, timeout: the function's MiB and seconds.
    retry_attempts, max_event_age: Lambda's asynchronous retries (0-2) and how long an event may
        wait for them (seconds).
    errors_alarm_description, errors_alarm_period: the error alarm's text and period (seconds).
    alarm_actions: the stack's alarm topics (AlarmTopics.actions); required: a function whose
        failures notify nobody is refused. The failure-queue alarm notifies `high`, the error
        alarm `errors_alarm_severity` (default `high`).
    tags: the component's tags; each child adds its `Name`.
    protect: `protect` and deletion protection on the log group; default False.
    environment: the function's environment variables; default none.
    vpc_config: the subnets and security groups to run in; default none, outside any VPC.
    reserve_concurrency: reserve concurrency 1 (default True). Lambda reserves only what leaves 100
        of the account's concurrency unreserved ("Configuring reserved concurrency", Lambda
        developer guide), so an account whose quota is lower (new accounts start at 10) refuses
        any reservation; False leaves the function unreserved and two runs may then overlap.
    keep_role: `protect` (with `protect`) and `retain_on_delete` on the role: a role a key policy
        names as its only writer (KMS knows it by its unique id; a new role of the same name would
        not be it). Default False.
    role_name: the role's AWS name; default None, a name Pulumi makes unique. Given for a role
        another stack names by its ARN (the JIT API's role, in a split deployment's key policies).
    packages: third-party packages the function imports (names pinned in requirements-lambda.in),
        shipped at the archive's root; default none. Their wheels are checked here, before any
        resource: `LambdaPackageError` (a RunError: no traceback) names a missing or unfit one.
    """
    checked_actions(alarm_actions, errors_alarm_severity, function_name)  # before any resource
    code = runtime_archive(modules, packages)  # before any resource too: a wheel may be refused
    log_group = aws.cloudwatch.LogGroup(
        f"{name}-logs", name=log_group_name(function_name), retention_in_days=log_retention_days,
        kms_key_id=logs_key_arn, deletion_protection_enabled=protect,
        tags={**tags, "Name": function_name},
        opts=pulumi.ResourceOptions(parent=parent, protect=protect))
    role = aws.iam.Role(
        f"{name}-role", name=role_name, description=role_description,
        max_session_duration=MAX_SESSION_SECONDS,
        assume_role_policy=account_id.apply(
            lambda account: service_trust_policy("lambda.amazonaws.com", account)),
        tags={**tags, "Name": f"{function_name}-role"},
        opts=pulumi.ResourceOptions(parent=parent, protect=protect and keep_role, retain_on_delete=keep_role))
    policy = aws.iam.RolePolicy(
        f"{name}-role-policy", role=role.id, policy=role_policy(log_group.arn),
        opts=pulumi.ResourceOptions(parent=role))
    function = aws.lambda_.Function(
        f"{name}-function", name=function_name, description=description,
        runtime=RUNTIME, handler=handler, code=code, role=role.arn,
        architectures=["arm64"], memory_size=memory_size, timeout=timeout,
        # None leaves Lambda's default, -1: no reservation.
        reserved_concurrent_executions=1 if reserve_concurrency else None,
        environment=(aws.lambda_.FunctionEnvironmentArgs(variables=dict(environment))
                     if environment is not None else None),
        logging_config=aws.lambda_.FunctionLoggingConfigArgs(log_format="Text", log_group=log_group.name),
        vpc_config=vpc_config,
        tags={**tags, "Name": function_name},
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[log_group, policy]))
    failure_queue = aws.sqs.Queue(
        f"{name}-failures", name=f"{function_name}-failures", kms_master_key_id=logs_key_arn,
        kms_data_key_reuse_period_seconds=300, message_retention_seconds=FAILURE_RETENTION_SECONDS,
        tags={**tags, "Name": f"{function_name}-failures"}, opts=pulumi.ResourceOptions(parent=function))
    aws.sqs.QueuePolicy(
        f"{name}-failures-policy", queue_url=failure_queue.id,  # a queue's id is its URL
        policy=failure_queue.arn.apply(tls_only_queue_policy),
        opts=pulumi.ResourceOptions(parent=failure_queue))
    # Lambda checks the role may send to the destination when the configuration is written.
    send_failures = aws.iam.RolePolicy(
        f"{name}-role-failures", role=role.id,
        policy=failure_queue.arn.apply(failure_destination_policy),
        opts=pulumi.ResourceOptions(parent=role))
    aws.lambda_.FunctionEventInvokeConfig(
        f"{name}-async", function_name=function.name, maximum_retry_attempts=retry_attempts,
        maximum_event_age_in_seconds=max_event_age,
        # Lambda's asynchronous destinations: "Capturing records of Lambda asynchronous
        # invocations" (Lambda developer guide); a record holds the event and the error.
        destination_config=aws.lambda_.FunctionEventInvokeConfigDestinationConfigArgs(
            on_failure=aws.lambda_.FunctionEventInvokeConfigDestinationConfigOnFailureArgs(
                destination=failure_queue.arn)),
        opts=pulumi.ResourceOptions(parent=function, depends_on=[send_failures]))
    occurrence_alarm(
        f"{name}-failures-alarm", alarm_name=f"{function_name}-failures",
        description=f"An event of {function_name} failed every attempt: its record is in the "
                    "failure queue",
        namespace="AWS/SQS", metric_name="ApproximateNumberOfMessagesVisible",
        dimensions={"QueueName": failure_queue.name}, statistic="Maximum", period=300,
        actions=alarm_actions, severity="high", tags=tags, parent=failure_queue)
    occurrence_alarm(
        f"{name}-errors-alarm", alarm_name=f"{function_name}-errors", description=errors_alarm_description,
        namespace="AWS/Lambda", metric_name="Errors", dimensions={"FunctionName": function.name},
        statistic="Sum", period=errors_alarm_period, actions=alarm_actions,
        severity=errors_alarm_severity, tags=tags, parent=function)
    return LoggedFunction(log_group=log_group, role=role, role_policy=policy, function=function,
                          failure_queue=failure_queue)
