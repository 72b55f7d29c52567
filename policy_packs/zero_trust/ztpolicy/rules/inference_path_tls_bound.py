"""The path from the API gateway to the enclave fleet is encrypted and carries what the enclave
re-checks (§2.3, §4.2).

- an HTTP API integration over a VPC link (`aws:apigatewayv2/integration:Integration`,
  `connectionType` VPC_LINK) must verify the backend's TLS certificate
  (`tlsConfig.serverNameToVerify`): without it the request, bearer token and prompt included,
  crosses the VPC in clear to a TCP listener; and it must map the client certificate's issuer
  DN and the route key into the headers the enclave verifies
  (`overwrite:header.x-ztai-client-cert-issuer` = `$context.identity.clientCert.issuerDN`,
  `overwrite:header.x-ztai-route` = `$context.routeKey`; `overwrite:` so a caller cannot send
  its own value first), or the enclave refuses every request;
- a load balancer listener or target group of the enclave fleet (tagged `ztai:workload` =
  `enclave-inference`) must use protocol TLS: a TCP listener or target group carries the same
  request in clear between the VPC link, the load balancer and the parent.

It cannot see a second API someone creates outside the stack on the same VPC link: the enclave
refuses such a relay's requests by itself (enclave_images/enclave/auth.py). Not suppressible.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import Severity

from ztpolicy.graph import UNKNOWN, known, known_field
from ztpolicy.rule import Resource, Rule

INTEGRATION = "aws:apigatewayv2/integration:Integration"
LISTENER = "aws:lb/listener:Listener"
TARGET_GROUP = "aws:lb/targetGroup:TargetGroup"
WORKLOAD_TAG, ENCLAVE_WORKLOAD = "ztai:workload", "enclave-inference"
# What the enclave reads (enclave_images/enclave/auth.py CERT_ISSUER_HEADER, ROUTE_HEADER).
REQUIRED_MAPPINGS = {
    "overwrite:header.x-ztai-client-cert-issuer": "$context.identity.clientCert.issuerDN",
    "overwrite:header.x-ztai-route": "$context.routeKey",
}


def _integration_problems(resource: Resource) -> list[str]:
    connection = known(resource, "connectionType")
    if connection is UNKNOWN or str(connection or "").upper() != "VPC_LINK":
        return []
    problems = []
    server_name = known_field(known(resource, "tlsConfig"), "serverNameToVerify")
    if server_name is not UNKNOWN and not server_name:
        problems.append(f"integration {resource.name} reaches its VPC link backend without TLS "
                        "(no tlsConfig.serverNameToVerify): tokens and prompts cross the VPC in clear")
    parameters = known(resource, "requestParameters")
    if parameters is not UNKNOWN:
        mapped = parameters if isinstance(parameters, Mapping) else {}
        for key, value in REQUIRED_MAPPINGS.items():
            given = known_field(mapped, key)
            if given is not UNKNOWN and given != value:
                problems.append(f"integration {resource.name} does not map {key} to {value} "
                                f"(has {given!r}): the enclave cannot check the caller's certificate "
                                "binding and route")
    return problems


def _is_enclave_fleet(resource: Resource) -> bool:
    for prop in ("tags", "tagsAll"):
        value = known_field(known(resource, prop), WORKLOAD_TAG)
        if value == ENCLAVE_WORKLOAD:
            return True
    return False


def inference_path_tls_bound(resource: Resource, _config: Mapping[str, Any]) -> list[str]:
    if resource.type == INTEGRATION:
        return _integration_problems(resource)
    if not _is_enclave_fleet(resource):
        return []
    protocol = known(resource, "protocol")
    if protocol is UNKNOWN or str(protocol or "").upper() == "TLS":
        return []
    kind = "listener" if resource.type == LISTENER else "target group"
    return [f"enclave fleet {kind} {resource.name} uses protocol {protocol or 'unset'}: the request, "
            "bearer token and prompt included, crosses the VPC in clear; use TLS"]


RULE = Rule(
    name="inference-path-tls-bound",
    description="The gateway-to-enclave path must be TLS and carry the headers the enclave verifies.",
    section="2.3",
    severity=Severity.HIGH,
    remediation="Give EnclaveInferenceFleet a listener certificate (certificate_domain_name with "
                "hosted_zone_id or certificate_arn) and SecureApiGateway its backend_server_name; "
                "keep the integration's ENCLAVE_AUTH_HEADERS mappings.",
    resource_check=inference_path_tls_bound,
    resource_types=frozenset({INTEGRATION, LISTENER, TARGET_GROUP}),
    suppressible=False,
)
