"""Secure API gateway (and its partners): the only door to the inference fleet.

**API type: HTTP API (API Gateway v2), not REST API.** The gateway's job is to admit a caller
that presents both a client certificate from an admitted CA (mutual TLS) and a JWT from the
identity provider with the scopes of the route it calls. HTTP APIs validate JWTs natively
(`JWT` authorizer: issuer, audiences, and `authorization_scopes` per route), with no code of ours in
the request path; a REST API validates JWTs only through a Cognito authorizer (one user pool, no
external OIDC issuer) or a Lambda authorizer (our code, our bugs, our cold starts, in front of every
request). HTTP APIs also give per-route throttling on the stage, a VPC link to a private NLB, and
`disable_execute_api_endpoint`. What they do not have is AWS WAF and usage plans (per-API-key
quotas). What compensates, for this gateway:

- no anonymous traffic reaches a route: the TLS handshake refuses any client without a
  certificate chaining to the truststore, before a request is parsed, and the JWT authorizer
  refuses any request without a valid token carrying the route's scopes;
- rate limits: stage-wide defaults, per-route limits, and per-partner limits expressed as the
  partner's own routes (`/partners/<name>/...`, each with its own throttling); HTTP APIs have no
  per-client (per-token) limit, so a partner is limited per route it owns;
- nothing public behind the gateway: the integration is private (VPC link to the internal NLB);
- the default `execute-api` endpoint is disabled, so neither mTLS nor the domain can be bypassed.

If WAF's managed rule groups become a requirement (e.g. body inspection), the alternative is a REST
API with a Lambda authorizer, or CloudFront + WAF in front (CloudFront cannot forward client
certificates to API Gateway mTLS, so mTLS would then move to CloudFront's viewer mTLS).

Secure by default, as the component declares it:

- custom domain, REGIONAL endpoint, `TLS_1_2` security policy. The certificate: with
  `hosted_zone_id`, a public ACM certificate (RSA 2048) validated by DNS in that Route 53 zone, and
  an alias record of the domain to the API's regional endpoint; or an existing ACM certificate
  (`certificate_arn`, then the DNS record is the operator's: output `domain_target`). An imported
  or private-CA certificate additionally needs a public ACM certificate proving the domain's
  ownership for mTLS (`ownership_verification_certificate_arn`);
  mutual TLS with the truststore at `s3://<bucket>/<key>` pinned to the truststore object's S3
  version (`version_id`): a new bundle is a new version, and the domain follows only when this
  component is updated (a partner removed from the bundle is no longer admitted after that update);
- the truststore bucket: private (public access blocked, ownership enforced), versioned, encrypted
  with the customer managed key passed in, TLS-only and that-key-only bucket policy. The bundle is
  built here from the partners' and first-party CA files (CERTIFICATE blocks only, partner-name
  order), or taken as built by `ztai truststore build` (`truststore_path`); either way it passes
  the checks of `ztai truststore check` (components/truststore.py: CA certificates only, key and
  signature strength, expiry, no duplicate), whose warnings (a shipped placeholder CA, expiry
  within 30 days) are the deploy's warnings. Not verified against AWS: API Gateway reads the
  truststore with the deploying caller's credentials, which then need `s3:GetObject*` on it and
  `kms:Decrypt` on the key;
- JWT authorizer (`$request.header.Authorization`) with issuer and audiences from the arguments;
  every route `authorization_type="JWT"` with that authorizer and at least one scope (a route
  without scopes is refused);
- a VPC link in the given private subnets, with its own security group (no ingress; egress to the
  backend CIDR on the backend port only), and `HTTP_PROXY` integrations to the NLB listener that
  rewrite each route's path to the agent's (`backend_path`), over TLS verified against
  `backend_server_name` (the NLB's TLS listener; a plain-text backend is refused unless
  `allow_plaintext_backend` names the risk), and that write what the enclave checks again
  (`ENCLAVE_AUTH_HEADERS`: the route key and the client certificate's issuer, subject and serial)
  and the gateway's request id, which the parent agent's inference event carries
  (`REQUEST_ID_HEADERS`, docs/inference-events.md);
- `enclave_trust(...)`: what the enclave image must bake to verify requests itself
  (enclave_images/enclave/auth.py): the issuer, each client id bound to its CAs' names and to
  the routes whose scopes it is given, each route's scopes. The gateway is not the only door AWS
  offers (a second API can reuse the VPC link with no authorizer); the enclave re-checks the token,
  the route and the CA name, but a CA name in a header is not proof of mutual TLS: a relay holding
  a client's token can write it (docs/known-gaps.md).
- a stage with default throttling, per-route throttling, and JSON access logs (request id, caller
  `sub` and `client_id` claims, client certificate subject/serial/validity, route, status,
  latencies) to a CMK-encrypted log group with a retention.

Outputs for incident response (the playbooks throttle a route through the stage's route settings,
or pause the API by removing the API mapping): `api_id`, `stage_name`, `route_keys`, `domain_name`,
`truststore_uri`, `truststore_version`, `log_group_name`.

The issuer and its clients are arguments: components/api_identity.py's `CognitoApiIdentity` (the
default, with one client-credentials app client per partner) or an external OIDC issuer.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pulumi
import pulumi_aws as aws
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from components.aws_facts import LOG_RETENTION_DAYS
from components.buckets import private_bucket
from components.certificates import dns_validated_certificate
from components.truststore import (
    PARTNER_NAME,
    PARTNER_NAME_RULE,
    Report,
    TruststoreError,
    ca_file_problems,
    check_bundle,
)

TRUSTSTORE_KEY = "truststore/truststore.pem"
SECURITY_POLICY = "TLS_1_2"
JWT_IDENTITY_SOURCE = "$request.header.Authorization"
PARTNER_PREFIX = "/partners"
# What the integration writes for the enclave (enclave_images/enclave/auth.py re-verifies every
# request; the names are its *_HEADER constants). `overwrite:` replaces a header the caller sent
# under the same name, so a client cannot claim another certificate's issuer at our gateway
# (`append:` would keep the caller's value first). Authorization is one of HTTP APIs' reserved
# headers, which no mapping may name: the HTTP proxy forwards it unchanged, and the enclave
# verifies it. The clientCert variables are set on a mutual-TLS custom domain only.
# https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-parameter-mapping.html
ENCLAVE_AUTH_HEADERS = {
    "overwrite:header.x-ztai-route": "$context.routeKey",
    "overwrite:header.x-ztai-client-cert-issuer": "$context.identity.clientCert.issuerDN",
    "overwrite:header.x-ztai-client-cert-subject": "$context.identity.clientCert.subjectDN",
    "overwrite:header.x-ztai-client-cert-serial": "$context.identity.clientCert.serialNumber",
}
# The gateway's id of the request, for the parent agent's inference event
# (enclave_images/parent/agent.py REQUEST_ID_HEADER): the same value as the access log's
# `requestId`, so the two records of one request join on it, and a request that reached the
# agent without it did not come through this integration. Written over any caller's header of
# that name, like the headers above; the enclave does not read it.
REQUEST_ID_HEADERS = {"overwrite:header.x-ztai-request-id": "$context.requestId"}
FIRST_PARTY = "first-party"  # the principal name of `client_ca_files` in `enclave_trust`
# Principal names the program gives its own clients: no partner may take one.
RESERVED_PARTNER_NAMES = frozenset({FIRST_PARTY})
# Everything the incident responders need to attribute a request, one JSON object per request.
ACCESS_LOG_FORMAT = json.dumps({
    "requestId": "$context.requestId",
    "requestTime": "$context.requestTimeEpoch",
    "sourceIp": "$context.identity.sourceIp",
    "callerSub": "$context.authorizer.claims.sub",
    "clientId": "$context.authorizer.claims.client_id",
    "clientCertSubject": "$context.identity.clientCert.subjectDN",
    "clientCertIssuer": "$context.identity.clientCert.issuerDN",
    "clientCertSerial": "$context.identity.clientCert.serialNumber",
    "clientCertNotAfter": "$context.identity.clientCert.validity.notAfter",
    "domainName": "$context.domainName",
    "routeKey": "$context.routeKey",
    "status": "$context.status",
    "responseLatency": "$context.responseLatency",
    "integrationLatency": "$context.integrationLatency",
    # $context.integrationStatus is filled for Lambda integrations only; this is the proxy's.
    "integrationStatus": "$context.integration.status",
    "authorizerError": "$context.authorizer.error",
    "error": "$context.error.message",
}, sort_keys=True)

_ROUTE_KEY = re.compile(r"(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS|ANY) (/[A-Za-z0-9._~{}+/-]*)")
_SCOPE = re.compile(r"[\x21\x23-\x5B\x5D-\x7E]{1,256}")  # RFC 6749 scope-token
_PARTNER_NAME = PARTNER_NAME  # goes into paths and resource names; shared with `ztai truststore build`
_DOMAIN = re.compile(r"(?=.{1,253}\Z)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")
_BACKEND_PATH = re.compile(r"/[A-Za-z0-9._~/-]*")
_STAGE = re.compile(r"[A-Za-z0-9_-]{1,128}")
_HOSTED_ZONE = re.compile(r"Z[A-Z0-9]{1,31}")
_CERTIFICATE_ARN = re.compile(r"arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[A-Za-z0-9-]+")
KEY_ARN_PATTERN = re.compile(r"arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+")


@dataclass(frozen=True)
class ApiRoute:
    """One route of the API.

    route_key: `METHOD /path` (`ANY` allowed; no `$default`: every route is named).
    scopes: OAuth scopes the caller's token must carry (any one of them); at least one.
    rate_limit, burst_limit: this route's throttling (requests per second, burst); default None,
        the stage's defaults.
    backend_path: the path the request reaches the fleet's agent on; default None, the gateway's
        `backend_path`.
    """

    route_key: str
    scopes: tuple[str, ...]
    rate_limit: float | None = None
    burst_limit: int | None = None
    backend_path: str | None = None


@dataclass(frozen=True)
class ApiPartner:
    """A third party (a partner): its CA in the truststore, its scopes, its routes and its rate limit.

    name: lower-case letters, digits, `-`; its routes live under `/partners/<name>`.
    scopes: the scopes its OAuth client is issued; every partner route requires them.
    rate_limit, burst_limit: applied to each of the partner's routes.
    paths: `METHOD /path` under the partner prefix; default `POST /v1/infer`.
    ca_file: the partner's client-certificate CA (PEM). Required unless `truststore_path` is given,
        in which case its certificates must be in that bundle.
    """

    name: str
    scopes: tuple[str, ...]
    rate_limit: float
    burst_limit: int
    paths: tuple[str, ...] = ("POST /v1/infer",)
    ca_file: str | None = None

    def routes(self) -> list[ApiRoute]:
        routes = []
        for path in self.paths:
            method, _, rest = path.partition(" ")
            routes.append(ApiRoute(f"{method} {PARTNER_PREFIX}/{self.name}{rest}", self.scopes,
                                   self.rate_limit, self.burst_limit))
        return routes


@dataclass
class SecureApiGatewayArgs:
    """Inputs of `SecureApiGateway`; every default is the secure one.

    environment, owner: tags and names.
    domain_name: the custom domain (lower case); the only way in.
    hosted_zone_id: the public Route 53 zone of `domain_name`: the certificate is requested and
        validated there, and the domain's alias record written. Exactly one of this and
        `certificate_arn`.
    certificate_arn: an existing ACM certificate for `domain_name`, in the API's region.
    ownership_verification_certificate_arn: with `certificate_arn` imported into ACM or issued by
        ACM Private CA, API Gateway requires, for mutual TLS, a public ACM certificate for the
        domain proving its ownership; default None (an ACM-issued public certificate needs none).
    jwt_issuer: `https://` issuer URL of the identity provider (e.g. Cognito:
        `https://cognito-idp.<region>.amazonaws.com/<pool id>`).
    jwt_audiences: accepted `aud` (or, for Cognito access tokens, `client_id`) values; at least one.
    routes: first-party routes; each with scopes. With `partners`, at least one route in all.
    vpc_id, subnet_ids: where the VPC link's interfaces live (private subnets of the segment).
    backend_cidr, backend_port: where the VPC link may connect: the NLB's subnets and listener port.
    nlb_listener_arn: the enclave fleet's internal NLB listener.
    truststore_key_arn: customer managed key of the truststore bucket.
    logs_key_arn: customer managed key of the access log group (its policy must let
        logs.<region>.amazonaws.com use it).
    partners: third parties; default none.
    client_ca_files: CA files of first-party clients, added to the truststore; default none.
    truststore_path: a bundle built by `ztai truststore build`; default None: built here from
        `client_ca_files` and the partners' `ca_file`s.
    stage_name: default `live`.
    throttling_rate_limit, throttling_burst_limit: stage defaults for every route; default 50 rps,
        burst 100.
    log_retention_days: a CloudWatch retention; default 365.
    backend_server_name: the name the NLB's TLS listener certificate carries; the integration
        verifies it (and sends it as SNI), so the token and the prompt cross the VPC encrypted.
        Required unless `allow_plaintext_backend`.
    allow_plaintext_backend: accept a plain TCP listener (bearer tokens and prompts in clear
        inside the VPC, readable by anyone who can mirror traffic). Default False.
    backend_path: the agent's inference path every route is rewritten to unless the route names
        its own; default `/predict` (enclave_images/parent/agent.py).
    publish_after_grants: the truststore upload waits until `publish_after` names what it needs
        (the key policy granting the deploying role the truststore key through S3); call it
        exactly once, or the deployment never uploads. Default False.
    protect: Pulumi `protect` on the truststore bucket and the log group, and deletion protection
        on the log group. Default False.
    """

    environment: str
    owner: str
    domain_name: str
    jwt_issuer: pulumi.Input[str]
    jwt_audiences: Sequence[pulumi.Input[str]]
    routes: Sequence[ApiRoute]
    vpc_id: pulumi.Input[str]
    subnet_ids: Sequence[pulumi.Input[str]]
    backend_cidr: str
    backend_port: int
    nlb_listener_arn: pulumi.Input[str]
    truststore_key_arn: pulumi.Input[str]
    logs_key_arn: pulumi.Input[str]
    hosted_zone_id: str | None = None
    certificate_arn: pulumi.Input[str] | None = None
    ownership_verification_certificate_arn: pulumi.Input[str] | None = None
    partners: Sequence[ApiPartner] = ()
    client_ca_files: Sequence[str] = ()
    truststore_path: str | None = None
    stage_name: str = "live"
    throttling_rate_limit: float = 50.0
    throttling_burst_limit: int = 100
    log_retention_days: int = 365
    backend_server_name: pulumi.Input[str] | None = None
    allow_plaintext_backend: bool = False
    backend_path: str = "/predict"
    publish_after_grants: bool = False
    protect: bool = False
    tags: Mapping[str, str] = field(default_factory=dict)
    # The truststore bucket's name (`truststore_bucket_name`), so the key can admit the deployer's
    # upload from its creation; None: auto-named.
    truststore_bucket_name: pulumi.Input[str] | None = None


class SecureApiGateway(pulumi.ComponentResource):
    """HTTP API behind a mutual-TLS custom domain. Type token `zero-trust-ai:api:SecureApiGateway`."""

    api: aws.apigatewayv2.Api
    stage: aws.apigatewayv2.Stage
    domain: aws.apigatewayv2.DomainName

    def __init__(self, name: str, args: SecureApiGatewayArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        routes = _validate(args)
        bundle = truststore_bundle(args)
        for warning in truststore_warnings(args):  # as `ztai truststore check` reports them
            pulumi.log.warn(warning)
        super().__init__("zero-trust-ai:api:SecureApiGateway", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = {"data-classification": "internal", "ztai:segment": "inference", **args.tags}

        # -- truststore ------------------------------------------------------------------------
        store = private_bucket(f"{name}-truststore", key_arn=args.truststore_key_arn, tags=tags,
                               bucket_name=args.truststore_bucket_name,
                               protect=args.protect, parent=self)
        bucket = store.bucket
        self.truststore_bucket_arn: pulumi.Output[str] = bucket.arn
        # A version id exists only once versioning is on. With publish_after_grants the upload
        # also waits for the resources given to publish_after (the key policy that lets the
        # deploying role encrypt under the truststore key); the domain waits for the upload.
        waits: pulumi.Input[Sequence[pulumi.Input[pulumi.Resource]]] = [
            store.versioning, store.encryption, store.policy]
        self._publish_gate: asyncio.Future[list[pulumi.Resource]] | None = None
        if args.publish_after_grants:
            self._publish_gate = asyncio.get_event_loop().create_future()
            gate: pulumi.Output[list[pulumi.Resource]] = pulumi.Output.from_input(
                self._publish_gate)
            waits = gate.apply(lambda after: [store.versioning, store.encryption, store.policy,
                                              *after])
        truststore = aws.s3.BucketObjectv2(
            f"{name}-truststore-bundle", bucket=bucket.id, key=TRUSTSTORE_KEY, content=bundle,
            content_type="application/x-pem-file", server_side_encryption="aws:kms",
            kms_key_id=args.truststore_key_arn, bucket_key_enabled=True, tags=tags,
            opts=pulumi.ResourceOptions(parent=bucket, depends_on=waits))
        self.truststore_uri: pulumi.Output[str] = pulumi.Output.concat(
            "s3://", bucket.bucket, "/", TRUSTSTORE_KEY)
        self.truststore_version: pulumi.Output[str] = truststore.version_id

        # -- certificate and domain -------------------------------------------------------------
        certificate_arn: pulumi.Input[str] = (
            dns_validated_certificate(name, args.domain_name, str(args.hosted_zone_id), tags, self)
            if args.certificate_arn is None
            else args.certificate_arn)  # _validate: exactly one of the two is given
        self.domain = aws.apigatewayv2.DomainName(
            f"{name}-domain", domain_name=args.domain_name,
            domain_name_configuration=aws.apigatewayv2.DomainNameDomainNameConfigurationArgs(
                certificate_arn=certificate_arn, endpoint_type="REGIONAL",
                ownership_verification_certificate_arn=args.ownership_verification_certificate_arn,
                security_policy=SECURITY_POLICY),
            mutual_tls_authentication=aws.apigatewayv2.DomainNameMutualTlsAuthenticationArgs(
                truststore_uri=self.truststore_uri, truststore_version=self.truststore_version),
            tags=tags, opts=child)
        target = self.domain.domain_name_configuration.apply(_target)
        if args.hosted_zone_id is not None:
            aws.route53.Record(
                f"{name}-domain-alias", zone_id=args.hosted_zone_id, name=args.domain_name,
                type="A", aliases=[aws.route53.RecordAliasArgs(
                    name=target.apply(lambda t: t[0]), zone_id=target.apply(lambda t: t[1]),
                    evaluate_target_health=False)],
                opts=pulumi.ResourceOptions(parent=self.domain))

        # -- API, authorizer, private integration ----------------------------------------------
        api_name = f"zero-trust-ai-{args.environment}-{name}"
        self.api = aws.apigatewayv2.Api(
            f"{name}-api", name=api_name, protocol_type="HTTP",
            description="Inference API: mutual TLS on the custom domain, JWT on every route",
            # The execute-api endpoint has no mTLS: leaving it on bypasses the truststore.
            disable_execute_api_endpoint=True, tags=tags, opts=child)
        in_api = pulumi.ResourceOptions(parent=self.api)
        authorizer = aws.apigatewayv2.Authorizer(
            f"{name}-jwt", api_id=self.api.id, name=f"{api_name}-jwt", authorizer_type="JWT",
            identity_sources=[JWT_IDENTITY_SOURCE],
            jwt_configuration=aws.apigatewayv2.AuthorizerJwtConfigurationArgs(
                issuer=args.jwt_issuer, audiences=list(args.jwt_audiences)),
            opts=in_api)

        self.vpc_link_security_group = link_group = aws.ec2.SecurityGroup(
            f"{name}-vpc-link-sg", vpc_id=args.vpc_id,
            description="API Gateway VPC link: nothing in, the backend listener out",
            tags={**tags, "Name": f"{name}-vpc-link"}, opts=child)
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-vpc-link-out", security_group_id=link_group.id, ip_protocol="tcp",
            from_port=args.backend_port, to_port=args.backend_port, cidr_ipv4=args.backend_cidr,
            description="the inference load balancer", tags=tags,
            opts=pulumi.ResourceOptions(parent=link_group))
        vpc_link = aws.apigatewayv2.VpcLink(
            f"{name}-vpc-link", name=f"{api_name}-link", subnet_ids=list(args.subnet_ids),
            security_group_ids=[link_group.id], tags=tags, opts=child)
        # One integration per backend path: the route's public path is rewritten to the agent's
        # (a partner's `/partners/<name>/v1/infer` reaches the same `/predict` as first-party).
        integrations: dict[str, aws.apigatewayv2.Integration] = {}
        for path in sorted({route.backend_path or args.backend_path for route in routes}):
            integrations[path] = aws.apigatewayv2.Integration(
                f"{name}-backend{_slug('ANY ' + path)[3:]}", api_id=self.api.id,
                integration_type="HTTP_PROXY", integration_method="ANY",
                integration_uri=args.nlb_listener_arn, connection_type="VPC_LINK",
                connection_id=vpc_link.id, payload_format_version="1.0",
                request_parameters={"overwrite:path": path, **ENCLAVE_AUTH_HEADERS,
                                    **REQUEST_ID_HEADERS},
                # TLS to the private backend, its certificate's host name verified (and sent as
                # SNI): https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-properties-apigatewayv2-integration-tlsconfig.html
                tls_config=(aws.apigatewayv2.IntegrationTlsConfigArgs(
                    server_name_to_verify=args.backend_server_name)
                            if args.backend_server_name is not None else None),
                description=f"private integration to the inference fleet's internal NLB, {path}",
                opts=in_api)

        created: list[pulumi.Resource] = []
        for route in routes:
            integration = integrations[route.backend_path or args.backend_path]
            created.append(aws.apigatewayv2.Route(
                f"{name}-route-{_slug(route.route_key)}", api_id=self.api.id,
                route_key=route.route_key, authorization_type="JWT", authorizer_id=authorizer.id,
                authorization_scopes=list(route.scopes),
                target=pulumi.Output.concat("integrations/", integration.id), opts=in_api))

        # -- stage, logs, mapping --------------------------------------------------------------
        # The logs key's owner lets CloudWatch Logs use it for groups under this prefix.
        self.log_group_prefix = f"/aws/apigateway/{api_name}"
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-access-logs", name=self.log_group_prefix,
            retention_in_days=args.log_retention_days, kms_key_id=args.logs_key_arn,
            # The access log is evidence: in prod neither DeleteLogGroup nor the engine removes it.
            deletion_protection_enabled=args.protect,
            tags=tags, opts=pulumi.ResourceOptions(parent=self, protect=args.protect))
        self.log_group = log_group  # subscribed to the SIEM stream (components/siem_stream.py)
        self.stage = aws.apigatewayv2.Stage(
            f"{name}-stage", api_id=self.api.id, name=args.stage_name, auto_deploy=True,
            default_route_settings=aws.apigatewayv2.StageDefaultRouteSettingsArgs(
                throttling_rate_limit=args.throttling_rate_limit,
                throttling_burst_limit=args.throttling_burst_limit,
                detailed_metrics_enabled=True),
            route_settings=[aws.apigatewayv2.StageRouteSettingArgs(
                route_key=route.route_key,
                throttling_rate_limit=(route.rate_limit if route.rate_limit is not None
                                       else args.throttling_rate_limit),
                throttling_burst_limit=(route.burst_limit if route.burst_limit is not None
                                        else args.throttling_burst_limit),
                detailed_metrics_enabled=True)
                for route in routes if route.rate_limit is not None or route.burst_limit is not None],
            access_log_settings=aws.apigatewayv2.StageAccessLogSettingsArgs(
                destination_arn=log_group.arn, format=ACCESS_LOG_FORMAT),
            tags=tags,
            # Route settings name routes, which must exist first.
            opts=pulumi.ResourceOptions(parent=self.api, depends_on=created))
        aws.apigatewayv2.ApiMapping(
            f"{name}-mapping", api_id=self.api.id, domain_name=self.domain.id,
            stage=self.stage.id, opts=child)

        self.api_id: pulumi.Output[str] = self.api.id
        self.stage_name: pulumi.Output[str] = self.stage.name
        self.route_keys: list[str] = [route.route_key for route in routes]
        self.domain_name: pulumi.Output[str] = self.domain.domain_name
        self.domain_target: pulumi.Output[str] = target.apply(lambda t: t[0])
        self.log_group_name: pulumi.Output[str] = log_group.name
        self.route_scopes: dict[str, list[str]] = {route.route_key: list(route.scopes)
                                                   for route in routes}
        self._ca_issuers = {FIRST_PARTY: [dn for path in args.client_ca_files
                                          for dn in ca_subject_names(path)],
                            **{partner.name: ca_subject_names(partner.ca_file)
                               for partner in args.partners if partner.ca_file is not None}}
        self.register_outputs({
            "truststoreBucketArn": self.truststore_bucket_arn,
            "apiId": self.api_id, "stageName": self.stage_name, "routeKeys": self.route_keys,
            "domainName": self.domain_name, "domainTarget": self.domain_target,
            "truststoreUri": self.truststore_uri,
            "truststoreVersion": self.truststore_version, "accessLogGroup": self.log_group_name,
        })


    def enclave_trust(self, issuer: pulumi.Input[str],
                      client_ids: Mapping[str, pulumi.Input[str]],
                      client_scopes: Mapping[str, Sequence[str]]) -> pulumi.Output[dict[str, object]]:
        """What the enclave bakes to re-verify requests (`enclave_images/trust.py` adds the
        issuer's JWKS and writes `/app/enclave-trust.json`): the issuer, each client id bound to
        the subject names of its CAs (a client certificate's issuer DN is its CA's subject) and
        to the routes it may call, and each route's scopes. `client_ids`: principal -> OAuth
        client id, the principals being FIRST_PARTY (the `client_ca_files`) and the partners'
        names; each must have CA files, and two principals may not share a CA name (either could
        then present the other's token). `client_scopes`: principal -> the scopes the stack gives
        its client; its routes are those requiring one of them, fixed here so that a scope added
        to the client later in Cognito (`UpdateUserPoolClient`) opens no route in the enclave."""
        problems = [f"enclave_trust: principal {principal!r} has no CA file in this gateway"
                    for principal in client_ids if not self._ca_issuers.get(principal)]
        client_routes = {principal: sorted(route for route, scopes in self.route_scopes.items()
                                           if set(scopes) & set(client_scopes.get(principal, ())))
                         for principal in client_ids}
        problems += [f"enclave_trust: principal {principal!r} is given no scope of any route "
                     f"(scopes {sorted(client_scopes.get(principal, ()))}; routes need "
                     f"{sorted({s for scopes in self.route_scopes.values() for s in scopes})})"
                     for principal, routes in client_routes.items() if not routes]
        owners: dict[str, str] = {}
        for principal in client_ids:
            for dn in self._ca_issuers.get(principal, []):
                if owners.setdefault(dn, principal) != principal:
                    problems.append(f"enclave_trust: {owners[dn]} and {principal} share the CA name "
                                    f"{dn!r}; give each its own CA")
        if problems:
            raise ValueError("; ".join(problems))
        principals = list(client_ids)
        return pulumi.Output.all(issuer, *client_ids.values()).apply(lambda values: {
            "issuer": values[0],
            "clients": {client_id: {"name": principal, "ca_issuers": self._ca_issuers[principal],
                                    "routes": client_routes[principal]}
                        for principal, client_id in zip(principals, values[1:], strict=True)},
            "routes": self.route_scopes,
        })

    def publish_after(self, resources: Sequence[pulumi.Resource]) -> None:
        """Upload the truststore (and so create the domain) only once `resources` exist: the
        sealed key policies that let the deploying role use the truststore key through S3. Only
        with `publish_after_grants`, exactly once (until then the upload waits)."""
        if self._publish_gate is None:
            raise ValueError("publish_after: the gateway was declared without publish_after_grants")
        if self._publish_gate.done():
            raise ValueError("publish_after: the truststore already waits for its grants")
        self._publish_gate.set_result(list(resources))


def _target(configuration: aws.apigatewayv2.outputs.DomainNameDomainNameConfiguration | None,
            ) -> tuple[str, str]:
    """The regional endpoint of a domain and its hosted zone, for the alias record."""
    if configuration is None:
        return "", ""
    return configuration.target_domain_name or "", configuration.hosted_zone_id or ""


def truststore_bucket_name(environment: str, region: str) -> pulumi.Output[str]:
    """The truststore bucket's name: known before the bucket exists, so the key it is encrypted
    under can admit the deployer's upload from the key's creation (`KeyHierarchyArgs.s3_buckets`),
    which a split deployment's key layer needs (docs/deploying.md). Unique per account, Region and
    environment (S3 bucket names are global; at most 63 characters: 60 with staging)."""
    account = aws.get_caller_identity_output().account_id
    return account.apply(lambda account_id: f"zero-trust-ai-{environment}-truststore-{account_id}-{region}")


def ca_certificates(path: str) -> list[str]:
    """The CERTIFICATE blocks of a PEM file, re-wrapped (nothing else of the file is kept); each
    must parse and pass the truststore checks of `ztai truststore check` (components/truststore.py:
    CA certificates, key and signature strength, expiry, no duplicate). Raises ValueError naming
    the file and every error; warnings are `ca_file_warnings`'."""
    certificates, report = _read_ca_file(path)
    if report.errors:
        raise ValueError(f"CA file {path}: " + "; ".join(
            f"certificate {finding.index}: {finding.message}" if finding.index is not None
            else finding.message for finding in report.errors))
    return [certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")
            for certificate in certificates]


def ca_file_warnings(path: str) -> list[str]:
    """What the truststore checks warn about in a CA file (a shipped placeholder CA, expiry within
    30 days, no KeyUsage), each naming the file; comment lines are not worth a warning here, as the
    deploy drops them."""
    _, report = _read_ca_file(path)
    # A shipped placeholder CA is named once, by the stack configuration's placeholder list
    # (`components.stack_config.placeholders`), which `pulumi up`, the preview and `ztai config
    # check` all print; `truststore check` and `build` still report it themselves.
    return [f"CA file {path}: certificate {finding.index} ({finding.subject}): {finding.message}"
            for finding in report.warnings if finding.index is not None and finding.check != "placeholder"]


def _read_ca_file(path: str) -> tuple[list[x509.Certificate], Report]:
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise ValueError(f"CA file {path}: cannot read it ({error.strerror or error})") from None
    try:
        return ca_file_problems(data, f"CA file {path}", dt.datetime.now(dt.UTC))
    except TruststoreError as error:
        raise ValueError(str(error)) from None


def ca_subject_names(path: str) -> list[str]:
    """The RFC 4514 subject names of a CA file's certificates: the issuer DN a client certificate
    signed by one of them carries (the enclave compares names regardless of attribute order,
    spacing and escapes). An e-mail attribute is written by name, not as RFC 4514's hex DER."""
    return [x509.load_pem_x509_certificate(block.encode("ascii")).subject.rfc4514_string(
                {NameOID.EMAIL_ADDRESS: "EMAILADDRESS"})
            for block in ca_certificates(path)]


def truststore_bundle(args: SecureApiGatewayArgs) -> str:
    """The PEM bundle the domain trusts: `truststore_path` as given (every partner CA file given
    must be in it), or the first-party CAs then the partners' in name order, without duplicates."""
    if args.truststore_path is not None:
        bundle = "".join(ca_certificates(args.truststore_path))
        for partner in args.partners:
            if partner.ca_file is not None:
                missing = [b for b in ca_certificates(partner.ca_file) if b not in bundle]
                if missing:
                    raise ValueError(f"partner {partner.name}: its CA file {partner.ca_file} is not "
                                     f"in truststore_path {args.truststore_path}; rebuild the bundle")
    else:
        blocks: list[str] = []
        files = list(args.client_ca_files) + [
            p.ca_file for p in sorted(args.partners, key=lambda p: p.name) if p.ca_file is not None]
        for path in files:
            blocks += [block for block in ca_certificates(path) if block not in blocks]
        bundle = "".join(blocks)
    # The whole bundle, as `ztai truststore check` sees it: a duplicate across files is an error.
    report = check_bundle(bundle.encode("ascii"), dt.datetime.now(dt.UTC))
    if report.errors:
        raise ValueError("truststore: " + "; ".join(f"certificate {finding.index}: {finding.message}"
                                                    for finding in report.errors))
    return bundle


def truststore_warnings(args: SecureApiGatewayArgs) -> list[str]:
    """The truststore checks' warnings for every CA file the bundle is made of."""
    files = ([args.truststore_path] if args.truststore_path is not None else
             [*args.client_ca_files, *(p.ca_file for p in sorted(args.partners, key=lambda p: p.name)
                                       if p.ca_file is not None)])
    return [warning for path in files for warning in ca_file_warnings(path)]


def domain_problem(domain: str) -> str | None:
    """Why `domain` cannot be the API's custom domain, or None."""
    if not _DOMAIN.fullmatch(domain):
        return "a lower-case DNS name such as api.example.com"
    return None


def _slug(route_key: str) -> str:
    method, _, path = route_key.partition(" ")
    words = re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-")
    return f"{method.lower()}-{words}" if words else method.lower()


def _route_problems(route: ApiRoute, label: str, *, scoped: bool = True) -> list[str]:
    problems = []
    if not _ROUTE_KEY.fullmatch(route.route_key):
        problems.append(f"{label} {route.route_key!r}: `METHOD /path` (GET, POST, PUT, PATCH, "
                        "DELETE, HEAD, OPTIONS or ANY; no $default)")
    if scoped and not route.scopes:
        problems.append(f"{label} {route.route_key!r} has no scopes: every route requires at "
                        "least one OAuth scope")
    problems += [f"{label} {route.route_key!r}: scope {scope!r} is not an OAuth scope token"
                 for scope in route.scopes if not _SCOPE.fullmatch(scope)]
    if route.backend_path is not None and not _BACKEND_PATH.fullmatch(route.backend_path):
        problems.append(f"{label} {route.route_key!r}: backend_path {route.backend_path!r} is not "
                        "an absolute path")
    if route.rate_limit is not None and route.rate_limit <= 0:
        problems.append(f"{label} {route.route_key!r}: rate_limit must be > 0")
    if route.burst_limit is not None and route.burst_limit < 0:
        problems.append(f"{label} {route.route_key!r}: burst_limit must be >= 0")
    return problems


def partner_problems(partner: ApiPartner, *, scoped: bool = True) -> list[str]:
    """What is wrong with one partner's name, limits and paths (and, with `scoped`, its scopes),
    each naming the partner; empty when nothing is. The stack configuration checks its partners
    file with this before the scopes are given (`scoped=False`)."""
    if not _PARTNER_NAME.fullmatch(partner.name):
        return [f"partner {partner.name!r}: {PARTNER_NAME_RULE}"]
    if partner.name in RESERVED_PARTNER_NAMES:
        # The enclave's trust names the first-party clients so: a partner of that name would
        # replace them (or be replaced) there.
        return [f"partner {partner.name!r}: the name is reserved for the program's own clients "
                f"({', '.join(sorted(RESERVED_PARTNER_NAMES))}); choose another"]
    problems = []
    if partner.rate_limit <= 0 or partner.burst_limit < 0:
        problems.append(f"partner {partner.name}: rate_limit > 0 and burst_limit >= 0")
    if not partner.paths:
        problems.append(f"partner {partner.name}: at least one path")
    # "POST -corp/x" would become /partners/<name>-corp/x: another partner's namespace.
    problems += [f"partner {partner.name}: path {path!r} must be `METHOD /path`"
                 for path in partner.paths if not path.partition(" ")[2].startswith("/")]
    keys = [route.route_key for route in partner.routes()]
    problems += [f"partner {partner.name}: path {key!r} is listed twice" for key in sorted(set(keys))
                 if keys.count(key) > 1]
    for route in partner.routes():
        problems += _route_problems(route, f"partner {partner.name} route", scoped=scoped)
    return problems


def _validate(args: SecureApiGatewayArgs) -> list[ApiRoute]:
    """Every input checked before anything is declared; returns all routes (first-party, then
    partners'). Raises ValueError listing every problem."""
    problems = [f"{label} must not be empty" for label, value in
                (("environment", args.environment), ("owner", args.owner)) if not value]
    if (problem := domain_problem(args.domain_name)) is not None:
        problems.append(f"domain_name {args.domain_name!r}: {problem}")
    # Outputs (a Cognito pool's issuer, its client ids) are checked by their producer.
    if isinstance(args.jwt_issuer, str) and not re.fullmatch(r"https://[^\s/]+(/[^\s]*)?",
                                                             args.jwt_issuer):
        problems.append(f"jwt_issuer {args.jwt_issuer!r}: an https:// URL (the token's iss)")
    if not args.jwt_audiences or any(a == "" for a in args.jwt_audiences):
        problems.append("jwt_audiences: at least one, none empty")
    if (args.hosted_zone_id is None) == (args.certificate_arn is None):
        problems.append("certificate: give exactly one of hosted_zone_id (a DNS-validated ACM "
                        "certificate is requested) and certificate_arn (an existing one)")
    if args.hosted_zone_id is not None and not _HOSTED_ZONE.fullmatch(args.hosted_zone_id):
        problems.append(f"hosted_zone_id {args.hosted_zone_id!r}: a Route 53 zone id such as "
                        "Z0123456789ABCDEFGHIJ")
    for label, arn in (("certificate_arn", args.certificate_arn),
                       ("ownership_verification_certificate_arn",
                        args.ownership_verification_certificate_arn)):
        if isinstance(arn, str) and not _CERTIFICATE_ARN.fullmatch(arn):
            problems.append(f"{label} {arn!r}: an ACM certificate ARN "
                            "(arn:aws:acm:<region>:<account>:certificate/<id>)")
    if args.ownership_verification_certificate_arn is not None and args.certificate_arn is None:
        problems.append("ownership_verification_certificate_arn: only with certificate_arn (the "
                        "certificate requested in hosted_zone_id is ACM-issued and needs none)")
    routes: list[ApiRoute] = []
    for route in args.routes:
        problems += _route_problems(route, "route")
        routes.append(route)
    names: set[str] = set()
    for partner in args.partners:
        if partner.name in names:
            problems.append(f"partner {partner.name!r} is configured twice")
        names.add(partner.name)
        problems += partner_problems(partner)
        if partner.ca_file is None and args.truststore_path is None:
            problems.append(f"partner {partner.name}: ca_file is required (or a truststore_path "
                            "built with it)")
        if _PARTNER_NAME.fullmatch(partner.name):
            routes += partner.routes()
    if not routes:
        problems.append("routes: the API needs at least one route")
    keys = [route.route_key for route in routes]
    problems += [f"route {key!r} is declared twice" for key in sorted(set(keys))
                 if keys.count(key) > 1]
    if not args.client_ca_files and not args.partners and args.truststore_path is None:
        problems.append("truststore: give client_ca_files, partners with ca_file, or "
                        "truststore_path; an empty truststore admits no one")
    if not args.subnet_ids:
        problems.append("subnet_ids: the VPC link needs the segment's private subnets")
    try:
        network = ipaddress.IPv4Network(args.backend_cidr)
        if not network.is_private:
            problems.append(f"backend_cidr {args.backend_cidr!r}: a private CIDR (the NLB is internal)")
    except ValueError:
        problems.append(f"backend_cidr {args.backend_cidr!r}: an IPv4 CIDR without host bits")
    if not 1 <= args.backend_port <= 65535:
        problems.append(f"backend_port {args.backend_port}: 1-65535")
    if args.backend_server_name is None and not args.allow_plaintext_backend:
        problems.append("backend_server_name: the NLB listener's TLS certificate name is required "
                        "(the token and prompt must not cross the VPC in clear); "
                        "allow_plaintext_backend=True accepts a TCP listener explicitly")
    if isinstance(args.backend_server_name, str) and domain_problem(args.backend_server_name):
        problems.append(f"backend_server_name {args.backend_server_name!r}: a lower-case DNS name")
    if not _BACKEND_PATH.fullmatch(args.backend_path):
        problems.append(f"backend_path {args.backend_path!r}: an absolute path such as /predict")
    if not _STAGE.fullmatch(args.stage_name):
        problems.append(f"stage_name {args.stage_name!r}: letters, digits, _ and -, at most 128")
    if args.throttling_rate_limit <= 0 or args.throttling_burst_limit < 0:
        problems.append("throttling_rate_limit must be > 0 and throttling_burst_limit >= 0")
    if args.log_retention_days not in LOG_RETENTION_DAYS:
        problems.append(f"log_retention_days {args.log_retention_days}: one of "
                        f"{', '.join(map(str, LOG_RETENTION_DAYS))}")
    for label, value in (("truststore_key_arn", args.truststore_key_arn),
                         ("logs_key_arn", args.logs_key_arn)):
        if isinstance(value, str) and not KEY_ARN_PATTERN.fullmatch(value):
            problems.append(f"{label} {value!r}: a customer managed KMS key ARN "
                            "(arn:aws:kms:<region>:<account>:key/<id>), not an alias")
    if problems:
        raise ValueError("SecureApiGateway: " + "; ".join(problems))
    return routes
