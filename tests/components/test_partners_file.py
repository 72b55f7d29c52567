"""The partners file read on its own: what YAML it accepts, and every bad file named clearly.
(The fields of each entry are checked through the stack key in test_stack_config.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from components.partners_file import parse_partners_file
from tests.conftest import ROOT

PARTNER_CA = str(ROOT / "stacks" / "truststore" / "placeholder-partner-ca.pem")
ENTRY = f"  - {{name: acme, caFile: {PARTNER_CA}, rateLimit: 1, burstLimit: 2}}\n"


def parse(tmp_path: Path, data: bytes) -> list[str]:
    path = tmp_path / "partners.yaml"
    path.write_bytes(data)
    return [partner.name for partner in parse_partners_file("apiPartnersFile", str(path))]


def test_the_shipped_partners_files_parse() -> None:
    for stack in ("dev", "prod"):
        [partner] = parse_partners_file("apiPartnersFile", f"stacks/partners/{stack}.yaml")
        assert partner.name == "example-partner" and partner.scopes == ()


def test_no_file_means_no_partners() -> None:
    assert parse_partners_file("apiPartnersFile", "") == []


def test_a_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    assert parse(tmp_path, b"\xef\xbb\xbfpartners:\n" + ENTRY.encode()) == ["acme"]


@pytest.mark.parametrize("data, expected", [
    # Go's YAML parser refuses a key given twice; PyYAML alone would keep the last value.
    (f"partners:\n  - name: acme\n    caFile: {PARTNER_CA}\n    rateLimit: 1\n    burstLimit: 2\n"
     "    rateLimit: 500\n".encode(),
     "not valid YAML at line 6, column 5: duplicate key 'rateLimit' (first given at line 4)"),
    (b"partners: []\npartners:\n" + ENTRY.encode(), "duplicate key 'partners' (first given at line 1)"),
    (b"partners:\n  - name: caf\xe9\n",
     "not UTF-8 text: byte 0xe9 on line 2 (offset 23) cannot be decoded; save it as UTF-8"),
    ("partners: []\n".encode("utf-16"),
     "the file is UTF-16 text (it starts with a UTF-16 byte order mark); save it as UTF-8"),
])
def test_bad_files_are_named_with_what_is_wrong(tmp_path: Path, data: bytes, expected: str) -> None:
    with pytest.raises(ValueError, match="cannot read it as YAML") as caught:
        parse(tmp_path, data)
    assert str(caught.value).startswith("zero-trust-ai:apiPartnersFile = ")
    assert expected in str(caught.value)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="No such file"):
        parse_partners_file("apiPartnersFile", str(tmp_path / "absent.yaml"))
