"""API Gateway custom domains negotiate TLS 1.2 or later only (control: secure API gateway).

A REST API domain without a security policy gets `TLS_1_0`. Accepted: `TLS_1_2` and API Gateway's
enhanced policies whose minimum is TLS 1.2 or 1.3 (`SecurityPolicy_TLS13_...`,
`SecurityPolicy_TLS12_...`). HTTP API domains set it in `domainNameConfiguration.securityPolicy`,
REST API domains in `securityPolicy`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import Severity

from ztpolicy.graph import UNKNOWN, known, known_field
from ztpolicy.rule import Resource, Rule

DOMAIN_V2 = "aws:apigatewayv2/domainName:DomainName"
DOMAIN_REST = "aws:apigateway/domainName:DomainName"
_ENHANCED_PREFIXES = ("SecurityPolicy_TLS13_", "SecurityPolicy_TLS12_")




def api_tls_12(resource: Resource, _config: Mapping[str, Any]) -> list[str]:
    if resource.type == DOMAIN_V2:
        configuration = known(resource, "domainNameConfiguration")
        policy = UNKNOWN if configuration is UNKNOWN else known_field(configuration, "securityPolicy")
    else:
        policy = known(resource, "securityPolicy")
    if policy is UNKNOWN:
        return []
    if policy == "TLS_1_2" or (isinstance(policy, str) and policy.startswith(_ENHANCED_PREFIXES)):
        return []
    return [f"API domain {resource.name} has security policy {policy or 'unset (TLS_1_0)'}: "
            "require TLS_1_2 or later"]


RULE = Rule(
    name="api-tls-12",
    description="API Gateway custom domains must use a TLS 1.2+ security policy.",
    control="secure API gateway",
    severity=Severity.HIGH,
    remediation="Set security_policy='TLS_1_2' (HTTP API: in domain_name_configuration) "
                "(SecureApiGateway does).",
    resource_check=api_tls_12,
    resource_types=frozenset({DOMAIN_V2, DOMAIN_REST}),
)
