"""A Lambda function's failed asynchronous events are kept, not dropped (control: kept failures).

Lambda retries an asynchronous event (an EventBridge rule, a Scheduler schedule, an S3
notification) at most twice and then discards it. An insider who makes a security function fail
(the key rotation, a playbook) leaves only an error metric behind unless the event itself is kept:
in an on-failure destination of the function's event invoke configuration, or in its dead-letter
queue.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import Severity

from ztpolicy.graph import UNKNOWN, known, known_field, of_type, refers_to
from ztpolicy.rule import Finding, Resource, Rule

FUNCTION = "aws:lambda/function:Function"
INVOKE_CONFIG = "aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig"


def _configures(config: Resource, function: Resource) -> bool:
    """Does the invoke configuration name the function (by link, name or ARN; an export has no
    links, and Lambda accepts either)?"""
    if refers_to(config, "functionName", function):
        return True
    if config.property_dependencies.get("functionName", ()):
        return False
    value = known(config, "functionName")
    names = {known(function, "name"), known(function, "arn")}
    return isinstance(value, str) and bool(value) and value in names


def _is_set(value: Any) -> bool:
    # Unknown in a preview: computed from a queue or topic created in this update, so set.
    return value is UNKNOWN or (isinstance(value, str) and bool(value))


def lambda_failure_destination(resources: Sequence[Resource], _config: Mapping[str, Any]) -> list[Finding]:
    configs = of_type(resources, INVOKE_CONFIG)
    findings = []
    for function in of_type(resources, FUNCTION):
        if _is_set(known_field(known(function, "deadLetterConfig"), "targetArn")):
            continue
        destinations = [known_field(known_field(known(config, "destinationConfig"), "onFailure"),
                                    "destination")
                        for config in configs if _configures(config, function)]
        if not any(_is_set(destination) for destination in destinations):
            why = ("its event invoke configuration has no on-failure destination" if destinations
                   else "it has no event invoke configuration with an on-failure destination")
            findings.append(Finding(function.urn, f"function {function.name} drops asynchronous events "
                                    f"that fail every retry: {why} and no dead-letter queue"))
    return findings


RULE = Rule(
    name="lambda-failure-destination",
    description="Every Lambda function keeps the asynchronous events that fail every retry (an "
                "on-failure destination or a dead-letter queue).",
    control="logs that last",
    severity=Severity.MEDIUM,
    remediation="Add an aws.lambda_.FunctionEventInvokeConfig for the function with "
                "destination_config.on_failure.destination set to an encrypted standard SQS queue "
                "(or SNS topic) the function's role may send to; components.functions.logged_function "
                "does this.",
    stack_check=lambda_failure_destination,
)
