"""The parent agent's command line: every value checked by argparse (exit 2, the option named),
never a traceback."""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
from pathlib import Path

import pytest

from enclave_images.parent.agent import (
    AgentServer,
    EnclaveClient,
    make_handler,
    parse_args,
    self_signed_context,
)
from enclave_images.protocol import Address

REQUIRED = ["--bucket", "models", "--key", "digits.enc", "--key-arn", "arn:aws:kms:eu-west-1:1:key/k"]


def test_good_arguments_are_parsed_into_typed_values() -> None:
    args = parse_args([*REQUIRED, "--context", "model=digits", "--context", "version=7=b",
                       "--enclave", "vsock:16:5006", "--listen", "127.0.0.1:9000"])
    assert args.context == {"model": "digits", "version": "7=b"}
    assert args.enclave == Address("vsock", "16", 5006)
    assert args.listen == ("127.0.0.1", 9000)
    defaults = parse_args(REQUIRED)
    assert (defaults.context, defaults.enclave, defaults.listen) == (
        {}, Address("vsock", "16", 5005), ("0.0.0.0", 8080))


@pytest.mark.parametrize(("arguments", "complaint"), [
    (["--context", "foo"], "argument --context: 'foo': expected KEY=VALUE"),
    (["--context", "=digits"], "expected KEY=VALUE"),
    (["--context", "model="], "expected KEY=VALUE"),
    (["--context", "model=a", "--context", "model=b"], "argument --context: 'model' given twice"),
    (["--listen", "0.0.0.0:99999"], "argument --listen: '0.0.0.0:99999': expected HOST:PORT with a port 1.."),
    (["--listen", "0.0.0.0:http"], "expected HOST:PORT"),
    (["--listen", "8080"], "expected HOST:PORT"),
    (["--enclave", "vsock:16:4294967296"], "argument --enclave: address 'vsock:16:4294967296': port"),
    (["--enclave", "http://enclave"], "argument --enclave: address 'http://enclave': expected vsock"),
    (["--events-log-group", "/zero-trust-ai/dev/inference events"],
     "argument --events-log-group: '/zero-trust-ai/dev/inference events': a CloudWatch Logs group name"),
    (["--events-log-group", ""], "argument --events-log-group: '': a CloudWatch Logs group name"),
    (["--events-log-group", "a" * 513], "a CloudWatch Logs group name, 1-512 letters"),
])
def test_bad_arguments_exit_2_naming_the_option(capsys: pytest.CaptureFixture[str], arguments: list[str],
                                                complaint: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_args([*REQUIRED, *arguments])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert complaint in error and "Traceback" not in error


def test_the_events_log_group_is_optional() -> None:
    assert parse_args(REQUIRED).events_log_group is None
    assert parse_args([*REQUIRED, "--events-log-group", "/zero-trust-ai/dev/inference-events"]
                      ).events_log_group == "/zero-trust-ai/dev/inference-events"


def test_tls_is_an_option_of_its_own() -> None:
    assert parse_args(REQUIRED).tls is False
    assert parse_args([*REQUIRED, "--tls"]).tls is True


def test_the_agent_serves_tls_to_the_load_balancer(tmp_path: Path) -> None:
    """What the NLB's TLS target group does: a TLS 1.2+ handshake without verifying the agent's
    certificate (self-signed, made at start), then HTTP; a plain-text client gets nothing."""
    context = self_signed_context()
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2  # no TLS 1.0/1.1
    server = AgentServer(("127.0.0.1", 0), make_handler(EnclaveClient(
        Address.parse(f"unix:{tmp_path / 'absent.sock'}"), timeout=1)), context)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    try:
        client = ssl.create_default_context()
        client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
        connection = http.client.HTTPSConnection("127.0.0.1", port, context=client, timeout=10)
        connection.request("GET", "/health")
        reply = connection.getresponse()
        assert reply.status == 503 and b"enclave unreachable" in reply.read()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
                client.wrap_socket(raw) as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
        plain = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        with pytest.raises((http.client.HTTPException, ConnectionError)):
            plain.request("GET", "/health")
            plain.getresponse()
    finally:
        server.shutdown()


def test_without_openssl_tls_ends_in_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="--tls: could not make the agent's TLS key with"):
        self_signed_context(openssl=str(tmp_path / "no-openssl"))
