"""A partner's token opens that partner's routes and no others (control: partner access).

Partner routes are HTTP API routes (`aws:apigatewayv2/route:Route`) whose path starts with
`/partners/<name>/` (`<name>`: lower-case letters, digits, `-`); every other route of an API
(`$default` included) is first-party. For each partner route:

- it must be `JWT`-authorized with at least one scope;
- none of its scopes may be required by a JWT route of the same API (same `apiId` value, or the
  same URN in the property dependencies of `apiId`) outside `/partners/<name>/`, a first-party
  route or another partner's: a route admits a token carrying any one of its scopes, so a shared
  scope lets the partner's token open routes that are not its own, or another caller's token
  open the partner's.

And for Cognito app clients (`aws:cognito/userPoolClient:UserPoolClient`) with an OAuth flow
(`client_credentials`, `code` or `implicit` in `allowedOauthFlows`, whose tokens carry the allowed
scopes): none may be allowed scopes (`allowedOauthScopes`) that the JWT routes, of any API,
attribute to two different owners (two partners, or a partner and first-party routes), since one
client's token would then open both; and a partner's scopes are held by one client only, since
every other holder's token (a console's users, a copy of the client) opens the partner's routes
as the partner. Scopes compare exactly, as API Gateway compares them.

Previews: a route whose `routeKey`, `authorizationType`, scopes or API is unknown, and a client
whose flows or scopes are unknown, are left out of the comparisons that need them (an unknown
scope element is left out, the known ones still count): a violation is reported only on values
known to violate, and the rest is checked again when known. Not suppressible.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pulumi_policy import Severity
from pulumi_policy.proxy import UnknownValueError

from ztpolicy.graph import UNKNOWN, known, of_type
from ztpolicy.rule import Finding, Resource, Rule

ROUTE_V2 = "aws:apigatewayv2/route:Route"
API_V2 = "aws:apigatewayv2/api:Api"
USER_POOL_CLIENT = "aws:cognito/userPoolClient:UserPoolClient"
_PARTNER_PATH = re.compile(r"^/partners/([a-z0-9-]+)/")
FIRST_PARTY = "first-party routes"
# The OAuth grants whose tokens carry the client's allowed scopes.
_OAUTH_FLOWS = {"client_credentials", "code", "implicit"}


@dataclass(frozen=True)
class _Route:
    resource: Resource
    key: str
    partner: str | None  # None: first-party
    jwt: bool | None  # None: authorizationType unknown
    scopes: frozenset[str]  # the known ones
    scopes_unknown: bool
    api: frozenset[str] | None  # URNs and ids naming its API; None: unknown

    @property
    def owner(self) -> str:
        return f"partner {self.partner}" if self.partner else FIRST_PARTY

    @property
    def label(self) -> str:
        return f"route {self.key} ({self.resource.name})"

    @property
    def described(self) -> str:
        return (f"partner {self.partner}'s {self.label}" if self.partner
                else f"first-party {self.label}")


def _strings(value: Any) -> tuple[frozenset[str], bool]:
    """The known non-empty strings of a list property, and whether any element is unknown."""
    if value is UNKNOWN:
        return frozenset(), True
    if not isinstance(value, Sequence) or isinstance(value, (str, bytes)):
        return frozenset(), False
    strings: set[str] = set()
    unknown = False
    for index in range(len(value)):
        try:
            item = value[index]
        except UnknownValueError:
            unknown = True
            continue
        if isinstance(item, str) and item:
            strings.add(item)
    return frozenset(strings), unknown


def _partner_of(route_key: str) -> str | None:
    """`POST /partners/acme/v1/infer` -> "acme"; None for a first-party route key."""
    path = route_key.split(" ", 1)[1] if " " in route_key else route_key
    match = _PARTNER_PATH.match(path)
    return match.group(1) if match else None


def _api_of(route: Resource, apis: Sequence[Resource]) -> frozenset[str] | None:
    """What names the route's API: the URNs `apiId` was computed from (and those APIs' ids when
    known, so a route pasting the id links too), or its literal value."""
    dependencies = route.property_dependencies.get("apiId", ())
    if dependencies:
        ids = {known(api, "id") for api in apis if api.urn in dependencies}
        return frozenset(dependencies) | {i for i in ids if isinstance(i, str) and i}
    value = known(route, "apiId")
    if value is UNKNOWN:
        return None
    return frozenset({value}) if isinstance(value, str) and value else frozenset()


def _routes(resources: Sequence[Resource]) -> list[_Route]:
    apis = of_type(resources, API_V2)
    routes = []
    for resource in of_type(resources, ROUTE_V2):
        key = known(resource, "routeKey")
        if not isinstance(key, str):
            continue  # unknown: whose route it is cannot be told yet
        kind = known(resource, "authorizationType")
        scopes, unknown = _strings(known(resource, "authorizationScopes"))
        routes.append(_Route(resource, key, _partner_of(key),
                             None if kind is UNKNOWN else str(kind).upper() == "JWT",
                             scopes, unknown, _api_of(resource, apis)))
    return routes


def _authorization_findings(route: _Route) -> list[Finding]:
    who = f"partner {route.partner} {route.label}"
    if route.jwt is False:
        kind = known(route.resource, "authorizationType")
        return [Finding(route.resource.urn, f"{who} is not JWT-authorized (authorizationType "
                        f"{kind or 'NONE'}): the partner's OAuth scopes cannot confine it")]
    if route.jwt and not route.scopes and not route.scopes_unknown:
        return [Finding(route.resource.urn, f"{who} requires no scope: any token of the issuer, "
                        "first-party or another partner's, opens it")]
    return []


def _shared_scope_findings(route: _Route, routes: Sequence[_Route]) -> list[Finding]:
    if not route.jwt or route.api is None:
        return []
    findings = []
    for other in routes:
        if (other.owner == route.owner or not other.jwt or other.api is None
                or not route.api & other.api):
            continue
        shared = route.scopes & other.scopes
        if shared:
            findings.append(Finding(route.resource.urn, (
                f"partner {route.partner} {route.label} requires scope {', '.join(sorted(shared))}, "
                f"which {other.described} of the same API also requires: the partner's "
                "token opens routes that are not its own, or another caller's token opens the "
                "partner's; give the partner scopes of its own")))
    return findings


def _client_scopes(client: Resource) -> set[str] | None:
    """The scopes a client's tokens can carry, or None when it gets no OAuth token at all (no
    OAuth flow: Cognito then issues only its own `aws.cognito.signin.user.admin` scope)."""
    flows, _ = _strings(known(client, "allowedOauthFlows"))
    if not flows & _OAUTH_FLOWS:
        return None
    scopes, _ = _strings(known(client, "allowedOauthScopes"))
    return set(scopes)


def _client_findings(client: Resource, scopes: set[str],
                     owners_of: Mapping[str, set[str]]) -> list[Finding]:
    by_owner: dict[str, set[str]] = {}
    for scope in scopes:
        for owner in owners_of.get(scope, ()):
            by_owner.setdefault(owner, set()).add(scope)
    if len(by_owner) < 2:
        return []
    detail = "; ".join(f"{owner}: {', '.join(sorted(s))}" for owner, s in sorted(by_owner.items()))
    return [Finding(client.urn, f"Cognito app client {client.name} is allowed scopes of "
                    f"{len(by_owner)} owners ({detail}): its token opens routes of each; give "
                    "every partner a client allowed only its own scopes")]


def _exclusivity_findings(holders: Mapping[str, list[Resource]]) -> list[Finding]:
    """A partner's scopes belong to one app client: a second holder (a console client, a copy
    of the partner's client) gets tokens that the partner's routes take for the partner's."""
    findings = []
    for owner, clients in sorted(holders.items()):
        if owner == FIRST_PARTY or len(clients) < 2:
            continue
        names = ", ".join(sorted(c.name for c in clients))
        findings += [Finding(c.urn, f"Cognito app client {c.name} holds scopes of {owner}, as "
                             f"{len(clients)} clients do ({names}): every holder's token opens "
                             f"{owner}'s routes as if it were the partner; keep one client per "
                             "partner") for c in clients]
    return findings


def api_partner_route_scoped(resources: Sequence[Resource],
                             _config: Mapping[str, Any]) -> list[Finding]:
    routes = _routes(resources)
    findings = []
    for route in routes:
        if route.partner is not None:
            findings += _authorization_findings(route)
            findings += _shared_scope_findings(route, routes)
    owners_of: dict[str, set[str]] = {}
    for route in routes:
        if route.jwt:
            for scope in route.scopes:
                owners_of.setdefault(scope, set()).add(route.owner)
    holders: dict[str, list[Resource]] = {}
    for client in of_type(resources, USER_POOL_CLIENT):
        scopes = _client_scopes(client)
        if scopes is None:
            continue
        findings += _client_findings(client, scopes, owners_of)
        for owner in {owner for scope in scopes for owner in owners_of.get(scope, ())}:
            holders.setdefault(owner, []).append(client)
    return findings + _exclusivity_findings(holders)


RULE = Rule(
    name="api-partner-route-scoped",
    description="Partner routes (/partners/<name>/...) must be JWT-authorized with scopes that no "
                "other route of the API requires; no OAuth app client may hold scopes of two "
                "owners, and a partner's scopes belong to one client.",
    control="partners",
    severity=Severity.CRITICAL,
    remediation="Declare each partner as an ApiPartner of SecureApiGateway "
                "(components/api_gateway.py): its routes under /partners/<name>/, JWT-authorized "
                "with scopes of its own (`<resource server identifier>/<scope>`) that no "
                "first-party or other partner's route requires; and give it its own "
                "client_credentials app client (CognitoApiIdentity, components/api_identity.py) "
                "allowed only those scopes.",
    stack_check=api_partner_route_scoped,
    # A scope shared across owners lets one principal's token open another's routes: never waived.
    suppressible=False,
)
