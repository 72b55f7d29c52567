"""Every API Gateway API has its default execute-api endpoint disabled (control: secure API gateway).

Mutual TLS applies on a custom domain only: the default `https://<id>.execute-api.<region>.
amazonaws.com` endpoint of the same API accepts any TLS client, so leaving it on bypasses the
truststore. Applies to HTTP/WebSocket APIs (apigatewayv2) and REST APIs. Not suppressible.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import Severity

from ztpolicy.graph import UNKNOWN, known
from ztpolicy.rule import Resource, Rule

API_V2 = "aws:apigatewayv2/api:Api"
REST_API = "aws:apigateway/restApi:RestApi"


def api_default_endpoint_disabled(resource: Resource, _config: Mapping[str, Any]) -> list[str]:
    disabled = known(resource, "disableExecuteApiEndpoint")
    if disabled is UNKNOWN or disabled is True:
        return []
    return [f"API {resource.name} keeps its default execute-api endpoint: it has no mutual TLS, so "
            "clients can bypass the custom domain's truststore; set disable_execute_api_endpoint=True"]


RULE = Rule(
    name="api-default-endpoint-disabled",
    description="API Gateway APIs must disable the default execute-api endpoint (it bypasses "
                "mutual TLS).",
    control="secure API gateway",
    severity=Severity.CRITICAL,
    remediation="Set disable_execute_api_endpoint=True on the API and reach it through its custom "
                "domain only (SecureApiGateway does).",
    resource_check=api_default_endpoint_disabled,
    resource_types=frozenset({API_V2, REST_API}),
    # The endpoint voids mutual TLS for the whole API: never waived.
    suppressible=False,
)
