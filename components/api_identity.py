"""The OAuth 2.0 issuer of the inference API (secure API gateway, partners): a Cognito user pool.

Machines call the API, not people: every caller (the first-party inference clients, each partner)
is an app client of the pool that obtains an access token with the **client-credentials** grant
from the pool's token endpoint, and the token carries only the scopes of that client. The API's JWT
authorizer (components/api_gateway.py) accepts the pool as issuer and the app clients' ids as
audiences (Cognito access tokens have no `aud`; API Gateway then compares `client_id`), and every
route requires a scope, so a partner's token opens that partner's routes only.

Secure by default, as the component declares it:

- the user pool has no self sign-up (administrators create users, and none are needed), MFA on
  (software tokens), a 14-character password policy, account recovery by administrators only,
  and deletion protection when asked (prod);
- one resource server, identified by the API's URL, owning every scope; a scope is
  `<identifier>/<name>`, the exact string the routes require;
- one app client per caller: `client_credentials` only (no code or implicit flow, no callback
  URLs), a generated secret, access tokens valid `access_token_minutes` (default and most 15: a
  stolen token is worth a quarter of an hour), no refresh token worth having (the
  client-credentials flow issues none; the validity Cognito still requires is set to its minimum,
  one hour), token revocation on, user-existence errors hidden;
- a Cognito-prefix domain (`<prefix>.auth.<region>.amazoncognito.com`) for the token endpoint.

The client secrets are not exported (they would be stack outputs in plain view of whoever reads
the state); an operator hands each partner its secret out of band from
`aws cognito-idp describe-user-pool-client`. Removing a partner removes its app client, and
tokens already issued to it stop at the first route check only when they expire (at most
`access_token_minutes`): the truststore removal (a new truststore version) cuts the partner off
at the TLS handshake at once.

Not here: Cognito's threat protection (the Plus feature plan) and a custom domain for the token
endpoint (it needs an ACM certificate in us-east-1).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

# CreateUserPoolDomain's pattern for a prefix; Cognito also reserves these words in prefixes.
_DOMAIN_PREFIX = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_RESERVED_IN_PREFIX = ("aws", "amazon", "cognito")
# ResourceServerScopeType.ScopeName: printable ASCII without space, `"`, `/` or `\`.
_SCOPE_NAME = re.compile(r"[\x21\x23-\x2E\x30-\x5B\x5D-\x7E]{1,256}")
_CLIENT_NAME = re.compile(r"[\w\s+=,.@-]{1,128}")
# Cognito accepts access tokens valid 5 minutes to 1 day.
# 15 minutes at most: a client-credentials caller asks for a new token whenever it needs one,
# so a longer life only lengthens what a stolen token is worth.
MIN_ACCESS_TOKEN_MINUTES, MAX_ACCESS_TOKEN_MINUTES = 5, 15


@dataclass(frozen=True)
class ApiClient:
    """One caller of the API: an app client of the pool.

    name: the client's name (also its resource name), e.g. `inference` or `partner-acme`.
    scopes: names of resource-server scopes it may request; at least one.
    """

    name: str
    scopes: tuple[str, ...]


@dataclass
class CognitoApiIdentityArgs:
    """Inputs of `CognitoApiIdentity`; every default is the secure one.

    environment, owner: tags and names.
    identifier: the resource server's identifier, by convention the API's URL
        (`https://api.example.com`); scopes are `<identifier>/<name>`.
    domain_prefix: the token endpoint's Cognito-prefix domain (lower case, digits, `-`; without the
        words aws, amazon or cognito). Cognito prefix domains are global to the region, across
        every AWS account: a prefix someone else holds fails the first `pulumi up`.
    unique_domain_suffix: append `-<8 hex digits>` derived from the account, region, project and
        stack (a SHA-256), so two stacks, or two forks, deriving the same prefix from the same
        domain never collide, and the name stays the same on every update. Default True; set
        False for a prefix chosen and reserved by hand (apiAuthDomainPrefix). With the suffix
        the prefix may have at most 54 characters.
    scopes: scope name → description; every scope a client or route uses.
    clients: the callers; at least one.
    access_token_minutes: 5 to 15; default 15.
    deletion_protection: Cognito's deletion protection on the pool (prod: on).
    protect: Pulumi `protect` on the pool. Default False.
    """

    environment: str
    owner: str
    identifier: str
    domain_prefix: str
    scopes: Mapping[str, str]
    clients: Sequence[ApiClient]
    unique_domain_suffix: bool = True
    access_token_minutes: int = MAX_ACCESS_TOKEN_MINUTES
    deletion_protection: bool = False
    protect: bool = False
    tags: Mapping[str, str] = field(default_factory=dict)


class CognitoApiIdentity(pulumi.ComponentResource):
    """User pool, resource server, domain and app clients. Type `zero-trust-ai:api:CognitoApiIdentity`."""

    user_pool: aws.cognito.UserPool
    clients: dict[str, aws.cognito.UserPoolClient]

    def __init__(self, name: str, args: CognitoApiIdentityArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        _validate(args)
        super().__init__("zero-trust-ai:api:CognitoApiIdentity", name, None, opts)
        tags = {"ztai:segment": "inference", **args.tags}
        self.identifier = args.identifier

        self.user_pool = aws.cognito.UserPool(
            f"{name}-pool", name=f"zero-trust-ai-{args.environment}-{name}",
            # Nobody signs up: callers are app clients; users, if ever, are created by administrators.
            admin_create_user_config=aws.cognito.UserPoolAdminCreateUserConfigArgs(
                allow_admin_create_user_only=True),
            mfa_configuration="ON",
            software_token_mfa_configuration=aws.cognito.UserPoolSoftwareTokenMfaConfigurationArgs(
                enabled=True),
            password_policy=aws.cognito.UserPoolPasswordPolicyArgs(
                minimum_length=14, require_lowercase=True, require_uppercase=True,
                require_numbers=True, require_symbols=True, temporary_password_validity_days=1),
            account_recovery_setting=aws.cognito.UserPoolAccountRecoverySettingArgs(
                recovery_mechanisms=[aws.cognito.UserPoolAccountRecoverySettingRecoveryMechanismArgs(
                    name="admin_only", priority=1)]),
            deletion_protection="ACTIVE" if args.deletion_protection else "INACTIVE",
            tags=tags, opts=pulumi.ResourceOptions(parent=self, protect=args.protect))
        # Children of the component, not of the pool: they would inherit the pool's `protect`,
        # and removing a partner must remove its app client without unprotecting anything.
        in_pool = pulumi.ResourceOptions(parent=self)

        server = aws.cognito.ResourceServer(
            f"{name}-api", user_pool_id=self.user_pool.id, identifier=args.identifier,
            name=f"zero-trust-ai-{args.environment}-api",
            scopes=[aws.cognito.ResourceServerScopeArgs(scope_name=scope, scope_description=text)
                    for scope, text in sorted(args.scopes.items())],
            opts=in_pool)
        prefix: pulumi.Input[str] = args.domain_prefix
        if args.unique_domain_suffix:
            account = aws.get_caller_identity_output(opts=pulumi.InvokeOptions(parent=self)).account_id
            region = aws.get_region_output(opts=pulumi.InvokeOptions(parent=self)).region
            prefix = pulumi.Output.all(account, region).apply(lambda values: unique_domain_prefix(
                args.domain_prefix, values[0], values[1], pulumi.get_project(), pulumi.get_stack()))
        domain = aws.cognito.UserPoolDomain(
            f"{name}-domain", domain=prefix, user_pool_id=self.user_pool.id, opts=in_pool)
        self.domain_prefix: pulumi.Output[str] = domain.domain

        self.clients = {}
        for client in args.clients:
            self.clients[client.name] = aws.cognito.UserPoolClient(
                f"{name}-client-{client.name}", name=client.name, user_pool_id=self.user_pool.id,
                generate_secret=True,
                allowed_oauth_flows=["client_credentials"],
                allowed_oauth_flows_user_pool_client=True,
                allowed_oauth_scopes=[self.scope(scope) for scope in client.scopes],
                # No user sign-in flow: refresh is the one flow Cognito requires to be listed.
                explicit_auth_flows=["ALLOW_REFRESH_TOKEN_AUTH"],
                access_token_validity=args.access_token_minutes,
                id_token_validity=args.access_token_minutes,
                # The client-credentials flow issues no refresh token; Cognito still wants a
                # validity, so it gets the shortest Cognito accepts (60 minutes).
                refresh_token_validity=60,
                token_validity_units=aws.cognito.UserPoolClientTokenValidityUnitsArgs(
                    access_token="minutes", id_token="minutes", refresh_token="minutes"),
                enable_token_revocation=True,
                prevent_user_existence_errors="ENABLED",
                # The scopes must exist on the resource server before a client may be allowed them.
                opts=pulumi.ResourceOptions(parent=self, depends_on=[server]))

        region = aws.get_region_output(opts=pulumi.InvokeOptions(parent=self)).region
        self.issuer: pulumi.Output[str] = pulumi.Output.concat(
            "https://cognito-idp.", region, ".amazonaws.com/", self.user_pool.id)
        self.client_ids: dict[str, pulumi.Output[str]] = {
            client_name: client.id for client_name, client in self.clients.items()}
        self.token_endpoint: pulumi.Output[str] = pulumi.Output.concat(
            "https://", domain.domain, ".auth.", region, ".amazoncognito.com/oauth2/token")
        self.register_outputs({"issuer": self.issuer, "clientIds": self.client_ids,
                               "tokenEndpoint": self.token_endpoint})

    def scope(self, name: str) -> str:
        """The full scope string a token carries and a route requires."""
        return scope_string(self.identifier, name)


def scope_string(identifier: str, name: str) -> str:
    """`<identifier>/<name>`, as Cognito writes a resource server's scope into access tokens."""
    return f"{identifier}/{name}"


UNIQUE_SUFFIX_LENGTH = 9  # "-" and 8 hex digits


def unique_domain_prefix(prefix: str, account: str, region: str, project: str, stack: str) -> str:
    """`<prefix>-<8 hex digits of SHA-256(account/region/project/stack)>`: the same on every
    update of one stack, different for any other stack, account or region."""
    digest = hashlib.sha256(f"{account}/{region}/{project}/{stack}".encode()).hexdigest()[:8]
    return f"{prefix}-{digest}"


def domain_prefix_problem(prefix: str, *, suffixed: bool = False) -> str | None:
    """Why Cognito would refuse `prefix` as a user pool domain prefix (with the unique suffix
    appended when `suffixed`), or None."""
    limit = 63 - (UNIQUE_SUFFIX_LENGTH if suffixed else 0)
    if not _DOMAIN_PREFIX.fullmatch(prefix) or len(prefix) > limit:
        return (f"1-{limit} lower-case letters, digits and -, not starting or ending with -"
                + (" (a unique 9-character suffix is appended)" if suffixed else ""))
    reserved = [word for word in _RESERVED_IN_PREFIX if word in prefix]
    if reserved:
        return f"Cognito refuses prefixes containing {', '.join(reserved)}"
    return None


def _validate(args: CognitoApiIdentityArgs) -> None:
    problems = [f"{label} must not be empty" for label, value in
                (("environment", args.environment), ("owner", args.owner)) if not value]
    if not re.fullmatch(r"https://[a-z0-9.-]+(/[A-Za-z0-9._~-]+)*", args.identifier):
        problems.append(f"identifier {args.identifier!r}: the API's https:// URL, no trailing /")
    if (problem := domain_prefix_problem(args.domain_prefix,
                                         suffixed=args.unique_domain_suffix)) is not None:
        problems.append(f"domain_prefix {args.domain_prefix!r}: {problem}")
    problems += [f"scope {scope!r}: printable ASCII without space, \", / or \\, at most 256"
                 for scope in args.scopes if not _SCOPE_NAME.fullmatch(scope)]
    if not args.clients:
        problems.append("clients: at least one (a pool without clients issues no token)")
    names: set[str] = set()
    for client in args.clients:
        if not _CLIENT_NAME.fullmatch(client.name):
            problems.append(f"client {client.name!r}: 1-128 letters, digits, spaces and +=,.@-")
        if client.name in names:
            problems.append(f"client {client.name!r} is declared twice")
        names.add(client.name)
        if not client.scopes:
            problems.append(f"client {client.name!r}: at least one scope (a token without scopes "
                            "opens no route)")
        problems += [f"client {client.name!r}: scope {scope!r} is not one of the resource server's "
                     f"({', '.join(sorted(args.scopes)) or 'none'})"
                     for scope in client.scopes if scope not in args.scopes]
    if not MIN_ACCESS_TOKEN_MINUTES <= args.access_token_minutes <= MAX_ACCESS_TOKEN_MINUTES:
        problems.append(f"access_token_minutes {args.access_token_minutes}: "
                        f"{MIN_ACCESS_TOKEN_MINUTES} to {MAX_ACCESS_TOKEN_MINUTES}")
    if problems:
        raise ValueError("CognitoApiIdentity: " + "; ".join(problems))
