"""The parent agent's command line: every value checked by argparse (exit 2, the option named),
never a traceback."""

from __future__ import annotations

import pytest

from enclave_images.parent.agent import parse_args
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
])
def test_bad_arguments_exit_2_naming_the_option(capsys: pytest.CaptureFixture[str], arguments: list[str],
                                                complaint: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_args([*REQUIRED, *arguments])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert complaint in error and "Traceback" not in error
