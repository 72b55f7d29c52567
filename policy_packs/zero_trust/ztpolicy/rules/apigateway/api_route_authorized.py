"""Every API route is authorized, and token-authorized routes require scopes (controls: secure API
gateway, partner access).

HTTP API routes (`aws:apigatewayv2/route:Route`) and REST API methods
(`aws:apigateway/method:Method`):

- the authorization type must be set and not `NONE`;
- `JWT` and `CUSTOM` routes (REST: `CUSTOM`, `COGNITO_USER_POOLS`) must name their authorizer;
- `JWT` routes and `COGNITO_USER_POOLS` methods must require at least one scope: without scopes any
  valid token of the issuer (e.g. a partner's, for another partner's route) is accepted.

An HTTP API must not create routes outside the stack (`target`/`routeKey` quick create, `body`
OpenAPI import): those routes, and the `$default` stage quick create makes, are invisible to this
pack. `$default` routes are checked like any other (on an HTTP API it catches every request no
route matches); a WebSocket API's `$default` route would be reported too, failing closed: this
project builds no WebSocket API. `$disconnect` cannot carry authorization and is not checked.
`AWS_IAM` (SigV4) is accepted: IAM is then the authorizer. Not suppressible.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import Severity

from ztpolicy.graph import UNKNOWN, as_list, known
from ztpolicy.rule import Resource, Rule

API_V2 = "aws:apigatewayv2/api:Api"
ROUTE_V2 = "aws:apigatewayv2/route:Route"
REST_METHOD = "aws:apigateway/method:Method"
_NEEDS_AUTHORIZER = {"JWT", "CUSTOM", "COGNITO_USER_POOLS"}
_NEEDS_SCOPES = {"JWT", "COGNITO_USER_POOLS"}


def api_route_authorized(resource: Resource, _config: Mapping[str, Any]) -> list[str]:
    if resource.type == API_V2:
        # Quick create (target/routeKey) and OpenAPI import (body) make routes and a stage that
        # are not resources of the stack: no rule would ever see their authorization.
        given = [prop for prop in ("target", "routeKey", "body") if known(resource, prop)]
        return [f"{resource.name}: API sets {', '.join(given)}, which creates routes (and a "
                "$default stage) outside the stack, unchecked; declare Route resources"] if given else []
    if resource.type == ROUTE_V2:
        route_key = known(resource, "routeKey")
        # Only $disconnect cannot carry authorization (a WebSocket connection was authorized at
        # $connect). `$default` is checked: on an HTTP API it catches every unmatched request.
        if route_key == "$disconnect":
            return []
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
    control="secure API gateway",
    severity=Severity.CRITICAL,
    remediation="Give every route authorization_type='JWT', the API's JWT authorizer and the "
                "route's authorization_scopes (SecureApiGateway refuses a route without scopes).",
    resource_check=api_route_authorized,
    resource_types=frozenset({API_V2, ROUTE_V2, REST_METHOD}),
    # An unauthorized route is a public route: never waived.
    suppressible=False,
)
