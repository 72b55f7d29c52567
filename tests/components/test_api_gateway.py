"""SecureApiGateway under Pulumi's mock monitor: the HTTP API, its mutual-TLS domain pinned to the
truststore object's version, the JWT authorizer and scoped routes, the private integration, the
throttled and logged stage; the API rules of the pack accept all of it; bad input is refused."""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import replace
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws
import pytest
from cryptography.hazmat.primitives import serialization

from components.api_gateway import (
    ACCESS_LOG_FORMAT,
    ENCLAVE_AUTH_HEADERS,
    FIRST_PARTY,
    REQUEST_ID_HEADERS,
    TRUSTSTORE_KEY,
    ApiPartner,
    ApiRoute,
    SecureApiGateway,
    SecureApiGatewayArgs,
)
from components.tags import register_standard_tags
from components.truststore import check_bundle, create_test_ca
from tests.conftest import ROOT
from ztai.preview.recorder import RecordedResource, RecordedStack, record
from ztpolicy.rule import Resource
from ztpolicy.rules import (
    api_default_endpoint_disabled,
    api_mtls_required,
    api_route_authorized,
    api_stage_access_logs,
    api_stage_throttled,
    api_tls_12,
    inference_path_tls_bound,
    log_group_encrypted,
    no_unrestricted_ingress,
)

pytestmark = [
    pytest.mark.filterwarnings(r"ignore:(s3\.BucketV2|aws\.s3/\w+v2\.\w+V2) has been deprecated:"
                               "DeprecationWarning"),
]

KEY = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
LOGS_KEY = "arn:aws:kms:eu-west-1:111122223333:key/abcd1234-12ab-34cd-56ef-1234567890ab"
LISTENER = ("arn:aws:elasticloadbalancing:eu-west-1:111122223333:listener/net/inference/"
            "0123456789abcdef/0123456789abcdef")
API, DOMAIN, ROUTE = ("aws:apigatewayv2/api:Api", "aws:apigatewayv2/domainName:DomainName",
                      "aws:apigatewayv2/route:Route")
STAGE, OBJECT = "aws:apigatewayv2/stage:Stage", "aws:s3/bucketObjectv2:BucketObjectv2"


@pytest.fixture(scope="module")
def ca_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("cas")
    files = {}
    for name in ("first-party", "acme", "globex"):
        certificate, _ = create_test_ca(f"{name} test CA")
        path = directory / f"{name}.pem"
        path.write_bytes(b"# a comment the bundle drops\n"
                         + certificate.public_bytes(serialization.Encoding.PEM))
        files[name] = path
    return files


@pytest.fixture(scope="module")
def args(ca_files: dict[str, Path]) -> SecureApiGatewayArgs:
    return SecureApiGatewayArgs(
        environment="dev", owner="ml-platform", domain_name="api.dev.example.com",
        certificate_arn="arn:aws:acm:eu-west-1:111122223333:certificate/abc",
        jwt_issuer="https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Example",
        jwt_audiences=["inference-clients"],
        routes=[ApiRoute("POST /v1/infer", ("inference/invoke",)),
                ApiRoute("GET /v1/models", ("inference/read",), rate_limit=5, burst_limit=10)],
        vpc_id="vpc-0inference", subnet_ids=["subnet-0private0", "subnet-0private1"],
        backend_cidr="10.12.0.0/16", backend_port=443, nlb_listener_arn=LISTENER,
        truststore_key_arn=KEY, logs_key_arn=LOGS_KEY,
        partners=[ApiPartner("globex", ("partner/globex",), 2, 4, ca_file=str(ca_files["globex"])),
                  ApiPartner("acme", ("partner/acme",), 1, 2, ca_file=str(ca_files["acme"]))],
        client_ca_files=[str(ca_files["first-party"])],
        backend_server_name="inference.api.dev.example.com",
    )


def build(args: SecureApiGatewayArgs) -> RecordedStack:
    def program() -> None:
        register_standard_tags(args.environment, args.owner)  # as __main__.py does
        SecureApiGateway("gateway", args)

    return record(program, project="zero-trust-ai", stack="test", config={}, region="eu-west-1")


@pytest.fixture(scope="module")
def stack(args: SecureApiGatewayArgs) -> RecordedStack:
    return build(args)


def of_type(stack: RecordedStack, token: str) -> list[RecordedResource]:
    return [r for r in stack.resources if r.type == token]


def as_rule_resource(resource: RecordedResource) -> Resource:
    return Resource(type=resource.type, name=resource.name, urn=resource.urn,
                    props=resource.inputs, property_dependencies={
                        k: tuple(v) for k, v in resource.property_dependencies.items()})


def test_http_api_without_default_endpoint(stack: RecordedStack) -> None:
    [api] = of_type(stack, API)
    assert api.inputs["protocolType"] == "HTTP" and api.inputs["disableExecuteApiEndpoint"] is True
    assert api.parent.endswith("SecureApiGateway::gateway")


def test_domain_has_mtls_pinned_to_the_truststore_version(stack: RecordedStack) -> None:
    [domain] = of_type(stack, DOMAIN)
    [bundle] = of_type(stack, OBJECT)
    [bucket] = of_type(stack, "aws:s3/bucket:Bucket")
    mtls = domain.inputs["mutualTlsAuthentication"]
    assert mtls["truststoreUri"] == f"s3://{bucket.outputs['bucket']}/{TRUSTSTORE_KEY}"
    assert mtls["truststoreVersion"] == bundle.outputs["versionId"]
    config = domain.inputs["domainNameConfiguration"]
    assert config["securityPolicy"] == "TLS_1_2" and config["endpointType"] == "REGIONAL"


def test_truststore_bundle_is_built_from_the_ca_files(stack: RecordedStack) -> None:
    [bundle] = of_type(stack, OBJECT)
    pem = bundle.inputs["content"]
    assert "# a comment" not in pem and pem.count("BEGIN CERTIFICATE") == 3
    assert bundle.inputs["serverSideEncryption"] == "aws:kms" and bundle.inputs["kmsKeyId"] == KEY
    report = check_bundle(pem.encode(), dt.datetime.now(dt.UTC))
    assert not [f for f in report.findings if f.severity == "error"]


def test_truststore_bucket_is_private_versioned_and_tls_only(stack: RecordedStack) -> None:
    [block] = of_type(stack, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    assert all(block.inputs[k] is True for k in ("blockPublicAcls", "blockPublicPolicy",
                                                  "ignorePublicAcls", "restrictPublicBuckets"))
    [versioning] = of_type(stack, "aws:s3/bucketVersioning:BucketVersioning")
    assert versioning.inputs["versioningConfiguration"]["status"] == "Enabled"
    [encryption] = of_type(stack, "aws:s3/bucketServerSideEncryptionConfiguration:"
                                  "BucketServerSideEncryptionConfiguration")
    default = encryption.inputs["rules"][0]["applyServerSideEncryptionByDefault"]
    assert default == {"sseAlgorithm": "aws:kms", "kmsMasterKeyId": KEY}
    [policy] = of_type(stack, "aws:s3/bucketPolicy:BucketPolicy")
    sids = {s["Sid"] for s in json.loads(policy.inputs["policy"])["Statement"]}
    assert {"DenyInsecureTransport", "DenyOtherKey"} <= sids


def test_every_route_is_jwt_with_scopes(stack: RecordedStack) -> None:
    [authorizer] = of_type(stack, "aws:apigatewayv2/authorizer:Authorizer")
    assert authorizer.inputs["authorizerType"] == "JWT"
    assert authorizer.inputs["jwtConfiguration"] == {
        "issuer": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Example",
        "audiences": ["inference-clients"]}
    routes = {r.inputs["routeKey"]: r for r in of_type(stack, ROUTE)}
    assert set(routes) == {"POST /v1/infer", "GET /v1/models", "POST /partners/acme/v1/infer",
                           "POST /partners/globex/v1/infer"}
    for route in routes.values():
        assert route.inputs["authorizationType"] == "JWT"
        assert route.inputs["authorizerId"] == authorizer.id and route.inputs["authorizationScopes"]
    assert routes["POST /partners/acme/v1/infer"].inputs["authorizationScopes"] == ["partner/acme"]


def test_integration_is_private(stack: RecordedStack) -> None:
    [integration] = of_type(stack, "aws:apigatewayv2/integration:Integration")
    # Every public path reaches the agent's one inference path, with what the enclave re-checks:
    # the route and the client certificate, written over anything the caller sent by those names.
    assert integration.inputs["requestParameters"] == {
        "overwrite:path": "/predict",
        "overwrite:header.x-ztai-route": "$context.routeKey",
        "overwrite:header.x-ztai-client-cert-issuer": "$context.identity.clientCert.issuerDN",
        "overwrite:header.x-ztai-client-cert-subject": "$context.identity.clientCert.subjectDN",
        "overwrite:header.x-ztai-client-cert-serial": "$context.identity.clientCert.serialNumber",
        # The gateway's request id, the access log's `requestId`, for the inference event.
        "overwrite:header.x-ztai-request-id": "$context.requestId"}
    # The header names are the ones the enclave reads, and the one the agent reads.
    from enclave_images.enclave import auth
    from enclave_images.parent import agent
    assert {key.removeprefix("overwrite:header.") for key in ENCLAVE_AUTH_HEADERS} == {
        auth.ROUTE_HEADER, auth.CERT_ISSUER_HEADER, auth.CERT_SUBJECT_HEADER, auth.CERT_SERIAL_HEADER}
    assert {f"overwrite:header.{agent.REQUEST_ID_HEADER}": "$context.requestId"} == REQUEST_ID_HEADERS
    assert json.loads(ACCESS_LOG_FORMAT)["requestId"] == "$context.requestId"
    # The agent never passes the request id on to the enclave.
    assert agent.REQUEST_ID_HEADER not in agent.FORWARDED_HEADERS
    # TLS to the load balancer, its certificate's name verified.
    assert integration.inputs["tlsConfig"] == {"serverNameToVerify": "inference.api.dev.example.com"}
    [link] = of_type(stack, "aws:apigatewayv2/vpcLink:VpcLink")
    assert integration.inputs["connectionType"] == "VPC_LINK"
    assert integration.inputs["connectionId"] == link.id
    assert integration.inputs["integrationUri"] == LISTENER
    [egress] = of_type(stack, "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule")
    assert (egress.inputs["cidrIpv4"], egress.inputs["fromPort"]) == ("10.12.0.0/16", 443)
    assert not of_type(stack, "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")


def test_stage_is_throttled_per_route_and_logged(stack: RecordedStack) -> None:
    [stage] = of_type(stack, STAGE)
    assert stage.inputs["defaultRouteSettings"]["throttlingRateLimit"] == 50
    limits = {s["routeKey"]: (s["throttlingRateLimit"], s["throttlingBurstLimit"])
              for s in stage.inputs["routeSettings"]}
    assert limits == {"GET /v1/models": (5, 10), "POST /partners/acme/v1/infer": (1, 2),
                      "POST /partners/globex/v1/infer": (2, 4)}
    [log_group] = of_type(stack, "aws:cloudwatch/logGroup:LogGroup")
    assert stage.inputs["accessLogSettings"]["destinationArn"] == log_group.outputs["arn"]
    assert log_group.inputs["kmsKeyId"] == LOGS_KEY and log_group.inputs["retentionInDays"] == 365
    fields = json.loads(ACCESS_LOG_FORMAT)
    assert {fields["callerSub"], fields["clientCertSubject"], fields["clientCertSerial"]} == {
        "$context.authorizer.claims.sub", "$context.identity.clientCert.subjectDN",
        "$context.identity.clientCert.serialNumber"}


def test_outputs_for_incident_response(args: SecureApiGatewayArgs) -> None:
    seen: dict[str, Any] = {}

    def program() -> None:
        gateway = SecureApiGateway("gateway", args)
        seen["routeKeys"] = gateway.route_keys
        pulumi.Output.all(gateway.api_id, gateway.stage_name, gateway.truststore_version,
                          gateway.domain_name).apply(lambda values: seen.update(
                              zip(("apiId", "stageName", "truststoreVersion", "domainName"),
                                  values, strict=True)))

    stack = record(program, project="zero-trust-ai", stack="test", config={}, region="eu-west-1")
    [api] = of_type(stack, API)
    assert seen["apiId"] == api.id and seen["stageName"] == "live"
    assert seen["truststoreVersion"] and seen["domainName"] == "api.dev.example.com"
    assert "POST /partners/acme/v1/infer" in seen["routeKeys"]


def test_the_api_rules_pass(stack: RecordedStack) -> None:
    rules = [api_default_endpoint_disabled.RULE, api_mtls_required.RULE, api_route_authorized.RULE,
             api_stage_access_logs.RULE, api_stage_throttled.RULE, api_tls_12.RULE,
             log_group_encrypted.RULE, no_unrestricted_ingress.RULE]
    checked = 0
    for resource in stack.resources:
        for rule in rules:
            if resource.type in rule.resource_types and rule.resource_check is not None:
                checked += 1
                assert rule.resource_check(as_rule_resource(resource), {}) == [], (
                    rule.name, resource.name)
    assert checked >= 10
    assert inference_path_tls_bound.inference_path_tls_bound(
        [as_rule_resource(resource) for resource in stack.resources], {}) == []


def test_prebuilt_truststore_must_contain_every_partner(args: SecureApiGatewayArgs,
                                                        ca_files: dict[str, Path],
                                                        tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(ca_files["acme"].read_bytes())
    stack = build(replace(args, truststore_path=str(bundle),
                          partners=[replace(args.partners[1])], client_ca_files=()))
    [obj] = of_type(stack, OBJECT)
    assert obj.inputs["content"].count("BEGIN CERTIFICATE") == 1
    with pytest.raises(ValueError, match="partner globex: its CA file"):
        build(replace(args, truststore_path=str(bundle)))


@pytest.mark.parametrize("change, message", [
    ({"routes": [ApiRoute("POST /v1/infer", ())]}, "has no scopes"),
    ({"routes": [ApiRoute("$default", ("a",))]}, "no \\$default"),
    ({"routes": [ApiRoute("POST /a", ("a",)), ApiRoute("POST /a", ("b",))]}, "declared twice"),
    ({"jwt_issuer": "http://issuer.example.com"}, "https:// URL"),
    ({"jwt_audiences": []}, "jwt_audiences"),
    ({"domain_name": "API.example.com"}, "lower-case DNS name"),
    ({"backend_cidr": "0.0.0.0/0"}, "private CIDR"),
    ({"log_retention_days": 10}, "log_retention_days"),
    ({"truststore_key_arn": "alias/aws/s3"}, "not an alias"),
    ({"partners": [ApiPartner("Acme Corp", ("p",), 1, 1, ca_file="x")]}, "partner 'Acme Corp'"),
    ({"partners": [ApiPartner("acme", (), 1, 1, ca_file="x")]}, "has no scopes"),
    ({"partners": [ApiPartner("acme", ("p",), 1, 1)]}, "ca_file is required"),
    ({"certificate_arn": None}, "exactly one of hosted_zone_id"),
    ({"hosted_zone_id": "Z0123456789ABCDEFGHIJ"}, "exactly one of hosted_zone_id"),
    ({"certificate_arn": None, "hosted_zone_id": "zone-1"}, "a Route 53 zone id"),
    ({"certificate_arn": "arn:aws:iam::111122223333:server-certificate/x"}, "an ACM certificate ARN"),
    ({"backend_path": "predict"}, "an absolute path"),
    ({"ownership_verification_certificate_arn": "proof"}, "an ACM certificate ARN"),
    ({"certificate_arn": None, "hosted_zone_id": "Z0123456789ABCDEFGHIJ",
      "ownership_verification_certificate_arn": "arn:aws:acm:eu-west-1:111122223333:certificate/p"},
     "only with certificate_arn"),
    ({"partners": [ApiPartner("acme", ("p",), 1, 1, paths=("POST -corp/v1/infer",), ca_file="x")]},
     "must be `METHOD /path`"),
    ({"routes": [ApiRoute("POST /v1/infer", ("a",), backend_path="x")]}, "is not an absolute path"),
    ({"backend_server_name": None}, "TLS certificate name is required"),
    ({"backend_server_name": "Inference.Example.com"}, "backend_server_name .*lower-case DNS name"),
])
def test_bad_input_is_refused(args: SecureApiGatewayArgs, change: dict[str, Any],
                              message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build(replace(args, **change))


def test_a_ca_file_without_a_ca_is_refused(args: SecureApiGatewayArgs, tmp_path: Path) -> None:
    empty = tmp_path / "empty.pem"
    empty.write_text("not a certificate\n")
    with pytest.raises(ValueError, match="no PEM CERTIFICATE block"):
        build(replace(args, client_ca_files=[str(empty)]))



def test_routes_reach_the_backend_path_they_name(args: SecureApiGatewayArgs) -> None:
    stack = build(replace(args, routes=[
        ApiRoute("POST /v1/infer", ("inference/invoke",)),
        ApiRoute("GET /v1/ready", ("inference/read",), backend_path="/health")]))
    integrations = {i.inputs["requestParameters"]["overwrite:path"]: i
                    for i in of_type(stack, "aws:apigatewayv2/integration:Integration")}
    assert set(integrations) == {"/predict", "/health"}
    targets = {r.inputs["routeKey"]: r.inputs["target"] for r in of_type(stack, ROUTE)}
    assert targets["GET /v1/ready"] == f"integrations/{integrations['/health'].id}"
    assert targets["POST /partners/acme/v1/infer"] == f"integrations/{integrations['/predict'].id}"


def test_a_hosted_zone_gets_a_dns_validated_certificate_and_an_alias(
        args: SecureApiGatewayArgs) -> None:
    stack = build(replace(args, certificate_arn=None, hosted_zone_id="Z0123456789ABCDEFGHIJ"))
    [certificate] = of_type(stack, "aws:acm/certificate:Certificate")
    assert (certificate.inputs["domainName"], certificate.inputs["validationMethod"],
            certificate.inputs["keyAlgorithm"]) == ("api.dev.example.com", "DNS", "RSA_2048")
    [validation] = of_type(stack, "aws:acm/certificateValidation:CertificateValidation")
    records = {r.name: r for r in of_type(stack, "aws:route53/record:Record")}
    option = certificate.outputs["domainValidationOptions"][0]
    check = records["gateway-certificate-validation"].inputs
    assert (check["zoneId"], check["name"], check["type"], check["records"]) == (
        "Z0123456789ABCDEFGHIJ", option["resourceRecordName"], "CNAME",
        [option["resourceRecordValue"]])
    assert validation.inputs["certificateArn"] == certificate.id
    # The domain uses the certificate only once ACM has issued it.
    [domain] = of_type(stack, DOMAIN)
    assert domain.inputs["domainNameConfiguration"]["certificateArn"] == certificate.id
    assert validation.urn in domain.dependencies
    alias = records["gateway-domain-alias"].inputs
    target = domain.outputs["domainNameConfiguration"]
    assert (alias["name"], alias["type"], alias["aliases"][0]["name"],
            alias["aliases"][0]["zoneId"]) == ("api.dev.example.com", "A",
                                               target["targetDomainName"], target["hostedZoneId"])


def test_an_existing_certificate_writes_no_dns(stack: RecordedStack) -> None:
    assert not of_type(stack, "aws:acm/certificate:Certificate")
    assert not of_type(stack, "aws:route53/record:Record")


def test_the_truststore_upload_waits_for_the_grants_it_needs(args: SecureApiGatewayArgs) -> None:
    errors: list[str] = []

    def program() -> None:
        gateway = SecureApiGateway("gateway", replace(args, publish_after_grants=True))
        grant = aws.kms.KeyPolicy("truststore-key-policy", key_id="k", policy="{}")
        gateway.publish_after([grant])
        try:
            gateway.publish_after([grant])
        except ValueError as error:
            errors.append(str(error))
        ungated = SecureApiGateway("plain", replace(args, domain_name="api2.dev.example.com"))
        try:
            ungated.publish_after([grant])
        except ValueError as error:
            errors.append(str(error))

    stack = record(program, project="zero-trust-ai", stack="test", config={}, region="eu-west-1")
    bundles = {r.name: r for r in of_type(stack, OBJECT)}
    [grant] = of_type(stack, "aws:kms/keyPolicy:KeyPolicy")
    assert grant.urn in bundles["gateway-truststore-bundle"].dependencies
    assert grant.urn not in bundles["plain-truststore-bundle"].dependencies
    assert errors == ["publish_after: the truststore already waits for its grants",
                      "publish_after: the gateway was declared without publish_after_grants"]


def test_an_imported_certificate_carries_its_ownership_proof(args: SecureApiGatewayArgs) -> None:
    proof = "arn:aws:acm:eu-west-1:111122223333:certificate/ownership"
    stack = build(replace(args, ownership_verification_certificate_arn=proof))
    [domain] = of_type(stack, DOMAIN)
    assert domain.inputs["domainNameConfiguration"]["ownershipVerificationCertificateArn"] == proof


def test_the_prod_access_log_group_cannot_be_deleted(args: SecureApiGatewayArgs) -> None:
    from ztpolicy.rules.logs.log_group_deletion_protected import log_group_deletion_protected

    def rule_view(stack: RecordedStack) -> Resource:
        [group] = of_type(stack, "aws:cloudwatch/logGroup:LogGroup")
        return Resource(type=group.type, name=group.name, urn=group.urn, props=group.inputs,
                        protect=group.protect)

    prod = rule_view(build(replace(args, environment="prod", protect=True)))
    assert prod.props["deletionProtectionEnabled"] is True and prod.protect
    assert log_group_deletion_protected(prod, {}) == []
    # Unprotected (dev's default): the rule catches both gaps once the stack counts as production.
    dev = rule_view(build(args))
    assert len(log_group_deletion_protected(dev, {"protectedEnvironments": ["dev"]})) == 2
def test_a_plaintext_backend_must_be_named(args: SecureApiGatewayArgs) -> None:
    stack = build(replace(args, backend_server_name=None, allow_plaintext_backend=True))
    [integration] = of_type(stack, "aws:apigatewayv2/integration:Integration")
    assert "tlsConfig" not in integration.inputs
    # Named or not, the pack still refuses it (not suppressible).
    [finding] = inference_path_tls_bound.inference_path_tls_bound(
        [as_rule_resource(resource) for resource in stack.resources], {})
    assert finding.urn == integration.urn and "without TLS" in finding.message


def test_the_enclave_trust_binds_each_client_to_its_own_cas(args: SecureApiGatewayArgs,
                                                           ca_files: dict[str, Path]) -> None:
    seen: dict[str, Any] = {}

    def program() -> None:
        gateway = SecureApiGateway("gateway", args)
        gateway.enclave_trust("https://issuer.example.com", {
            FIRST_PARTY: "first-party-client-id", "acme": pulumi.Output.from_input("acme-client-id"),
        }, {FIRST_PARTY: ["inference/invoke"], "acme": ["partner/acme"]}).apply(
            lambda trust: seen.update(trust))

    record(program, project="zero-trust-ai", stack="test", config={}, region="eu-west-1")
    assert seen["issuer"] == "https://issuer.example.com"
    # Each client with the routes whose scopes it is given, and no other: the enclave refuses it
    # any other route even if Cognito later gives it another route's scope.
    assert seen["clients"] == {
        "first-party-client-id": {"name": FIRST_PARTY, "ca_issuers": ["CN=first-party test CA"],
                                  "routes": ["POST /v1/infer"]},
        "acme-client-id": {"name": "acme", "ca_issuers": ["CN=acme test CA"],
                           "routes": ["POST /partners/acme/v1/infer"]}}
    assert seen["routes"]["POST /partners/acme/v1/infer"] == ["partner/acme"]
    assert seen["routes"]["POST /v1/infer"] == ["inference/invoke"]
    # What the gateway exports is what the enclave's trust configuration accepts.
    from enclave_images.enclave.auth import TrustConfig
    from tests.support.token_issuer import StandInIssuer
    trust = TrustConfig.from_dict({"version": 2, "jwks": StandInIssuer().jwks(), **seen})
    assert set(trust.clients) == {"first-party-client-id", "acme-client-id"}
    assert trust.clients["acme-client-id"].routes == {"POST /partners/acme/v1/infer"}


def test_the_enclave_trust_refuses_a_client_without_its_own_ca(args: SecureApiGatewayArgs,
                                                               ca_files: dict[str, Path]) -> None:
    def program(principals: dict[str, str], gateway_args: SecureApiGatewayArgs,
                scopes: dict[str, list[str]] | None = None) -> None:
        SecureApiGateway("gateway", gateway_args).enclave_trust(
            "https://issuer.example.com", principals,
            scopes or {FIRST_PARTY: ["inference/invoke"], "acme": ["partner/acme"]})

    with pytest.raises(ValueError, match="principal 'initech' has no CA file"):
        record(lambda: program({"initech": "id"}, args), project="zero-trust-ai", stack="test",
               config={}, region="eu-west-1")
    shared = replace(args, client_ca_files=[str(ca_files["acme"])])
    with pytest.raises(ValueError, match="share the CA name 'CN=acme test CA'"):
        record(lambda: program({FIRST_PARTY: "a", "acme": "b"}, shared), project="zero-trust-ai",
               stack="test", config={}, region="eu-west-1")
    with pytest.raises(ValueError, match="principal 'acme' is given no scope of any route"):
        record(lambda: program({"acme": "b"}, args, {"acme": ["partner/other"]}),
               project="zero-trust-ai", stack="test", config={}, region="eu-west-1")


def _scp_statements() -> dict[str, dict[str, Any]]:
    """Every statement of the SCP document(s) in docs/scp-images-and-sessions.md, by Sid (each
    block a JSON policy within the SCP size limit)."""
    text = (ROOT / "docs" / "scp-images-and-sessions.md").read_text(encoding="utf-8")
    statements: dict[str, dict[str, Any]] = {}
    for block in re.findall(r"```json\n(.*?)\n```", text, re.S):
        policy = json.loads(block)
        assert len(json.dumps(policy, separators=(",", ":"))) <= 5120
        statements.update({statement["Sid"]: statement for statement in policy["Statement"]})
    return statements


def _denied(statement: dict[str, Any], action: str, resource: str, principal: str,
            resource_tags: dict[str, str] | None = None) -> bool:
    """Whether the Deny statement applies (its conditions read as written: ArnNotLike on the
    principal, StringEquals on resource tags)."""
    actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
    resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
    if action not in actions or not any(fnmatchcase(resource, pattern) for pattern in resources):
        return False
    condition = statement.get("Condition", {})
    excepted = condition.get("ArnNotLike", {}).get("aws:PrincipalArn", [])
    excepted = excepted if isinstance(excepted, list) else [excepted]
    if any(fnmatchcase(principal, pattern) for pattern in excepted):
        return False
    for key, value in condition.get("StringEquals", {}).items():
        tag = key.removeprefix("aws:ResourceTag/")
        if (resource_tags or {}).get(tag) != value:
            return False
    return True


def test_the_scp_keeps_integrations_vpc_links_and_client_secrets_with_the_deploying_role() -> None:
    # Anyone with an integration on the VPC link and a client's token calls the enclave as that
    # client without mutual TLS (the enclave sees only headers): both halves stay with the deployer.
    from tests.components.test_api_identity import ARGS as IDENTITY_ARGS
    from tests.components.test_api_identity import build as build_identity
    from tests.support.iam_catalog import action_problem, condition_key_problem
    statements = _scp_statements()
    api = statements["ApiIntegrationsAndVpcLinksOnlyThroughTheDeployment"]
    imports = statements["ApiImportsOnlyThroughTheDeployment"]
    secrets = statements["ApiClientSecretsAndScopesOnlyThroughTheDeployment"]
    admin, deployer = ("arn:aws:iam::111122223333:role/Admin",
                       "arn:aws:iam::111122223333:role/zero-trust-ai-deployer")
    region = "arn:aws:apigateway:eu-west-1::"
    for action, path in (("apigateway:POST", "/apis/a1b2c3/integrations"),
                         ("apigateway:PATCH", "/apis/a1b2c3/integrations/xyz789"),
                         ("apigateway:PUT", "/restapis/r1/resources/res1/methods/POST/integration"),
                         ("apigateway:POST", "/restapis"), ("apigateway:POST", "/vpclinks")):
        assert _denied(api, action, region + path, admin), (action, path)
        assert not _denied(api, action, region + path, deployer), (action, path)
    for path in ("/apis", "/apis/a1b2c3", "/restapis/r1"):
        assert _denied(imports, "apigateway:PUT", region + path, admin)
    # Creating an HTTP API, its routes and stages stays open (none of them reaches the VPC link).
    for path in ("/apis", "/apis/a1b2c3/routes", "/apis/a1b2c3/stages"):
        assert not any(_denied(s, "apigateway:POST", region + path, admin) for s in (api, imports))
    [pool] = [r for r in build_identity(IDENTITY_ARGS).resources if r.type == "aws:cognito/userPool:UserPool"]
    pool_arn = "arn:aws:cognito-idp:eu-west-1:111122223333:userpool/eu-west-1_TestPool1"
    for action in ("DescribeUserPoolClient", "AddUserPoolClientSecret", "UpdateUserPoolClient",
                   "ListUserPoolClientSecrets", "UntagResource"):
        assert _denied(secrets, f"cognito-idp:{action}", pool_arn, admin, pool.inputs["tags"]), action
        assert not _denied(secrets, f"cognito-idp:{action}", pool_arn, deployer, pool.inputs["tags"])
    assert not _denied(secrets, "cognito-idp:DescribeUserPoolClient", pool_arn, admin, {"project": "other"})
    # Every action and condition key exists in the IAM service authorization reference.
    for statement in (api, imports, secrets):
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert [problem for a in actions if (problem := action_problem(a))] == []
        keys = [key for block in statement["Condition"].values() for key in block]
        assert [problem for k in keys if (problem := condition_key_problem(k))] == []


# -- the deploy runs the checks of `ztai truststore check` -----------------------------------------
def test_the_gateway_leaves_a_placeholder_ca_to_the_stack_config(args: SecureApiGatewayArgs) -> None:
    # The stack configuration's placeholder list names it (tests/components/test_stack_config.py);
    # the gateway repeating it would print every placeholder CA twice.
    placeholder = ROOT / "stacks" / "truststore" / "placeholder-first-party-ca.pem"
    recorded = build(replace(args, client_ca_files=[str(placeholder)]))
    assert [w for w in recorded.warnings if "placeholder" in w] == []


@pytest.mark.parametrize("flaw, message", [
    ("expired", "certificate 0: expired on "),
    ("rsa-1024", "certificate 0: RSA-1024 key: at least RSA-2048 required"),
    ("leaf", "certificate 0: not a CA certificate"),
])
def test_the_deploy_refuses_what_check_refuses(args: SecureApiGatewayArgs, tmp_path: Path, flaw: str,
                                               message: str) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    from tests.components.test_truststore import make_certificate

    now = dt.datetime.now(dt.UTC)
    certificate = {
        "expired": lambda: make_certificate("old CA", not_before=now - dt.timedelta(days=400),
                                            not_after=now - dt.timedelta(days=1)),
        "rsa-1024": lambda: make_certificate("weak CA", key=rsa.generate_private_key(
            public_exponent=65537, key_size=1024)),
        "leaf": lambda: make_certificate("a leaf", ca=False),
    }[flaw]()
    path = tmp_path / f"{flaw}.pem"
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    with pytest.raises(ValueError, match=f"CA file {re.escape(str(path))}: {message}"):
        build(replace(args, client_ca_files=[str(path)]))


def test_a_prebuilt_truststore_with_a_duplicate_is_refused(args: SecureApiGatewayArgs,
                                                           ca_files: dict[str, Path], tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(ca_files["acme"].read_bytes() * 2)
    with pytest.raises(ValueError, match=r"certificate 1: same certificate as #0"):
        build(replace(args, truststore_path=str(bundle), partners=[], client_ca_files=()))
