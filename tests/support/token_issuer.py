"""A stand-in for the API's Cognito pool: an RSA key made per test session, its JWKS, and access
tokens shaped as Cognito's client-credentials tokens (no `aud`; `client_id`, `scope`,
`token_use=access`). Also the trust configuration the enclave would have baked for it."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

ISSUER = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_TestPool1"
API = "https://api.example.com"
FIRST_PARTY_ID = "1firstpartyclient00000000"
PARTNER_ID = "2partneracmeclient0000000"
FIRST_PARTY_CA = "CN=First-party Client CA,O=Zero Trust AI"
PARTNER_CA = "CN=Acme Client CA,O=Acme"
INVOKE = f"{API}/invoke"
PARTNER_SCOPE = f"{API}/partner-acme"
ROUTES = {"POST /v1/infer": [INVOKE], "POST /partners/acme/v1/infer": [PARTNER_SCOPE]}


@dataclass
class StandInIssuer:
    key: rsa.RSAPrivateKey = field(default_factory=lambda: rsa.generate_private_key(65537, 2048))
    kid: str = "test-key-1"

    def jwks(self) -> dict[str, Any]:
        jwk: dict[str, Any] = RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return {"keys": [{**jwk, "kid": self.kid, "alg": "RS256", "use": "sig"}]}

    def trust(self) -> dict[str, Any]:
        return {"version": 2, "issuer": ISSUER, "jwks": self.jwks(), "token_use": "access",
                "leeway_seconds": 60,
                "clients": {FIRST_PARTY_ID: {"name": "inference", "ca_issuers": [FIRST_PARTY_CA],
                                             "routes": ["POST /v1/infer"]},
                            PARTNER_ID: {"name": "partner-acme", "ca_issuers": [PARTNER_CA],
                                         "routes": ["POST /partners/acme/v1/infer"]}},
                "routes": ROUTES}

    def claims(self, client_id: str = FIRST_PARTY_ID, scope: str = INVOKE,
               **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {"sub": client_id, "token_use": "access", "scope": scope, "auth_time": now,
                  "iss": ISSUER, "exp": now + 3600, "iat": now, "version": 2,
                  "jti": str(uuid.uuid4()), "client_id": client_id}
        claims.update(overrides)
        return {name: value for name, value in claims.items() if value is not None}

    def token(self, client_id: str = FIRST_PARTY_ID, scope: str = INVOKE, *,
              key: Any = None, algorithm: str = "RS256", kid: str | None = None,
              **overrides: Any) -> str:
        return jwt.encode(self.claims(client_id, scope, **overrides), key or self.key,
                          algorithm=algorithm, headers={"kid": kid or self.kid})

    def headers(self, token: str | None = None, *, route: str = "POST /v1/infer",
                ca: str = FIRST_PARTY_CA) -> dict[str, str]:
        """What the gateway's integration sends for a first-party call (or as overridden)."""
        return {"authorization": f"Bearer {token or self.token()}", "x-ztai-route": route,
                "x-ztai-client-cert-issuer": ca, "x-ztai-client-cert-subject": "CN=client-1",
                "x-ztai-client-cert-serial": "1234"}
