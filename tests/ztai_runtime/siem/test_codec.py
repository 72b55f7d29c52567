"""The transform's JSON and base64 (`ztai_runtime.siem.codec`): orjson and pybase64 when present,
the standard library otherwise, and the same answers either way, on the cases where the two
libraries differ (numbers past 64 bits, NaN, lone surrogates, deep nesting, loose base64 padding)
and on whole batches of the dataset."""

from __future__ import annotations

import ast
import base64
import binascii
import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support import firehose_records as fx
from tests.support.datasets import stratus_red_team_records
from ztai_runtime.siem import codec, firehose
from ztai_runtime.siem.ocsf import REDACTED, redact_line, to_ocsf

ROOT = Path(__file__).resolve().parents[3]
TRAIL_GROUP = "/zero-trust-ai/dev/cloudtrail"
WIDE_INTEGERS = (2**64, 123456789012345678901234567890, -(2**63) - 1, -(10**30))


def trail_record(**extra: Any) -> dict[str, Any]:
    record = {"eventVersion": "1.11", "eventTime": "2026-12-07T10:15:42Z", "eventSource": "s3.amazonaws.com",
              "eventName": "GetObject", "awsRegion": "eu-west-1", "sourceIPAddress": "10.0.1.5",
              "userIdentity": {"type": "AssumedRole", "principalId": "AROAEXAMPLE:s",
                               "arn": "arn:aws:sts::111122223333:assumed-role/r/s",
                               "accountId": "111122223333"},
              "eventID": "4b1c1b8e-0b9a-4f8e-9d0e-7a7b7c7d7e7f", "recipientAccountId": "111122223333"}
    record.update(extra)
    return record


# Integers within what orjson reads exactly; wider ones are the walk's to catch (tests below).
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_loads_and_dumps_agree_with_the_standard_library(value: Any) -> None:
    text = json.dumps(value)
    assert codec.loads(text) == json.loads(text)
    assert codec.loads(text.encode()) == json.loads(text)
    assert json.loads(codec.dumps(value)) == value
    assert json.loads(codec.dumps_bytes(value)) == value


@pytest.mark.parametrize("text", ["NaN", "[Infinity, -Infinity]", '"\\ud800"', '{"a": "\\udc00x"}',
                                  "1e400", str(2**64), "123456789012345678901234567890",
                                  str(-(2**63) - 1), "[" * 1100 + "]" * 1100])
def test_what_orjson_refuses_or_rounds_is_read_as_json_reads_it(text: str) -> None:
    try:
        expected: Any = json.loads(text)
    except RecursionError:
        with pytest.raises(RecursionError):
            codec.loads(text)
        return
    got = codec.loads(text)
    if isinstance(expected, float) and math.isinf(expected):
        assert got == expected
    elif isinstance(expected, int):
        # orjson reads an integer past 64 bits as a float; the mapping's walk catches it (below),
        # `loads` alone may not: it must at least be the same number to a float's precision.
        assert float(got) == float(expected)
    else:
        assert json.dumps(got) == json.dumps(expected)


@pytest.mark.parametrize("value", [["\ud800"], {"k": "a\udfffb"}, 2**64, [-(2**70)]])
def test_dumps_writes_what_orjson_refuses(value: Any) -> None:
    assert json.loads(codec.dumps(value)) == value
    assert json.loads(codec.dumps_bytes(value).decode()) == value
    codec.dumps_bytes(value).decode()  # valid UTF-8: a lone surrogate is written as its escape


@pytest.mark.parametrize("number", WIDE_INTEGERS)
def test_a_wide_integer_reaches_the_siem_exactly(number: int) -> None:
    # Unmapped fields keep it exactly, whichever parser read the line, and so does raw_data when a
    # redaction made it re-serialise the record.
    line = json.dumps(trail_record(requestParameters={"bucketName": "b", "count": number,
                                                       "nested": [{"n": number}, number]},
                                   responseElements={"sessionToken": "FQoGZXIvYXdzEexample"}))
    event = to_ocsf(line, log_group=TRAIL_GROUP)
    assert event is not None
    written = json.loads(codec.dumps(event))
    assert written["unmapped"]["requestParameters"] == {"bucketName": "b", "count": number,
                                                         "nested": [{"n": number}, number]}
    raw = json.loads(written["raw_data"])
    assert raw["requestParameters"]["count"] == number
    assert raw["responseElements"]["sessionToken"] == REDACTED
    forwarded = json.loads(redact_line(json.dumps({"total": number, "password": "hunter2"})))
    assert forwarded == {"total": number, "password": REDACTED}


@pytest.mark.parametrize("place", ["in a list", "in an object", "at the top"])
def test_a_wide_integer_anywhere_alone_is_caught(place: str) -> None:
    # Each place the walk looks, on its own: one wide integer, nothing else wide in the line.
    number = 2**64 + 1
    places: dict[str, dict[str, Any]] = {"in a list": {"ids": ["a", number]},
                                         "in an object": {"limits": {"max": number}},
                                         "at the top": {}}
    parameters = places[place]
    extra = {"wideTop": number} if place == "at the top" else {}
    line = json.dumps(trail_record(requestParameters=parameters, **extra))
    event = to_ocsf(line, log_group=TRAIL_GROUP)
    assert event is not None
    assert json.loads(codec.dumps(event))["unmapped"] == {
        key: value for key, value in json.loads(line).items() if key in event["unmapped"]}
    assert json.loads(redact_line(json.dumps({"x": parameters, **extra, "token": "t"}))) == {
        "x": parameters, **extra, "token": REDACTED}


def test_a_float_literal_past_64_bits_is_kept_as_a_float() -> None:
    # The wide-number check re-reads such a line exactly: the float stays the float it was.
    line = json.dumps(trail_record(requestParameters={"size": 1e30, "token": "t0k"}))
    event = to_ocsf(line, log_group=TRAIL_GROUP)
    assert event is not None
    assert event["unmapped"]["requestParameters"] == {"size": 1e30, "token": REDACTED}


LOOSE_BASE64 = ["YWI=YQ==", "u/pHuRTD=", "05aW=", "YQ", "YQ=", "Y===", "====", "", "YQ==", "Y Q==", "YQ==\n"]


@pytest.mark.parametrize("text", LOOSE_BASE64)
def test_b64decode_refuses_exactly_what_base64_refuses(text: str) -> None:
    try:
        expected = base64.b64decode(text, validate=True)
    except binascii.Error:
        with pytest.raises(binascii.Error):
            codec.b64decode(text)
        return
    assert codec.b64decode(text) == expected
    assert codec.b64decode(text.encode()) == expected


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ABCDabcd0189+/=\n -_", max_size=16), st.binary(max_size=64))
def test_base64_agrees_with_the_standard_library(text: str, data: bytes) -> None:
    test_b64decode_refuses_exactly_what_base64_refuses(text)
    assert codec.b64encode(data) == base64.b64encode(data).decode("ascii")


def parsed(line: str) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        return line  # a plain-text line, forwarded as it came


def transform_lines(records: list[dict[str, Any]]) -> list[Any]:
    result = firehose.transform_records(records)
    assert {output["result"] for output in result.outputs} == {"Ok"}
    return [parsed(line) for output in result.outputs
            for line in base64.b64decode(output["data"]).decode().splitlines()]


def test_the_transform_delivers_the_same_events_with_either_library() -> None:
    lines = [json.dumps(record) for _, record in stratus_red_team_records()]
    lines += [json.dumps(trail_record(requestParameters={"n": number, "password": "p"}))
              for number in WIDE_INTEGERS]
    lines += ['{"eventVersion": "1.11", "value": NaN}', '{"weird": "\\ud800", "token": "x"}', "plain text"]
    records = [fx.record(f"r{start}", fx.encode(fx.payload(lines[start:start + 100], log_group=TRAIL_GROUP)))
               for start in range(0, len(lines), 100)]
    now = codec.fast_libraries()
    try:
        codec.use_fast(True)
        fast = transform_lines(records)
        codec.use_fast(False)
        plain = transform_lines(records)
    finally:
        codec.use_fast(bool(now))
    assert len(fast) == len(lines)
    assert fast == plain
    assert fast[-1] == "plain text"
    assert fast[-2] == {"weird": "\ud800", "token": REDACTED}


def test_the_codec_imports_only_the_standard_library_and_the_shipped_packages() -> None:
    source = ROOT / "ztai_runtime" / "siem" / "codec.py"
    tree = ast.parse(source.read_text(encoding="utf-8"))
    optional = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Try)
                for inner in node.body if isinstance(inner, ast.Import) for alias in inner.names}
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    # The fast libraries are imported only inside try/except ImportError: optional everywhere.
    assert optional == {"orjson", "pybase64"}
    assert imported - optional - {"__future__"} <= sys.stdlib_module_names


def strict_json(text: str) -> Any:
    """Parsed as a SIEM would: NaN and Infinity are not JSON."""
    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not JSON")
    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_written_as_null_in_both_paths(literal: str) -> None:
    # A line json accepts (orjson refuses it, so json reads it in both paths); a secret makes the
    # walk re-serialise it, so the writer meets the non-finite number.
    line = json.dumps(trail_record(requestParameters={"durationSeconds": 1, "password": "p"})).replace(
        '"durationSeconds": 1', f'"durationSeconds": {literal}')
    event = to_ocsf(line, log_group=TRAIL_GROUP)
    assert event is not None
    written = strict_json(codec.dumps(event))
    assert written["unmapped"]["requestParameters"] == {"durationSeconds": None, "password": REDACTED}
    assert strict_json(written["raw_data"])["requestParameters"]["durationSeconds"] is None
    forwarded = redact_line(f'{{"a": {literal}, "password": "p", "b": [{literal}]}}')
    assert strict_json(forwarded) == {"a": None, "password": REDACTED, "b": [None]}
    number = float(literal.lower().replace("infinity", "inf"))
    assert strict_json(codec.dumps_bytes([number]).decode()) == [None]
