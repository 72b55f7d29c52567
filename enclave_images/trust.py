"""Write the enclave's trust configuration (baked into the image, so PCR2 covers it).

    pulumi stack output enclaveTrust --json --stack prod > build/enclave-trust-input.json
    curl --fail --proto =https "<issuer>/.well-known/jwks.json" > build/jwks.json
    python -m enclave_images.trust build/enclave-trust-input.json build/jwks.json \
        > build/enclave-trust.json

build.sh runs these steps. The stack output (`SecureApiGateway.enclave_trust`) names the issuer,
each OAuth client id bound to the subject names of its CAs, and each route's scopes; the JWKS is
the issuer's public signing keys. Only the public members of each key are kept (a JWKS with
private members is refused: it is a mistake to have one), and the result is checked exactly as
the enclave will load it (`enclave_images.enclave.auth.TrustConfig`).

Why baked in and not fetched at run time: the enclave has no network of its own, and whatever the
parent relays it can substitute. A JWKS fetched through the parent over TLS terminating in the
enclave would also work, but needs a CA bundle and an HTTPS client in the image for little gain:
a user pool's signing keys are not rotated on a schedule (as remembered, not confirmed by a doc
search; a key the image does not hold fails closed, it never admits). The cost is plain: a new
issuer key, a new partner or a new route is a new EIF, new measurements and new pinned PCRs
(until then, tokens signed with a new key id are refused: "not one of the issuer's keys baked
into this image").
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from enclave_images.enclave.auth import DEFAULT_LEEWAY_SECONDS, TRUST_FORMAT_VERSION, TrustConfig

# RFC 7518 section 6.3: n and e are an RSA key's public members; everything else of the key is private.
PUBLIC_MEMBERS = ("kty", "kid", "alg", "use", "n", "e")
PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")


class TrustError(ValueError):
    """An input that cannot become the enclave's trust configuration."""


def build_trust(stack_output: Any, jwks: Any, *, leeway_seconds: int = DEFAULT_LEEWAY_SECONDS,
                token_use: str | None = "access") -> dict[str, Any]:
    """The trust configuration, checked as the enclave will load it; TrustError naming the problem."""
    if not isinstance(stack_output, dict) or not {"issuer", "clients", "routes"} <= set(stack_output):
        raise TrustError("the stack output must be the enclaveTrust object (issuer, clients, routes)")
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    if not isinstance(keys, list):
        raise TrustError('the JWKS must be an object with a "keys" list')
    public = []
    for key in keys:
        if not isinstance(key, dict):
            raise TrustError(f"JWKS key {key!r} is not an object")
        if private := sorted(member for member in PRIVATE_MEMBERS if member in key):
            raise TrustError(f"JWKS key {key.get('kid')!r} has private members {private}: use the "
                             "issuer's public JWKS (<issuer>/.well-known/jwks.json)")
        public.append({member: key[member] for member in PUBLIC_MEMBERS if member in key})
    trust = {"version": TRUST_FORMAT_VERSION, "issuer": stack_output["issuer"],
             "jwks": {"keys": public}, "token_use": token_use, "leeway_seconds": leeway_seconds,
             "clients": stack_output["clients"], "routes": stack_output["routes"]}
    try:
        TrustConfig.from_dict(trust)
    except ValueError as error:
        raise TrustError(str(error)) from None
    return trust


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stack_output", help="JSON of `pulumi stack output enclaveTrust --json`")
    parser.add_argument("jwks", help="the issuer's JWKS (<issuer>/.well-known/jwks.json)")
    parser.add_argument("--leeway", type=int, default=DEFAULT_LEEWAY_SECONDS,
                        help=f"clock skew allowed on exp/nbf/iat, seconds (default {DEFAULT_LEEWAY_SECONDS})")
    args = parser.parse_args(argv)
    inputs = []
    for label, path in (("stack output", args.stack_output), ("JWKS", args.jwks)):
        try:
            with open(path, encoding="utf-8") as handle:
                inputs.append(json.load(handle))
        except (OSError, ValueError) as error:
            parser.exit(2, f"trust: cannot read the {label} {path}: {error}\n")
    try:
        trust = build_trust(inputs[0], inputs[1], leeway_seconds=args.leeway)
    except TrustError as error:
        parser.exit(2, f"trust: {error}\n")
    json.dump(trust, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
