"""`ztai access`: the commands through the JIT API function (moto behind it), every bad input.

The function URL's SigV4 check is AWS's: here the signed request is replaced by a call of the
function's handler with the caller the test signs in as, as Lambda passes it.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.ztai_runtime.test_jit import STS, Env, api_env, env  # noqa: F401 (fixtures)
from ztai import access_cmd
from ztai.cli import main
from ztai_runtime.jit import handler

URL = "https://abcdefghijklmnopqrstuvwxyz012345.lambda-url.eu-west-1.on.aws/"
ALICE = STS.format("model-engineer", "alice@example.com")
BOB = STS.format("data-lead", "bob@example.com")


class SignedIn:
    def __init__(self) -> None:
        self.arn = ALICE
        self.calls: list[dict[str, Any]] = []

    def post(self, url: str, region: str, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        assert (url, region) == (URL, "eu-west-1")
        self.calls.append(payload)
        response = handler.api({"requestContext": {"authorizer": {"iam": {"userArn": self.arn}}},
                                "body": json.dumps(payload), "isBase64Encoded": False}, None)
        return response["statusCode"], json.loads(response["body"])


@pytest.fixture
def signed_in(api_env: Env, monkeypatch: pytest.MonkeyPatch) -> SignedIn:  # noqa: F811
    session = SignedIn()
    monkeypatch.setattr(access_cmd, "post", session.post)
    monkeypatch.setenv(access_cmd.URL_ENV, URL)
    return session


def _request(session: SignedIn, capsys: pytest.CaptureFixture[str]) -> str:
    session.arn = ALICE
    assert main(["access", "request", "training-data-write", "--minutes", "30", "--reason", "job 42",
                 "--json"]) == 0
    return str(json.loads(capsys.readouterr().out)["request"]["request_id"])


def test_request_approve_list_revoke(signed_in: SignedIn, capsys: pytest.CaptureFixture[str]) -> None:
    rid = _request(signed_in, capsys)
    signed_in.arn = BOB
    assert main(["access", "approve", rid]) == 0
    assert "granted until 2026-12-07T09:30:00Z" in capsys.readouterr().out
    assert main(["access", "approve", rid]) == 0  # twice: nothing to do, not an error
    assert "already approved" in capsys.readouterr().out
    assert main(["access", "list", "--state", "active"]) == 0
    listed = capsys.readouterr().out
    assert rid in listed and "training-data-write" in listed and "job 42" in listed
    assert main(["access", "revoke", rid, "--reason", "done"]) == 0
    assert f"{rid}: revoked" in capsys.readouterr().out


def test_self_approval_is_refused_with_exit_1(signed_in: SignedIn,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    rid = _request(signed_in, capsys)
    assert main(["access", "approve", rid]) == 1
    assert "self-approval is refused" in capsys.readouterr().err


def test_a_non_approver_is_refused_with_exit_1(signed_in: SignedIn,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    rid = _request(signed_in, capsys)
    signed_in.arn = STS.format("model-engineer", "dave@example.com")
    assert main(["access", "approve", rid]) == 1
    assert "is not an approver of training-data-write" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "message"), [
    (["request", "training-data-admin", "--minutes", "30", "--reason", "x"],
     "unknown elevation 'training-data-admin'; the catalogue has: key-admin, training-data-write"),
    (["request", "training-data-write", "--minutes", "121", "--reason", "x"],
     "duration 121 minutes: training-data-write allows 1 to 120 minutes"),
    (["approve", "0" * 32], f"no request {'0' * 32}"),
])
def test_what_the_function_refuses_as_bad_input_exits_2(
        signed_in: SignedIn, capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    assert main(["access", *argv]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "message"), [
    (["request", "training-data-write", "--minutes", "30", "--reason", "  "], "--reason is empty"),
    (["request", "training-data-write", "--minutes", "0", "--reason", "x"], "--minutes 0: 1 to 720"),
    (["request", "training-data-write", "--minutes", "721", "--reason", "x"], "--minutes 721: 1 to 720"),
    (["request", "Training Data", "--minutes", "30", "--reason", "x"], "is not an elevation name"),
    (["approve", "abc"], "REQUEST_ID 'abc' is not a request id (32 hexadecimal digits"),
    (["deny", "0" * 32, "--reason", ""], "--reason is empty"),
    (["revoke", "0" * 32, "--reason", " "], "--reason is empty"),
])
def test_bad_arguments_exit_2_before_any_call(
        signed_in: SignedIn, capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    assert main(["access", *argv]) == 2
    assert message in capsys.readouterr().err
    assert signed_in.calls == []


@pytest.mark.parametrize("argv", [
    ["request", "training-data-write", "--reason", "x"],  # no --minutes
    ["request", "training-data-write", "--minutes", "30"],  # no --reason
    ["request", "training-data-write", "--minutes", "ten", "--reason", "x"],
    ["deny", "0" * 32],  # no --reason
    ["list", "--state", "gone"],
])
def test_missing_or_malformed_options_exit_2(signed_in: SignedIn, argv: list[str]) -> None:
    with pytest.raises(SystemExit) as done:  # argparse's usage error; `ztai` exits with its code
        main(["access", *argv])
    assert done.value.code == 2
    assert signed_in.calls == []


def test_no_url_exits_2(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv(access_cmd.URL_ENV, raising=False)
    assert main(["access", "list"]) == 2
    assert "no JIT function URL: pass --url" in capsys.readouterr().err


def test_a_url_that_is_not_a_function_url_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["access", "list", "--url", "http://169.254.169.254/latest"]) == 2
    assert "is not a Lambda function URL" in capsys.readouterr().err


def test_stack_outputs_without_the_url_exit_2(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps({"tokenVaultTable": "t"}))
    assert main(["access", "list", "--stack-outputs", str(outputs)]) == 2
    assert "no jit.apiUrl" in capsys.readouterr().err


def test_the_url_is_read_from_stack_outputs(signed_in: SignedIn, tmp_path: Any,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(access_cmd.URL_ENV)
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps({"jit": {"apiUrl": URL, "table": "t", "roles": {}}}))
    assert main(["access", "list", "--stack-outputs", str(outputs)]) == 0
    assert signed_in.calls == [{"action": "list"}]


def test_requests_are_signed_for_lambda(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real transport signs with SigV4 for the lambda service in the URL's Region."""
    sent: dict[str, Any] = {}

    class Response:
        status = 200

        def __enter__(self) -> Response:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

        def read(self) -> bytes:
            return b'{"requests": []}'

    def urlopen(request: Any, timeout: int) -> Response:
        sent.update(headers=dict(request.header_items()), url=request.full_url)
        return Response()

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setattr("urllib.request.urlopen", urlopen)
    assert access_cmd.post(URL, "eu-west-1", {"action": "list"}) == (200, {"requests": []})
    authorization = sent["headers"]["Authorization"]
    assert authorization.startswith("AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/")
    assert "/eu-west-1/lambda/aws4_request" in authorization


def test_list_shows_only_ones_own_requests_and_those_one_may_approve(
        signed_in: SignedIn, capsys: pytest.CaptureFixture[str]) -> None:
    rid = _request(signed_in, capsys)
    signed_in.arn = STS.format("model-engineer", "dave@example.com")  # same role, another person
    assert main(["access", "list"]) == 0
    assert rid not in capsys.readouterr().out
    for who in (ALICE, BOB):  # the requester, and an approver of the elevation
        signed_in.arn = who
        assert main(["access", "list"]) == 0
        assert rid in capsys.readouterr().out


# -- a key policy document with a key-admin request ---------------------------------------------------
def test_a_policy_file_is_sent_as_written_and_approvals_name_its_sha256(
        signed_in: SignedIn, capsys: pytest.CaptureFixture[str], tmp_path: Any) -> None:
    import hashlib

    policy = tmp_path / "policy.json"
    text = json.dumps({"Version": "2012-10-17", "Statement": [{"Sid": "A", "Effect": "Allow"}]}, indent=2)
    policy.write_text(text)
    # The shared catalogue's training-data elevation writes no key policy: the function says so.
    assert main(["access", "request", "training-data-write", "--minutes", "30", "--reason", "x",
                 "--policy-file", str(policy)]) == 2
    assert "writes no key policy" in capsys.readouterr().err
    assert signed_in.calls[-1]["policy"] == text
    rid = _request(signed_in, capsys)
    signed_in.arn = BOB
    digest = hashlib.sha256(text.encode()).hexdigest()
    assert main(["access", "approve", rid, "--policy-sha256", digest]) == 2  # its request has none
    assert signed_in.calls[-1]["policy_sha256"] == digest
    assert "writes no key policy: approve it without a SHA-256" in capsys.readouterr().err


@pytest.mark.parametrize(("content", "message"), [
    ("not json", "is not JSON"),
    ("[1]", "not a key policy (a JSON object with a Statement list)"),
    ('{"Version": "2012-10-17"}', "not a key policy"),
    ('{"Statement": ["' + "x" * 33_000 + '"]}', "bytes; KMS takes a key policy of at most 32768 bytes"),
])
def test_a_policy_file_that_is_not_a_key_policy_is_refused_before_any_call(
        signed_in: SignedIn, capsys: pytest.CaptureFixture[str], tmp_path: Any, content: str,
        message: str) -> None:
    policy = tmp_path / "policy.json"
    policy.write_text(content)
    assert main(["access", "request", "key-admin", "--minutes", "30", "--reason", "x",
                 "--policy-file", str(policy)]) == 2
    assert message in capsys.readouterr().err
    assert signed_in.calls == []
    assert main(["access", "request", "key-admin", "--minutes", "30", "--reason", "x",
                 "--policy-file", str(tmp_path / "missing.json")]) == 2
    assert signed_in.calls == []


@pytest.mark.parametrize("digest", ["abc", "g" * 64, "0" * 63])
def test_a_sha256_that_is_not_one_is_refused_before_any_call(
        signed_in: SignedIn, capsys: pytest.CaptureFixture[str], digest: str) -> None:
    assert main(["access", "approve", "0" * 32, "--policy-sha256", digest]) == 2
    assert "64 hexadecimal digits" in capsys.readouterr().err
    assert signed_in.calls == []


def test_an_approver_may_hash_the_reviewed_document_locally(
        signed_in: SignedIn, capsys: pytest.CaptureFixture[str], tmp_path: Any) -> None:
    import hashlib

    policy = tmp_path / "reviewed.json"
    text = json.dumps({"Version": "2012-10-17", "Statement": [{"Sid": "A", "Effect": "Allow"}]})
    policy.write_text(text)
    rid = _request(signed_in, capsys)
    signed_in.arn = BOB
    assert main(["access", "approve", rid, "--policy-file", str(policy)]) == 2
    assert signed_in.calls[-1]["policy_sha256"] == hashlib.sha256(text.encode()).hexdigest()
    capsys.readouterr()
    # Not both: the hash given and the file read could disagree.
    with pytest.raises(SystemExit):
        main(["access", "approve", rid, "--policy-file", str(policy), "--policy-sha256", "0" * 64])
