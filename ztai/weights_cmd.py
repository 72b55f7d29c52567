"""`ztai weights encrypt|decrypt`: envelope encryption of model weights (control map §4.2).

    ztai weights encrypt --key-id KEY [--context k=v ...] [--force] SRC DEST
    ztai weights decrypt [--key-id ARN ... | --discovery-account ID ...] [--context k=v ...]
                         [--force] SRC DEST

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


def register(commands: Any) -> None:  # argparse's subparsers action has no public type
    weights = commands.add_parser("weights", help="encrypt or decrypt model weights (AWS Encryption SDK "
                                                  "format, KMS data keys)")
    actions = weights.add_subparsers(dest="weights_command", required=True, metavar="COMMAND")

    encrypt = actions.add_parser(
        "encrypt", help="encrypt a file under a KMS key",
        description="Encrypt SRC into DEST with a data key from KMS GenerateDataKey under KEY, binding "
                    "the encryption context into the header (and into the KMS call).")
    encrypt.add_argument("--key-id", required=True, metavar="KEY",
                         help="KMS key id, key ARN, alias name (alias/...) or alias ARN")
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


def _encrypt(args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    from ztai_runtime.weights import KmsDataKeySource, WeightsFormatError, encrypt_file

    context = parse_context(args.context)
    _check_paths(args)
    try:
        info = encrypt_file(args.source, args.destination, KmsDataKeySource(_kms_client(), args.key_id),
                            context, overwrite=args.force)
    except WeightsFormatError as error:
        raise UsageError(str(error)) from None
    except (ClientError, BotoCoreError) as error:
        raise _aws_error(error, f"KMS GenerateDataKey under {args.key_id}") from None
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
