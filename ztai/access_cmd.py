"""`ztai access request|approve|deny|revoke|list`: just-in-time elevation.

    ztai access request ELEVATION --minutes N --reason TEXT [--url URL] [--json]
    ztai access approve REQUEST_ID [--url URL] [--json]
    ztai access deny|revoke REQUEST_ID --reason TEXT [--url URL] [--json]
    ztai access list [--state STATE] [--url URL] [--json]   (your requests, and those you may approve)

Every command is one call to the stack's JIT function URL (stack output `jit.apiUrl`, given with
--url, --stack-outputs or ZTAI_JIT_URL), signed with SigV4 from the standard AWS configuration:
the function takes who you are from that signature, so the approver is always the person signed
in, and only the function may change the elevation roles. Arguments are checked here first, so a
bad one costs no call.

Exit status: 0 done, or nothing to do (approving twice, revoking an ended grant); 1 refused on
security grounds (self-approval, not an approver of the elevation, not allowed to revoke); 2 usage
or input error (unknown elevation, duration over the maximum, missing reason, unknown request...);
3 a bug.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from ztai.errors import EXIT_OK, EXIT_VIOLATION, UsageError

URL_ENV = "ZTAI_JIT_URL"
STATES = ("pending", "writing", "active", "denied", "revoked", "expired")
# As the catalogue allows (components/jit_catalogue.py): the server checks the elevation's own maximum.
MAX_MINUTES = 720
ELEVATION = re.compile(r"[a-z][a-z0-9-]{0,30}[a-z0-9]")
REQUEST_ID = re.compile(r"[0-9a-f]{32}")
SHA256 = re.compile(r"[0-9a-fA-F]{64}")
# AWS KMS API Reference, PutKeyPolicy: Policy is at most 32768 bytes.
MAX_POLICY_BYTES = 32_768
FUNCTION_URL = re.compile(r"https://[a-z0-9]{1,64}\.lambda-url\.([a-z]{2}(?:-[a-z]+)+-\d)\.on\.aws/?")
EXIT_NOTE = ("for this command: 0 done, or nothing left to do (approved twice, revoking an ended "
             "grant); 1 refused on security grounds (self-approval, not an approver, not allowed to "
             "revoke); 2 usage or input error (unknown elevation, duration over its maximum, missing "
             "reason, unknown request id, no function URL); 3 a bug.")


def register(commands: Any) -> None:  # argparse's subparsers action has no public type
    access = commands.add_parser(
        "access", help="just-in-time elevation: request, approve, deny, revoke, list",
        description="Ask for a catalogued elevation, approve someone else's, end one, or list them. "
                    "The grant ends by itself at its expiry (docs/jit.md).", epilog=EXIT_NOTE)
    actions = access.add_subparsers(dest="access_command", required=True, metavar="COMMAND",
                                    help="request, approve, deny, revoke or list")
    request = actions.add_parser("request", help="ask for an elevation", epilog=EXIT_NOTE,
                                 description="Ask for ELEVATION (a name of the stack's jitCatalogueFile) "
                                             "for --minutes, saying why. Someone else approves it.")
    request.add_argument("elevation", metavar="ELEVATION",
                         help="the catalogue entry, e.g. training-data-write")
    request.add_argument("--minutes", type=int, required=True, metavar="N",
                         help="how long the grant lasts once approved (at most the elevation's maxMinutes)")
    request.add_argument("--reason", required=True, metavar="TEXT", help="what it is for (approvers read it)")
    request.add_argument("--policy-file", type=Path, metavar="FILE",
                         help="key-admin only: the key policy to write (JSON, up to 32 KB); the approvers "
                              "approve its SHA-256 and the function writes exactly it")
    approve = actions.add_parser("approve", help="approve someone else's request", epilog=EXIT_NOTE,
                                 description="Approve REQUEST_ID. Never your own; the last approval "
                                             "needed grants it at once.")
    approve.add_argument("request_id", metavar="REQUEST_ID", help="from `ztai access list`")
    document = approve.add_mutually_exclusive_group()
    document.add_argument("--policy-sha256", metavar="HEX",
                          help="for a request that writes a key policy: the SHA-256 of the document "
                               "you read (`ztai access list --json` shows it); refused if it differs")
    document.add_argument("--policy-file", dest="approve_policy_file", type=Path, metavar="FILE",
                          help="for a request that writes a key policy: the document you reviewed; its "
                               "SHA-256 is computed here, not taken from the function")
    deny = actions.add_parser("deny", help="deny a pending request", epilog=EXIT_NOTE,
                              description="Deny REQUEST_ID, saying why.")
    revoke = actions.add_parser("revoke", help="end a grant now (sessions already issued included)",
                                epilog=EXIT_NOTE,
                                description="End REQUEST_ID now: its role admits nobody again and the "
                                            "sessions issued before now are refused.")
    for parser in (deny, revoke):
        parser.add_argument("request_id", metavar="REQUEST_ID", help="from `ztai access list`")
        parser.add_argument("--reason", required=True, metavar="TEXT", help="why (recorded)")
    listing = actions.add_parser("list", help="list your requests and those you may approve",
                                 epilog=EXIT_NOTE,
                                 description="List your own requests and those of the elevations you "
                                             "may approve, oldest first. Nobody else's: the function "
                                             "decides from who signed the call.")
    listing.add_argument("--state", choices=STATES, help="only requests in this state")
    for parser in (request, approve, deny, revoke, listing):
        parser.add_argument("--url", metavar="URL",
                            help=f"the JIT function URL (stack output jit.apiUrl); default: ${URL_ENV}")
        parser.add_argument("--stack-outputs", type=Path, metavar="FILE",
                            help="the stack's `pulumi stack output --json`: the URL is jit.apiUrl")
        parser.add_argument("--json", action="store_true", help="print the function's answer as JSON")
        parser.set_defaults(handler=_run)


def _function_url(args: argparse.Namespace) -> tuple[str, str]:
    """The URL and its Region."""
    if args.url and args.stack_outputs:
        raise UsageError("give --url or --stack-outputs, not both")
    url = args.url or (_url_from_outputs(args.stack_outputs) if args.stack_outputs else None)
    url = url or os.environ.get(URL_ENV)
    if not url:
        raise UsageError(f"no JIT function URL: pass --url (stack output jit.apiUrl), --stack-outputs "
                         f"FILE or set {URL_ENV}")
    match = FUNCTION_URL.fullmatch(url)
    if match is None:
        raise UsageError(f"--url {url!r} is not a Lambda function URL "
                         "(https://<id>.lambda-url.<region>.on.aws/)")
    return url, match.group(1)


def _url_from_outputs(path: Path) -> str:
    from ztai.jsonfile import read_json

    document = read_json(path, "stack outputs", UsageError)
    jit = document.get("jit") if isinstance(document, dict) else None
    url = jit.get("apiUrl") if isinstance(jit, dict) else None
    if not isinstance(url, str):
        raise UsageError(f"stack outputs {path}: no jit.apiUrl; save `pulumi stack output --json` of a "
                         "stack that has a jitCatalogueFile")
    return url


def _payload(args: argparse.Namespace) -> dict[str, Any]:
    command = args.access_command
    if command == "list":
        return {"action": "list", **({"state": args.state} if args.state else {})}
    reason = getattr(args, "reason", None)
    if reason is not None and not reason.strip():
        raise UsageError("--reason is empty: say why, in words (it is recorded with the request)")
    if command == "request":
        if not ELEVATION.fullmatch(args.elevation):
            raise UsageError(f"ELEVATION {args.elevation!r} is not an elevation name (lower-case letters, "
                             "digits and dashes; `ztai access list` shows the ones in use)")
        if not 1 <= args.minutes <= MAX_MINUTES:
            raise UsageError(f"--minutes {args.minutes}: 1 to {MAX_MINUTES}, and at most the elevation's "
                             "maxMinutes")
        payload: dict[str, Any] = {"action": "request", "elevation": args.elevation,
                                   "minutes": args.minutes, "reason": args.reason.strip()}
        if args.policy_file is not None:
            payload["policy"] = _policy_text(args.policy_file)
        return payload
    if not REQUEST_ID.fullmatch(args.request_id):
        raise UsageError(f"REQUEST_ID {args.request_id!r} is not a request id (32 hexadecimal digits, "
                         "as `ztai access list` shows)")
    payload = {"action": command, "request_id": args.request_id}
    if reason is not None:
        payload["reason"] = reason.strip()
    digest = getattr(args, "policy_sha256", None)
    if getattr(args, "approve_policy_file", None) is not None:
        digest = hashlib.sha256(_policy_text(args.approve_policy_file).encode("utf-8")).hexdigest()
    if digest is not None:
        if not SHA256.fullmatch(digest):
            raise UsageError(f"--policy-sha256 {digest!r}: 64 hexadecimal digits (the SHA-256 `ztai access "
                             "list --json` shows as policy_sha256)")
        payload["policy_sha256"] = digest.lower()
    return payload


def _policy_text(path: Path) -> str:
    """The key policy file as sent: its JSON text (the function writes exactly this)."""
    from ztai.jsonfile import read_json, read_text

    document = read_json(path, "key policy", UsageError)  # readable JSON, or a message naming why
    if not isinstance(document, dict) or not isinstance(document.get("Statement"), list):
        raise UsageError(f"--policy-file {path}: not a key policy (a JSON object with a Statement list)")
    text = read_text(path, "key policy", UsageError)
    if len(text.encode("utf-8")) > MAX_POLICY_BYTES:
        raise UsageError(f"--policy-file {path}: {len(text.encode('utf-8'))} bytes; KMS takes a key "
                         f"policy of at most {MAX_POLICY_BYTES} bytes")
    return text


def post(url: str, region: str, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """POST the payload to the function URL, SigV4-signed for Lambda; (status, JSON answer)."""
    import urllib.error
    import urllib.request

    import botocore.session
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.exceptions import BotoCoreError

    try:
        credentials = botocore.session.get_session().get_credentials()
    except BotoCoreError as error:
        raise UsageError(f"AWS configuration: {error}") from None
    if credentials is None:
        raise UsageError("no AWS credentials: sign in (e.g. `aws sso login`) and try again")
    body = json.dumps(payload).encode()
    request = AWSRequest(method="POST", url=url, data=body, headers={"Content-Type": "application/json"})
    SigV4Auth(credentials.get_frozen_credentials(), "lambda", region).add_auth(request)
    prepared = urllib.request.Request(url, data=body, method="POST", headers=dict(request.headers.items()))
    try:
        with urllib.request.urlopen(prepared, timeout=30) as response:  # an https URL, checked above
            return response.status, _answer(response.read())
    except urllib.error.HTTPError as error:
        return error.code, _answer(error.read())
    except (urllib.error.URLError, TimeoutError) as error:
        raise UsageError(f"cannot reach {url}: {getattr(error, 'reason', error)}") from None


def _answer(data: bytes) -> dict[str, Any]:
    try:
        answer = json.loads(data)
    except ValueError:
        return {"error": data.decode("utf-8", "replace")[:500]}
    return answer if isinstance(answer, dict) else {"error": str(answer)[:500]}


def _run(args: argparse.Namespace) -> int:
    payload = _payload(args)
    url, region = _function_url(args)
    status, answer = post(url, region, payload)
    if status == 403:
        print(f"ztai: refused: {answer.get('error', answer)}", file=sys.stderr)
        return EXIT_VIOLATION
    if status != 200:
        raise UsageError(str(answer.get("error") or answer.get("Message") or f"HTTP {status}: {answer}"))
    if args.json:
        print(json.dumps(answer, indent=2, sort_keys=True))
    elif payload["action"] == "list":
        for item in answer.get("requests", []):
            print(f"{item['request_id']}  {item['state']:<8} {item['elevation']:<24} "
                  f"{item['requester']}  {item.get('expires_at') or '-'}  {item['reason']}"
                  + (f"  writes the key policy with SHA-256 {item['policy_sha256']} (--json shows it)"
                     if item.get("policy_sha256") else ""))
    else:
        print(answer.get("message", ""))
    return EXIT_OK
