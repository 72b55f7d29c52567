"""`ztai truststore build|check|issue-test-client`: partner truststores for API Gateway mutual TLS
(the partners control; library: components/truststore.py, the same parser and checks the
deploy runs on the stack's CA files).

    ztai truststore build --partner NAME=CA.pem [--partner ...] --output PATH [--force] [--json]
    ztai truststore check INPUT [--json] [--warning-days N]
    ztai truststore issue-test-client --ca-cert CA.pem --ca-key CA.key --subject CN=... \\
                                      --output-cert C.pem --output-key C.key [--days N] [--force] [--json]

`build` checks the bundle it made and writes nothing if the check finds an error. Removing a partner
is building again without it; upload the new file as a new S3 object version and pin that version.
The shipped placeholder CAs pass `check`, `build` and the deploy with a warning: they are valid CAs
whose key was discarded, so they admit no one until replaced.

Exit status: 0 done (warnings allowed); 1 the truststore has errors (nothing written by `build`);
2 usage or input-file error; 3 a bug.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path
from typing import Any

from ztai.errors import EXIT_OK, EXIT_VIOLATION, UsageError

EXIT_NOTE = ("for this command: 0 done (warnings allowed); 1 the truststore has errors (nothing written "
              "by build); 2 usage or input-file error; 3 a bug.")


def register(commands: Any) -> None:  # argparse's subparsers action has no public type
    truststore = commands.add_parser("truststore", help="build and check partner truststores for API "
                                                        "Gateway mutual TLS; issue test client certificates",
                                      description="Build and check partner truststores; issue test "
                                                  "client certificates.", epilog=EXIT_NOTE)
    actions = truststore.add_subparsers(dest="truststore_command", required=True, metavar="COMMAND",
                                        help="build, check or issue-test-client")

    build = actions.add_parser(
        "build", help="build the truststore from per-partner CA files",
        description="Concatenate the partners' CA certificates (plain PEM, ordered by partner name), check "
                    "the result and write it only if the check finds no error.", epilog=EXIT_NOTE)
    build.add_argument("--partner", action="append", required=True, metavar="NAME=CA.pem",
                       help="a partner (its name in the partners file: lower-case letters, digits "
                            "and -) and its CA certificate file (root, plus intermediates if its "
                            "clients do not send them); repeatable")
    build.add_argument("--output", required=True, type=Path, metavar="PATH",
                       help="truststore file to write")
    build.add_argument("--force", action="store_true", help="replace the --output file if it exists")
    build.set_defaults(handler=_build)

    check = actions.add_parser("check", help="validate a truststore or a CA file",
                               description="Parseable PEM, CA certificates only, RSA >= 2048 or ECDSA "
                                           "P-256/P-384, SHA-256+ signatures, expiry, duplicates: the "
                                           "checks the deploy runs on the stack's CA files. Placeholder "
                                           "CAs and '#' comment lines are warnings.",
                               epilog=EXIT_NOTE)
    check.add_argument("input", type=Path, metavar="INPUT",
                       help="the truststore (or a CA file) to check, PEM")
    check.set_defaults(handler=_check)

    for parser in (build, check):
        parser.add_argument("--json", action="store_true",
                            help="print the report as JSON on stdout (warnings included)")
        parser.add_argument("--warning-days", type=int, default=30, metavar="N",
                            help="warn about certificates expiring within N days (default: 30)")

    issue = actions.add_parser(
        "issue-test-client", help="issue a test client certificate from a (test) partner CA",
        description="EC P-256 client certificate with the clientAuth extended key usage, for tests and "
                    "partner onboarding checks. The key is written unencrypted with mode 0600.",
        epilog=EXIT_NOTE)
    issue.add_argument("--ca-cert", required=True, type=Path, metavar="CA.pem",
                       help="the (test) partner CA certificate, PEM; the first certificate is used")
    issue.add_argument("--ca-key", required=True, type=Path, metavar="CA.key",
                       help="the CA's private key, unencrypted PEM")
    issue.add_argument("--subject", required=True, metavar="DN", help="RFC 4514 name, e.g. CN=partner-a-test")
    issue.add_argument("--output-cert", required=True, type=Path, metavar="PATH",
                       help="the client certificate file to write (PEM)")
    issue.add_argument("--output-key", required=True, type=Path, metavar="PATH",
                       help="the client key file to write (PEM, unencrypted, mode 0600)")
    issue.add_argument("--days", type=int, default=7, metavar="N", help="validity in days (default: 7)")
    issue.add_argument("--force", action="store_true", help="replace the output files if they exist")
    issue.add_argument("--json", action="store_true",
                       help="print the result as JSON on stdout (warnings included)")
    issue.set_defaults(handler=_issue_test_client)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise UsageError(f"{path}: {error.strerror or error}") from None


def _partners(pairs: list[str]) -> dict[str, Path]:
    partners: dict[str, Path] = {}
    for pair in pairs:
        name, separator, path = pair.partition("=")
        if not separator or not name or not path:
            raise UsageError(f"--partner {pair!r}: expected NAME=CA.pem")
        if name in partners:
            raise UsageError(f"--partner: {name!r} given twice")
        partners[name] = Path(path)
    return partners


def _check_destination(path: Path, force: bool) -> None:
    if path.is_dir():
        raise UsageError(f"{path} is a directory; give a file name")
    if path.exists() and not force:
        raise UsageError(f"{path} exists; pass --force to replace it")
    if not path.absolute().parent.is_dir():
        raise UsageError(f"{path.parent}: no such directory")


def _same_file(one: Path, other: Path) -> bool:
    """The same path (links resolved), or two names of one file (a hard link)."""
    if one.resolve() == other.resolve():
        return True
    try:
        return one.samefile(other)
    except OSError:  # one of them does not exist (yet)
        return False


def _write(path: Path, data: bytes, mode: int, force: bool) -> None:
    """Write `data` with `mode` from creation (a key is never briefly world-readable); without
    `force`, a file created meanwhile is not replaced."""
    try:
        if not force:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(data)
            return
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(data)
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
    except FileExistsError:
        raise UsageError(f"{path} exists; pass --force to replace it") from None
    except OSError as error:
        raise UsageError(f"{error.filename or path}: {error.strerror or error}") from None


def _print_report(report: Any, source: str, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"truststore": source, **report.to_json()}, indent=2))
        return
    for summary in report.certificates:
        print(f"#{summary.index} {summary.subject} (expires {summary.not_after.date()}, "
              f"SHA-256 {summary.sha256[:16]}…)")
    for finding in report.findings:
        where = f"#{finding.index}" if finding.index is not None else source
        print(f"{finding.severity}: {where}: {finding.check}: {finding.message}", file=sys.stderr)
    verdict = "ok" if report.ok else "REFUSED"
    print(f"{source}: {verdict}: {len(report.certificates)} certificates, {len(report.errors)} errors, "
          f"{len(report.warnings)} warnings")


def _warning_days(args: argparse.Namespace) -> int:
    if not 0 <= args.warning_days <= 3650:
        raise UsageError(f"--warning-days {args.warning_days}: give 0 to 3650")
    days: int = args.warning_days
    return days


def _build(args: argparse.Namespace) -> int:
    from components.truststore import TruststoreError, build_bundle, check_bundle

    partners = _partners(args.partner)
    warning_days = _warning_days(args)
    _check_destination(args.output, args.force)
    try:
        bundle = build_bundle(partners)
    except TruststoreError as error:
        raise UsageError(str(error)) from None
    report = check_bundle(bundle, dt.datetime.now(dt.UTC), expiry_warning_days=warning_days)
    _print_report(report, str(args.output), args.json)
    if not report.ok:
        print(f"refused: {args.output} was not written", file=sys.stderr)
        return EXIT_VIOLATION
    _write(args.output, bundle, 0o644, args.force)
    if not args.json:
        print(f"wrote {args.output} for partners {', '.join(sorted(partners))}", file=sys.stderr)
    return EXIT_OK


def _check(args: argparse.Namespace) -> int:
    from components.truststore import check_bundle

    warning_days = _warning_days(args)
    if args.input.is_dir():
        raise UsageError(f"{args.input} is a directory; INPUT is a PEM file")
    report = check_bundle(_read(args.input), dt.datetime.now(dt.UTC), expiry_warning_days=warning_days)
    _print_report(report, str(args.input), args.json)
    return EXIT_OK if report.ok else EXIT_VIOLATION


def _issue_test_client(args: argparse.Namespace) -> int:
    from components.truststore import TruststoreError, issue_test_client, load_ca_key, load_certificates

    if args.output_cert.absolute() == args.output_key.absolute():
        raise UsageError("--output-cert and --output-key are the same file")
    # Even with --force, an output never replaces an input: the CA key would be lost.
    for output, output_option in ((args.output_cert, "--output-cert"), (args.output_key, "--output-key")):
        for source, source_option in ((args.ca_cert, "--ca-cert"), (args.ca_key, "--ca-key")):
            if _same_file(output, source):
                raise UsageError(f"{output_option} {output} is the {source_option} file; write the "
                                 "client certificate and key to new files")
    for path in (args.output_cert, args.output_key):
        _check_destination(path, args.force)
    try:
        ca_cert = load_certificates(_read(args.ca_cert), str(args.ca_cert))[0]  # the CA heads its file
        ca_key = load_ca_key(_read(args.ca_key), str(args.ca_key))
        cert_pem, key_pem = issue_test_client(ca_cert, ca_key, args.subject, args.days)
    except TruststoreError as error:
        raise UsageError(str(error)) from None
    _write(args.output_key, key_pem, 0o600, args.force)
    _write(args.output_cert, cert_pem, 0o644, args.force)
    issuer = ca_cert.subject.rfc4514_string()
    if args.json:
        print(json.dumps({"result": "issued", "subject": args.subject, "issuer": issuer,
                          "certificate": str(args.output_cert), "key": str(args.output_key),
                          "warnings": []}, indent=2))
    else:
        print(f"issued {args.subject} by {issuer}: {args.output_cert}, key {args.output_key}")
    return EXIT_OK
