"""The API Gateway rules (controls: secure API gateway, partner access): what SecureApiGateway
declares passes; each insecure variant is caught; a value a preview does not know yet is not a
violation."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from pulumi_policy.proxy import (
    UNKNOWN_ARRAY_VALUE,
    UNKNOWN_OBJECT_VALUE,
    UNKNOWN_STRING_VALUE,
    UnknownValueError,
    unknown_checking_proxy,
)

from tests.policy_packs.test_rules import NO_CONFIG, res, urns
from ztpolicy.rule import Resource
from ztpolicy.rules.apigateway.api_default_endpoint_disabled import api_default_endpoint_disabled
from ztpolicy.rules.apigateway.api_mtls_required import api_mtls_required
from ztpolicy.rules.apigateway.api_partner_route_scoped import api_partner_route_scoped
from ztpolicy.rules.apigateway.api_rest_stage_waf import api_rest_stage_waf
from ztpolicy.rules.apigateway.api_route_authorized import api_route_authorized
from ztpolicy.rules.apigateway.api_stage_access_logs import api_stage_access_logs
from ztpolicy.rules.apigateway.api_stage_throttled import api_stage_throttled
from ztpolicy.rules.apigateway.api_tls_12 import api_tls_12

DOMAIN_V2, DOMAIN_REST = "aws:apigatewayv2/domainName:DomainName", "aws:apigateway/domainName:DomainName"
API_V2, REST_API = "aws:apigatewayv2/api:Api", "aws:apigateway/restApi:RestApi"
ROUTE_V2, METHOD = "aws:apigatewayv2/route:Route", "aws:apigateway/method:Method"
STAGE_V2, STAGE_REST = "aws:apigatewayv2/stage:Stage", "aws:apigateway/stage:Stage"
MTLS = {"truststoreUri": "s3://truststore-bucket/truststore/truststore.pem",
        "truststoreVersion": "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY"}


class Unknown(dict[str, Any]):
    """A property map whose every read raises, as pulumi_policy's proxy does for unknowns."""

    def get(self, key: str, default: Any = None) -> Any:
        raise UnknownValueError(UNKNOWN_OBJECT_VALUE, [key])


def unknown(token: str) -> Resource:
    return Resource(type=token, name="u", urn=f"urn:pulumi:test::zero-trust-ai::{token}::u",
                    props=Unknown())


# -- api-mtls-required ---------------------------------------------------------------------------
@pytest.mark.parametrize("token", [DOMAIN_V2, DOMAIN_REST])
def test_domain_with_pinned_truststore_passes(token: str) -> None:
    assert api_mtls_required(res(token, "d", mutualTlsAuthentication=MTLS), NO_CONFIG) == []
    assert api_mtls_required(unknown(token), NO_CONFIG) == []


@pytest.mark.parametrize("mtls, fragment", [
    (None, "no mutual TLS"),
    ({}, "no mutual TLS"),
    ({**MTLS, "truststoreVersion": None}, "does not pin truststoreVersion"),
    ({**MTLS, "truststoreVersion": ""}, "does not pin truststoreVersion"),
    ({**MTLS, "truststoreUri": "https://bucket.s3.amazonaws.com/t.pem"}, "s3://bucket/key"),
])
def test_domain_without_pinned_mtls_is_caught(mtls: dict[str, Any] | None, fragment: str) -> None:
    props = {} if mtls is None else {"mutualTlsAuthentication": mtls}
    [message] = api_mtls_required(res(DOMAIN_V2, "d", **props), NO_CONFIG)
    assert fragment in message


# -- api-default-endpoint-disabled ---------------------------------------------------------------
@pytest.mark.parametrize("token", [API_V2, REST_API])
def test_api_without_default_endpoint_passes(token: str) -> None:
    assert api_default_endpoint_disabled(res(token, "a", disableExecuteApiEndpoint=True),
                                         NO_CONFIG) == []
    assert api_default_endpoint_disabled(unknown(token), NO_CONFIG) == []


@pytest.mark.parametrize("token", [API_V2, REST_API])
@pytest.mark.parametrize("props", [{}, {"disableExecuteApiEndpoint": False}])
def test_api_with_default_endpoint_is_caught(token: str, props: dict[str, Any]) -> None:
    [message] = api_default_endpoint_disabled(res(token, "a", **props), NO_CONFIG)
    assert "bypass" in message


# -- api-route-authorized ------------------------------------------------------------------------
def test_scoped_jwt_route_passes() -> None:
    route = res(ROUTE_V2, "r", routeKey="POST /v1/infer", authorizationType="JWT",
                authorizerId="auth-1", authorizationScopes=["inference/invoke"])
    assert api_route_authorized(route, NO_CONFIG) == []
    assert api_route_authorized(res(ROUTE_V2, "r", routeKey="GET /x", authorizationType="AWS_IAM"),
                                NO_CONFIG) == []
    # A WebSocket $disconnect carries no authorization of its own.
    assert api_route_authorized(res(ROUTE_V2, "r", routeKey="$disconnect"), NO_CONFIG) == []
    assert api_route_authorized(res(API_V2, "api", protocolType="HTTP"), NO_CONFIG) == []
    method = res(METHOD, "m", httpMethod="POST", authorization="COGNITO_USER_POOLS",
                 authorizerId="auth-1", authorizationScopes=["inference/invoke"])
    assert api_route_authorized(method, NO_CONFIG) == []
    assert api_route_authorized(unknown(ROUTE_V2), NO_CONFIG) == []


@pytest.mark.parametrize("token, props, fragment", [
    (ROUTE_V2, {"routeKey": "POST /v1/infer"}, "has no authorization"),
    (ROUTE_V2, {"routeKey": "POST /v1/infer", "authorizationType": "NONE"}, "has no authorization"),
    (ROUTE_V2, {"routeKey": "$connect", "authorizationType": "NONE"}, "has no authorization"),
    (ROUTE_V2, {"routeKey": "POST /v1/infer", "authorizationType": "JWT",
                "authorizationScopes": ["a"]}, "without an authorizerId"),
    (ROUTE_V2, {"routeKey": "POST /partners/acme/v1/infer", "authorizationType": "JWT",
                "authorizerId": "auth-1"}, "without authorizationScopes"),
    (ROUTE_V2, {"routeKey": "POST /v1/infer", "authorizationType": "JWT", "authorizerId": "a",
                "authorizationScopes": []}, "without authorizationScopes"),
    (METHOD, {"httpMethod": "GET", "authorization": "NONE"}, "has no authorization"),
    (METHOD, {"httpMethod": "GET", "authorization": "CUSTOM"}, "without an authorizerId"),
    # On an HTTP API, $default catches every request no other route matches.
    (ROUTE_V2, {"routeKey": "$default", "authorizationType": "NONE"}, "has no authorization"),
    (ROUTE_V2, {"routeKey": "$default"}, "has no authorization"),
    # Quick create and OpenAPI import make routes the stack never declares.
    (API_V2, {"protocolType": "HTTP", "target": "arn:aws:lambda:eu-west-1:1:function:f"},
     "sets target, which creates routes"),
    (API_V2, {"protocolType": "HTTP", "routeKey": "ANY /x", "target": "https://x"}, "target, routeKey"),
    (API_V2, {"protocolType": "HTTP", "body": "{\"openapi\": \"3.0.1\"}"}, "sets body"),
])
def test_unauthorized_route_is_caught(token: str, props: dict[str, Any], fragment: str) -> None:
    [message] = api_route_authorized(res(token, "r", **props), NO_CONFIG)
    assert fragment in message


# -- api-stage-access-logs -----------------------------------------------------------------------
@pytest.mark.parametrize("token", [STAGE_V2, STAGE_REST])
def test_logged_stage_passes(token: str) -> None:
    settings = {"destinationArn": "arn:aws:logs:eu-west-1:111122223333:log-group:/aws/apigateway/x",
                "format": '{"requestId":"$context.requestId"}'}
    assert api_stage_access_logs(res(token, "s", accessLogSettings=settings), NO_CONFIG) == []
    assert api_stage_access_logs(unknown(token), NO_CONFIG) == []


@pytest.mark.parametrize("props, fragment", [
    ({}, "no access logs"),
    ({"accessLogSettings": {"format": "$context.requestId"}}, "without a destinationArn"),
    ({"accessLogSettings": {"destinationArn": "arn:aws:logs:x"}}, "without a format"),
])
def test_unlogged_stage_is_caught(props: dict[str, Any], fragment: str) -> None:
    [message] = api_stage_access_logs(res(STAGE_V2, "s", **props), NO_CONFIG)
    assert fragment in message


# -- api-stage-throttled -------------------------------------------------------------------------
def test_throttled_stage_passes() -> None:
    stage = res(STAGE_V2, "s", defaultRouteSettings={"throttlingRateLimit": 50,
                                                     "throttlingBurstLimit": 100})
    assert api_stage_throttled(stage, NO_CONFIG) == []
    assert api_stage_throttled(unknown(STAGE_V2), NO_CONFIG) == []


@pytest.mark.parametrize("props, fragment", [
    ({}, "throttlingRateLimit or throttlingBurstLimit"),
    ({"defaultRouteSettings": {"detailedMetricsEnabled": True}}, "throttlingRateLimit"),
    ({"defaultRouteSettings": {"throttlingRateLimit": 50}}, "no default throttlingBurstLimit"),
])
def test_unthrottled_stage_is_caught(props: dict[str, Any], fragment: str) -> None:
    [message] = api_stage_throttled(res(STAGE_V2, "s", **props), NO_CONFIG)
    assert fragment in message


# -- api-tls-12 ----------------------------------------------------------------------------------
def test_tls_12_domains_pass() -> None:
    v2 = res(DOMAIN_V2, "d", domainNameConfiguration={"securityPolicy": "TLS_1_2"})
    assert api_tls_12(v2, NO_CONFIG) == []
    assert api_tls_12(res(DOMAIN_REST, "d", securityPolicy="TLS_1_2"), NO_CONFIG) == []
    assert api_tls_12(res(DOMAIN_REST, "d", securityPolicy="SecurityPolicy_TLS13_1_2_2021_06"),
                      NO_CONFIG) == []
    assert api_tls_12(unknown(DOMAIN_REST), NO_CONFIG) == []


@pytest.mark.parametrize("resource", [
    res(DOMAIN_V2, "d", domainNameConfiguration={"securityPolicy": "TLS_1_0"}),
    res(DOMAIN_V2, "d", domainNameConfiguration={}),
    res(DOMAIN_REST, "d"),
    res(DOMAIN_REST, "d", securityPolicy="TLS_1_0"),
])
def test_old_tls_domains_are_caught(resource: Resource) -> None:
    [message] = api_tls_12(resource, NO_CONFIG)
    assert "require TLS_1_2" in message


def preview(resource: Resource) -> Resource:
    """`resource` as the analyzer hands it over in a real preview: its properties behind the
    proxy that raises on the engine's unknown sentinels (and wraps lists and maps)."""
    return replace(resource, props=unknown_checking_proxy(dict(resource.props)))


# -- api-rest-stage-waf --------------------------------------------------------------------------
WEB_ACL, WEB_ACL_ASSOCIATION = "aws:wafv2/webAcl:WebAcl", "aws:wafv2/webAclAssociation:WebAclAssociation"
WEB_ACL_RULE = "aws:wafv2/webAclRule:WebAclRule"
RULE_GROUP_ASSOCIATION = "aws:wafv2/webAclRuleGroupAssociation:WebAclRuleGroupAssociation"
STAGE_ARN = "arn:aws:apigateway:eu-west-1::/restapis/a1b2c3d4e5/stages/live"
WEB_ACL_ARN = "arn:aws:wafv2:eu-west-1:111122223333:regional/webacl/api-waf/0f1e2d3c"
VISIBILITY = {"cloudwatchMetricsEnabled": True, "metricName": "m", "sampledRequestsEnabled": True}
RATE_RULE = {"name": "per-ip-rate", "priority": 0, "action": {"block": {}},
             "statement": {"rateBasedStatement": {"limit": 1000, "aggregateKeyType": "IP"}},
             "visibilityConfig": VISIBILITY}
MANAGED_RULE = {"name": "aws-common", "priority": 1, "overrideAction": {"none": {}},
                "statement": {"managedRuleGroupStatement": {"name": "AWSManagedRulesCommonRuleSet",
                                                            "vendorName": "AWS"}},
                "visibilityConfig": VISIBILITY}


def waf_stack(acl_changes: dict[str, Any] | None = None,
              linked_by_arn: bool = False) -> tuple[Resource, Resource, Resource]:
    """A REST API stage, its web ACL and their association, linked by property dependencies
    (`linked_by_arn`: by literal ARNs, as an export of deployed resources shows them)."""
    stage = res(STAGE_REST, "live", restApi="a1b2c3d4e5", stageName="live", arn=STAGE_ARN)
    acl = res(WEB_ACL, "api-waf", **{"arn": WEB_ACL_ARN, "scope": "REGIONAL",
                                     "rules": [RATE_RULE, MANAGED_RULE], **(acl_changes or {})})
    deps = None if linked_by_arn else {"resourceArn": [stage.urn], "webAclArn": [acl.urn]}
    association = res(WEB_ACL_ASSOCIATION, "api-waf-live", deps, resourceArn=STAGE_ARN,
                      webAclArn=WEB_ACL_ARN)
    return stage, acl, association


@pytest.mark.parametrize("linked_by_arn", [False, True])
def test_rest_stage_behind_a_rate_limiting_managed_web_acl_passes(linked_by_arn: bool) -> None:
    assert api_rest_stage_waf(list(waf_stack(linked_by_arn=linked_by_arn)), NO_CONFIG) == []


def test_http_api_stages_are_not_checked() -> None:
    # AWS WAF cannot be associated with an HTTP API: SecureApiGateway's stage is out of scope.
    assert api_rest_stage_waf([res(STAGE_V2, "live")], NO_CONFIG) == []


def test_rules_declared_outside_the_web_acl_count() -> None:
    stage, acl, association = waf_stack({"rules": []})
    rate = res(WEB_ACL_RULE, "api-waf-rate", {"webAclArn": [acl.urn]},
               statement=RATE_RULE["statement"])
    managed = res(RULE_GROUP_ASSOCIATION, "api-waf-common", {"webAclArn": [acl.urn]},
                  managedRuleGroup={"name": "AWSManagedRulesCommonRuleSet", "vendorName": "AWS"})
    assert api_rest_stage_waf([stage, acl, association, rate, managed], NO_CONFIG) == []
    rule_json = ('[{"Name": "rate", "Priority": 0, "Action": {"Block": {}}, "Statement": '
                 '{"RateBasedStatement": {"Limit": 1000, "AggregateKeyType": "IP"}}}, {"Name": '
                 '"common", "Priority": 1, "OverrideAction": {"None": {}}, "Statement": '
                 '{"ManagedRuleGroupStatement": {"Name": "AWSManagedRulesCommonRuleSet", '
                 '"VendorName": "AWS"}}}]')
    assert api_rest_stage_waf(list(waf_stack({"rules": [], "ruleJson": rule_json})), NO_CONFIG) == []


@pytest.mark.parametrize("acl_changes, fragments", [
    ({"scope": "CLOUDFRONT"}, ["web ACL api-waf has scope 'CLOUDFRONT'"]),
    ({"rules": [MANAGED_RULE]}, ["web ACL api-waf has no rate-based rule"]),
    ({"rules": [RATE_RULE]}, ["web ACL api-waf runs no AWS managed rule group"]),
    ({"rules": [RATE_RULE, {**MANAGED_RULE, "statement": {"managedRuleGroupStatement": {
        "name": "BotRules", "vendorName": "SomeVendor"}}}]}, ["runs no AWS managed rule group"]),
    ({"rules": []}, ["no rate-based rule", "runs no AWS managed rule group"]),
    ({"rules": [], "ruleJson": '[{"Name": "r", "Statement": {"RateBasedStatement": {"Limit": 100}}}]'},
     ["runs no AWS managed rule group"]),
])
def test_weak_web_acl_is_caught(acl_changes: dict[str, Any], fragments: list[str]) -> None:
    stage, acl, association = waf_stack(acl_changes)
    findings = api_rest_stage_waf([stage, acl, association], NO_CONFIG)
    assert len(findings) == len(fragments) and urns(findings) == {"live"}
    for finding, fragment in zip(findings, fragments, strict=True):
        assert "REST API stage live" in finding.message and fragment in finding.message


def test_rest_stage_without_web_acl_is_caught() -> None:
    stage, acl, association = waf_stack()
    other = res(STAGE_REST, "canary", arn=STAGE_ARN.replace("/live", "/canary"))
    [finding] = api_rest_stage_waf([stage, other, acl, association], NO_CONFIG)
    assert finding.urn == other.urn and "REST API stage canary has no AWS WAF web ACL" in finding.message
    [finding] = api_rest_stage_waf([stage], NO_CONFIG)
    assert "REST API stage live has no AWS WAF web ACL" in finding.message


def test_web_acl_outside_the_stack_is_caught() -> None:
    stage, _, _ = waf_stack()
    association = res(WEB_ACL_ASSOCIATION, "shared-waf", {"resourceArn": [stage.urn]},
                      webAclArn=WEB_ACL_ARN.replace("api-waf", "firewall-manager"))
    [finding] = api_rest_stage_waf([stage, association], NO_CONFIG)
    assert "REST API stage live" in finding.message and "shared-waf" in finding.message
    assert "not declared in this stack" in finding.message


def test_waf_links_by_property_dependencies_in_a_preview() -> None:
    # A real preview: every ARN is unknown; the links come from the property dependencies.
    stage, acl, association = waf_stack()
    unknown_arns = [preview(replace(r, props={**r.props, **{k: UNKNOWN_STRING_VALUE for k in keys}}))
                    for r, keys in ((stage, ["arn"]), (acl, ["arn"]),
                                    (association, ["resourceArn", "webAclArn"]))]
    assert api_rest_stage_waf(unknown_arns, NO_CONFIG) == []
    weak = replace(unknown_arns[1], props=unknown_checking_proxy(
        {**acl.props, "arn": UNKNOWN_STRING_VALUE, "rules": [MANAGED_RULE]}))
    [finding] = api_rest_stage_waf([unknown_arns[0], weak, unknown_arns[2]], NO_CONFIG)
    assert "web ACL api-waf has no rate-based rule" in finding.message
    assert api_rest_stage_waf([unknown(STAGE_REST), unknown(WEB_ACL), unknown(WEB_ACL_ASSOCIATION)],
                              NO_CONFIG) == []


def _known_if(unknown_value: Any, known_value: Any, in_preview: bool) -> Any:
    """The value a preview sees (`in_preview`), or the known value that violates."""
    return unknown_value if in_preview else known_value


OTHER_STAGE_ARN = STAGE_ARN.replace("/live", "/canary")
OTHER_WEB_ACL_ARN = WEB_ACL_ARN.replace("api-waf", "elsewhere")
NO_STATEMENT: dict[str, Any] = {}


# Each case: a resource of the stack, the properties it gets with values a preview does not know
# yet, and the same properties known, as they would violate (so the unknown case proves something).
@pytest.mark.parametrize("target, changes", [
    # an association whose target cannot be told yet (no dependency recorded)
    ("association", lambda u: {"resourceArn": _known_if(UNKNOWN_STRING_VALUE, OTHER_STAGE_ARN, u)}),
    # a literal stage ARN while the stage's own ARN is not known yet
    ("stage", lambda u: {"arn": _known_if(UNKNOWN_STRING_VALUE, OTHER_STAGE_ARN, u)}),
    ("association", lambda u: {"webAclArn": _known_if(UNKNOWN_STRING_VALUE, OTHER_WEB_ACL_ARN, u)}),
    ("acl", lambda u: {"scope": _known_if(UNKNOWN_STRING_VALUE, "CLOUDFRONT", u)}),
    ("acl", lambda u: {"rules": _known_if(UNKNOWN_ARRAY_VALUE, [], u)}),
    ("acl", lambda u: {"rules": [RATE_RULE, {**MANAGED_RULE, "statement": _known_if(
        UNKNOWN_OBJECT_VALUE, NO_STATEMENT, u)}]}),
    ("acl", lambda u: {"rules": [
        {**RATE_RULE, "statement": {"rateBasedStatement": _known_if(UNKNOWN_OBJECT_VALUE, None, u)}},
        {**MANAGED_RULE, "statement": {"managedRuleGroupStatement": {
            "name": "AWSManagedRulesCommonRuleSet",
            "vendorName": _known_if(UNKNOWN_STRING_VALUE, "SomeVendor", u)}}}]}),
    ("acl", lambda u: {"rules": [], "ruleJson": _known_if(UNKNOWN_STRING_VALUE, "[]", u)}),
])
def test_unknown_waf_values_are_not_violations(target: str, changes: Any) -> None:
    def findings(unknown_values: bool) -> list[Any]:
        stage, acl, association = waf_stack(linked_by_arn=True)
        resources = {"stage": stage, "acl": acl, "association": association}
        changed = resources[target]
        resources[target] = replace(changed, props={**changed.props, **changes(unknown_values)})
        return api_rest_stage_waf([preview(r) for r in resources.values()], NO_CONFIG)

    assert findings(unknown_values=True) == []
    assert findings(unknown_values=False), "the known counterpart must violate"


# -- api-partner-route-scoped --------------------------------------------------------------------
USER_POOL_CLIENT = "aws:cognito/userPoolClient:UserPoolClient"
IDENTIFIER = "https://api.dev.example.com"
INFER, ACME, GLOBEX = (f"{IDENTIFIER}/{name}" for name in ("inference.invoke", "acme.invoke",
                                                           "globex.invoke"))
API = res(API_V2, "gateway-api", id="a1b2c3d4e5", protocolType="HTTP")
OTHER_API = res(API_V2, "admin-api", id="f6g7h8i9j0", protocolType="HTTP")


def route(name: str, route_key: str, *scopes: str, api: Resource = API, **props: Any) -> Resource:
    return res(ROUTE_V2, name, {"apiId": [api.urn]}, **{
        "apiId": api.get("id"), "routeKey": route_key, "authorizationType": "JWT",
        "authorizerId": "jwt-1", "authorizationScopes": list(scopes), **props})


def client(name: str, *scopes: str, flows: tuple[str, ...] = ("client_credentials",)) -> Resource:
    return res(USER_POOL_CLIENT, name, allowedOauthFlows=list(flows), allowedOauthScopes=list(scopes))


SECURE_PARTNERS = [
    API, OTHER_API,
    route("infer", "POST /v1/infer", INFER),
    route("acme-infer", "POST /partners/acme/v1/infer", ACME),
    route("acme-status", "GET /partners/acme/v1/status", ACME),
    route("globex-infer", "POST /partners/globex/v1/infer", GLOBEX, f"{IDENTIFIER}/globex.read"),
    route("admin-infer", "POST /v1/infer", f"{IDENTIFIER}/admin", api=OTHER_API),
    client("inference", INFER), client("partner-acme", ACME), client("partner-globex", GLOBEX),
    # First-party scopes may be shared between clients; a client without OAuth flows gets no
    # scoped token.
    client("batch", INFER), client("sign-in-only", ACME, flows=()),
]


def test_partner_routes_with_scopes_of_their_own_pass() -> None:
    assert api_partner_route_scoped(SECURE_PARTNERS, NO_CONFIG) == []
    # What is not a partner route: no `/partners/<name>/` prefix (upper case is not a name).
    others = [route("default", "$default", INFER), route("caps", "GET /partners/Acme/x", INFER),
              route("bare", "GET /partners/acme", INFER)]
    assert api_partner_route_scoped([*SECURE_PARTNERS, *others], NO_CONFIG) == []


@pytest.mark.parametrize("props, fragment", [
    ({"authorizationType": "AWS_IAM"}, "is not JWT-authorized (authorizationType AWS_IAM)"),
    ({"authorizationType": "NONE"}, "is not JWT-authorized"),
    ({"authorizationType": None}, "is not JWT-authorized (authorizationType NONE)"),
    ({"authorizationScopes": []}, "requires no scope"),
    ({"authorizationScopes": None}, "requires no scope"),
])
def test_unscoped_partner_route_is_caught(props: dict[str, Any], fragment: str) -> None:
    weak = route("acme-infer", "POST /partners/acme/v1/infer", ACME, **props)
    resources = [r for r in SECURE_PARTNERS if r.name != "acme-infer"] + [weak]
    [finding] = api_partner_route_scoped(resources, NO_CONFIG)
    assert finding.urn == weak.urn and fragment in finding.message
    assert "partner acme route POST /partners/acme/v1/infer (acme-infer)" in finding.message


def test_partner_scope_required_by_a_first_party_route_is_caught() -> None:
    leaky = route("status", "GET /v1/status", INFER, ACME)
    # Both of acme's routes share the scope with the first-party route; acme's client now holds
    # a scope of first-party routes too.
    findings = api_partner_route_scoped([*SECURE_PARTNERS, leaky], NO_CONFIG)
    assert urns(findings) == {"acme-infer", "acme-status", "partner-acme"}
    for finding in findings:
        if not finding.urn.endswith("::partner-acme"):
            assert (f"requires scope {ACME}, which first-party route GET /v1/status (status) of "
                    "the same API also requires") in finding.message


def test_scope_shared_between_partners_is_caught() -> None:
    # acme's route also admits globex's token: reported on each partner's route.
    greedy = route("acme-infer", "POST /partners/acme/v1/infer", ACME, GLOBEX)
    resources = [r for r in SECURE_PARTNERS if r.name != "acme-infer"] + [greedy]
    findings = api_partner_route_scoped(resources, NO_CONFIG)
    # globex's client now holds a scope of acme's routes: two holders of acme's scopes.
    assert urns(findings) == {"acme-infer", "globex-infer", "partner-globex", "partner-acme"}
    by_route = {f.urn.rsplit("::", 1)[-1]: f.message for f in findings
                if not f.urn.rsplit("::", 1)[-1].startswith("partner-")}
    assert "partner acme route" in by_route["acme-infer"]
    assert "partner globex's route POST /partners/globex/v1/infer" in by_route["acme-infer"]
    assert "partner globex route" in by_route["globex-infer"]
    assert "partner acme's route POST /partners/acme/v1/infer (acme-infer)" in by_route["globex-infer"]


def test_same_api_links_by_id_as_well_as_by_dependency() -> None:
    # A route pasting the API's id is a route of that API.
    pasted = res(ROUTE_V2, "pasted", apiId=API.get("id"), routeKey="GET /v1/health",
                 authorizationType="JWT", authorizerId="jwt-1", authorizationScopes=[ACME])
    assert urns(api_partner_route_scoped([*SECURE_PARTNERS, pasted], NO_CONFIG)) == {
        "acme-infer", "acme-status", "partner-acme"}


def test_partner_scope_on_another_api_is_caught_through_the_client() -> None:
    # Not a route of the same API; but acme's client token carries the scope that opens it.
    elsewhere = route("admin-status", "GET /v1/status", ACME, api=OTHER_API)
    [finding] = api_partner_route_scoped([*SECURE_PARTNERS, elsewhere], NO_CONFIG)
    assert finding.urn.endswith("::partner-acme") and "first-party routes" in finding.message


@pytest.mark.parametrize("scopes, owners", [
    ((INFER, ACME), "first-party routes: " + INFER + "; partner acme: " + ACME),
    ((ACME, GLOBEX), "partner acme: " + ACME + "; partner globex: " + GLOBEX),
])
def test_client_holding_scopes_of_two_owners_is_caught(scopes: tuple[str, ...], owners: str) -> None:
    findings = api_partner_route_scoped([*SECURE_PARTNERS, client("partner-acme-v2", *scopes)],
                                        NO_CONFIG)
    [finding] = [f for f in findings if "owners" in f.message]
    assert finding.urn.endswith("::partner-acme-v2")
    assert "Cognito app client partner-acme-v2 is allowed" in finding.message
    # And acme's scope now has two holders.
    assert {f.urn.rsplit("::", 1)[-1] for f in findings if "as 2 clients do" in f.message} >= {
        "partner-acme", "partner-acme-v2"}
    assert f"scopes of 2 owners ({owners})" in finding.message


@pytest.mark.parametrize("flows", [("code",), ("implicit",), ("client_credentials",)])
def test_a_second_holder_of_a_partner_scope_is_caught(flows: tuple[str, ...]) -> None:
    # A console's users, or a copy of the partner's client, would call as the partner.
    second = client("console", ACME, flows=flows)
    findings = api_partner_route_scoped([*SECURE_PARTNERS, second], NO_CONFIG)
    assert urns(findings) == {"console", "partner-acme"}
    assert all("holds scopes of partner acme, as 2 clients do (console, partner-acme)"
               in f.message for f in findings)


def test_a_user_sign_in_client_holding_two_owners_scopes_is_caught() -> None:
    console = client("console", INFER, GLOBEX, flows=("code",))
    findings = api_partner_route_scoped([*SECURE_PARTNERS, console], NO_CONFIG)
    assert urns(findings) == {"console", "partner-globex"}
    assert any("scopes of 2 owners" in f.message for f in findings if f.urn.endswith("::console"))


def test_partner_routes_link_by_dependency_in_a_preview() -> None:
    # A real preview: the API id is unknown; the routes link to their API by dependency.
    unknown_id = preview(replace(API, props={**API.props, "id": UNKNOWN_STRING_VALUE}))
    leaky = route("status", "GET /v1/status", INFER, ACME)
    resources = [unknown_id if r is API else preview(replace(r, props={
        **r.props, "apiId": UNKNOWN_STRING_VALUE})) if r.type == ROUTE_V2 else preview(r)
                 for r in [*SECURE_PARTNERS, leaky]]
    assert urns(api_partner_route_scoped(resources, NO_CONFIG)) == {"acme-infer", "acme-status",
                                                                    "partner-acme"}
    assert api_partner_route_scoped([unknown(ROUTE_V2), unknown(USER_POOL_CLIENT)], NO_CONFIG) == []


# Each case: a resource (replacing the one of that name, or added), with values a preview does
# not know yet, and the same resource known as it would violate.
@pytest.mark.parametrize("make", [
    lambda u: route("acme-infer", "POST /partners/acme/v1/infer", ACME,
                    authorizationType=_known_if(UNKNOWN_STRING_VALUE, "AWS_IAM", u)),
    lambda u: route("acme-infer", "POST /partners/acme/v1/infer",
                    authorizationScopes=_known_if(UNKNOWN_ARRAY_VALUE, [], u)),
    lambda u: route("acme-infer", "POST /partners/acme/v1/infer",
                    authorizationScopes=[_known_if(UNKNOWN_STRING_VALUE, INFER, u)]),
    lambda u: route("who", _known_if(UNKNOWN_STRING_VALUE, "GET /v1/status", u), ACME),
    # an API that cannot be told yet: a literal id unknown, no dependency recorded (the scope is
    # globex's, held by no client, so only the same-API comparison could catch it)
    lambda u: res(ROUTE_V2, "loose", apiId=_known_if(UNKNOWN_STRING_VALUE, API.get("id"), u),
                  routeKey="GET /v1/x", authorizationType="JWT", authorizerId="jwt-1",
                  authorizationScopes=[f"{IDENTIFIER}/globex.read"]),
    lambda u: client("partner-acme", ACME, _known_if(UNKNOWN_STRING_VALUE, INFER, u)),
    lambda u: client("partner-acme", ACME, INFER,
                     flows=(_known_if(UNKNOWN_STRING_VALUE, "client_credentials", u),)),
    lambda u: res(USER_POOL_CLIENT, "partner-acme", allowedOauthFlows=["client_credentials"],
                  allowedOauthScopes=_known_if(UNKNOWN_ARRAY_VALUE, [ACME, GLOBEX], u)),
])
def test_unknown_route_values_are_not_violations(make: Any) -> None:
    def findings(unknown_values: bool) -> list[Any]:
        changed = make(unknown_values)
        resources = [r for r in SECURE_PARTNERS if r.name != changed.name] + [changed]
        return api_partner_route_scoped([preview(r) for r in resources], NO_CONFIG)

    assert findings(unknown_values=True) == []
    assert findings(unknown_values=False), "the known counterpart must violate"
