"""Every API Gateway stage writes access logs (controls: secure API gateway, audit logging).

Without access logs, a request cannot be tied to the caller's token (`sub`, `client_id`) or client
certificate after the fact. Applies to HTTP/WebSocket API stages and REST API stages: the stage
must have `accessLogSettings` with a destination and a format.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import Severity

from ztpolicy.graph import UNKNOWN, known, known_field
from ztpolicy.rule import Resource, Rule

STAGE_V2 = "aws:apigatewayv2/stage:Stage"
STAGE_REST = "aws:apigateway/stage:Stage"




def api_stage_access_logs(resource: Resource, _config: Mapping[str, Any]) -> list[str]:
    settings = known(resource, "accessLogSettings")
    if settings is UNKNOWN:
        return []
    if not isinstance(settings, Mapping) or not settings:
        return [f"API stage {resource.name} has no access logs: requests cannot be attributed to a "
                "caller or client certificate afterwards"]
    messages = []
    destination = known_field(settings, "destinationArn")
    if destination is not UNKNOWN and not destination:
        messages.append(f"API stage {resource.name} has access log settings without a destinationArn")
    log_format = known_field(settings, "format")
    if log_format is not UNKNOWN and not log_format:
        messages.append(f"API stage {resource.name} has access log settings without a format")
    return messages


RULE = Rule(
    name="api-stage-access-logs",
    description="API Gateway stages must write access logs to a destination.",
    control="secure API gateway",
    severity=Severity.HIGH,
    remediation="Set access_log_settings(destination_arn=<CMK-encrypted log group>, format=<JSON "
                "with requestId, caller claims, client certificate, route, status, latency>) "
                "(SecureApiGateway does).",
    resource_check=api_stage_access_logs,
    resource_types=frozenset({STAGE_V2, STAGE_REST}),
)
