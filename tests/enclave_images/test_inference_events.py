"""Inference events: the parent agent writes exactly one line per inference request, served or
refused (by the enclave, by itself, or because the enclave did not answer), in the fixed shape of
ztai_runtime/inference_events.py, and never the body, the token or the certificate."""

from __future__ import annotations

import io
import json
import logging
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from enclave_images.enclave.app import EnclaveApp, EnclaveConfig
from enclave_images.parent.agent import REQUEST_ID_HEADER, EnclaveClient, make_handler
from enclave_images.parent.event_sink import CloudWatchEventSink, InferenceEvents, stream_name
from enclave_images.protocol import Address
from tests.enclave_images.test_app import CONTEXT, ISSUER, VERIFIER, sealed  # noqa: F401 - fixture
from tests.support.token_issuer import FIRST_PARTY_ID, PARTNER_ID, PARTNER_SCOPE
from ztai_runtime.inference_events import (
    FIELDS,
    MAX_INPUT_CELLS,
    OPTIONAL_FIELDS,
    event_problems,
    event_time,
    inference_event,
    input_summary,
)
from ztai_runtime.weights import StaticUnwrapper

TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
# Recognisable secrets a request carries: none may appear in its event.
SECRET_TOKEN = "Bearer SECRET-TOKEN-6f1d2b7e9a"
SECRET_INPUT = 13.1337  # a pixel value no field of the event would hold


@dataclass
class Agent:
    url: str
    events: list[dict[str, Any]] = field(default_factory=list)

    def call(self, path: str = "/predict", body: Any = None, headers: dict[str, str] | None = None,
             method: str | None = None) -> tuple[int, bytes]:
        data = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, headers=headers or {},
                                         method=method)
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                return reply.status, reply.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()


JOURNAL = io.StringIO()  # what the agent's journal receives, in these tests


def journal_logger() -> logging.Logger:
    logger = logging.getLogger("tests.inference-journal")
    if not logger.handlers:
        handler = logging.StreamHandler(JOURNAL)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


def serve(client: EnclaveClient, events: list[dict[str, Any]]) -> tuple[ThreadingHTTPServer, str]:
    emit = InferenceEvents(journal_logger())

    def record(event: dict[str, Any]) -> None:
        events.append(event)
        emit(event)  # and the journal line, as on the instance

    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(
        client, events=record, model_context={"model": "digits", "version": "configured"}))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def agent(sealed: tuple[Path, bytes], tmp_path: Path) -> Iterator[Agent]:  # noqa: F811
    """The agent over a loaded enclave (the weights' context: model=digits, version=1)."""
    address = Address.parse(f"unix:{tmp_path / 'enclave.sock'}")
    app = EnclaveApp(EnclaveConfig(region="eu-west-1", key_arns=("arn:aws:kms:eu-west-1:1:key/k",),
                                   context={"model": "digits"}),
                     lambda config, credentials: StaticUnwrapper(sealed[1]), VERIFIER)
    listener = address.listen()
    threading.Thread(target=app.serve, args=(listener,), daemon=True).start()
    client = EnclaveClient(address)
    client.load(sealed[0], key_arns=[], context=CONTEXT, credentials={})
    events: list[dict[str, Any]] = []
    server, url = serve(client, events)
    yield Agent(url, events)
    server.shutdown()
    listener.close()


def rows(count: int, value: float = 0) -> dict[str, Any]:
    return {"inputs": [[value] * 64 for _ in range(count)]}


def only_event(agent: Agent) -> dict[str, Any]:
    [event] = agent.events
    assert event_problems(event) == []
    # Every field, in the documented order; the input summary only when the enclave served it.
    summarised = event["source"] == "enclave" and event["decision"] == "served"
    assert list(event) == list(FIELDS) + (list(OPTIONAL_FIELDS) if summarised else [])
    assert TIME.fullmatch(event["time"])
    return event


def test_a_served_request_is_one_event_with_the_enclaves_account(agent: Agent) -> None:
    body = json.dumps(rows(3)).encode()
    status, reply = agent.call(body=body, headers={**ISSUER.headers(), REQUEST_ID_HEADER: "Ab1cD2eF3gH4="})
    assert status == 200
    event = only_event(agent)
    assert {key: value for key, value in event.items() if key not in ("time", "latencyMs")} == {
        "event": "inference", "source": "enclave", "requestId": "Ab1cD2eF3gH4=",
        "clientId": FIRST_PARTY_ID, "partner": "inference", "route": "POST /v1/infer", "rows": 3,
        "requestBytes": len(body), "responseBytes": len(reply),
        # The version of the weights the enclave decrypted, not the agent's configuration.
        "model": "digits", "modelVersion": "1", "decision": "served", "reason": None, "status": 200,
        # Three blank rows: one cell (its number is the loaded weights' own, see test_input_cells).
        "inputCells": event["inputCells"], "inputCellCount": 1}
    assert len(event["inputCells"]) == 1
    assert isinstance(event["latencyMs"], float) and event["latencyMs"] > 0


@pytest.mark.parametrize(("headers", "status", "reason"), [
    ({}, 401, "refused: no token"),
    ({"authorization": SECRET_TOKEN, "x-ztai-route": "POST /v1/infer"}, 401,
     "refused: the token is not a JWT"),
    # A partner's valid token on the first-party route: the scopes refuse it.
    ({**ISSUER.headers(ISSUER.token(PARTNER_ID, PARTNER_SCOPE))}, 403, "refused: the token carries none"),
])
def test_a_request_the_enclave_refuses_is_one_refused_event(agent: Agent, headers: dict[str, str],
                                                            status: int, reason: str) -> None:
    assert agent.call(body=rows(2), headers=headers)[0] == status
    event = only_event(agent)
    assert (event["source"], event["decision"], event["status"], event["rows"]) == (
        "enclave", "refused", status, 2)
    assert event["reason"].startswith(reason)
    # Nobody was verified: no client, whatever the token claimed.
    assert event["clientId"] is None and event["partner"] is None
    assert (event["model"], event["modelVersion"]) == ("digits", "1")


def test_the_enclaves_refusal_of_the_inputs_is_one_refused_event(agent: Agent) -> None:
    assert agent.call(body={"inputs": [[1] * 5]}, headers=ISSUER.headers())[0] == 400
    event = only_event(agent)
    assert (event["source"], event["decision"], event["status"], event["clientId"]) == (
        "enclave", "refused", 400, FIRST_PARTY_ID)
    assert "64 finite numbers" in event["reason"]


@pytest.mark.parametrize(("path", "body", "status", "reason"), [
    ("/predict", {"rows": []}, 400, 'expected {"inputs"'),
    ("/predict", b'{"inputs": ' + b"[" * 100_000, 400, 'expected {"inputs"'),
    ("/predict", None, 411, "body must be 1.."),
    ("/elsewhere", rows(1), 404, "not found"),
])
def test_a_bad_request_is_one_event_decided_by_the_parent(agent: Agent, path: str, body: Any,
                                                          status: int, reason: str) -> None:
    method = "POST" if body is None else None
    assert agent.call(path, body, ISSUER.headers(), method=method)[0] == status
    event = only_event(agent)
    assert (event["source"], event["decision"], event["status"], event["rows"]) == (
        "parent", "refused", status, 0)
    assert event["reason"].startswith(reason)
    assert event["clientId"] is None
    # The agent's own configuration names the model when the enclave was not asked.
    assert (event["model"], event["modelVersion"]) == ("digits", "configured")


def test_an_unreachable_enclave_is_one_event_decided_by_the_parent(tmp_path: Path) -> None:
    events: list[dict[str, Any]] = []
    server, url = serve(EnclaveClient(Address.parse(f"unix:{tmp_path / 'absent.sock'}"), timeout=1),
                        events)
    try:
        status, _ = Agent(url).call(body=rows(4), headers=ISSUER.headers())
    finally:
        server.shutdown()
    assert status == 502
    [event] = events
    assert event_problems(event) == []
    assert (event["source"], event["decision"], event["status"], event["rows"]) == (
        "parent", "refused", 502, 4)
    assert "unreachable" in event["reason"] and event["route"] == "POST /v1/infer"


def test_exactly_one_event_per_request_and_none_for_health_checks(agent: Agent) -> None:
    for _ in range(3):
        agent.call(body=rows(1), headers=ISSUER.headers())
    agent.call(body=rows(1))
    agent.call("/health")
    assert agent.call("/nothing", method="GET")[0] == 404
    assert [event["status"] for event in agent.events] == [200, 200, 200, 401, 404]
    assert len({event["requestId"] for event in agent.events}) == 5


@pytest.mark.parametrize("given", [None, "", "has space", "x" * 129, "semi;colon"])
def test_a_request_without_a_gateway_id_gets_one_of_the_agents(agent: Agent, given: str | None) -> None:
    headers = ISSUER.headers() if given is None else {**ISSUER.headers(), REQUEST_ID_HEADER: given}
    agent.call(body=rows(1), headers=headers)
    assert re.fullmatch(r"agent-[0-9a-f-]{36}", only_event(agent)["requestId"])


def test_no_event_holds_the_body_the_token_or_the_certificate(agent: Agent) -> None:
    JOURNAL.seek(0)
    JOURNAL.truncate()
    valid = ISSUER.headers()
    token = valid["authorization"].split(" ", 1)[1]
    agent.call(body=rows(2, SECRET_INPUT), headers=valid)
    agent.call(body=rows(2, SECRET_INPUT), headers={**valid, "authorization": SECRET_TOKEN})
    agent.call(body=b'{"inputs": "' + SECRET_TOKEN.encode() + b'"}', headers=valid)
    assert [event["status"] for event in agent.events] == [200, 401, 400]
    journal = JOURNAL.getvalue().splitlines()
    # The journal holds the same lines, in the documented field order.
    assert [json.loads(line) for line in journal] == agent.events
    assert all(line.startswith('{"event": "inference", "time": ') for line in journal)
    for text in (*(json.dumps(event) for event in agent.events), *journal):
        for secret in (str(SECRET_INPUT), "SECRET-TOKEN", token, valid["x-ztai-client-cert-subject"],
                       valid["x-ztai-client-cert-serial"]):
            assert secret not in text


def test_a_refusal_quoting_the_token_or_the_certificate_is_scrubbed(agent: Agent) -> None:
    """The enclave's refusal of a certificate from another CA quotes the issuer it was given: the
    event keeps the refusal, not the header's value."""
    from tests.support.token_issuer import PARTNER_CA
    status, reply = agent.call(body=rows(1), headers=ISSUER.headers(ca=PARTNER_CA))
    assert status == 403 and PARTNER_CA in json.loads(reply)["error"]  # the caller is told
    event = only_event(agent)
    assert PARTNER_CA not in event["reason"]
    assert event["reason"].startswith("refused: client inference must present a certificate from "
                                      "its own CA, not '[redacted]'")
    from enclave_images.parent.agent import _scrub
    assert _scrub(f"refused: bad {SECRET_TOKEN}", [SECRET_TOKEN]) == "refused: bad [redacted]"
    assert _scrub("refused: bad SECRET-TOKEN-6f1d2b7e9a", [SECRET_TOKEN]) == "refused: bad [redacted]"
    assert _scrub("refused", []) == "refused"
    assert _scrub(None, [SECRET_TOKEN]) is None
    # A part of a JWT quoted alone (its claims, its signature) is scrubbed too.
    jwt = "Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiI3ZjFjIn0.c2lnbmF0dXJlLTZmMWQ"
    assert _scrub("bad claims eyJzdWIiOiI3ZjFjIn0 and c2lnbmF0dXJlLTZmMWQ", [jwt]) == (
        "bad claims [redacted] and [redacted]")


# -- the shape itself ----------------------------------------------------------------------------

GOOD = dict(source="parent", request_id="r", client_id=None, partner=None, route="POST /predict",
            rows=0, request_bytes=0, response_bytes=10, latency_ms=1, model=None, model_version=None,
            decision="refused", reason="not found", status=404)


def test_an_event_is_built_with_its_types() -> None:
    event = inference_event(**GOOD, at=1_796_660_563.0456)  # type: ignore[arg-type]
    assert event["time"] == "2026-12-07T16:22:43.045Z"
    assert event["latencyMs"] == 1.0 and isinstance(event["latencyMs"], float)
    assert event_problems(event) == []
    long = inference_event(**{**GOOD, "reason": "x" * 2000})  # type: ignore[arg-type]
    assert len(long["reason"]) == 512


@pytest.mark.parametrize(("change", "complaint"), [
    ({"decision": "maybe"}, "decision 'maybe': one of served, refused"),
    ({"source": "gateway"}, "source 'gateway': one of parent, enclave"),
    ({"rows": -1}, "rows -1: not negative"),
    ({"status": "200"}, "status '200': expected int"),
])
def test_a_bad_event_is_refused_naming_the_field(change: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ValueError, match=re.escape(complaint)):
        inference_event(**{**GOOD, **change})


def test_event_problems_name_every_wrong_field() -> None:
    event = inference_event(**GOOD)  # type: ignore[arg-type]
    assert event_problems({**event, "rows": True}) == ["rows True: expected int"]
    assert event_problems({**event, "clientId": 7}) == ["clientId 7: expected str or null"]
    assert event_problems({**event, "token": "x"}) == ["token is not a field of the event"]
    assert "requestId missing" in event_problems({k: v for k, v in event.items() if k != "requestId"})
    assert event_time(0) == "1970-01-01T00:00:00.000Z"


def test_a_served_requests_input_summary_is_bounded_and_holds_no_input(agent: Agent) -> None:
    """A batch of varied rows: the event lists at most MAX_INPUT_CELLS distinct cells, sorted,
    with their count, and none of the pixel values."""
    from sklearn.datasets import load_digits
    digits = load_digits().data
    body = {"inputs": [[float(v) + 0.0625 for v in row] for row in digits[:300]]}
    assert agent.call(body=body, headers=ISSUER.headers())[0] == 200
    event = only_event(agent)
    cells, count = event["inputCells"], event["inputCellCount"]
    assert len(cells) == MAX_INPUT_CELLS < count <= 256
    assert cells == sorted(set(cells)) and all(0 <= cell < 256 for cell in cells)
    assert "0.0625" not in json.dumps(event)


@pytest.mark.parametrize("audit", [
    {"inputCells": [3, 1], "inputCellCount": 2},  # not sorted
    {"inputCells": [1, 1], "inputCellCount": 1},  # not distinct
    {"inputCells": [256], "inputCellCount": 1},  # outside the cell space
    {"inputCells": list(range(MAX_INPUT_CELLS + 1)), "inputCellCount": 17},  # beyond the cap
    {"inputCells": [1, 2], "inputCellCount": 5},  # fewer than the cap, yet a larger count
    {"inputCells": [1, 2]},  # no count
    {"inputCells": "1,2", "inputCellCount": 2},
    {"inputCells": [True], "inputCellCount": 1},
])
def test_a_malformed_input_summary_is_not_relayed(audit: dict[str, Any]) -> None:
    """The parent relays the enclave's summary only when it has the documented shape; a bad one is
    left out of the event, never a failed request."""
    assert input_summary(audit) == {}
    with pytest.raises(ValueError, match="inputCell"):
        inference_event(**{**GOOD, "decision": "served", "status": 200, "reason": None},  # type: ignore[arg-type]
                        input_cells=audit.get("inputCells"), input_cell_count=audit.get("inputCellCount", 0))


def test_an_input_summary_is_checked_and_only_on_a_served_event() -> None:
    served = {**GOOD, "decision": "served", "status": 200, "reason": None}
    event = inference_event(**served, input_cells=[4, 9], input_cell_count=2)  # type: ignore[arg-type]
    assert (event["inputCells"], event["inputCellCount"]) == ([4, 9], 2)
    assert input_summary({"inputCells": [4, 9], "inputCellCount": 2, "rows": 3}) == {
        "inputCells": [4, 9], "inputCellCount": 2}
    # Capped: more distinct cells than listed.
    full = list(range(0, 256, 16))
    assert event_problems({**event, "inputCells": full, "inputCellCount": 200}) == []
    # An event from before the summary (none of its fields) is still an event.
    old = {k: v for k, v in event.items() if k not in OPTIONAL_FIELDS}
    assert event_problems(old) == []
    with pytest.raises(ValueError, match="only a served request has an input summary"):
        inference_event(**GOOD, input_cells=[1], input_cell_count=1)  # type: ignore[arg-type]


@mock_aws
def test_the_agents_events_reach_the_log_group(sealed: tuple[Path, bytes], tmp_path: Path) -> None:  # noqa: F811
    """The agent as the fleet starts it with --events-log-group: each request's line, as the
    journal has it, is a log event in the group."""
    logs = boto3.client("logs", region_name="eu-west-1")
    group = "/zero-trust-ai/dev/inference-events"
    logs.create_log_group(logGroupName=group)
    sink = CloudWatchEventSink(logs, group, stream_name("ip-10-12-1-7"), logger=journal_logger())
    address = Address.parse(f"unix:{tmp_path / 'enclave.sock'}")
    app = EnclaveApp(EnclaveConfig(region="eu-west-1", key_arns=("arn:aws:kms:eu-west-1:1:key/k",),
                                   context={"model": "digits"}),
                     lambda config, credentials: StaticUnwrapper(sealed[1]), VERIFIER)
    listener = address.listen()
    threading.Thread(target=app.serve, args=(listener,), daemon=True).start()
    client = EnclaveClient(address)
    client.load(sealed[0], key_arns=[], context=CONTEXT, credentials={})
    emit = InferenceEvents(journal_logger(), sink)
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(client, events=emit))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    agent = Agent(f"http://127.0.0.1:{server.server_address[1]}")
    try:
        assert agent.call(body=rows(2), headers={**ISSUER.headers(), REQUEST_ID_HEADER: "gw-1"})[0] == 200
        assert agent.call(body=rows(1), headers={REQUEST_ID_HEADER: "gw-2"})[0] == 401
    finally:
        server.shutdown()
        listener.close()
    assert sink.flush() is True
    got = [json.loads(item["message"]) for item in
           logs.get_log_events(logGroupName=group, logStreamName=sink.stream)["events"]]
    assert [(e["requestId"], e["decision"], e["status"]) for e in got] == [
        ("gw-1", "served", 200), ("gw-2", "refused", 401)]
    assert all(event_problems(event) == [] for event in got)
