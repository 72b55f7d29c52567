"""Every HTTP/WebSocket API stage sets default route throttling (control: secure API gateway).

Without stage defaults, a route is limited only by the account-wide quota (10,000 rps in most
regions), shared by every API of the account: one caller can exhaust it for all. Both the rate and
the burst limit must be set. REST API stages throttle through `aws:apigateway/methodSettings`
(and usage plans) and are not checked by this rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import Severity

from ztpolicy.graph import UNKNOWN, known, known_field
from ztpolicy.rule import Resource, Rule

STAGE_V2 = "aws:apigatewayv2/stage:Stage"




def api_stage_throttled(resource: Resource, _config: Mapping[str, Any]) -> list[str]:
    settings = known(resource, "defaultRouteSettings")
    if settings is UNKNOWN:
        return []
    missing = []
    for name in ("throttlingRateLimit", "throttlingBurstLimit"):
        value = known_field(settings, name)
        if value is not UNKNOWN and not isinstance(value, (int, float)):
            missing.append(name)
    if missing:
        return [f"API stage {resource.name} has no default {' or '.join(missing)}: its routes are "
                "limited only by the account-wide quota"]
    return []


RULE = Rule(
    name="api-stage-throttled",
    description="HTTP/WebSocket API stages must set default route throttling (rate and burst).",
    control="secure API gateway",
    severity=Severity.HIGH,
    remediation="Set default_route_settings(throttling_rate_limit=..., throttling_burst_limit=...) "
                "on the stage, and route_settings for routes that need their own limits "
                "(SecureApiGateway does).",
    resource_check=api_stage_throttled,
    resource_types=frozenset({STAGE_V2}),
)
