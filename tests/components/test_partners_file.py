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


@pytest.mark.parametrize("text, expected", [
    ("partner:\n" + ENTRY, "unknown top-level key(s) partner; the file holds only a `partners:` list"),
    ("partners:\n" + ENTRY + "extra: 1\n", "unknown top-level key(s) extra"),
])
def test_an_unknown_top_level_key_is_named(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse(tmp_path, text.encode())
    assert expected in str(caught.value)


def test_every_problem_of_every_partner_comes_at_once(tmp_path: Path) -> None:
    # A missing field hides no other problem of its entry, nor of the next.
    text = ("partners:\n  - {name: Acme, rateLimit: 0.0, burstLimit: 2}\n"
            f"  - {{name: globex, caFile: {PARTNER_CA}, rateLimit: 1, burstLimit: -1, paths: [GET]}}\n")
    with pytest.raises(ValueError) as caught:
        parse(tmp_path, text.encode())
    message = str(caught.value)
    for fragment in ("partners[0]: missing caFile",
                     "partners[0] (Acme): zero-trust-ai:apiPartnersFile.rateLimit = 0.0: requests per second",
                     "partners[0]: partner 'Acme': lower-case letters, digits and -",
                     "partners[1] (globex): zero-trust-ai:apiPartnersFile.burstLimit = -1: 0 to 5000",
                     "partners[1]: partner globex: path 'GET' must be `METHOD /path`"):
        assert fragment in message, message


def test_a_partner_named_as_the_first_party_clients_is_refused(tmp_path: Path) -> None:
    # The enclave's trust names the first-party clients `first-party`: a partner may not take it.
    with pytest.raises(ValueError, match="partner 'first-party': the name is reserved"):
        parse(tmp_path, ENTRY.replace("acme", "first-party").join(["partners:\n", ""]).encode())


def test_an_alias_bomb_is_refused_at_once(tmp_path: Path) -> None:
    # 9**12 values once expanded: read naively, this would not end (the test would hang).
    lines = ["  - &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"  - &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 13)]
    with pytest.raises(ValueError, match="excessive aliasing: its aliases expand to more than"):
        parse(tmp_path, ("partners:\n" + "\n".join(lines) + "\n").encode())


def test_a_few_aliases_are_still_read(tmp_path: Path) -> None:
    text = (f"partners:\n  - &acme {{name: acme, caFile: {PARTNER_CA}, rateLimit: 1, burstLimit: 2}}\n"
            "  - {<<: *acme, name: globex}\n")
    # Both read (the merge works); they then share one CA, which the stack configuration refuses.
    assert parse(tmp_path, text.encode()) == ["acme", "globex"]
