"""The enclave's own check of every prediction (enclave_images/enclave/auth.py): the token verified
against the baked issuer keys, the route's scopes, and the client's CA binding; and the same
checks seen from outside, through the parent agent, as a second API on the VPC link would send."""

from __future__ import annotations

import copy
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from enclave_images.enclave.app import EnclaveApp, EnclaveConfig
from enclave_images.enclave.auth import AuthError, RequestVerifier, TrustConfig, dn_key
from enclave_images.parent.agent import EnclaveClient, make_handler
from enclave_images.protocol import Address, read_message, send_message
from tests.enclave_images.test_app import CONTEXT, sealed  # noqa: F401 - the weights fixture
from tests.support.token_issuer import (
    API,
    FIRST_PARTY_CA,
    FIRST_PARTY_ID,
    INVOKE,
    PARTNER_CA,
    PARTNER_ID,
    PARTNER_SCOPE,
    StandInIssuer,
)
from ztai_runtime.weights import StaticUnwrapper

ISSUER = StandInIssuer()
PARTNER_ROUTE = "POST /partners/acme/v1/infer"


@pytest.fixture(scope="module")
def verifier() -> RequestVerifier:
    return RequestVerifier(TrustConfig.from_dict(ISSUER.trust()))


def refused(verifier: RequestVerifier, headers: dict[str, str], status: int, reason: str) -> None:
    with pytest.raises(AuthError, match=reason) as caught:
        verifier.verify(headers)
    assert caught.value.status == status


def test_a_first_party_and_a_partner_call_through_the_gateway_are_served(verifier: RequestVerifier) -> None:
    caller = verifier.verify(ISSUER.headers())
    assert (caller.client_id, caller.client_name, caller.scope) == (FIRST_PARTY_ID, "inference", INVOKE)
    partner = verifier.verify(ISSUER.headers(ISSUER.token(PARTNER_ID, PARTNER_SCOPE),
                                             route=PARTNER_ROUTE, ca=PARTNER_CA))
    assert (partner.client_name, partner.route, partner.cert_serial) == (
        "partner-acme", PARTNER_ROUTE, "1234")
    # API Gateway's JWT authorizer takes the token with or without the Bearer prefix.
    assert verifier.verify({**ISSUER.headers(), "authorization": ISSUER.token()}).client_id == FIRST_PARTY_ID


def test_a_forged_signature_is_refused(verifier: RequestVerifier) -> None:
    # Same key id, another key: what someone without Cognito's private key can make.
    forged = ISSUER.token(key=rsa.generate_private_key(65537, 2048))
    refused(verifier, ISSUER.headers(forged), 401, "Signature verification failed")
    # A valid token whose claims were edited (scope widened) after signing.
    header, payload, signature = ISSUER.token().split(".")
    claims = json.loads(jwt.utils.base64url_decode(payload))
    claims["scope"] = f"{INVOKE} {PARTNER_SCOPE}"
    edited = jwt.utils.base64url_encode(json.dumps(claims).encode()).decode()
    refused(verifier, ISSUER.headers(f"{header}.{edited}.{signature}"), 401, "Signature verification failed")


@pytest.mark.parametrize(("overrides", "reason"), [
    ({"exp": int(time.time()) - 120}, "expired"),  # beyond the 60 s leeway
    ({"nbf": int(time.time()) + 600}, "not yet valid"),
    ({"iat": int(time.time()) + 600}, "not yet valid"),
    ({"exp": None}, 'missing the "exp" claim'),
], ids=["expired", "not-before-in-the-future", "issued-in-the-future", "no-expiry"])
def test_a_token_outside_its_lifetime_is_refused(verifier: RequestVerifier, overrides: dict[str, Any],
                                                 reason: str) -> None:
    refused(verifier, ISSUER.headers(ISSUER.token(**overrides)), 401, reason)


def test_a_token_within_the_leeway_is_served(verifier: RequestVerifier) -> None:
    token = ISSUER.token(exp=int(time.time()) - 20)
    assert verifier.verify(ISSUER.headers(token)).client_id == FIRST_PARTY_ID


def test_a_token_from_another_issuer_is_refused(verifier: RequestVerifier) -> None:
    other_pool = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Another"
    refused(verifier, ISSUER.headers(ISSUER.token(iss=other_pool)), 401, "another issuer")


@pytest.mark.parametrize(("token_kwargs", "reason"), [
    ({"client_id": "3unknownclient00000000000"}, "not a client of this API"),
    ({"aud": "3unknownclient00000000000"}, "not a client of this API"),  # aud wins, as at the gateway
    ({"client_id": None}, "client None is not a client"),
], ids=["unknown-client-id", "unknown-aud", "no-client"])
def test_a_token_for_another_audience_is_refused(verifier: RequestVerifier, token_kwargs: dict[str, Any],
                                                 reason: str) -> None:
    client_id = token_kwargs.get("client_id", FIRST_PARTY_ID)
    others = {name: value for name, value in token_kwargs.items() if name != "client_id"}
    token = ISSUER.token(client_id, INVOKE, **others)
    refused(verifier, ISSUER.headers(token), 401, reason)


def test_an_id_token_is_not_an_api_credential(verifier: RequestVerifier) -> None:
    refused(verifier, ISSUER.headers(ISSUER.token(token_use="id")), 401, "an access token is required")


def test_the_routes_scope_is_required(verifier: RequestVerifier) -> None:
    # A first-party token on the partner's route, and the partner's token on the first-party route.
    refused(verifier, ISSUER.headers(route=PARTNER_ROUTE), 403, "none of the scopes")
    partner_token = ISSUER.token(PARTNER_ID, PARTNER_SCOPE)
    refused(verifier, ISSUER.headers(partner_token, ca=PARTNER_CA), 403, "none of the scopes")
    refused(verifier, ISSUER.headers(ISSUER.token(scope=f"{API}/other")), 403, "none of the scopes")
    refused(verifier, ISSUER.headers(route="POST /admin"), 403, "not a route of this API")
    refused(verifier, {k: v for k, v in ISSUER.headers().items() if k != "x-ztai-route"}, 403,
            "not a route of this API")


def test_a_scope_added_to_a_client_in_cognito_does_not_open_another_route(verifier: RequestVerifier) -> None:
    # An admin runs UpdateUserPoolClient to give the partner's client the first-party `invoke`
    # scope: its token now carries a scope /v1/infer accepts, and still the route is not its own.
    widened = ISSUER.token(PARTNER_ID, f"{PARTNER_SCOPE} {INVOKE}")
    refused(verifier, ISSUER.headers(widened, ca=PARTNER_CA), 403,
            "partner-acme may not call route 'POST /v1/infer'")
    # The same token on its own route is served, and the first party's on the partner's route not.
    own_route = ISSUER.headers(widened, route=PARTNER_ROUTE, ca=PARTNER_CA)
    assert verifier.verify(own_route).client_id == PARTNER_ID
    both = ISSUER.token(FIRST_PARTY_ID, f"{INVOKE} {PARTNER_SCOPE}")
    refused(verifier, ISSUER.headers(both, route=PARTNER_ROUTE), 403,
            "inference may not call route 'POST /partners/acme/v1/infer'")


def test_a_token_replayed_with_another_principals_certificate_is_refused(verifier: RequestVerifier) -> None:
    # The partner's token with the first-party CA (its own route and scope): the binding refuses it.
    partner_token = ISSUER.token(PARTNER_ID, PARTNER_SCOPE)
    refused(verifier, ISSUER.headers(partner_token, route=PARTNER_ROUTE, ca=FIRST_PARTY_CA), 403,
            "partner-acme must present a certificate from its own CA")
    refused(verifier, ISSUER.headers(ca=PARTNER_CA), 403, "inference must present a certificate")
    refused(verifier, ISSUER.headers(ca="CN=Someone Else CA"), 403, "from its own CA")
    refused(verifier, ISSUER.headers(ca="not a DN"), 403, "not a distinguished name")
    no_certificate = {k: v for k, v in ISSUER.headers().items() if k != "x-ztai-client-cert-issuer"}
    refused(verifier, no_certificate, 403, "did not come through the gateway's mutual TLS")


def test_the_issuer_dn_matches_whatever_the_attribute_order_and_spacing(verifier: RequestVerifier) -> None:
    for written in ("O=Zero Trust AI,CN=First-party Client CA", "CN=First-party Client CA, O=Zero Trust AI"):
        assert verifier.verify(ISSUER.headers(ca=written)).client_id == FIRST_PARTY_ID
    assert dn_key("C=US,ST=Washington,CN=x") == dn_key("CN=x,ST=Washington,C=US")
    # RFC 4514 escapes (what the stack writes) against the same name written plainly or quoted.
    assert dn_key(r"CN=CA (old\; new)") == dn_key("cn=CA (old; new)") == dn_key('CN="CA (old; new)"')
    assert dn_key(r"CN=Acme\, Inc. CA,O=Acme") == {("CN", "Acme, Inc. CA"), ("O", "Acme")}
    assert dn_key("E=ca@acme.example,CN=x") == dn_key("CN=x,EMAILADDRESS=ca@acme.example")
    assert dn_key("CN=Acme CA") != dn_key("CN=Acme CA,O=Evil")  # an extra attribute is another name
    for text in ("", "CN=", "no equals sign", "CN=a,,O=b"):
        with pytest.raises(ValueError, match="not a distinguished name"):
            dn_key(text)


def test_a_missing_or_malformed_token_is_refused(verifier: RequestVerifier) -> None:
    headers = ISSUER.headers()
    refused(verifier, {k: v for k, v in headers.items() if k != "authorization"}, 401, "no token")
    refused(verifier, {**headers, "authorization": "Bearer "}, 401, "no usable token")
    refused(verifier, {**headers, "authorization": "Bearer not.a.jwt"}, 401, "not a JWT")
    refused(verifier, {**headers, "authorization": "Bearer " + "a" * 20_000}, 401, "no usable token")


def test_alg_none_and_algorithm_confusion_are_refused(verifier: RequestVerifier) -> None:
    unsigned = jwt.encode(ISSUER.claims(), "", algorithm="none", headers={"kid": ISSUER.kid})
    refused(verifier, ISSUER.headers(unsigned), 401, "algorithm 'none'")
    # HS256 keyed with the issuer's *public* key (the classic confusion): the algorithm is refused
    # before any key is used. PyJWT refuses to make it with a PEM key, so it is signed by hand here.
    public_pem = ISSUER.key.public_key().public_bytes(serialization.Encoding.PEM,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo)
    import hashlib
    import hmac
    segments = [jwt.utils.base64url_encode(json.dumps(part).encode()).decode() for part in
                ({"alg": "HS256", "typ": "JWT", "kid": ISSUER.kid}, ISSUER.claims())]
    mac = hmac.new(public_pem, ".".join(segments).encode(), hashlib.sha256).digest()
    confused = ".".join([*segments, jwt.utils.base64url_encode(mac).decode()])
    refused(verifier, ISSUER.headers(confused), 401, "algorithm 'HS256'")
    es = jwt.encode(ISSUER.claims(), ec.generate_private_key(ec.SECP256R1()), algorithm="ES256",
                    headers={"kid": ISSUER.kid})
    refused(verifier, ISSUER.headers(es), 401, "algorithm 'ES256'")
    refused(verifier, ISSUER.headers(ISSUER.token(kid="rotated-away")), 401, "not one of the issuer's keys")


@pytest.mark.parametrize(("edit", "problem"), [
    (lambda t: t.update(version=1), "version 2"),
    (lambda t: t.update(issuer="http://insecure"), "https://"),
    (lambda t: t["jwks"]["keys"].clear(), "at least one of the issuer's RSA keys"),
    (lambda t: t["jwks"]["keys"][0].update(alg="HS256"), "not an RS256 signing key"),
    (lambda t: t["jwks"]["keys"][0].update(kty="oct"), "must be an RSA key"),
    (lambda t: t["clients"][PARTNER_ID].update(ca_issuers=[FIRST_PARTY_CA]), "bound to the same CA"),
    (lambda t: t["clients"][PARTNER_ID].update(ca_issuers=[]), "at least one issuer DN"),
    (lambda t: t["clients"][PARTNER_ID].update(ca_issuers=["no equals sign"]), "not a distinguished name"),
    (lambda t: t["routes"].update({"POST /x": []}), "at least one scope"),
    (lambda t: t["clients"][PARTNER_ID].pop("routes"), "routes must list at least one route"),
    (lambda t: t["clients"][PARTNER_ID].update(routes=["POST /admin"]), r"\['POST /admin'\] are not routes"),
    (lambda t: t.update(leeway_seconds=3600), "0..300"),
], ids=["version", "issuer", "no-keys", "hmac-key", "oct-key", "shared-ca", "no-ca", "bad-dn",
        "unscoped-route", "client-without-routes", "client-unknown-route", "leeway"])
def test_a_bad_trust_configuration_is_refused_at_start(edit: Any, problem: str) -> None:
    trust = copy.deepcopy(ISSUER.trust())
    edit(trust)
    with pytest.raises(ValueError, match=problem):
        TrustConfig.from_dict(trust)


def test_the_trust_file_is_read_from_the_image(tmp_path: Path) -> None:
    path = tmp_path / "enclave-trust.json"
    path.write_text(json.dumps(ISSUER.trust()))
    assert set(TrustConfig.load(str(path)).clients) == {FIRST_PARTY_ID, PARTNER_ID}
    path.write_text("{")
    with pytest.raises(ValueError, match="cannot read the trust configuration"):
        TrustConfig.load(str(path))


# -- the relay: a second API on the same VPC link, or root on the parent --------------------------

@pytest.fixture
def relay(sealed: tuple[Path, bytes], tmp_path: Path, verifier: RequestVerifier) -> Iterator[str]:  # noqa: F811
    """The parent agent's HTTP endpoint over a loaded enclave: what a VPC link reaches."""
    address = Address.parse(f"unix:{tmp_path / 'enclave.sock'}")
    config = EnclaveConfig(region="eu-west-1", key_arns=("arn:aws:kms:eu-west-1:1:key/k",),
                           context={"model": "digits"})
    app = EnclaveApp(config, lambda config, credentials: StaticUnwrapper(sealed[1]), verifier)
    listener = address.listen()
    threading.Thread(target=app.serve, args=(listener,), daemon=True).start()
    client = EnclaveClient(address)
    client.load(sealed[0], key_arns=[], context=CONTEXT, credentials={})
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(client))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/predict"
    server.shutdown()
    listener.close()


def post(url: str, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    body = json.dumps({"inputs": [[0] * 64]}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_a_second_api_on_the_vpc_link_gets_nothing(relay: str) -> None:
    """A second HTTP API reusing the VPC link with no authorizer relays whatever its callers send:
    nothing, forged gateway headers, or a token of another principal. The enclave refuses each."""
    forged_gateway_headers = {k: v for k, v in ISSUER.headers().items() if k != "authorization"}
    status, body = post(relay, {})
    assert status == 401 and "no token" in body["error"]
    status, body = post(relay, forged_gateway_headers)
    assert status == 401 and "no token" in body["error"]
    status, body = post(relay, {**forged_gateway_headers, "Authorization": "Bearer forged.token.here"})
    assert status == 401
    # A partner's valid token dressed as a first-party call: wrong scope for the route...
    partner_token = ISSUER.token(PARTNER_ID, PARTNER_SCOPE)
    status, body = post(relay, ISSUER.headers(partner_token))
    assert status == 403 and "none of the scopes" in body["error"]
    # ...and on its own route with the first-party certificate's issuer: the binding refuses it.
    status, body = post(relay, ISSUER.headers(partner_token, route=PARTNER_ROUTE, ca=FIRST_PARTY_CA))
    assert status == 403 and "own CA" in body["error"]
    # Only a call as the gateway makes it is served.
    status, body = post(relay, ISSUER.headers())
    assert status == 200 and len(body["labels"]) == 1


def test_root_on_the_parent_writing_to_vsock_gets_nothing(relay: str, tmp_path: Path) -> None:
    """The parent bypassing its own agent: predict messages straight onto the enclave's socket."""
    address = Address.parse(f"unix:{tmp_path / 'enclave.sock'}")
    with address.connect() as sock, sock.makefile("rwb", buffering=0) as stream:
        for auth in (None, {}, {**ISSUER.headers(), "authorization": "Bearer x.y.z"},
                     ISSUER.headers(ca=PARTNER_CA)):
            message = {"type": "predict", "version": 1, "inputs": [[0] * 64]}
            if auth is not None:
                message["auth"] = auth
            send_message(stream, message)
            answer = read_message(stream)
            assert answer is not None and answer["type"] == "error"
            assert answer["status"] in (401, 403) and answer["error"].startswith("refused: ")
        send_message(stream, {"type": "predict", "version": 1, "inputs": [[0] * 64],
                              "auth": ISSUER.headers()})
        answer = read_message(stream)
        assert answer is not None and answer["type"] == "prediction"


def test_a_refusal_never_quotes_the_token(verifier: RequestVerifier, monkeypatch: pytest.MonkeyPatch) -> None:
    # PyJWT messages other than its fixed ones may quote what failed to decode: the refusal keeps
    # only the error's class name.
    token = ISSUER.token()

    def decode(given: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        raise jwt.DecodeError(f"Invalid payload string: {given.split('.')[1][:24]}")

    monkeypatch.setattr(jwt, "decode", decode)
    with pytest.raises(AuthError) as caught:
        verifier.verify(ISSUER.headers(token))
    assert (caught.value.status, str(caught.value)) == (401, "the token is invalid (DecodeError)")
    assert token.split(".")[1][:24] not in str(caught.value)
