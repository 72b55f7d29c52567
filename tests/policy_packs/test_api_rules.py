"""The API Gateway rules (§2.3, §7): what SecureApiGateway declares passes; each insecure variant
is caught; a value a preview does not know yet is not a violation."""

from __future__ import annotations

from typing import Any

import pytest
from pulumi_policy.proxy import UNKNOWN_OBJECT_VALUE, UnknownValueError

from tests.policy_packs.test_rules import NO_CONFIG, res
from ztpolicy.rule import Resource
from ztpolicy.rules.api_default_endpoint_disabled import api_default_endpoint_disabled
from ztpolicy.rules.api_mtls_required import api_mtls_required
from ztpolicy.rules.api_route_authorized import api_route_authorized
from ztpolicy.rules.api_stage_access_logs import api_stage_access_logs
from ztpolicy.rules.api_stage_throttled import api_stage_throttled
from ztpolicy.rules.api_tls_12 import api_tls_12

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
    # WebSocket routes after $connect carry no authorization of their own.
    assert api_route_authorized(res(ROUTE_V2, "r", routeKey="$default"), NO_CONFIG) == []
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
