"""Every API Gateway custom domain requires mutual TLS with a pinned truststore (controls: secure
API gateway, partner access).

A domain without mutual TLS admits any client that can reach it; a truststore without a pinned
version follows whatever object is uploaded next under its key, so the set of admitted CAs changes
without a deployment anyone reviewed. Applies to HTTP/WebSocket API domains (apigatewayv2) and REST
API domains (apigateway). A version not known yet (a preview, before the truststore object exists)
counts as pinned; it is checked again when known.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import Severity

from ztpolicy.graph import UNKNOWN, known, known_field
from ztpolicy.rule import Resource, Rule

DOMAIN_V2 = "aws:apigatewayv2/domainName:DomainName"
DOMAIN_REST = "aws:apigateway/domainName:DomainName"




def api_mtls_required(resource: Resource, _config: Mapping[str, Any]) -> list[str]:
    mtls = known(resource, "mutualTlsAuthentication")
    if mtls is UNKNOWN:
        return []
    if not isinstance(mtls, Mapping) or not mtls:
        return [f"API domain {resource.name} has no mutual TLS: any client that reaches it is "
                "admitted to the TLS layer; set mutual_tls_authentication with a truststore"]
    messages = []
    uri = known_field(mtls, "truststoreUri")
    if uri is not UNKNOWN and not (isinstance(uri, str) and uri.startswith("s3://")
                                   and "/" in uri[len("s3://"):]):
        messages.append(f"API domain {resource.name} has truststoreUri {uri!r}: an s3://bucket/key "
                        "of the truststore bundle is required")
    version = known_field(mtls, "truststoreVersion")
    if version is not UNKNOWN and not (isinstance(version, str) and version):
        messages.append(f"API domain {resource.name} does not pin truststoreVersion: the admitted "
                        "CAs would change with the next object uploaded under the key")
    return messages


RULE = Rule(
    name="api-mtls-required",
    description="API Gateway custom domains must require mutual TLS with an S3 truststore and a "
                "pinned truststore version.",
    control="secure API gateway",
    severity=Severity.CRITICAL,
    remediation="Set mutual_tls_authentication(truststore_uri='s3://<bucket>/<key>', "
                "truststore_version=<the object's version_id>) on the domain (SecureApiGateway "
                "does), with the bundle from `ztai truststore build`.",
    resource_check=api_mtls_required,
    resource_types=frozenset({DOMAIN_V2, DOMAIN_REST}),
)
