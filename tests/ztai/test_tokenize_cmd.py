"""`ztai tokenize` / `ztai detokenize` in-process (`ztai.cli.main`), against moto through boto3's
standard configuration: the exit status, the message and the files an operator is left with."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from tests.ztai_runtime.test_tokenize import (
    MAC_ALIAS,
    Decisions,
    World,
    aws_environment,
    create_vault_table,
    make_world,
    people,
    read_csv,
    write_csv,
)
from ztai.cli import main
from ztai.errors import EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from ztai_runtime.tokenize import DeterministicTokenizer, derive_domain_key
from ztai_runtime.tokenize.deterministic import TOKEN_PREFIX
from ztai_runtime.tokenize.stream import checkpoint_path, partial_path


@pytest.fixture(scope="module")
def moto_world() -> Iterator[World]:
    with aws_environment(), mock_aws():
        yield make_world()


@pytest.fixture
def aws(moto_world: World, request: pytest.FixtureRequest) -> World:
    return create_vault_table(moto_world, f"cli-{abs(hash(request.node.nodeid)):x}")


@pytest.fixture
def decisions() -> Iterator[Decisions]:
    handler = Decisions()
    logging.getLogger("ztai.tokenize").addHandler(handler)
    yield handler
    logging.getLogger("ztai.tokenize").removeHandler(handler)


def tokenize(*args: str) -> int:
    return main(["tokenize", "--key-id", MAC_ALIAS, "--domain", "customers", *args])


def vault_args(aws: World) -> list[str]:
    return ["--mode", "vault", "--table", aws.table, "--vault-key-id", aws.vault_key]


def detokenize(aws: World, *args: str, domain: str = "customers") -> int:
    return main(["detokenize", "--table", aws.table, "--vault-key-id", aws.vault_key, "--domain", domain,
                 *args])


def test_deterministic_csv(aws: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = write_csv(tmp_path / "in.csv", people(30))
    assert tokenize("--columns", "email", str(source), str(tmp_path / "out.csv")) == EXIT_OK
    expected = DeterministicTokenizer(derive_domain_key(aws.kms, MAC_ALIAS, "customers"))
    out = read_csv(tmp_path / "out.csv")
    assert [row[1] for row in out[1:]] == [expected.token(row[1]) for row in people(30)[1:]]
    assert [row[2] for row in out] == [row[2] for row in people(30)]
    assert "tokenized 30 values in 30 rows" in capsys.readouterr().err


def test_jsonl_with_normalisation_format_from_the_extension(aws: World, tmp_path: Path) -> None:
    source = tmp_path / "in.ndjson"
    source.write_text('{"email": " Ann@X.com", "id": 7}\n{"email": "ann@x.com", "id": 8}\n')
    assert tokenize("--columns", "email,id", "--normalize", "email=strip+lower", str(source),
                    str(tmp_path / "out.ndjson")) == EXIT_OK
    first, second = (json.loads(line) for line in (tmp_path / "out.ndjson").read_text().splitlines())
    assert first["email"] == second["email"] and first["id"] != second["id"]
    assert first["email"].startswith(TOKEN_PREFIX)


def test_vault_round_trip_logs_the_detokenization(aws: World, tmp_path: Path, decisions: Decisions) -> None:
    source = write_csv(tmp_path / "in.csv", people(40, distinct=10))
    assert tokenize("--columns", "email,country", *vault_args(aws), str(source),
                    str(tmp_path / "tokens.csv")) == EXIT_OK
    tokens = read_csv(tmp_path / "tokens.csv")
    assert all(row[1].startswith("tv1_") for row in tokens[1:])
    assert detokenize(aws, "--columns", "email,country", str(tmp_path / "tokens.csv"),
                      str(tmp_path / "back.csv")) == EXIT_OK
    assert read_csv(tmp_path / "back.csv") == people(40, distinct=10)
    [line] = decisions.events("detokenize")
    assert line["outcome"] == "allowed" and line["caller"].startswith("arn:aws:sts::")
    # Email in every row, country where it was not empty (empty cells stay empty, untokenized).
    assert line["tokens"] == 40 + sum(1 for row in people(40)[1:] if row[2])


def test_detokenize_in_another_domain_fails_without_output(aws: World, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    source = write_csv(tmp_path / "in.csv", people(5))
    assert tokenize("--columns", "email", *vault_args(aws), str(source), str(tmp_path / "t.csv")) == EXIT_OK
    assert detokenize(aws, "--columns", "email", str(tmp_path / "t.csv"), str(tmp_path / "back.csv"),
                      domain="partners") == EXIT_USAGE
    assert "5 of 5 tokens are not in vault" in capsys.readouterr().err
    assert not (tmp_path / "back.csv").exists() and not partial_path(tmp_path / "back.csv").exists()


@pytest.mark.parametrize("extra, message", [
    (["--columns", "mail"], "column 'mail' not in the header; the columns are id, email, country"),
    (["--columns", "email,"], "--columns 'email,' has an empty name"),
    (["--columns", "email", "--table", "t"], "--table and --vault-key-id belong to --mode vault"),
    (["--columns", "email", "--mode", "vault", "--table", "t"], "--mode vault needs --table NAME and "
                                                                "--vault-key-id KEY"),
    (["--columns", "email", "--normalize", "email=upper"],
     "unknown step 'upper'; steps are strip, lower, nfc"),
    (["--columns", "email", "--normalize", "id=strip"], "names column 'id', which is not among the "
                                                        "tokenized columns"),
    (["--columns", "email", "--checkpoint-every", "0"], "--checkpoint-every 0"),
])
def test_usage_errors_exit_2_and_write_nothing(aws: World, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               extra: list[str], message: str) -> None:
    source = write_csv(tmp_path / "in.csv", people(3))
    assert tokenize(*extra, str(source), str(tmp_path / "out.csv")) == EXIT_USAGE
    assert message in capsys.readouterr().err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["in.csv"]


def test_file_errors_exit_2(aws: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = write_csv(tmp_path / "in.csv", people(3))
    (tmp_path / "out.csv").write_text("already here")
    assert tokenize("--columns", "email", str(source), str(tmp_path / "out.csv")) == EXIT_USAGE
    assert "out.csv exists; pass --force to replace it" in capsys.readouterr().err
    assert tokenize("--columns", "email", "--force", str(source), str(tmp_path / "out.csv")) == EXIT_OK
    text = source.rename(tmp_path / "in.txt")
    assert tokenize("--columns", "email", str(text), str(tmp_path / "out.txt")) == EXIT_USAGE
    assert "pass --format csv|jsonl" in capsys.readouterr().err
    assert tokenize("--columns", "email", "--format", "csv", str(text), str(tmp_path / "out.txt")) == EXIT_OK
    missing = tmp_path / "missing.csv"
    assert tokenize("--columns", "email", str(missing), str(tmp_path / "o.csv")) == EXIT_USAGE
    assert "does not exist" in capsys.readouterr().err


def test_resume_and_force_exclude_each_other(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as raised:
        tokenize("--columns", "email", "--resume", "--force", "a.csv", "b.csv")
    assert raised.value.code == EXIT_USAGE


def test_aws_refusals_exit_2_naming_the_call(aws: World, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    source = write_csv(tmp_path / "in.csv", people(3))
    assert main(["tokenize", "--key-id", aws.vault_key, "--domain", "customers", "--columns", "email",
                 str(source), str(tmp_path / "out.csv")]) == EXIT_USAGE
    assert "AWS KMS GenerateMac failed: InvalidKeyUsageException" in capsys.readouterr().err
    # A vault that does not exist: refused at the first lookup, before any row was done, so nothing
    # is left behind and no --resume is suggested.
    assert tokenize("--columns", "email", "--mode", "vault", "--table", "no-such-table", "--vault-key-id",
                    aws.vault_key, str(source), str(tmp_path / "out.csv")) == EXIT_USAGE
    error = capsys.readouterr().err
    assert "DynamoDB BatchGetItem failed: ResourceNotFoundException" in error
    assert f"nothing was written to {tmp_path / 'out.csv'}" in error and "--resume" not in error
    assert sorted(path.name for path in tmp_path.iterdir()) == ["in.csv"]
    # A run killed before its first checkpoint (a partial output, no checkpoint): --resume starts
    # from the first row, and says so.
    partial_path(tmp_path / "out.csv").write_bytes(source.read_bytes().splitlines(keepends=True)[0])
    assert tokenize("--columns", "email", "--resume", "--json", str(source),
                    str(tmp_path / "out.csv")) == EXIT_OK
    assert json.loads(capsys.readouterr().out)["warnings"] == [
        "the interrupted run had written no checkpoint, so the input was processed again from its first row"]
    assert len(read_csv(tmp_path / "out.csv")) == 4


def test_an_interrupted_run_resumes_to_the_same_bytes(aws: World, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    source = write_csv(tmp_path / "in.csv", people(5000))
    whole, destination = tmp_path / "whole.csv", tmp_path / "out.csv"
    assert tokenize("--columns", "email", str(source), str(whole)) == EXIT_OK
    original = DeterministicTokenizer.tokens
    calls = [0]

    def dies_on_the_third_batch(self: DeterministicTokenizer, values: Any) -> list[str]:
        calls[0] += 1
        if calls[0] == 3:
            raise MemoryError("killed")
        return original(self, values)

    monkeypatch.setattr(DeterministicTokenizer, "tokens", dies_on_the_third_batch)
    assert tokenize("--columns", "email", "--checkpoint-every", "1000", str(source),
                    str(destination)) == EXIT_FAILURE
    assert json.loads(checkpoint_path(destination).read_text())["rows_done"] == 2000
    assert tokenize("--columns", "email", str(source), str(destination)) == EXIT_USAGE
    assert "pass --resume to continue it or --force to start over" in capsys.readouterr().err
    monkeypatch.setattr(DeterministicTokenizer, "tokens", original)
    assert tokenize("--columns", "email", "--resume", str(source), str(destination)) == EXIT_OK
    assert "(resumed after row 2000)" in capsys.readouterr().err
    assert destination.read_bytes() == whole.read_bytes()
    assert not checkpoint_path(destination).exists() and not partial_path(destination).exists()


def test_a_directory_output_exits_2_even_with_force(aws: World, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    source = write_csv(tmp_path / "in.csv", people(3000))
    (tmp_path / "out.csv").mkdir()
    assert tokenize("--columns", "email", "--force", str(source), str(tmp_path / "out.csv")) == EXIT_USAGE
    assert "out.csv is a directory; the output must be a file name" in capsys.readouterr().err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["in.csv", "out.csv"]
    assert not any((tmp_path / "out.csv").iterdir())


def test_a_damaged_checkpoint_exits_2_and_force_starts_over(aws: World, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    source, destination = write_csv(tmp_path / "in.csv", people(3000)), tmp_path / "out.csv"
    original = DeterministicTokenizer.tokens
    calls = [0]

    def dies_on_the_third_batch(self: DeterministicTokenizer, values: Any) -> list[str]:
        calls[0] += 1
        if calls[0] == 3:
            raise MemoryError("killed")
        return original(self, values)

    monkeypatch.setattr(DeterministicTokenizer, "tokens", dies_on_the_third_batch)
    assert tokenize("--columns", "email", "--checkpoint-every", "1000", str(source),
                    str(destination)) == EXIT_FAILURE
    monkeypatch.setattr(DeterministicTokenizer, "tokens", original)
    capsys.readouterr()
    checkpoint = json.loads(checkpoint_path(destination).read_text())
    for damaged in ({**checkpoint, "parameters": ["mode"]},
                    {**checkpoint, "input": {k: v for k, v in checkpoint["input"].items() if k != "size"}}):
        checkpoint_path(destination).write_text(json.dumps(damaged))
        assert tokenize("--columns", "email", "--resume", str(source), str(destination)) == EXIT_USAGE
        error = capsys.readouterr().err
        assert "out.csv.ztai-checkpoint cannot be read (" in error and "pass --force to start over" in error
        assert "Traceback" not in error
    assert tokenize("--columns", "email", "--force", str(source), str(destination)) == EXIT_OK
    assert len(read_csv(destination)) == 3001


def test_deeply_nested_jsonl_exits_2(aws: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"email": "a@x.com", "deep": ' + "[" * 100_000 + "]" * 100_000 + "}\n",
                      encoding="utf-8")
    assert tokenize("--columns", "email", str(source), str(tmp_path / "out.jsonl")) == EXIT_USAGE
    assert "in.jsonl line 1: JSON nested too deeply" in capsys.readouterr().err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["in.jsonl"]


def test_a_file_the_system_refuses_is_a_usage_error(aws: World, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # Root ignores permissions, so the refusal is simulated where the library writes its output.
    import ztai_runtime.tokenize.stream as stream

    def refused(*args: Any, **kwargs: Any) -> Any:
        raise PermissionError(13, "Permission denied", str(tmp_path / "out.csv"))

    source = tmp_path / "in.csv"
    source.write_text("email\na@example.com\n")
    monkeypatch.setattr(stream, "_process_csv", refused)
    code = tokenize("--columns", "email", str(source), str(tmp_path / "out.csv"))
    err = capsys.readouterr().err
    assert code == EXIT_USAGE, err
    assert f"{tmp_path / 'out.csv'}: Permission denied" in err and "Traceback" not in err


# -- the input is checked before any AWS call ------------------------------------------------------
@pytest.fixture
def no_aws_client(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any AWS client made fails the test (exit 3 through the CLI's bug handler)."""
    import ztai.tokenize_cmd as tokenize_cmd

    def made(*services: str) -> list[Any]:
        raise AssertionError(f"AWS clients {services} made before the input was checked")

    monkeypatch.setattr(tokenize_cmd, "_clients", made)


BAD_INPUTS = [
    pytest.param("in.csv", "id,email\r\n1,a@x.com\r\n", "--columns", "mail",
                 "in.csv: column 'mail' not in the header; the columns are id, email", id="csv-column"),
    pytest.param("in.jsonl", '\n{"id": 1, "email": "a@x.com"}\n', "--columns", "mail",
                 "in.jsonl line 2: field 'mail' is missing; every selected field must be present in every "
                 "record (null for no value); the fields are id, email", id="jsonl-field"),
    pytest.param("in.csv", "id;email;country\r\n1;a@x.com;DE\r\n", "--columns", "email",
                 "The file looks ';'-delimited; only comma-separated CSV is read: export it again with ',' "
                 "as the separator", id="semicolon"),
    pytest.param("in.csv", "id\temail\r\n1\ta@x.com\r\n", "--columns", "email",
                 "The file looks tab-delimited", id="tab"),
    pytest.param("in.csv", "", "--columns", "email",
                 "in.csv is empty; a CSV input starts with a header line naming its columns", id="empty-csv"),
    pytest.param("in.jsonl", "\n\n", "--columns", "email",
                 "in.jsonl has no record; a JSON Lines input holds one JSON object per line",
                 id="empty-jsonl"),
    pytest.param("in.csv", "id,email\r\n".encode("utf-16"), "--columns", "email",
                 "in.csv is UTF-16 text (it starts with a UTF-16 byte-order mark); files must be UTF-8",
                 id="utf16-csv"),
    pytest.param("in.jsonl", '{"email": "a"}\n'.encode("utf-16"), "--columns", "email",
                 "in.jsonl is UTF-16 text", id="utf16-jsonl"),
    pytest.param("in.csv", b"id,e\xe9mail\r\n", "--columns", "email",
                 "in.csv line 1: not UTF-8 text", id="latin1-header"),
    pytest.param("in.jsonl", "[1, 2]\n", "--columns", "email",
                 "in.jsonl line 1: a JSON list, not an object", id="jsonl-not-object"),
]


@pytest.mark.parametrize("name, content, flag, columns, message", BAD_INPUTS)
def test_a_wrong_input_exits_2_before_any_kms_call_or_audit_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], decisions: Decisions, no_aws_client: None,
        name: str, content: str | bytes, flag: str, columns: str, message: str) -> None:
    source = tmp_path / name
    if isinstance(content, str):
        source.write_text(content, encoding="utf-8")
    else:
        source.write_bytes(content)
    output = tmp_path / ("out" + source.suffix)
    assert tokenize(flag, columns, str(source), str(output)) == EXIT_USAGE
    error = capsys.readouterr().err
    assert message in error and "Traceback" not in error
    assert decisions.lines == []  # no token-key-derived line: KMS was not asked
    assert sorted(path.name for path in tmp_path.iterdir()) == [name]


def test_detokenize_checks_the_columns_before_any_aws_call(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], no_aws_client: None) -> None:
    source = write_csv(tmp_path / "in.csv", people(2))
    assert main(["detokenize", "--table", "t", "--vault-key-id", "k", "--domain", "customers",
                 "--columns", "mail", str(source), str(tmp_path / "out.csv")]) == EXIT_USAGE
    assert "column 'mail' not in the header" in capsys.readouterr().err


def test_resume_without_an_interrupted_run_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      no_aws_client: None) -> None:
    source = write_csv(tmp_path / "in.csv", people(3))
    assert tokenize("--columns", "email", "--resume", str(source), str(tmp_path / "out.csv")) == EXIT_USAGE
    error = capsys.readouterr().err
    assert ("nothing to resume: there is no interrupted run of " in error
            and "(no out.csv.ztai-partial or out.csv.ztai-checkpoint next to it); run without --resume "
                "to start" in error)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["in.csv"]


def test_a_utf8_byte_order_mark_is_accepted_in_json_lines(aws: World, tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"\xef\xbb\xbf" + b'{"email": "a@x.com"}\n{"email": "b@x.com"}\n')
    assert tokenize("--columns", "email", str(source), str(tmp_path / "out.jsonl")) == EXIT_OK
    records = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [record["email"][:4] for record in records] == [TOKEN_PREFIX] * 2


def test_json_reports_the_result_on_stdout(aws: World, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    source = write_csv(tmp_path / "in.csv", people(4))
    assert tokenize("--columns", "email", "--json", str(source), str(tmp_path / "out.csv")) == EXIT_OK
    document = json.loads(capsys.readouterr().out)
    assert document == {"result": "tokenized", "output": str(tmp_path / "out.csv"), "rows": 4,
                        "values": 4, "resumedFromRow": 0, "warnings": []}


class Terminal(io.StringIO):
    """stderr as a person's terminal."""

    def isatty(self) -> bool:
        return True


def test_progress_is_drawn_on_a_terminal_only(aws: World, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    source = write_csv(tmp_path / "in.csv", people(3000))
    assert tokenize("--columns", "email", str(source), str(tmp_path / "plain.csv")) == EXIT_OK
    assert "%|" not in capsys.readouterr().err  # not a terminal: no bar in a log
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert tokenize("--columns", "email", str(source), str(tmp_path / "drawn.csv")) == EXIT_OK
    drawn = terminal.getvalue()
    # The bar names the file and its size; how often it is redrawn depends on time, not asserted.
    assert "\rtokenize in.csv:   0%|" in drawn and "/78.3k" in drawn
    assert drawn.endswith("tokenized 3000 values in 3000 rows into " + str(tmp_path / "drawn.csv") + "\n")


def test_progress_is_told_every_batch_up_to_the_end_of_the_input(aws: World, tmp_path: Path) -> None:
    from ztai_runtime.tokenize import tokenize_file

    source = write_csv(tmp_path / "in.csv", people(2500))
    positions: list[int] = []
    tokenize_file(aws.kms, source, tmp_path / "out.csv", key_id=MAC_ALIAS, domain="customers",
                  columns=["email"], batch_rows=1000, progress=positions.append)
    # The header, then three batches of rows: 1000, 1000, 500.
    assert len(positions) == 4 and positions == sorted(positions)
    assert positions[-1] == source.stat().st_size


# -- review findings: nothing left behind by a run that did no row; names checked locally ---------
def test_a_detokenize_refused_before_any_row_leaves_nothing_and_masks_no_later_error(
        aws: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "in.csv"
    source.write_text("id,email\n1,tv1_" + "0" * 32 + "\n", encoding="utf-8")
    out = tmp_path / "out.csv"
    assert main(["detokenize", "--table", "no-such-table", "--vault-key-id", aws.vault_key, "--domain",
                 "customers", "--columns", "email", str(source), str(out)]) == EXIT_USAGE
    error = capsys.readouterr().err
    assert "ResourceNotFoundException" in error and f"nothing was written to {out}" in error
    assert "--resume" not in error
    assert sorted(path.name for path in tmp_path.iterdir()) == ["in.csv"]
    # The next mistake is reported as itself, not as "an interrupted run left ...".
    assert detokenize(aws, "--columns", "mail", str(source), str(out)) == EXIT_USAGE
    error = capsys.readouterr().err
    assert "column 'mail' not in the header" in error and "interrupted" not in error


def test_tokenize_into_a_leftover_partial_is_refused_before_any_kms_call(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], decisions: Decisions,
        no_aws_client: None) -> None:
    source = write_csv(tmp_path / "in.csv", people(3))
    partial_path(tmp_path / "out.csv").write_text("id\n")
    assert tokenize("--columns", "email", str(source), str(tmp_path / "out.csv")) == EXIT_USAGE
    error = capsys.readouterr().err
    assert "an interrupted run left out.csv.ztai-partial; pass --resume to continue it or --force to " \
           "start over" in error
    assert decisions.lines == []  # no token key was derived: KMS was not asked


BAD_NAMES = [
    pytest.param(["tokenize", "--key-id", ""], "--key-id '' is not a KMS key: give a key ARN",
                 id="empty-key"),
    pytest.param(["tokenize", "--key-id", "x y"], "--key-id 'x y' is not a KMS key", id="key-with-space"),
    pytest.param(["tokenize", "--key-id", MAC_ALIAS, "--mode", "vault", "--table", "", "--vault-key-id",
                  MAC_ALIAS], "--table NAME", id="empty-table"),
    pytest.param(["tokenize", "--key-id", MAC_ALIAS, "--mode", "vault", "--table", "bad table!",
                  "--vault-key-id", MAC_ALIAS],
                 "--table 'bad table!' is not a DynamoDB table: give a DynamoDB table name (3-255 letters, "
                 "digits, '_', '-' and '.'; not an ARN)", id="bad-table"),
    pytest.param(["tokenize", "--key-id", MAC_ALIAS, "--mode", "vault", "--table", "vault", "--vault-key-id",
                  "alias"], "--vault-key-id 'alias' is not a KMS key", id="bad-vault-key"),
    pytest.param(["detokenize", "--table", "t", "--vault-key-id", MAC_ALIAS],
                 "--table 't' is not a DynamoDB table", id="short-table"),
    pytest.param(["detokenize", "--table", "vault", "--vault-key-id", "alias/"],
                 "--vault-key-id 'alias/' is not a KMS key", id="empty-alias"),
]


@pytest.mark.parametrize("arguments, message", BAD_NAMES)
def test_a_key_or_table_name_of_no_aws_shape_exits_2_before_any_aws_client(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], no_aws_client: None, arguments: list[str],
        message: str) -> None:
    source = write_csv(tmp_path / "in.csv", people(3))
    assert main([*arguments, "--domain", "customers", "--columns", "email", str(source),
                 str(tmp_path / "out.csv")]) == EXIT_USAGE
    error = capsys.readouterr().err
    assert message in error and "Traceback" not in error
    assert sorted(path.name for path in tmp_path.iterdir()) == ["in.csv"]


def test_names_of_every_accepted_shape_pass_the_local_check() -> None:
    from ztai_runtime.aws_names import kms_key_problem, table_problem
    for key in ("1234abcd-12ab-34cd-56ef-1234567890ab", "mrk-1234abcd12ab34cd56ef1234567890ab",
                "alias/zero-trust-ai/prod/tokens", "arn:aws:kms:eu-west-1:111122223333:key/"
                "1234abcd-12ab-34cd-56ef-1234567890ab", "arn:aws-cn:kms:cn-north-1:111122223333:alias/x"):
        assert kms_key_problem("--key-id", key) is None, key
    for table in ("vault", "zero-trust-ai.prod_vault"):
        assert table_problem("--table", table) is None, table
    assert table_problem("--table", "arn:aws:dynamodb:eu-west-1:111122223333:table/vault") is not None


def test_a_json_field_given_twice_is_refused_naming_it(aws: World, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "in.jsonl"
    out = tmp_path / "out.jsonl"
    # In the first record (checked before any AWS call), in a later one, and inside a nested object.
    for lines, line in ((['{"email": "a", "email": "b"}'], 1),
                        (['{"email": "a"}', '{"id": 1, "email": "b", "email": "c"}'], 2),
                        (['{"email": "a", "meta": {"k": 1, "k": 2}}'], 1)):
        source.write_text("\n".join(lines) + "\n", encoding="utf-8")
        assert tokenize("--columns", "email", str(source), str(out)) == EXIT_USAGE
        error = capsys.readouterr().err
        assert f"in.jsonl line {line}: field " in error and "appears twice in one object" in error
        assert sorted(path.name for path in tmp_path.iterdir()) == ["in.jsonl"]
    source.write_text('{"email": "a", "meta": {"email": "b"}}\n', encoding="utf-8")  # not a duplicate
    assert tokenize("--columns", "email", str(source), str(out)) == EXIT_OK


def test_a_blank_csv_line_is_refused_like_a_short_row(aws: World, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "in.csv"
    out = tmp_path / "out.csv"
    source.write_text("id,email\n1,a@x.com\n\n2,b@x.com\n", encoding="utf-8")
    assert tokenize("--columns", "email", str(source), str(out)) == EXIT_USAGE
    error = capsys.readouterr().err
    assert "in.csv line 3: a blank line; every row needs one field per column (2), so remove blank lines" \
        in error
    assert sorted(path.name for path in tmp_path.iterdir()) == ["in.csv"]
    source.write_text("id,email\n1,a@x.com\n2,,\n", encoding="utf-8")  # short rows: as before
    assert tokenize("--columns", "email", str(source), str(out)) == EXIT_USAGE
    assert "3 fields, the header has 2" in capsys.readouterr().err
    source.write_text("id,email\n1,a@x.com\n2,\n", encoding="utf-8")  # an empty value: accepted
    assert tokenize("--columns", "email", "--json", str(source), str(out)) == EXIT_OK
    assert json.loads(capsys.readouterr().out)["rows"] == 2
    # With one column, a blank line is that column's empty value.
    source.write_text("email\na@x.com\n\nb@x.com\n", encoding="utf-8")
    assert tokenize("--columns", "email", "--json", "--force", str(source), str(out)) == EXIT_OK
    assert json.loads(capsys.readouterr().out)["rows"] == 3
