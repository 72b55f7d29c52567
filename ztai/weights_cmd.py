"""`ztai weights encrypt|decrypt`: envelope encryption of model weights.

    ztai weights encrypt --key-id KEY [--expected-key-arn ARN | --stack-outputs FILE]
                         [--context k=v ...] [--force] SRC DEST
    ztai weights decrypt [--key-id ARN ... | --discovery-account ID ...] [--context k=v ...]
                         [--force] SRC DEST

Encrypting pins the key: KEY is a key ARN, or an alias (or key id) that must resolve (KMS
DescribeKey) to the expected key ARN, given with --expected-key-arn or read from the stack's outputs
(`pulumi stack output --json`, `keyArns.model-weights`). An alias alone is refused: anyone allowed
kms:UpdateAlias could have pointed it at a key of their own.

Files are AWS Encryption SDK messages (suite 0x0478, framed): the official SDKs and the AWS
Encryption CLI decrypt them too. AWS access uses the standard boto3 configuration, so
`AWS_ENDPOINT_URL` points the command at a local KMS stand-in.

Exit status: 0 done; 1 the input was refused (tampered, truncated, wrong key or context, not
accepted format) and no plaintext was written; 2 usage or configuration error; 3 a bug.
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


def register(commands: Any) -> None:  # argparse's subparsers action has no public type
    weights = commands.add_parser("weights", help="encrypt or decrypt model weights (AWS Encryption SDK "
                                                  "format, KMS data keys)")
    actions = weights.add_subparsers(dest="weights_command", required=True, metavar="COMMAND")

    encrypt = actions.add_parser(
        "encrypt", help="encrypt a file under a KMS key",
        description="Encrypt SRC into DEST with a data key from KMS GenerateDataKey under KEY, binding "
                    "the encryption context into the header (and into the KMS call).")
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
        description="Decrypt SRC into DEST. DEST appears only after the whole message verified. Without "
                    "--key-id, only KMS keys in the caller's own account are tried.")
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
        parser.add_argument("--force", action="store_true", help="replace DEST if it exists")
        parser.add_argument("--json", action="store_true", help="print the result as JSON")
        parser.add_argument("source", type=Path, metavar="SRC")
        parser.add_argument("destination", type=Path, metavar="DEST")


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
    if not args.source.is_file():
        raise UsageError(f"{args.source}: no such file")
    if args.source.resolve() == args.destination.resolve():
        raise UsageError("SRC and DEST are the same file")
    if args.destination.exists() and not args.force:
        raise UsageError(f"{args.destination} exists; pass --force to replace it")
    if args.destination.is_dir():
        raise UsageError(f"{args.destination} is a directory; give a file name")
    if not args.destination.absolute().parent.is_dir():
        raise UsageError(f"{args.destination.parent}: no such directory")
    if args.destination.exists() and args.source.samefile(args.destination):
        raise UsageError("SRC and DEST are the same file (hard link)")


def _kms_client() -> Any:
    import boto3
    from botocore.config import Config
    # Standard retries (3 attempts, or AWS_MAX_ATTEMPTS) cover KMS throttling; boto3 reads region,
    # credentials and AWS_ENDPOINT_URL from the standard configuration.
    return boto3.client("kms", config=Config(retries={"mode": "standard"}))


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
        print(json.dumps({"result": verb, "destination": str(args.destination),
                          "messageId": info.message_id, "suite": info.suite,
                          "encryptionContext": info.encryption_context,
                          "keys": list(info.key_provider_infos), "frames": info.frames,
                          "frameLength": info.frame_length, "bytes": info.plaintext_length}, indent=2))
    else:
        keys = ", ".join(info.key_provider_infos)
        print(f"{verb} {info.plaintext_length} bytes ({info.frames} frames) -> {args.destination} "
              f"[key {keys}; context {json.dumps(info.encryption_context, sort_keys=True)}]")


def stack_output_key_arn(path: Path) -> str:
    """`keyArns.model-weights` of a `pulumi stack output --json` document."""
    from ztai.jsonfile import read_json

    document = read_json(path, "stack outputs", UsageError)
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


def _encrypt(args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    from ztai_runtime.weights import (
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
    if expected is None and key_arn_parts(args.key_id) is None:
        raise UsageError(f"--key-id {args.key_id} is not a key ARN: an alias can be pointed at another "
                         "key by anyone allowed kms:UpdateAlias, so it is used only when it resolves "
                         "to the expected key; pass --expected-key-arn ARN or --stack-outputs FILE "
                         "(`pulumi stack output --json`), or give the key ARN itself; nothing was "
                         "written")
    kms = _kms_client()
    try:
        key_arn = pinned_key_arn(kms, args.key_id, expected)
    except KeyPinError as error:
        raise UsageError(f"refused: {error}; nothing was written") from None
    except (ClientError, BotoCoreError) as error:
        raise _aws_error(error, f"KMS DescribeKey of {args.key_id} (nothing was written)") from None
    try:
        # Under the pinned ARN, never the alias: a move after the check cannot switch the key.
        info = encrypt_file(args.source, args.destination, KmsDataKeySource(kms, key_arn),
                            context, overwrite=args.force)
    except WeightsFormatError as error:
        raise UsageError(str(error)) from None
    except (ClientError, BotoCoreError) as error:
        raise _aws_error(error, f"KMS GenerateDataKey under {key_arn}") from None
    except OSError as error:
        raise _os_error(error) from None
    _report(args, "encrypted", info)
    return EXIT_OK


def _caller_account() -> str:
    import boto3
    account: str = boto3.client("sts").get_caller_identity()["Account"]
    return account


def _decrypt(args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    from ztai_runtime.weights import KmsUnwrapper, UnwrapError, WeightsFormatError, decrypt_file

    context = parse_context(args.context)
    _check_paths(args)
    if args.key_id and args.discovery_account:
        raise UsageError("give --key-id (strict) or --discovery-account, not both")
    try:
        accounts = args.discovery_account or ([] if args.key_id else [_caller_account()])
        unwrapper = KmsUnwrapper(_kms_client(), key_arns=args.key_id, discovery_accounts=accounts)
    except ValueError as error:
        raise UsageError(str(error)) from None
    except (ClientError, BotoCoreError) as error:
        raise _aws_error(error, "STS GetCallerIdentity (to find your account)") from None
    try:
        info = decrypt_file(args.source, args.destination, unwrapper, expected_context=context,
                            overwrite=args.force)
    except (WeightsFormatError, UnwrapError) as error:
        print(f"refused: {args.source}: {error}; nothing was written to {args.destination}",
              file=sys.stderr)
        return EXIT_VIOLATION
    except (ClientError, BotoCoreError) as error:
        # Not a verdict on the file (throttled, no credentials, no network): nothing was written.
        raise _aws_error(error, "KMS Decrypt (nothing was written)") from None
    except OSError as error:
        raise _os_error(error) from None
    _report(args, "decrypted", info)
    return EXIT_OK
