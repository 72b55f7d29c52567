"""Inside the enclave: admit a prediction only for a request that passed our API gateway's checks.

The gateway (components/api_gateway.py) checks the caller's client certificate (mutual TLS) and
its JWT (issuer, audience, the route's scopes). Nothing stops a privileged insider from going
around it: anyone with `apigateway:*` can create a second API on the same VPC link with no
authorizer and the default endpoint on, and root on a parent host can write to the enclave's vsock
directly. So the enclave checks again, on its own terms, with a trust configuration the parent
cannot change (`/app/enclave-trust.json`, baked into the image, so PCR2 covers it; see
`TrustConfig`):

- the token: an RS256 signature by one of the issuer's keys in the baked JWKS (PyJWT; `none`, HS*
  and any algorithm but RS256 are refused before a key is chosen, so no algorithm confusion), the
  issuer, the audience as the gateway's JWT authorizer checks it (`aud` if the token has one,
  otherwise Cognito's `client_id`, one of the configured clients), `exp`/`nbf`/`iat` with a small
  leeway, `token_use=access` (Cognito's id tokens are not API credentials), and one of the
  scopes the called route requires;
- the client's routes: the route must be one the trust file lists for the token's client (the
  routes whose scopes the stack gives it), so a scope an administrator adds to a client in Cognito
  (`UpdateUserPoolClient`) opens no route here;
- the certificate binding: the gateway writes the mTLS client certificate's issuer DN into
  `x-ztai-client-cert-issuer` (parameter mapping with `overwrite:`, so a client's own header of
  that name is replaced). The token's client must be bound to that CA: a partner's token presented
  with another principal's certificate at the gateway is refused.

What the binding proves, and what it does not: it is a name in a header, not the handshake. The
enclave sees only the headers whoever relays writes, so it cannot tell that mutual TLS happened.
A relay without a token that verifies, or with a token for a route its client is not bound to,
gets nothing. But anyone who can get a valid token for a client (its secret is enough:
`cognito-idp:DescribeUserPoolClient` returns it, `AddUserPoolClientSecret` adds one) AND create an
integration on the stack's VPC link (`apigateway:*`) calls as that client without mutual TLS, by
writing the client's CA name (public: it is in the `enclaveTrust` output); root on a parent can
replay the live tokens it sees until they expire. The SCP in docs/scp-images-and-sessions.md
narrows who can do either; TLS terminated in the enclave with the client certificate verified
here would close it and is not built (docs/known-gaps.md).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt

TRUST_PATH = "/app/enclave-trust.json"
# 2: each client lists the routes it may call (version 1 files, without them, are refused).
TRUST_FORMAT_VERSION = 2
# The only signature algorithm Cognito (and most OIDC issuers) use for access tokens.
ALGORITHM = "RS256"
# Clock skew between Cognito and the enclave's clock; small, because a token lives an hour.
DEFAULT_LEEWAY_SECONDS = 60
MAX_TOKEN_BYTES = 16 * 1024

# The headers the gateway's integration writes (components/api_gateway.py ENCLAVE_AUTH_HEADERS),
# lower case as the parent agent passes them on.
AUTHORIZATION_HEADER = "authorization"
CERT_ISSUER_HEADER = "x-ztai-client-cert-issuer"
CERT_SUBJECT_HEADER = "x-ztai-client-cert-subject"
CERT_SERIAL_HEADER = "x-ztai-client-cert-serial"
ROUTE_HEADER = "x-ztai-route"

# Other spellings of attribute names that DN writers use (RFC 1779, OpenSSL, Java).
_DN_KEY_ALIASES = {"E": "EMAILADDRESS", "S": "ST", "SP": "ST"}


# PyJWT errors whose messages are fixed text ("Signature verification failed", "The token is not
# yet valid (nbf)", 'Token is missing the "exp" claim'): a refusal may quote them.
_FIXED_TEXT_ERRORS = (jwt.InvalidSignatureError, jwt.ImmatureSignatureError, jwt.MissingRequiredClaimError)


class AuthError(Exception):
    """A request the enclave refuses. `status`: 401 (no valid token) or 403 (valid token, not
    for this route or this certificate)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def dn_key(text: str) -> frozenset[tuple[str, str]]:
    """A distinguished name as a set of (attribute, value) pairs, so one name compares equal
    however it is written: the attribute order (RFC 4514 writes it reversed, API Gateway may write
    it in certificate order), spaces after commas, backslash escapes (`\\,` `\\;`), quotes around a
    value, upper or lower case attribute names. Splits on unescaped commas only, so a value with a
    bare comma cannot be told apart: CA names are chosen by their owners, who can avoid that.
    ValueError for text that is not a DN. (Name matching, not a parser of certificates: the CA
    certificate itself was verified by API Gateway's truststore.)"""
    parts, current, escaped = [], [], False
    for character in text:
        if escaped:
            current.append(character)
            escaped = False
        elif character == "\\":
            escaped = True
        elif character == ",":
            parts.append("".join(current))
            current = []
        else:
            current.append(character)
    parts.append("".join(current))
    pairs = set()
    for part in parts:
        attribute, separator, value = part.partition("=")
        attribute, value = attribute.strip().upper(), value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        if not separator or not attribute or not value:
            raise ValueError(f"{text!r} is not a distinguished name (e.g. CN=Partner CA,O=Acme)")
        pairs.add((_DN_KEY_ALIASES.get(attribute, attribute), value))
    return frozenset(pairs)


@dataclass(frozen=True)
class ClientBinding:
    """One OAuth client the enclave serves: its name (for logs), the CAs whose certificates
    it must present (issuer DNs, as the gateway maps them) and the routes it may call. The routes
    are fixed at build time from the scopes the stack gives the client: a scope added to the
    client later (`cognito-idp:UpdateUserPoolClient`) does not open another route here."""

    name: str
    ca_issuers: frozenset[frozenset[tuple[str, str]]]
    routes: frozenset[str]


@dataclass(frozen=True)
class TrustConfig:
    """Whom the enclave serves, fixed at build time (covered by PCR2). On disk (version 1)::

        {"version": 2,
         "issuer": "https://cognito-idp.<region>.amazonaws.com/<pool id>",
         "jwks": {"keys": [<the issuer's RSA public keys, from <issuer>/.well-known/jwks.json>]},
         "token_use": "access",            # or null for an issuer without the claim
         "leeway_seconds": 60,
         "clients": {"<client id>": {"name": "partner-acme", "ca_issuers": ["CN=Acme CA,O=Acme"],
                                     "routes": ["POST /partners/acme/v1/infer"]}},
         "routes": {"POST /partners/acme/v1/infer": ["https://api.example.com/partner-acme"]}}

    `enclave_images/trust.py` writes it from the stack's `enclaveTrust` output and the issuer's
    JWKS; build.sh bakes it. Rotating the issuer's keys or adding a partner is a new EIF, new
    measurements, and new pinned PCRs.
    """

    issuer: str
    keys: Mapping[str, jwt.PyJWK]  # by key id
    clients: Mapping[str, ClientBinding]
    routes: Mapping[str, frozenset[str]]
    token_use: str | None = "access"
    leeway_seconds: int = DEFAULT_LEEWAY_SECONDS

    @classmethod
    def from_dict(cls, raw: Any, source: str = "trust configuration") -> TrustConfig:
        """Parsed and checked; ValueError naming what is wrong."""
        def fail(why: str) -> ValueError:
            return ValueError(f"{source}: {why}")

        if not isinstance(raw, dict) or raw.get("version") != TRUST_FORMAT_VERSION:
            raise fail(f"expected an object with version {TRUST_FORMAT_VERSION}")
        issuer = raw.get("issuer")
        if not isinstance(issuer, str) or not issuer.startswith("https://"):
            raise fail(f"issuer {issuer!r}: the https:// URL tokens carry in `iss`")
        keys: dict[str, jwt.PyJWK] = {}
        jwks = raw.get("jwks")
        for entry in (jwks.get("keys") if isinstance(jwks, dict) else None) or []:
            if not isinstance(entry, dict) or entry.get("kty") != "RSA" or not entry.get("kid"):
                raise fail(f"jwks: every key must be an RSA key with a kid, got {entry!r}")
            if entry.get("alg", ALGORITHM) != ALGORITHM or entry.get("use", "sig") != "sig":
                raise fail(f"jwks: key {entry['kid']!r} is not an {ALGORITHM} signing key")
            try:
                keys[str(entry["kid"])] = jwt.PyJWK(entry, algorithm=ALGORITHM)
            except jwt.PyJWTError as error:
                raise fail(f"jwks: key {entry['kid']!r} cannot be used ({error})") from None
        if not keys:
            raise fail("jwks: at least one of the issuer's RSA keys")
        clients: dict[str, ClientBinding] = {}
        owner_of: dict[frozenset[tuple[str, str]], str] = {}
        raw_clients = raw.get("clients")
        if not isinstance(raw_clients, dict) or not raw_clients:
            raise fail("clients: at least one client id with its CA issuers")
        for client_id, entry in raw_clients.items():
            issuers = entry.get("ca_issuers") if isinstance(entry, dict) else None
            if not isinstance(issuers, list) or not issuers:
                raise fail(f"client {client_id}: ca_issuers must list at least one issuer DN")
            try:
                keyed = frozenset(dn_key(str(text)) for text in issuers)
            except ValueError as error:
                raise fail(f"client {client_id}: {error}") from None
            for dn in keyed:
                # Two clients bound to one CA name would let either present the other's token.
                if owner_of.setdefault(dn, client_id) != client_id:
                    raise fail(f"clients {owner_of[dn]} and {client_id} are bound to the same CA "
                               "name: each client needs its own CA")
            client_routes = entry.get("routes")
            if (not isinstance(client_routes, list) or not client_routes
                    or not all(isinstance(route, str) for route in client_routes)):
                raise fail(f"client {client_id}: routes must list at least one route key it may call")
            clients[str(client_id)] = ClientBinding(str(entry.get("name") or client_id), keyed,
                                                    frozenset(client_routes))
        raw_routes = raw.get("routes")
        if not isinstance(raw_routes, dict) or not raw_routes:
            raise fail("routes: at least one route key with its scopes")
        routes: dict[str, frozenset[str]] = {}
        for route, scopes in raw_routes.items():
            if not isinstance(scopes, list) or not scopes or not all(isinstance(s, str) for s in scopes):
                raise fail(f"route {route!r}: a list of at least one scope")
            routes[str(route)] = frozenset(scopes)
        for client_id, binding in clients.items():
            if unknown := sorted(binding.routes - set(routes)):
                raise fail(f"client {client_id}: routes {unknown} are not routes of this API "
                           f"(routes: {sorted(routes)})")
        token_use = raw.get("token_use", "access")
        leeway = raw.get("leeway_seconds", DEFAULT_LEEWAY_SECONDS)
        if token_use is not None and not isinstance(token_use, str):
            raise fail(f"token_use {token_use!r}: a string or null")
        if not isinstance(leeway, int) or not 0 <= leeway <= 300:
            raise fail(f"leeway_seconds {leeway!r}: 0..300")
        return cls(issuer, keys, clients, routes, token_use, leeway)

    @classmethod
    def load(cls, path: str = TRUST_PATH) -> TrustConfig:
        try:
            with open(path, encoding="utf-8") as handle:
                raw = json.load(handle)
        except (OSError, ValueError) as error:
            raise ValueError(f"{path}: cannot read the trust configuration ({error})") from None
        return cls.from_dict(raw, path)


@dataclass(frozen=True)
class Caller:
    """Who a verified request came from (for the enclave's decision log)."""

    client_id: str
    client_name: str
    route: str
    scope: str
    token_id: str | None
    cert_subject: str | None
    cert_serial: str | None


class RequestVerifier:
    """Checks one request's token and certificate binding against the baked trust configuration."""

    def __init__(self, trust: TrustConfig) -> None:
        self._trust = trust

    def verify(self, headers: Mapping[str, str]) -> Caller:
        """The verified caller; AuthError (401/403) otherwise. `headers`: lower-case names."""
        trust = self._trust
        token = _bearer(headers.get(AUTHORIZATION_HEADER))
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthError(401, "the token is not a JWT") from None
        # Checked before any key is chosen: `none`, HS256 keyed with the public key, ES*... all out.
        if header.get("alg") != ALGORITHM:
            raise AuthError(401, f"token algorithm {header.get('alg')!r}: only {ALGORITHM} is accepted")
        key = trust.keys.get(str(header.get("kid")))
        if key is None:
            raise AuthError(401, f"token key id {header.get('kid')!r} is not one of the issuer's "
                                 "keys baked into this image")
        try:
            claims: dict[str, Any] = jwt.decode(
                token, key, algorithms=[ALGORITHM], issuer=trust.issuer, leeway=trust.leeway_seconds,
                # The audience is checked below as API Gateway does (aud, else client_id).
                options={"require": ["exp", "iat", "iss"], "verify_aud": False})
        except jwt.ExpiredSignatureError:
            raise AuthError(401, "the token has expired") from None
        except jwt.InvalidIssuerError:
            raise AuthError(401, "the token is from another issuer") from None
        except _FIXED_TEXT_ERRORS as error:
            raise AuthError(401, f"the token is invalid ({type(error).__name__}: {error})") from None
        except jwt.PyJWTError as error:
            # The class name only: another PyJWT message may quote a part of the token (a
            # DecodeError names what failed to decode), and the reason goes into the audit.
            raise AuthError(401, f"the token is invalid ({type(error).__name__})") from None
        if trust.token_use is not None and claims.get("token_use") != trust.token_use:
            raise AuthError(401, f"token_use {claims.get('token_use')!r}: an {trust.token_use} "
                                 "token is required")
        client_id = _client_id(claims)
        binding = trust.clients.get(client_id) if client_id else None
        if client_id is None or binding is None:
            raise AuthError(401, f"the token's client {client_id!r} is not a client of this API")
        route = headers.get(ROUTE_HEADER, "")
        required = trust.routes.get(route)
        if required is None:
            raise AuthError(403, f"route {route!r} is not a route of this API")
        granted = claims.get("scope")
        scopes = set(granted.split()) if isinstance(granted, str) else set()
        matched = sorted(scopes & required)
        if not matched:
            raise AuthError(403, f"the token carries none of the scopes route {route!r} requires")
        # The scope alone is not enough: scopes live in Cognito, where an admin can add one to any
        # client; the routes a client may call were fixed when this image was built.
        if route not in binding.routes:
            raise AuthError(403, f"client {binding.name} may not call route {route!r} (its routes: "
                                 f"{', '.join(sorted(binding.routes))})")
        issuer_dn = headers.get(CERT_ISSUER_HEADER)
        if not issuer_dn:
            raise AuthError(403, "no client certificate issuer: the request did not come through "
                                 "the gateway's mutual TLS")
        try:
            presented = dn_key(issuer_dn)
        except ValueError:
            raise AuthError(403, "the client certificate issuer is not a distinguished name") from None
        if presented not in binding.ca_issuers:
            raise AuthError(403, f"client {binding.name} must present a certificate from its own CA, "
                                 f"not {issuer_dn!r}")
        jti = claims.get("jti")
        return Caller(client_id, binding.name, route, matched[0], jti if isinstance(jti, str) else None,
                      headers.get(CERT_SUBJECT_HEADER), headers.get(CERT_SERIAL_HEADER))


def _bearer(value: str | None) -> str:
    if not value:
        raise AuthError(401, "no token: an Authorization header is required")
    scheme, _, token = value.strip().partition(" ")
    # API Gateway's JWT authorizer takes the header with or without `Bearer `: so does this.
    token = token.strip() if scheme.lower() == "bearer" else value.strip()
    if not token or len(token) > MAX_TOKEN_BYTES:
        raise AuthError(401, "the Authorization header holds no usable token")
    return token


def _client_id(claims: Mapping[str, Any]) -> str | None:
    """The client a token was issued to, as API Gateway's JWT authorizer reads its audience: `aud`
    when present (one value), else `client_id` (Cognito access tokens)."""
    audience = claims.get("aud")
    if isinstance(audience, list):
        audience = audience[0] if len(audience) == 1 else None
    if isinstance(audience, str) and audience:
        return audience
    client_id = claims.get("client_id")
    return client_id if isinstance(client_id, str) and client_id else None
