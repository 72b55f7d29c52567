"""Stacks of one project that deploy to the same account and Region share its default quotas."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from tests.conftest import ROOT
from ztai.stackfile import StackFileError, load_stack, network_footprint, shared_target_warnings


def project(tmp_path: Path, stacks: dict[str, dict[str, object]]) -> Path:
    (tmp_path / "Pulumi.yaml").write_text("name: zero-trust-ai\nruntime: python\n", encoding="utf-8")
    for name, config in stacks.items():
        (tmp_path / f"Pulumi.{name}.yaml").write_text(json.dumps({"config": config}), encoding="utf-8")
    return tmp_path


def admins(account: str) -> list[str]:
    return [f"arn:aws:iam::{account}:role/key-admin"]


def stack(region: str = "eu-west-1", account: str = "111122223333", zones: int = 3,
          egress: tuple[str, ...] = ("management",), **extra: object) -> dict[str, object]:
    return {"aws:region": region, "zero-trust-ai:keyAdministratorRoleArns": admins(account),
            "zero-trust-ai:azCount": zones, "zero-trust-ai:egressSegments": list(egress), **extra}


def test_two_stacks_in_one_account_and_region_are_named_with_what_they_need(tmp_path: Path) -> None:
    root = project(tmp_path, {"dev": stack(zones=2), "prod": stack(), "qa": stack(zones=3)})
    [with_prod, with_qa] = shared_target_warnings(load_stack(root, "dev"))
    assert with_prod.startswith("stacks 'dev' and 'prod' both target account 111122223333 in eu-west-1")
    # 4 + 4 VPCs; NAT gateways with an Elastic IP in each zone of each egress segment: 2 + 3.
    assert "together they need 8 VPCs, 5 Elastic IP addresses, 2 internet gateways" in with_prod
    assert "over the default quotas: 8 VPCs (default quota 5)" in with_prod
    assert "'dev' and 'qa'" in with_qa
    assert network_footprint(load_stack(root, "prod")) == {
        "VPCs": 4, "Elastic IP addresses": 3, "internet gateways": 1}


def test_elastic_ips_over_the_quota_are_named(tmp_path: Path) -> None:
    root = project(tmp_path, {"a": stack(), "b": stack(egress=("management", "training"))})
    [warning] = shared_target_warnings(load_stack(root, "a"))
    assert "9 Elastic IP addresses (default quota 5)" in warning


@pytest.mark.parametrize("other", [
    stack(account="444455556666"),
    stack(region="eu-central-1"),
    # allowedAccountIds decides over the administrators' accounts
    stack() | {"aws:allowedAccountIds": ["444455556666"]},
    # a stack whose file names no account is not guessed at
    {"aws:region": "eu-west-1"},
])
def test_stacks_in_other_accounts_or_regions_share_nothing(tmp_path: Path, other: dict[str, object]) -> None:
    root = project(tmp_path, {"dev": stack(), "prod": other})
    assert shared_target_warnings(load_stack(root, "dev")) == []


def test_a_broken_sibling_stack_file_is_left_to_its_own_preview(tmp_path: Path) -> None:
    root = project(tmp_path, {"dev": stack()})
    (root / "Pulumi.broken.yaml").write_text("config: [", encoding="utf-8")
    assert shared_target_warnings(load_stack(root, "dev")) == []


# -- stack files Pulumi would refuse or read otherwise than they look ----------------------------
PROJECT_FILE = """name: zero-trust-ai
runtime: python
config:
  azCount:
    type: integer
    default: 2
  owner:
    type: string
  egressSegments:
    type: array
    items:
      type: string
    default: []
  reserveFunctionConcurrency:
    type: boolean
    default: true
"""


def stack_file(tmp_path: Path, data: bytes | str, project_file: str = PROJECT_FILE) -> Path:
    (tmp_path / "Pulumi.yaml").write_text(project_file, encoding="utf-8")
    path = tmp_path / "Pulumi.dev.yaml"
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return tmp_path


def refused(tmp_path: Path, data: bytes | str, project_file: str = PROJECT_FILE) -> str:
    with pytest.raises(StackFileError) as caught:
        load_stack(stack_file(tmp_path, data, project_file), "dev")
    return str(caught.value)


def test_values_are_passed_as_the_engine_passes_them_with_declared_defaults(tmp_path: Path) -> None:
    config = load_stack(stack_file(tmp_path, "config:\n  aws:region: eu-west-1\n  owner: ml\n"
                                             "  zero-trust-ai:egressSegments: [management]\n"), "dev").config
    assert config == {"aws:region": "eu-west-1", "zero-trust-ai:owner": "ml",
                      "zero-trust-ai:egressSegments": '["management"]', "zero-trust-ai:azCount": "2",
                      "zero-trust-ai:reserveFunctionConcurrency": "true"}


@pytest.mark.parametrize("text, expected", [
    # Pulumi's Go YAML parser refuses these; PyYAML alone keeps the last value.
    ("config:\n  zero-trust-ai:azCount: 2\n  zero-trust-ai:owner: ml\n  zero-trust-ai:azCount: 3\n",
     "is not valid YAML at line 4, column 3: duplicate key 'zero-trust-ai:azCount' (first given at line 2)"),
    ("config:\n  owner: a\nconfig:\n  owner: b\n", "duplicate key 'config' (first given at line 1)"),
    # The same key bare and qualified: Pulumi qualifies the bare one, so it is given twice.
    ("config:\n  azCount: 2\n  zero-trust-ai:azCount: 3\n",
     "line 3: zero-trust-ai:azCount is given twice, as azCount and as zero-trust-ai:azCount; keep one"),
    # The program receives every value as a string: a quoted number or boolean would pass unseen.
    ('config:\n  zero-trust-ai:azCount: "3"\n',
     'line 2: zero-trust-ai:azCount = "3": expected an integer (e.g. 3, without quotes), got a string'),
    ("config:\n  zero-trust-ai:azCount: 2.5\n", "expected an integer (e.g. 3, without quotes), got a number"),
    ('config:\n  zero-trust-ai:reserveFunctionConcurrency: "false"\n',
     "expected true or false (without quotes), got a string"),
    ("config:\n  zero-trust-ai:reserveFunctionConcurrency: yes\n",
     'reserveFunctionConcurrency = "yes": expected true or false (without quotes), got a string'),
    ("config:\n  zero-trust-ai:owner: 42\n",
     "zero-trust-ai:owner = 42: expected a string, got an integer (put quotes around it"),
    ("config:\n  zero-trust-ai:egressSegments: management\n",
     "expected a list, got a string (one item per line, each after `- `)"),
    ("config:\n  zero-trust-ai:egressSegments: []\n  zero-trust-ai:owner:\n",
     "line 3: zero-trust-ai:owner has no value; give one, or delete the line for the default"),
    ("config:\n  zero-trust-ai:egressSegments: [management, 7]\n",
     "item 1: expected a string, got an integer"),
    ("config:\n  zero-trust-ai:egressSegments: [~]\n", "item 0: expected a string, got nothing (null)"),
    ("config:\n  aws:region: !!binary aGVsbG8=\n",
     "line 2: aws:region is bytes that Pulumi config cannot carry"),
    # The document itself.
    ("- config\n", "must be a mapping with a `config:` section"),
    ("", "is empty; it needs a `config:` section"),
    ("# only a comment\n", "is empty; it needs a `config:` section"),
    ("secretsprovider: passphrase\n", "has no `config:` section; the stack's keys (aws:region, "
                                      "zero-trust-ai:environment, ...) go under it"),
    ("confg:\n  aws:region: eu-west-1\n",
     "line 1: unknown top-level setting `confg` (did you mean `config`?)"),
    ("config: [aws:region]\n", "`config` must be a mapping of key: value"),
    ('config: "x"\n', "`config` must be a mapping of key: value"),
    ("config:\n  zero-trust-ai:egressSegments: &a [*a]\n",
     "line 2: zero-trust-ai:egressSegments is a list that Pulumi config cannot carry"),
    ("---\nconfig: {}\n---\nconfig: {}\n",
     "at line 3, column 1: expected a single document in the stream but found another document"),
    ("config:\n  zero-trust-ai:owner: \x00\n",
     "contains NUL characters (a binary file, or UTF-16 text?); save it as UTF-8"),
    # The bytes.
    (b"config:\n  zero-trust-ai:owner: caf\xe9\n",
     "not UTF-8 text: byte 0xe9 on line 2 (offset 34) cannot be decoded; save it as UTF-8"),
    ("config:\n  zero-trust-ai:owner: ml\n".encode("utf-16"),
     "is UTF-16 text (it starts with a UTF-16 byte order mark); save it as UTF-8"),
])
def test_bad_stack_files_are_refused_naming_line_and_key(tmp_path: Path, text: str | bytes,
                                                         expected: str) -> None:
    message = refused(tmp_path, text)
    assert str(tmp_path / "Pulumi.dev.yaml") in message
    assert expected in message, message


def test_every_problem_of_a_stack_file_comes_at_once(tmp_path: Path) -> None:
    message = refused(tmp_path, 'config:\n  zero-trust-ai:azCount: "3"\n  zero-trust-ai:owner:\n')
    assert message.count("\n  - line ") == 2


def test_a_duplicate_key_in_the_project_file_is_refused(tmp_path: Path) -> None:
    message = refused(tmp_path, "config: {}\n", "name: zero-trust-ai\nname: other\n")
    assert "Pulumi.yaml is not valid YAML at line 2, column 1: duplicate key 'name'" in message


def test_yaml_is_read_as_pulumi_reads_it(tmp_path: Path) -> None:
    # YAML 1.2, as Go's parser: `no`, `on` and dates are strings, a byte order mark is accepted.
    config = load_stack(stack_file(tmp_path, b"\xef\xbb\xbfconfig:\n  zero-trust-ai:owner: no\n"
                                             b"  aws:region: on\n  team:since: 2024-01-01\n"), "dev").config
    assert (config["zero-trust-ai:owner"], config["aws:region"], config["team:since"]) == (
        "no", "on", "2024-01-01")


def test_secrets_stay_opaque_and_are_not_type_checked(tmp_path: Path) -> None:
    loaded = load_stack(stack_file(tmp_path, "config:\n  zero-trust-ai:azCount:\n    secure: AAAB\n"), "dev")
    assert loaded.config["zero-trust-ai:azCount"] == "offline-preview-placeholder"
    assert loaded.warnings == ["zero-trust-ai:azCount is a secret; the offline preview uses a placeholder"]


def test_no_stack_file_content_ends_in_anything_but_a_clear_error(tmp_path: Path) -> None:
    # Damaged copies of a shipped stack file (bytes dropped, swapped or inserted): each loads, or is
    # refused with StackFileError, and what loads is refused by the parser with StackConfigError.
    from components.stack_config import StackConfigError, parse_stack_config
    project_dir = tmp_path / "project"
    (project_dir / "stacks").mkdir(parents=True)
    (project_dir / "Pulumi.yaml").write_bytes((ROOT / "Pulumi.yaml").read_bytes())
    original = (ROOT / "stacks" / "Pulumi.prod.yaml").read_bytes()
    chaos = random.Random(20261207)
    outcomes = set()
    for _ in range(150):
        data = bytearray(original)
        for _ in range(chaos.randint(1, 4)):
            at = chaos.randrange(len(data))
            action = chaos.choice(("drop", "swap", "insert"))
            if action == "drop":
                del data[at:at + chaos.randint(1, 8)]
            elif action == "swap":
                data[at] = chaos.choice(b":-[]{}&*!|>'\"#%@` \n\t\x00\xff0aZ")
            else:
                data[at:at] = chaos.choice((b"\n  ", b": ", b"- ", b"&x ", b"*x", b"!!binary ", b"~"))
        (project_dir / "stacks" / "Pulumi.prod.yaml").write_bytes(bytes(data))
        try:
            parse_stack_config(load_stack(project_dir, "prod").config)
            outcomes.add("valid")
        except StackFileError:
            outcomes.add("file refused")
        except StackConfigError:
            outcomes.add("config refused")
    assert {"file refused", "config refused"} <= outcomes


def test_a_bare_key_is_the_projects_as_pulumi_reads_it(tmp_path: Path) -> None:
    # Pulumi qualifies a stack file's bare keys with the project name: `azCount: 3` is
    # zero-trust-ai:azCount, and so it is here (a renamed project: its own name).
    assert load_stack(stack_file(tmp_path, "config:\n  azCount: 3\n"), "dev").config[
        "zero-trust-ai:azCount"] == "3"
    renamed = PROJECT_FILE.replace("name: zero-trust-ai", "name: my-fork")
    loaded = load_stack(stack_file(tmp_path, "config:\n  azCount: 3\n", renamed), "dev")
    assert (loaded.project, loaded.config["my-fork:azCount"]) == ("my-fork", "3")


@pytest.mark.parametrize("where", ["stack", "project"])
def test_an_alias_bomb_is_refused_at_once(tmp_path: Path, where: str) -> None:
    # 9**12 values once expanded: read naively, this would not end (the test would hang).
    lines = ["  - &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"  - &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 13)]
    bomb = "bomb:\n" + "\n".join(lines) + "\n"
    if where == "stack":
        message = refused(tmp_path, "config:\n  team:" + bomb.replace("\n  ", "\n    "))
    else:
        message = refused(tmp_path, "config: {}\n", PROJECT_FILE + "x" + bomb)
    assert "is not valid YAML at line 1, column 1: excessive aliasing" in message, message
