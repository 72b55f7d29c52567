"""`ztai tokenize` and `ztai detokenize`: the batch CLI over `ztai_runtime.tokenize`.

    ztai tokenize --key-id KEY --domain NAME --columns A,B [--normalize COLUMN=STEP[+STEP]]...
                  [--format csv|jsonl] [--mode deterministic|vault] [--table NAME --vault-key-id KEY]
                  [--resume | --force] [--checkpoint-every ROWS] [--json] INPUT OUTPUT
    ztai detokenize --table NAME --vault-key-id KEY --domain NAME --columns A,B
                    [--format csv|jsonl] [--resume | --force] [--checkpoint-every ROWS] [--json]
                    INPUT OUTPUT

The input's header (CSV) or first record (JSON Lines) is checked before any AWS call: a missing
column, another delimiter, an empty or non-UTF-8 file cost no KMS request and leave no audit line.
AWS clients come from the standard boto3 configuration (profile, region, credentials, and
AWS_ENDPOINT_URL for a local stand-in). Exit status 0 on success; 2 for a wrong option or input
file, a checkpoint that does not fit (or none to --resume), or a refusal or outage of AWS (then,
once rows were done, the partial output and its checkpoint stay and `--resume` continues; before the
first row nothing is left behind); 3 a bug. Key ids and the table name are checked for the shapes AWS
accepts before any AWS call too.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ztai.errors import EXIT_OK, UsageError

FORMATS = ("csv", "jsonl")
MODES = ("deterministic", "vault")
EXIT_NOTE = ("for this command: 0 done; 2 usage or input-file error, a checkpoint that does not fit (or "
              "none to --resume), or a refusal or outage of AWS (once rows were done, the partial "
              "output and its checkpoint are kept: fix the cause and rerun with --resume); 3 a "
              "bug. Tokenizing refuses nothing on security grounds, so it never exits 1.")


def register(commands: Any) -> None:  # argparse's subparsers action has no public type
    """Add the `tokenize` and `detokenize` parsers to `commands`; each sets `handler`."""
    tokenize = commands.add_parser(
        "tokenize", help="replace selected columns of a CSV / JSON Lines file by tokens",
        description="Deterministic tokens (tk1_..., joinable, one-way; HMAC under a per-domain key "
                    "derived with one KMS GenerateMac call) or vault tokens (tv1_..., random, "
                    "reversible through the DynamoDB token vault). Streams row by row and resumes "
                    "after an interruption.", epilog=EXIT_NOTE)
    tokenize.add_argument("--key-id", required=True, metavar="KEY",
                          help="the HMAC_256 tokens key, e.g. alias/zero-trust-ai/prod/tokens")
    _common(tokenize)
    tokenize.add_argument("--normalize", action="append", default=[], metavar="COLUMN=STEP[+STEP]",
                          help="normalise a column before tokenizing; steps: strip, lower, nfc "
                               "(repeatable; nothing is normalised unless asked)")
    tokenize.add_argument("--mode", choices=MODES, default="deterministic",
                          help="deterministic (default) or vault")
    tokenize.add_argument("--table", metavar="NAME", help="vault mode: the token vault table")
    tokenize.add_argument("--vault-key-id", metavar="KEY",
                          help="vault mode: the key that encrypts vault values, e.g. "
                               "alias/zero-trust-ai/prod/secrets")
    _files(tokenize)
    tokenize.set_defaults(handler=_tokenize)

    detokenize = commands.add_parser(
        "detokenize", help="replace vault tokens in selected columns by their values",
        description="Resolve tv1_ tokens through the token vault. Needs the grants the vault's "
                    "grant_detokenize writes; every batch is logged with the caller's identity.",
        epilog=EXIT_NOTE)
    detokenize.add_argument("--table", required=True, metavar="NAME", help="the token vault table")
    detokenize.add_argument("--vault-key-id", required=True, metavar="KEY",
                            help="the key that encrypts vault values, e.g. alias/zero-trust-ai/prod/secrets")
    _common(detokenize)
    _files(detokenize)
    detokenize.set_defaults(handler=_detokenize)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--domain", required=True, metavar="NAME",
                        help="the dataset or tenant whose tokens these are (tokens of two domains "
                             "never match)")
    parser.add_argument("--columns", required=True, metavar="A,B",
                        help="comma-separated columns (CSV header names or top-level JSON fields)")
    parser.add_argument("--format", choices=FORMATS,
                        help="input and output format (default: from INPUT's extension)")
    parser.add_argument("--json", action="store_true",
                        help="print the result as JSON on stdout (warnings included)")


def _files(parser: argparse.ArgumentParser) -> None:
    restart = parser.add_mutually_exclusive_group()
    restart.add_argument("--resume", action="store_true",
                         help="continue an interrupted run from its checkpoint (next to OUTPUT)")
    restart.add_argument("--force", action="store_true",
                         help="replace OUTPUT, and discard an interrupted run's partial output")
    parser.add_argument("--checkpoint-every", type=int, metavar="ROWS",
                        help="rows between checkpoints (default 50000 deterministic, 5000 vault)")
    parser.add_argument("input", type=Path, metavar="INPUT",
                        help="input file (.csv, .jsonl, .ndjson; UTF-8, comma-separated CSV)")
    parser.add_argument("output", type=Path, metavar="OUTPUT",
                        help="output file (must not exist, unless --force)")


def _columns(text: str) -> list[str]:
    columns = [column.strip() for column in text.split(",")]
    if not all(columns):
        raise UsageError(f"--columns {text!r} has an empty name; give names separated by commas, "
                         "e.g. --columns email,phone")
    return columns


def _clients(*services: str) -> list[Any]:
    import boto3
    from botocore.exceptions import BotoCoreError
    try:
        return [boto3.client(service) for service in services]
    except BotoCoreError as error:  # e.g. no region configured
        raise UsageError(f"AWS configuration: {error} (use a profile with a region, or set "
                         "AWS_DEFAULT_REGION: boto3 does not read AWS_REGION)") from None


def _check_aws_names(args: argparse.Namespace) -> None:
    """The key ids and the table name have the shapes AWS accepts; checked before any client is made,
    so an empty or mistyped one is named here rather than by botocore or a failed KMS call."""
    from ztai_runtime.aws_names import kms_key_problem, table_problem
    problems = [kms_key_problem(option, value) for option, value in
                (("--key-id", getattr(args, "key_id", None)), ("--vault-key-id", args.vault_key_id))
                if value is not None]
    if args.table is not None:
        problems.append(table_problem("--table", args.table))
    for problem in problems:
        if problem is not None:
            raise UsageError(problem)


def _run(action: Any, args: argparse.Namespace, columns: list[str]) -> Any:
    """Check the files and options, then run `action(progress)`; the library's errors become usage
    errors saying what to do next."""
    from ztai.progress import byte_progress
    from ztai_runtime.tokenize import AwsCallError, TokenizeError
    from ztai_runtime.tokenize.keys import check_domain
    from ztai_runtime.tokenize.stream import StreamJob, format_for, partial_path, validate
    if args.checkpoint_every is not None and args.checkpoint_every < 1:
        raise UsageError(f"--checkpoint-every {args.checkpoint_every}: give a number of rows, at least 1")
    try:
        # Wrong files, columns or options are reported before any AWS client is configured or called.
        check_domain(args.domain)
        validate(StreamJob(source=args.input, destination=args.output,
                           file_format=args.format or format_for(args.input), columns=tuple(columns),
                           resume=args.resume, force=args.force))
        _check_aws_names(args)
        with byte_progress(f"{args.command} {args.input.name}", args.input.stat().st_size) as advance:
            return action(advance)
    except AwsCallError as error:
        kept = partial_path(args.output)
        # A failure before the first row was done leaves nothing behind (see stream.run).
        hint = f"; the partial output {kept} is kept: fix the cause and rerun with --resume" \
            if kept.exists() else f"; nothing was written to {args.output}"
        raise UsageError(f"{error}{hint}") from None
    except TokenizeError as error:
        raise UsageError(str(error)) from None
    except OSError as error:
        # Permission denied, disk full, a path turned into a directory meanwhile: the user's to
        # fix. What was written so far stays in the partial output, to --resume from.
        where = f"{error.filename}: " if error.filename else ""
        kept = partial_path(args.output)
        hint = f"; the partial output {kept} is kept: fix the cause and rerun with --resume" \
            if kept.exists() else ""
        raise UsageError(f"{where}{error.strerror or error}{hint}") from None


def _report(args: argparse.Namespace, verb: str, result: Any) -> None:
    warnings = []
    if args.resume and not result.resumed_from_row:
        # The interrupted run stopped before its first checkpoint: say that nothing was skipped.
        warnings.append("the interrupted run had written no checkpoint, so the input was processed "
                        "again from its first row")
    if args.json:
        print(json.dumps({"result": verb, "output": str(result.destination), "rows": result.rows,
                          "values": result.values, "resumedFromRow": result.resumed_from_row,
                          "warnings": warnings}, indent=2))
        return
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    resumed = f" (resumed after row {result.resumed_from_row})" if result.resumed_from_row else ""
    print(f"{verb} {result.values} values in {result.rows} rows into {result.destination}{resumed}",
          file=sys.stderr)


def _tokenize(args: argparse.Namespace) -> int:
    from ztai_runtime.tokenize import tokenize_file
    from ztai_runtime.tokenize.normalize import parse_normalizers
    columns = _columns(args.columns)
    vault = args.mode == "vault"
    if not vault and (args.table or args.vault_key_id):
        raise UsageError("--table and --vault-key-id belong to --mode vault; deterministic tokens use "
                         "only --key-id")
    if vault and not (args.table and args.vault_key_id):
        raise UsageError("--mode vault needs --table NAME and --vault-key-id KEY (the secrets key)")

    def action(progress: Any) -> Any:
        normalizers = parse_normalizers(args.normalize, columns)
        kms, dynamodb = _clients("kms", "dynamodb") if vault else (*_clients("kms"), None)
        return tokenize_file(kms, args.input, args.output, key_id=args.key_id,
                             domain=args.domain, columns=columns, normalizers=normalizers,
                             file_format=args.format, mode=args.mode, dynamodb=dynamodb,
                             table=args.table, vault_key_id=args.vault_key_id, resume=args.resume,
                             force=args.force, checkpoint_every=args.checkpoint_every,
                             progress=progress)

    _report(args, "tokenized", _run(action, args, columns))
    return EXIT_OK


def _detokenize(args: argparse.Namespace) -> int:
    from ztai_runtime.tokenize import detokenize_file
    columns = _columns(args.columns)

    def action(progress: Any) -> Any:
        dynamodb, kms, sts = _clients("dynamodb", "kms", "sts")
        return detokenize_file(dynamodb, kms, sts, args.input, args.output, table=args.table,
                               domain=args.domain, vault_key_id=args.vault_key_id, columns=columns,
                               file_format=args.format, resume=args.resume, force=args.force,
                               checkpoint_every=args.checkpoint_every, progress=progress)

    _report(args, "detokenized", _run(action, args, columns))
    return EXIT_OK
