"""`ztai weights encrypt|decrypt`: envelope encryption of model weights.

    ztai weights encrypt --key-id KEY [--expected-key-arn ARN | --stack-outputs FILE]
                         [--context k=v ...] [--region NAME] [--force] [--json] INPUT OUTPUT
    ztai weights decrypt [--key-id ARN ... | --discovery-account ID ...] [--context k=v ...]
                         [--region NAME] [--force] [--json] INPUT OUTPUT

Encrypting pins the key: KEY is a key ARN, or an alias (or key id) that must resolve (KMS
DescribeKey) to the expected key ARN, given with --expected-key-arn or read from the stack's outputs
(`pulumi stack output --json`, `keyArns.model-weights`). An alias alone is refused: anyone allowed
kms:UpdateAlias could have pointed it at a key of their own.

Files are AWS Encryption SDK messages (suite 0x0478, framed): the official SDKs and the AWS
Encryption CLI decrypt them too. AWS access uses the standard boto3 configuration, so
`AWS_ENDPOINT_URL` points the command at a local KMS stand-in.

Decrypting reads and checks the file's header before any AWS call: a file that is not a message,
or ends inside its header, and a key in another Region than the session's, are the user's to fix
(exit 2, with the Region to use), not a verdict on the file.

Exit status: 0 done; 1 refused and nothing written: on decrypt the input does not authenticate
(tampered, truncated after its header, wrong key or context, a format this tool does not accept), on
encrypt KEY resolves to another key than the expected one (a moved alias); 2 usage, input-file or
configuration error; 3 a bug.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ztai.errors import EXIT_OK, EXIT_VIOLATION, UsageError

# The stack output (`keyArns.<purpose>`) naming the key weights are published under.
WEIGHTS_PURPOSE = "model-weights"
EXIT_NOTE = ("for this command: 0 done; 1 refused, nothing written (decrypt: the file does not "
              "authenticate: not an encrypted message, tampered, truncated, under a key not allowed, "
              "wrong context, a format not accepted; "
              "encrypt: KEY resolves to another key than the expected one, as a moved alias does); "
              "2 usage, input-file or configuration error (wrong Region included); 3 a bug.")


def register(commands: Any) -> None:  # argparse's subparsers action has no public type
    weights = commands.add_parser("weights", help="encrypt or decrypt model weights (AWS Encryption SDK "
                                                  "format, KMS data keys)",
                                  description="Encrypt or decrypt model weights.", epilog=EXIT_NOTE)
    actions = weights.add_subparsers(dest="weights_command", required=True, metavar="COMMAND",
                                     help="encrypt or decrypt")

    encrypt = actions.add_parser(
        "encrypt", help="encrypt a file under a KMS key",
        description="Encrypt INPUT into OUTPUT with a data key from KMS GenerateDataKey under KEY, "
                    "binding the encryption context into the header (and into the KMS call).",
        epilog=EXIT_NOTE)
    encrypt.add_argument("--key-id", required=True, metavar="KEY",
                         help="KMS key ARN; or an alias name (alias/...), alias ARN or key id, which "
                              "must resolve to the expected key ARN")
    encrypt.add_argument("--expected-key-arn", metavar="ARN",
                         help="the key ARN KEY must be (or resolve to)")
    encrypt.add_argument("--stack-outputs", type=Path, metavar="FILE",
                         help="the stack's `pulumi stack output --json`: the expected key ARN is "
                              f"keyArns.{WEIGHTS_PURPOSE}")
    encrypt.set_defaults(handler=_encrypt)

    decrypt = actions.add_parser(
        "decrypt", help="decrypt a file (refuses anything that does not authenticate)",
        description="Decrypt INPUT into OUTPUT. OUTPUT appears only after the whole message verified. "
                    "Without --key-id, only KMS keys in the caller's own account are tried.",
        epilog=EXIT_NOTE)
    decrypt.add_argument("--key-id", action="append", default=[], metavar="ARN",
                         help="only unwrap with this key ARN (repeatable; strict mode)")
    decrypt.add_argument("--discovery-account", action="append", default=[], metavar="ID",
                         help="unwrap with any KMS key in this account (repeatable; default: the "
                              "caller's account)")
    decrypt.set_defaults(handler=_decrypt)

    for parser in (encrypt, decrypt):
        parser.add_argument("--context", action="append", default=[], metavar="KEY=VALUE",
                            help="encryption context pair, e.g. model=digits (repeatable); on decrypt, "
                                 "pairs the message must carry")
        parser.add_argument("--region", metavar="NAME",
                            help="AWS Region of the KMS key (default: the standard configuration, "
                                 "AWS_DEFAULT_REGION or the profile's)")
        parser.add_argument("--force", action="store_true", help="replace OUTPUT if it exists")
        parser.add_argument("--json", action="store_true",
                            help="print the result as JSON on stdout (warnings included)")
        parser.add_argument("input", type=Path, metavar="INPUT",
                            help="the file to read (plain weights to encrypt, or a message to decrypt)")
        parser.add_argument("output", type=Path, metavar="OUTPUT",
                            help="the file to write (must not exist, unless --force)")


def parse_context(pairs: list[str]) -> dict[str, str]:
    context: dict[str, str] = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key:
            raise UsageError(f"--context {pair!r}: expected KEY=VALUE with a non-empty KEY")
        if key in context:
            raise UsageError(f"--context: {key!r} given twice")
        context[key] = value
    return context


def _check_paths(args: argparse.Namespace) -> None:
    if not args.input.exists():
        raise UsageError(f"{args.input}: no such file")
    if not args.input.is_file():
        raise UsageError(f"{args.input} is not a file; INPUT is the file to read")
    if args.input.resolve() == args.output.resolve():
        raise UsageError("INPUT and OUTPUT are the same file")
    if args.output.exists() and not args.force:
        raise UsageError(f"{args.output} exists; pass --force to replace it")
    if args.output.is_dir():
        raise UsageError(f"{args.output} is a directory; give a file name")
    if not args.output.absolute().parent.is_dir():
        raise UsageError(f"{args.output.parent}: no such directory")
    if args.output.exists() and args.input.samefile(args.output):
        raise UsageError("INPUT and OUTPUT are the same file (hard link)")


def _session_region(args: argparse.Namespace) -> str | None:
    """The Region the KMS client will use: --region, else boto3's standard configuration."""
    if args.region:
        region: str = args.region
        return region
    import boto3
    from botocore.exceptions import BotoCoreError
    try:
        configured: str | None = boto3.session.Session().region_name
    except BotoCoreError as error:  # e.g. an AWS config file that does not parse
        raise UsageError(f"AWS configuration: {error}") from None
    return configured


def _region_hint(region: str) -> str:
    # AWS_DEFAULT_REGION, not AWS_REGION: boto3 reads only the former (the AWS CLI reads both).
    return f"run with --region {region} (or set AWS_DEFAULT_REGION={region})"


def _kms_client(region: str | None) -> Any:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError
    # Standard retries (3 attempts, or AWS_MAX_ATTEMPTS) cover KMS throttling; boto3 reads region,
    # credentials and AWS_ENDPOINT_URL from the standard configuration.
    try:
        return boto3.client("kms", region_name=region, config=Config(retries={"mode": "standard"}))
    except BotoCoreError as error:  # e.g. a Region name that is not one
        raise UsageError(f"AWS configuration: {error}") from None


def _aws_error(error: Exception, doing: str) -> UsageError:
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        detail = response.get("Error", {})
        return UsageError(f"{doing}: {detail.get('Code')}: {detail.get('Message')}")
    return UsageError(f"{doing}: {error}")


def _os_error(error: OSError) -> UsageError:
    # Disk full, permission denied, destination created meanwhile: the user's to fix, not a bug.
    where = f"{error.filename}: " if error.filename else ""
    return UsageError(f"{where}{error.strerror or error}; nothing was written")


def _report(args: argparse.Namespace, verb: str, info: Any) -> None:
    if args.json:
        print(json.dumps({"result": verb, "output": str(args.output),
                          "messageId": info.message_id, "suite": info.suite,
                          "encryptionContext": info.encryption_context,
                          "keys": list(info.key_provider_infos), "frames": info.frames,
                          "frameLength": info.frame_length, "bytes": info.plaintext_length,
                          "warnings": []}, indent=2))
    else:
        keys = ", ".join(info.key_provider_infos)
        print(f"{verb} {info.plaintext_length} bytes ({info.frames} frames) -> {args.output} "
              f"[key {keys}; context {json.dumps(info.encryption_context, sort_keys=True)}]")


def stack_output_key_arn(path: Path) -> str:
    """`keyArns.model-weights` of a `pulumi stack output --json` document."""
    from ztai.jsonfile import read_json

    try:
        document = read_json(path, "stack outputs", UsageError)
    except UnicodeDecodeError as error:
        raise UsageError(f"stack outputs {path} is not UTF-8 text ({error.reason} at byte {error.start}); "
                         "save the output of `pulumi stack output --json` as it is") from None
    except RecursionError:
        raise UsageError(f"stack outputs {path}: JSON nested too deeply to be `pulumi stack output "
                         "--json`") from None
    key_arns = document.get("keyArns") if isinstance(document, dict) else None
    arn = key_arns.get(WEIGHTS_PURPOSE) if isinstance(key_arns, dict) else None
    if not isinstance(arn, str) or not arn:
        raise UsageError(f"stack outputs {path} have no keyArns.{WEIGHTS_PURPOSE} (expected the output "
                         "of `pulumi stack output --json` for the stack that holds the model key)")
    return arn


def expected_key_arn(args: argparse.Namespace) -> str | None:
    """The key ARN the encryption must use, from --expected-key-arn and/or --stack-outputs."""
    given = args.expected_key_arn
    from_stack = stack_output_key_arn(args.stack_outputs) if args.stack_outputs else None
    if given and from_stack and given != from_stack:
        raise UsageError(f"--expected-key-arn {given} differs from keyArns.{WEIGHTS_PURPOSE} "
                         f"{from_stack} in {args.stack_outputs}; give one, or make them agree")
    return given or from_stack


def _check_key_region(arn: str, what: str, region: str | None) -> None:
    """A key ARN is usable only through a client of its own Region: say which one, before KMS does
    with a NotFoundException."""
    from ztai_runtime.weights import key_arn_parts

    parts = key_arn_parts(arn)
    if parts is None:
        return
    key_region = parts[1]
    if region is None:
        raise UsageError(f"no AWS Region is configured; {what} {arn} is in {key_region}: "
                         f"{_region_hint(key_region)}")
    if key_region != region:
        raise UsageError(f"{what} {arn} is in {key_region}, but this session is in {region}: "
                         f"{_region_hint(key_region)}")


def _progress(args: argparse.Namespace, verb: str) -> Any:
    from ztai.progress import byte_progress
    return byte_progress(f"{verb} {args.input.name}", args.input.stat().st_size)


def _encrypt(args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    from ztai_runtime.aws_names import kms_key_problem
    from ztai_runtime.weights import (
        AliasMovedError,
        KeyPinError,
        KmsDataKeySource,
        WeightsFormatError,
        encrypt_file,
        key_arn_parts,
        pinned_key_arn,
    )
    from ztai_runtime.weights.format import validate_context

    context = parse_context(args.context)
    try:
        validate_context(context, writing=True)  # before any KMS call
    except WeightsFormatError as error:
        raise UsageError(str(error)) from None
    _check_paths(args)
    expected = expected_key_arn(args)
    if (problem := kms_key_problem("--key-id", args.key_id)) is not None:
        raise UsageError(f"{problem}; nothing was written")
    if expected is None and key_arn_parts(args.key_id) is None:
        raise UsageError(f"--key-id {args.key_id} is not a key ARN: an alias can be pointed at another "
                         "key by anyone allowed kms:UpdateAlias, so it is used only when it resolves "
                         "to the expected key; pass --expected-key-arn ARN or --stack-outputs FILE "
                         "(`pulumi stack output --json`), or give the key ARN itself; nothing was "
                         "written")
    region = _session_region(args)
    for what, arn in (("--key-id", args.key_id), ("the expected key", expected)):
        if arn:
            _check_key_region(arn, what, region)
    kms = _kms_client(region)
    try:
        key_arn = pinned_key_arn(kms, args.key_id, expected)
    except AliasMovedError as error:
        # The threat the pin exists for (or an alias naming another key): a security refusal, exit 1,
        # so a pipeline can tell it from a mistyped argument.
        print(f"refused: {error}; nothing was written to {args.output}", file=sys.stderr)
        return EXIT_VIOLATION
    except KeyPinError as error:  # two ARNs that differ, an expected key that is not a key ARN
        raise UsageError(f"{error}; nothing was written") from None
    except (ClientError, BotoCoreError) as error:
        raise _aws_error(error, f"KMS DescribeKey of {args.key_id} (nothing was written)") from None
    try:
        # Under the pinned ARN, never the alias: a move after the check cannot switch the key.
        with _progress(args, "encrypting") as advance:
            info = encrypt_file(args.input, args.output, KmsDataKeySource(kms, key_arn),
                                context, overwrite=args.force, progress=advance)
    except WeightsFormatError as error:
        raise UsageError(str(error)) from None
    except (ClientError, BotoCoreError) as error:
        raise _aws_error(error, f"KMS GenerateDataKey under {key_arn}") from None
    except OSError as error:
        raise _os_error(error) from None
    _report(args, "encrypted", info)
    return EXIT_OK


def _caller_account(region: str | None) -> str:
    import boto3
    account: str = boto3.client("sts", region_name=region).get_caller_identity()["Account"]
    return account


def _refused(args: argparse.Namespace, error: Exception | str) -> int:
    print(f"refused: {args.input}: {error}; nothing was written to {args.output}", file=sys.stderr)
    return EXIT_VIOLATION


def _header_key_arns(args: argparse.Namespace) -> list[str] | None:
    """The KMS key ARNs the message's header names, read before any AWS call; None when the file
    is refused (the caller exits 1). A file that is not a message, or ends inside its header, is
    refused like any file that does not authenticate: it may be the wrong file, an incomplete copy
    or a tampered one, and the tamper code is what a pipeline alerts on."""
    from ztai_runtime.weights import NotAMessageError, TruncatedHeaderError, WeightsFormatError, read_header
    from ztai_runtime.weights.format import KMS_PROVIDER_ID

    try:
        with open(args.input, "rb") as source:
            header, _ = read_header(source)
    except NotAMessageError as error:
        _refused(args, f"{error} (the wrong file, or a damaged one)")
        return None
    except TruncatedHeaderError as error:
        _refused(args, f"{error}: the file is incomplete (an interrupted copy or download?) or "
                       "damaged")
        return None
    except WeightsFormatError as error:
        _refused(args, error)
        return None
    except OSError as error:
        raise _os_error(error) from None
    return [edk.provider_info.decode("utf-8", errors="replace")
            for edk in header.encrypted_data_keys if edk.provider_id == KMS_PROVIDER_ID]


def _check_header_regions(arns: list[str], region: str, key_ids: list[str], accounts: list[str]) -> None:
    """Refuse to call KMS in a Region none of the message's allowed keys is in: that is a
    configuration mistake (exit 2 with the Region to use), not a file that fails to authenticate.
    Only keys the caller allows (--key-id, or the accounts discovery trusts) count: the header is
    not authenticated yet, so a Region named by any other key is the file's word, and such a file
    is left to the unwrapper to refuse (exit 1)."""
    from ztai_runtime.weights import key_arn_parts

    allowed = [parts for arn in arns if (parts := key_arn_parts(arn)) is not None
               and (arn in key_ids if key_ids else parts[2] in accounts)]
    regions = sorted({parts[1] for parts in allowed})
    if not regions or region in regions:
        return
    raise UsageError(f"the file was encrypted under a key in {' or '.join(regions)}, but this session "
                     f"is in {region}: {_region_hint(regions[0])}; nothing was written")


def _decrypt(args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    from ztai_runtime.weights import (
        KmsUnwrapper,
        UnwrapError,
        WeightsFormatError,
        decrypt_file,
        key_arn_parts,
    )

    context = parse_context(args.context)
    _check_paths(args)
    if args.key_id and args.discovery_account:
        raise UsageError("give --key-id (strict) or --discovery-account, not both")
    for arn in args.key_id:
        if key_arn_parts(arn) is None:
            raise UsageError(f"--key-id {arn!r} is not a KMS key ARN (arn:<partition>:kms:<region>:"
                             "<account>:key/<id>); aliases cannot be matched against a message")
    header_arns = _header_key_arns(args)
    if header_arns is None:
        return EXIT_VIOLATION
    region = _session_region(args)
    for arn in args.key_id:
        _check_key_region(arn, "--key-id", region)
    if region is None:
        raise UsageError("no AWS Region is configured: run with --region REGION (or set "
                         "AWS_DEFAULT_REGION=REGION), the Region of the key the file was encrypted "
                         "under; nothing was written")
    try:
        accounts = args.discovery_account or ([] if args.key_id else [_caller_account(region)])
    except (ClientError, BotoCoreError) as error:
        raise _aws_error(error, "STS GetCallerIdentity (to find your account)") from None
    _check_header_regions(header_arns, region, args.key_id, accounts)
    try:
        unwrapper = KmsUnwrapper(_kms_client(region), key_arns=args.key_id, discovery_accounts=accounts)
    except ValueError as error:
        raise UsageError(str(error)) from None
    try:
        with _progress(args, "decrypting") as advance:
            info = decrypt_file(args.input, args.output, unwrapper, expected_context=context,
                                overwrite=args.force, progress=advance)
    except (WeightsFormatError, UnwrapError) as error:
        return _refused(args, error)
    except (ClientError, BotoCoreError) as error:
        # Not a verdict on the file (throttled, no credentials, no network): nothing was written.
        raise _aws_error(error, "KMS Decrypt (nothing was written)") from None
    except OSError as error:
        raise _os_error(error) from None
    _report(args, "decrypted", info)
    return EXIT_OK
