"""Every API route is authorized, and token-authorized routes require scopes (§2.3, §7).

HTTP API routes (`aws:apigatewayv2/route:Route`) and REST API methods
(`aws:apigateway/method:Method`):

- the authorization type must be set and not `NONE`;
- `JWT` and `CUSTOM` routes (REST: `CUSTOM`, `COGNITO_USER_POOLS`) must name their authorizer;
- `JWT` routes and `COGNITO_USER_POOLS` methods must require at least one scope: without scopes any
  valid token of the issuer (e.g. a partner's, for another partner's route) is accepted.

`AWS_IAM` (SigV4) is accepted: IAM is then the authorizer. WebSocket routes other than `$connect`
cannot carry authorization (the connection was authorized) and are not checked. Not suppressible.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import Severity

from ztpolicy.graph import UNKNOWN, as_list, known
from ztpolicy.rule import Resource, Rule

ROUTE_V2 = "aws:apigatewayv2/route:Route"
REST_METHOD = "aws:apigateway/method:Method"
_NEEDS_AUTHORIZER = {"JWT", "CUSTOM", "COGNITO_USER_POOLS"}
_NEEDS_SCOPES = {"JWT", "COGNITO_USER_POOLS"}


def api_route_authorized(resource: Resource, _config: Mapping[str, Any]) -> list[str]:
    if resource.type == ROUTE_V2:
        route_key = known(resource, "routeKey")
        if isinstance(route_key, str) and route_key.startswith("$") and route_key != "$connect":
            return []  # WebSocket $default/$disconnect/custom selection routes
        kind, label = known(resource, "authorizationType"), f"route {route_key}"
    else:
        kind, label = known(resource, "authorization"), f"method {known(resource, 'httpMethod')}"
    if kind is UNKNOWN:
        return []
    if not isinstance(kind, str) or kind.upper() in ("", "NONE"):
        return [f"{resource.name}: {label} has no authorization (type {kind or 'NONE'}): anyone past "
                "the TLS handshake may call it; use a JWT authorizer with scopes"]
    kind = kind.upper()
    messages = []
    authorizer = known(resource, "authorizerId")
    if kind in _NEEDS_AUTHORIZER and authorizer is not UNKNOWN and not authorizer:
        messages.append(f"{resource.name}: {label} is {kind} without an authorizerId")
    scopes = known(resource, "authorizationScopes")
    # as_list: the analyzer hands lists over as read-only Sequence proxies, never as `list`.
    if kind in _NEEDS_SCOPES and scopes is not UNKNOWN and not any(
            isinstance(s, str) and s for s in as_list(scopes)):
        messages.append(f"{resource.name}: {label} is {kind} without authorizationScopes: any "
                        "valid token of the issuer is accepted, whoever it was issued to")
    return messages


RULE = Rule(
    name="api-route-authorized",
    description="API Gateway routes must have an authorizer (never NONE), and token-authorized "
                "routes must require scopes.",
    section="2.3",
    severity=Severity.CRITICAL,
    remediation="Give every route authorization_type='JWT', the API's JWT authorizer and the "
                "route's authorization_scopes (SecureApiGateway refuses a route without scopes).",
    resource_check=api_route_authorized,
    resource_types=frozenset({ROUTE_V2, REST_METHOD}),
    # An unauthorized route is a public route: never waived.
    suppressible=False,
)
