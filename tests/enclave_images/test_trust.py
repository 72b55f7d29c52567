"""enclave_images/trust.py: from the stack's enclaveTrust output and the issuer's JWKS to the file
the enclave bakes, checked as the enclave loads it; bad inputs end in a clear error (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from enclave_images.enclave.auth import RequestVerifier, TrustConfig
from enclave_images.trust import TrustError, build_trust, main
from tests.support.token_issuer import StandInIssuer

ISSUER = StandInIssuer()


def stack_output() -> dict[str, Any]:
    trust = ISSUER.trust()
    return {name: trust[name] for name in ("issuer", "clients", "routes")}


def test_the_file_is_what_the_enclave_loads_and_verifies_with(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "output.json").write_text(json.dumps(stack_output()))
    (tmp_path / "jwks.json").write_text(json.dumps(ISSUER.jwks()))
    main([str(tmp_path / "output.json"), str(tmp_path / "jwks.json")])
    written = json.loads(capsys.readouterr().out)
    assert written["version"] == 2 and written["token_use"] == "access"
    verifier = RequestVerifier(TrustConfig.from_dict(written))
    assert verifier.verify(ISSUER.headers()).client_name == "inference"


def test_an_output_without_each_clients_routes_is_refused() -> None:
    # An enclaveTrust output from before clients were bound to routes: every client could call
    # every route it had a scope for, so it is not baked.
    older = stack_output()
    for client in older["clients"].values():
        client.pop("routes")
    with pytest.raises(TrustError, match="routes must list at least one route key it may call"):
        build_trust(older, ISSUER.jwks())


def test_a_jwks_with_private_members_is_refused() -> None:
    private: dict[str, Any] = RSAAlgorithm.to_jwk(rsa.generate_private_key(65537, 2048), as_dict=True)
    with pytest.raises(TrustError, match=r"private members \['d', 'dp', 'dq', 'p', 'q', 'qi'\]"):
        build_trust(stack_output(), {"keys": [{**private, "kid": "k"}]})


def test_only_public_members_are_kept() -> None:
    [key] = ISSUER.jwks()["keys"]
    trust = build_trust(stack_output(), {"keys": [{**key, "x5c": ["MII..."], "extra": 1}]})
    assert set(trust["jwks"]["keys"][0]) == {"kty", "kid", "alg", "use", "n", "e"}


@pytest.mark.parametrize(("output", "jwks", "problem"), [
    ({"issuer": "https://x"}, {"keys": []}, "enclaveTrust object"),
    (None, [], "enclaveTrust object"),
    ("stack", {"keys": "x"}, 'a "keys" list'),
    ("stack", {"nokeys": []}, 'a "keys" list'),
    ("stack", {"keys": []}, "at least one of the issuer's RSA keys"),
])
def test_bad_inputs_are_refused(output: Any, jwks: Any, problem: str) -> None:
    with pytest.raises(TrustError, match=problem):
        build_trust(stack_output() if output == "stack" else output, jwks)


def test_the_command_exits_2_naming_the_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "output.json").write_text(json.dumps(stack_output()))
    (tmp_path / "jwks.json").write_text("not json")
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "output.json"), str(tmp_path / "jwks.json")])
    assert exit_info.value.code == 2 and "cannot read the JWKS" in capsys.readouterr().err
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": []}))
    with pytest.raises(SystemExit):
        main([str(tmp_path / "output.json"), str(tmp_path / "jwks.json")])
    assert "trust: " in capsys.readouterr().err
