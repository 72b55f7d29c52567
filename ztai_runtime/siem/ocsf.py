"""One log line in, one OCSF event out: the mapping the SIEM stream's transformation applies.

`to_ocsf(message, log_group=...)` takes one CloudWatch Logs event's message and returns one event of
the Open Cybersecurity Schema Framework (OCSF_VERSION), a dict ready for `json.dumps`, or None
when the line is not a kind mapped here (the caller forwards it, redacted, and counts it). It
never raises on what a log line holds: malformed JSON, missing fields and odd types give None.

The log group decides which mapping may apply (`source_of_group`), the line's shape then has to
match it; with no log group (tests, the CLI) the shape alone decides. What is mapped:

- a CloudTrail record, management or data event (`eventVersion`, `eventSource`): API Activity
  6003; its `AwsConsoleSignIn` records (ConsoleLogin, SwitchRole, ExitRole) and Cognito user pool
  sign-ins (InitiateAuth, RespondToAuthChallenge, their Admin forms, the hosted UI's Login_POST
  and Token_POST): Authentication 3002;
- an API Gateway HTTP API access log line (the stage's JSON format, ACCESS_LOG_FORMAT in
  components/api_gateway.py): HTTP Activity 4002;
- an inference event (`"event": "inference"`, written by the parent agent): API Activity 6003;
- a JIT elevation decision (`jit.<action>` lines naming the person who acted, `jit.api.refused`,
  `jit.api.bad-request`): API Activity 6003;
- a VPC flow log record in the default version 2 format (space-separated): Network Activity 4001;
- a Route 53 Resolver query log record (JSON): DNS Activity 4003.

Left unmapped (None, forwarded redacted): a line of a mapped kind in another source's log group;
CloudTrail Insights events (a statistical finding, not an API call: no actor, no source; OCSF's
finding classes are not emitted here); the other
decision lines of ztai_runtime/jsonlog.py (key rotation, instance refresh, tokenisation, the
JIT's scheduled expiry): they record what a function decided, and the AWS calls that carried
each decision out are in CloudTrail with the function's role as the actor, so an API Activity of
their own would count them twice; an unauthenticated JIT call (no actor to name); flow log lines
that carry no traffic (NODATA, SKIPDATA) and the header line; Cognito's own user activity log
export, whose format is not documented field by field.

Every event keeps what the schema has no place for in `unmapped` and the line as received in
`raw_data` (a string). Credentials are redacted first, in every JSON line: a value under a key
named like a secret (the rule at _SECRET_ENDINGS: `sessionToken`, `SAMLAssertion`,
`MasterUserPassword`, `PreSharedKey`, ...) becomes "REDACTED", so in `unmapped` and in `raw_data`,
which is then the redacted record re-serialised. `redact_line` does the same for the lines the
transform forwards unmapped, so nothing leaves it unredacted.

An address that is not an IP (a service name, or the anonymised `08.1.250.216` of the test
dataset) goes to `src_endpoint.name`: OCSF's IP type would reject it, and the record is never
dropped for it. Times are epoch milliseconds.

JSON is read and written through `codec` (orjson when the function ships it, the standard library
otherwise, the same results either way); no per-call schema work. Validation against the JSON
Schemas is separate (`ztai_runtime.siem.schemas.validate`).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from ipaddress import ip_address
from typing import Any

from ztai_runtime.siem import codec
from ztai_runtime.siem.codec import WIDE, WideNumberError

OCSF_VERSION = "1.7.0"

API_ACTIVITY = 6003
AUTHENTICATION = 3002
HTTP_ACTIVITY = 4002
NETWORK_ACTIVITY = 4001
DNS_ACTIVITY = 4003
# Written by the detection stream function (ztai_runtime/detect/stream.py), not by this mapping.
DETECTION_FINDING = 2004

_APPLICATION, _IAM, _NETWORK = 6, 3, 4
_INFORMATIONAL = 1
_UNKNOWN, _SUCCESS, _FAILURE = 0, 1, 2
_STATUS_NAMES = {_UNKNOWN: "Unknown", _SUCCESS: "Success", _FAILURE: "Failure"}
_OTHER = 99

REDACTED = "REDACTED"
# A key names a secret when its name, in lower case without `_` and `-`, ends in one of these words
# (an optional plural `s` after it). The words are the ones botocore marks `sensitive` in the
# services CloudTrail records most (tests/ztai_runtime/siem/test_redaction.py walks their models):
# `sessionToken`, `webIdentityToken`, `authorizationToken`, `SAMLAssertion`, `secretAccessKey`,
# `MasterUserPassword`, `Base32StringSeed`, `PreSharedKey`, `UserData`, `PasswordData`, `SecretHash`,
# `ServiceCredentialSecret`, and the bearer-like ones: presigned URLs, an MFA seed's QR code, a
# VPN's configuration text with its pre-shared keys, a one-time MFA code. CloudTrail hides most of
# them itself, but not all: GetSessionToken's responseElements carry the new session token.
_SECRET_ENDINGS = (
    "token", "secret", "password", "passphrase", "assertion", "credential", "privatekey", "seed",
    "presharedkey", "secretkey", "secretaccesskey", "secrethash", "secretcode", "secretstring",
    "secretbinary", "userdata", "passworddata", "authorization", "plaintext", "keymaterial",
    "sessiontoken", "secretvalue", "usercode", "mfacode", "qrcodepng", "policysignature",
    "presignedurl", "manifesturl", "gatewayconfiguration", "sampleconfiguration", "propagationcontext",
)
# A key named like this anywhere in its name is a secret too (`passwordHash`, `privateKeyPem`), unless
# its name ends in a word that names something about the secret rather than the secret
# (`passwordLastUsed`, `PasswordLength`, `privateKeyArn`).
_SECRET_PARTS = ("password", "passphrase", "privatekey", "sessiontoken", "secretaccesskey")
_ABOUT_A_SECRET = ("id", "ids", "arn", "arns", "name", "names", "type", "types", "length", "lastused",
                   "required", "policy", "enabled", "age", "date", "time", "status", "count", "version")
# Named like a secret but not one: paging and idempotency tokens a caller makes up, which a SIEM
# uses to tie calls together, and a presigned request's `X-Amz-Credential` (the access key id and
# scope; its `X-Amz-Security-Token` is redacted). `tokenType`-like names do not end in a secret
# word at all.
_NOT_SECRETS = frozenset({"nexttoken", "clienttoken", "idempotencytoken", "paginationtoken",
                          "continuationtoken", "starttoken", "nextpagetoken", "xamzcredential"})
# Cognito's challenge `Session` is the one secret whose name is a plain word; matched exactly.
_SECRET_NAMES = frozenset({"session"})
_SECRET_PATTERN = re.compile(
    "(?:" + "|".join(_SECRET_ENDINGS) + ")s?$"
    + "|^(?=.*(?:" + "|".join(_SECRET_PARTS) + "))(?!.*(?:" + "|".join(_ABOUT_A_SECRET) + ")$)")
# A line that looks like JSON but does not parse (a number json refuses, a nesting too deep) is
# redacted as text, token by token (`_redact_text`): strings (an unterminated one at the end too),
# punctuation, bare words (numbers, true, false, null, anything else) and blanks.
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"?|[{}\[\]:,]|[^\s"{}\[\]:,]+|\s+', re.S)
_KEPT_WORDS = frozenset({"true", "false", "null"})
# Names longer than this are checked every time rather than cached: a line's writer chooses its
# key names, and caching long ones would let a few lines fill the function's memory.
_CACHED_NAME_MAX = 128

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)

# API Activity's activity from the verb an AWS operation name starts with.
_CREATE, _READ, _UPDATE, _DELETE = 1, 2, 3, 4
_VERBS = {
    **dict.fromkeys(("Create", "Run", "Add", "Authorize", "Import", "Register", "Allocate", "Associate",
                     "Copy", "Upload", "Issue", "Request", "Send", "Publish"), _CREATE),
    **dict.fromkeys(("Get", "Describe", "List", "Head", "Lookup", "Search", "Query", "Scan", "Select",
                     "Download", "Export"), _READ),
    **dict.fromkeys(("Update", "Modify", "Put", "Set", "Change", "Replace", "Reset", "Tag", "Untag",
                     "Enable", "Disable", "Attach", "Rotate", "Restore", "Write", "Apply"), _UPDATE),
    **dict.fromkeys(("Delete", "Remove", "Detach", "Revoke", "Stop", "Terminate", "Disassociate",
                     "Deregister", "Cancel", "Leave", "Purge"), _DELETE),
}
_HTTP_ACTIVITY = {"CONNECT": 1, "DELETE": 2, "GET": 3, "HEAD": 4, "OPTIONS": 5, "POST": 6, "PUT": 7,
                  "TRACE": 8, "PATCH": 9}
_CONSOLE_ACTIVITY = {"ConsoleLogin": 1, "ExitRole": 2, "SwitchRole": 7}
_COGNITO_SIGN_INS = frozenset({"InitiateAuth", "AdminInitiateAuth", "RespondToAuthChallenge",
                               "AdminRespondToAuthChallenge", "Login_POST", "Token_POST"})
# DNS response codes (RFC 1035, RFC 6895) to OCSF's rcode_id; others are 99 Other.
_RCODES = {"NOERROR": 0, "FORMERR": 1, "SERVFAIL": 2, "NXDOMAIN": 3, "NOTIMP": 4, "REFUSED": 5,
           "YXDOMAIN": 6, "YXRRSET": 7, "NXRRSET": 8, "NOTAUTH": 9, "NOTZONE": 10}
_FLOW_ACTIVITY = {"ACCEPT": 6, "REJECT": 5}  # Traffic, Refuse
_FLOW_FIELDS = 14  # version 2's default format (components/network.py sets no log_format)

_GATEWAY_MAPPED = frozenset({"requestId", "requestTime", "sourceIp", "domainName", "routeKey", "status",
                             "responseLatency", "error"})
_INFERENCE_MAPPED = frozenset({"event", "time", "requestId", "clientId", "partner", "route", "model",
                               "modelVersion", "decision", "reason", "status", "requestBytes",
                               "responseBytes", "latencyMs"})
_JIT_MAPPED = frozenset({"event", "time", "request_id", "by", "caller", "elevation", "error"})
_RESOLVER_MAPPED = frozenset({"query_timestamp", "query_name", "query_type", "query_class", "rcode",
                              "answers", "srcaddr", "srcport", "transport", "account_id", "region",
                              "vpc_id", "version"})


def to_ocsf(message: str, *, log_group: str = "") -> dict[str, Any] | None:
    """The OCSF event of one log line, or None when the line is not a kind mapped here, or is one
    but sits in another source's log group (see `source_of_group`)."""
    try:
        return _map(message, log_group)
    except (ValueError, TypeError, KeyError, AttributeError, IndexError, OverflowError, RecursionError):
        # The mappers check what they read; this is the backstop that keeps a line no one foresaw
        # from failing the whole batch: it is forwarded unmapped (and redacted) instead.
        return None


@lru_cache(maxsize=1024)
def source_of_group(log_group: str) -> str | None:
    """The one source whose lines a log group may hold, by the names the components give the groups,
    or None for no log group (tests, the CLI): the line's content then decides. A group of any
    other name gives "other", for which nothing is mapped.

    Why by group: anyone who may write a group (a fleet instance writes its inference events, an
    app writes its own lines) could otherwise write a line shaped like CloudTrail and have the SIEM
    show it as an AWS API call by someone else."""
    if not log_group:
        return None
    if log_group.endswith("/cloudtrail"):
        return "cloudtrail"  # /zero-trust-ai/<env>/cloudtrail (components/keys.py)
    if log_group.endswith("/inference-events"):
        return "inference"  # /zero-trust-ai/<env>/inference-events (components/fleet.py)
    if log_group.startswith("/aws/apigateway/"):
        return "gateway"  # /aws/apigateway/<api name>... (components/api_gateway.py)
    if "/vpc-flow-logs/" in log_group:
        return "flow"  # /zero-trust-ai/<env>/vpc-flow-logs/<vpc> (components/network.py)
    if "/resolver-query-logs" in log_group:
        return "resolver"  # /zero-trust-ai/<env>/resolver-query-logs (components/network.py)
    if log_group.startswith("/aws/lambda/") and "-jit-" in log_group:
        return "jit"  # /aws/lambda/zero-trust-ai-<env>-jit-<function> (components/jit.py)
    return "other"


def misplaced(message: str, log_group: str) -> bool:
    """True when a line is of a kind mapped here but its log group belongs to another source (or to
    none): it is forwarded unmapped, and counted apart so an alarm can tell."""
    expected = source_of_group(log_group)
    if expected is None or not isinstance(message, str):
        return False
    try:
        kind = _content_kind(message)
    except (ValueError, TypeError, RecursionError):
        return False
    return kind is not None and kind != expected


def _content_kind(message: str) -> str | None:
    text = message.strip()
    if not text:
        return None
    if text[0] != "{":
        fields = text.split()
        return "flow" if len(fields) == _FLOW_FIELDS and fields[0] == "2" else None
    record = codec.loads(text)
    return record_kind(record) if isinstance(record, dict) else None


def record_kind(record: dict[str, Any]) -> str | None:
    """Which source a JSON line's shape says it is from: "cloudtrail", "inference", "jit",
    "gateway", "resolver", or None (the detector reads its inputs by the same test)."""
    if "eventVersion" in record and ("eventSource" in record or "eventName" in record):
        return "cloudtrail"
    kind = record.get("event")
    if kind == "inference":
        return "inference"
    if isinstance(kind, str):
        return "jit" if kind.startswith("jit.") else None
    if "routeKey" in record and "requestId" in record:
        return "gateway"
    if "query_name" in record and "srcaddr" in record:
        return "resolver"
    return None


def _map(message: str, log_group: str) -> dict[str, Any] | None:
    if not isinstance(message, str):
        return None
    # CloudWatch Logs messages rarely start with blanks: copy the line only when one does.
    text = message if message[:1] == "{" else message.strip()
    if not text:
        return None
    expected = source_of_group(log_group)
    if text[0] != "{":
        return _flow_log(text, message, log_group) if expected in (None, "flow") else None
    record = codec.loads(text)
    if not isinstance(record, dict):
        return None
    kind = record_kind(record)
    if kind is None or (expected is not None and kind != expected):
        return None
    raw = message
    # Every JSON line, whatever its source, before anything of it is mapped: `raw_data` is then
    # the redacted line re-serialised. The walk itself decides (its names are cached): cheaper than
    # scanning the text for markers first, and no name the markers would miss escapes it.
    record, changed = _redacted(record, text)
    if changed:
        raw = codec.dumps(record)
    if kind == "cloudtrail":
        return _cloudtrail(record, raw, log_group)
    if kind == "inference":
        return _inference(record, raw, log_group)
    if kind == "jit":
        return _jit(record, record["event"], raw, log_group)
    if kind == "gateway":
        return _gateway(record, raw, log_group)
    return _resolver(record, raw, log_group)


def redact_line(message: str) -> str:
    """A line as the transform forwards it when it maps nothing: a JSON object or array with every
    value under a secret-named key replaced by REDACTED and re-serialised (compact); a line that
    looks like JSON but does not parse (or is nested too deep to walk or write), redacted as text
    (`_redact_text`); any other line (a flow log record, plain text) as it is: it has no key
    names to go by."""
    if not isinstance(message, str):
        return message
    text = message.strip()
    if text[:1] not in ("{", "["):
        return message
    try:
        record = codec.loads(text)
    except (ValueError, RecursionError):
        return _redact_text(message)
    if not isinstance(record, (dict, list)):
        return message
    try:
        record, changed = _redacted(record, text)
        return codec.dumps(record) if changed else message
    except (RecursionError, ValueError, TypeError):
        # Too deep to walk or to write here (orjson writes at most 254 levels, json then recurses):
        # the text scan, which keeps no stack. Always the scan, with no cheaper test first: a
        # marker test on the text would miss the names `is_secret_name` reads without their `_`
        # and `-` (`plain_text`, `pre-signed-url`), and these lines are rare.
        return _redact_text(message)


def _redact_text(message: str) -> str:
    """Redact a JSON-looking line without parsing it, as `_redact` would: every string or number
    after a secret-named key; in an array under a secret name (and the arrays in it), every string
    or number; an object under a secret name by its own keys; true, false and null kept.
    Iterative, so no nesting is too deep."""
    tokens = _TOKEN.findall(message)
    secret_levels: list[bool] = []  # per open array or object: whether its items are all secret
    pending = False  # the next value follows a secret-named key
    for index, token in enumerate(tokens):
        first = token[0]
        if first.isspace() or first == ":":
            continue
        if first == '"':
            following = index + 1
            while following < len(tokens) and tokens[following][0].isspace():
                following += 1
            if following < len(tokens) and tokens[following] == ":":
                pending = is_secret_name(_unquoted(token))
                continue
            if (pending or (secret_levels and secret_levels[-1])) and token not in ('""', f'"{REDACTED}"'):
                tokens[index] = f'"{REDACTED}"'
            # `pending` holds until the value ends (a comma or a closing bracket): a line that is
            # not JSON may put several words there (`{"token": abc def}`).
        elif first == "[":
            secret_levels.append(pending or bool(secret_levels and secret_levels[-1]))
            pending = False
        elif first == "{":
            secret_levels.append(False)  # its own keys decide
            pending = False
        elif first in "}]":
            if secret_levels:
                secret_levels.pop()
            pending = False
        elif first == ",":
            pending = False
        elif (pending or (secret_levels and secret_levels[-1])) and token not in _KEPT_WORDS:
            tokens[index] = f'"{REDACTED}"'
    return "".join(tokens)


def _unquoted(token: str) -> str:
    """A string token's text, its escapes resolved where they are valid."""
    try:
        value = json.loads(token)
    except ValueError:
        return token.strip('"')
    return value if isinstance(value, str) else token.strip('"')


def is_secret_name(key: str) -> bool:
    """Whether a value under this key is a credential (the rule at _SECRET_ENDINGS)."""
    return _cached_secret_name(key) if len(key) <= _CACHED_NAME_MAX else _secret_name(key)


@lru_cache(maxsize=8192)
def _cached_secret_name(key: str) -> bool:
    return _secret_name(key)


def _secret_name(key: str) -> bool:
    name = key.lower().replace("_", "").replace("-", "")
    if name in _SECRET_NAMES:
        return True
    if name in _NOT_SECRETS:
        return False
    return _SECRET_PATTERN.search(name) is not None





# Key names seen and found not to name a secret. An object all of whose keys are here has nothing
# to redact at its own level, which one set comparison (in C) tells: most objects of most records.
# Bounded in count and in each name's length, so lines with made-up keys cannot grow it without
# end; past the bound the walk checks each name (is_secret_name's own cache), as before.
_PLAIN_NAMES: set[str] = set()
_PLAIN_NAMES_MAX = 65_536


def _redacted(record: Any, text: str) -> tuple[Any, bool]:
    """The parsed `text` with every secret-named value redacted (`_redact`), and whether anything
    was. When the fast parser read a number it may have rounded (an integer outside 64 bits,
    codec.WideNumberError), the line is read again exactly and that record is redacted instead."""
    if not codec.using_orjson():
        return record, _redact(record)
    try:
        return record, _redact(record, check_wide=True)
    except WideNumberError:
        record = codec.json_loads(text)
        return record, _redact(record)


def _redact(value: Any, under_secret: bool = False, check_wide: bool = False) -> bool:
    """Replace, in place, every value under a secret-named key; True when something was replaced.
    A string or a number is replaced; true/false and null are kept (`passwordResetRequired` says
    nothing secret); an object under a secret name is walked by its own keys (`credentials` keeps
    its `accessKeyId`, loses its `sessionToken`), a list's strings are replaced.

    `value` is a parser's output, so its containers are exactly dict and list (compared by type:
    the walk is the transform's largest cost after JSON itself). With `check_wide`, a float
    outside the open range (-2**63, 2**63) raises WideNumberError (see codec): orjson may have
    rounded an integer into it."""
    changed = False
    if type(value) is dict:
        if _PLAIN_NAMES.issuperset(value):
            for item in value.values():
                kind = type(item)
                if kind is dict or kind is list:
                    if _redact(item, False, check_wide):
                        changed = True
                elif check_wide and kind is float and not -WIDE < item < WIDE:
                    raise WideNumberError
            return changed
        for key, item in value.items():
            secret = isinstance(key, str) and is_secret_name(key)
            if secret:
                # Re-serialise whatever the value: the parser kept the last of duplicate keys, and
                # the line's text may hold an earlier one (`"token":"s3cr3t","token":null`).
                changed = True
            elif len(_PLAIN_NAMES) < _PLAIN_NAMES_MAX and len(key) <= _CACHED_NAME_MAX:
                _PLAIN_NAMES.add(key)
            kind = type(item)
            if kind is dict:
                if _redact(item, False, check_wide):
                    changed = True
            elif kind is list:
                if _redact(item, secret, check_wide):
                    changed = True
            else:
                if check_wide and kind is float and not -WIDE < item < WIDE:
                    raise WideNumberError
                if secret and _is_secret(item):
                    value[key] = REDACTED
                    changed = True
    elif type(value) is list:
        for index, item in enumerate(value):
            kind = type(item)
            if kind is dict or kind is list:
                if _redact(item, under_secret and kind is list, check_wide):
                    changed = True
            else:
                if check_wide and kind is float and not -WIDE < item < WIDE:
                    raise WideNumberError
                if under_secret and _is_secret(item):
                    value[index] = REDACTED
                    changed = True
    return changed


def _is_secret(item: Any) -> bool:
    """A value that can carry a secret and is not already redacted."""
    return (isinstance(item, (str, int, float)) and not isinstance(item, bool)
            and item not in ("", REDACTED))


# -- shared pieces ---------------------------------------------------------------------------------

def _text(value: Any) -> str | None:
    """A non-empty string, or None (a field absent, null, empty or of another type)."""
    return value if isinstance(value, str) and value else None


def _integer(value: Any) -> int | None:
    """An integer from a JSON number or a string of digits (access logs write numbers as text)."""
    if isinstance(value, bool):
        return None
    # Bounded to 64 bits: SIEMs store OCSF integers as longs.
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**63 else None
    if isinstance(value, float):
        return int(value) if value == value and abs(value) < 2**63 else None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 19:
        return int(value)
    return None


def epoch_ms(value: Any) -> int | None:
    """Epoch milliseconds of an ISO 8601 time (a time without a zone is UTC), or None."""
    if not isinstance(value, str) or not 10 <= len(value) <= 40:
        return None
    return _parse_time(value)


@lru_cache(maxsize=4096)
def _parse_time(value: str) -> int | None:
    # Cached: the events of a batch share their seconds (CloudTrail writes no fraction).
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return (moment - _EPOCH) // _MILLISECOND
    except OverflowError:  # an offset pushing year 1 or 9999 past datetime's range
        return None


def _is_ip(value: str) -> bool:
    # OCSF's ip_t is at most 40 characters (checked before the cache: only short values are kept).
    return len(value) <= 40 and _parsed_ip(value)


@lru_cache(maxsize=8192)
def _parsed_ip(value: str) -> bool:
    # Like OCSF's ip_t, Python's parser refuses IPv4 octets with leading zeros.
    try:
        ip_address(value)
    except ValueError:
        return False
    return True


def _endpoint(address: Any) -> dict[str, Any]:
    """A network endpoint from an address field: `ip` when it is one, else `name`."""
    if isinstance(address, str) and address and address != "-":
        return {"ip": address} if _is_ip(address) else {"name": address}
    return {"name": "unknown"}


def _cloud(region: Any, account: Any) -> dict[str, Any]:
    cloud: dict[str, Any] = {"provider": "AWS"}
    if isinstance(region, str) and region:
        cloud["region"] = region
    if isinstance(account, str) and account:
        cloud["account"] = {"uid": account}
    return cloud


def _metadata(product: dict[str, Any], log_group: str, uid: Any = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"version": OCSF_VERSION, "product": product, "profiles": ["cloud"]}
    if isinstance(uid, str) and uid:
        metadata["uid"] = uid
    if log_group:
        metadata["log_name"] = log_group
    return metadata


def _envelope(class_uid: int, category_uid: int, activity_id: int, time_ms: int, status_id: int,
              metadata: dict[str, Any], cloud: dict[str, Any]) -> dict[str, Any]:
    return {
        "class_uid": class_uid, "category_uid": category_uid, "activity_id": activity_id,
        "type_uid": class_uid * 100 + activity_id, "severity_id": _INFORMATIONAL, "time": time_ms,
        "status_id": status_id, "status": _STATUS_NAMES[status_id],
        "metadata": metadata, "cloud": cloud,
    }


# -- CloudTrail -------------------------------------------------------------------------------------

@lru_cache(maxsize=4096)
def _api_activity(name: str, read_only: bool | None) -> int:
    """Create/Read/Update/Delete from the operation's leading verb, else from readOnly."""
    base = name
    # Lambda's operations carry their API version (`UpdateFunctionCode20150331v2`).
    while base and (base[-1].isdigit() or base[-1] == "v"):
        base = base[:-1]
    verb = _leading_word(base)
    if verb == "Batch":
        verb = _leading_word(base[len("Batch"):])
    activity = _VERBS.get(verb)
    if activity is not None:
        return activity
    if read_only is True:
        return _READ
    return _OTHER


def _leading_word(name: str) -> str:
    for index in range(1, len(name)):
        if name[index].isupper() or name[index] == "_":
            return name[:index]
    return name


def _take_texts(fields: dict[str, Any], keys: tuple[str, ...]) -> list[str | None]:
    """`_take_text` of each key, in one call (the CloudTrail mapping takes many: one call each
    was a tenth of its cost)."""
    taken: list[str | None] = []
    for key in keys:
        value = fields.get(key)
        if type(value) is str and value:
            del fields[key]
            taken.append(value)
        else:
            taken.append(None)
    return taken


def _take_text(fields: dict[str, Any], key: str) -> str | None:
    """A field that is a non-empty string, taken out of `fields`; any other value stays there (it
    goes to `unmapped` as received)."""
    value = fields.get(key)
    if isinstance(value, str) and value:
        del fields[key]
        return value
    return None


def _take_user(identity: dict[str, Any]) -> dict[str, Any]:
    """The OCSF user of a CloudTrail userIdentity, taking the fields it maps out of `identity`."""
    user: dict[str, Any] = {}
    arn, name, uid, kind, key, account = _take_texts(identity, _IDENTITY_TEXTS)
    if name is None and arn is not None:
        # Roles' sessions and federated users have no userName: the ARN's last part names them.
        name = arn.rsplit("/", 1)[-1] if "/" in arn else arn.rsplit(":", 1)[-1]
    if name is not None:
        user["name"] = name
    if uid is not None:
        user["uid"] = uid
    if arn is not None:
        user["uid_alt"] = arn
    if kind is not None:
        user["type"] = kind
    if key is not None:
        user["credential_uid"] = key
    if account is not None:
        user["account"] = {"uid": account}
    if "name" not in user and "uid" not in user and "account" not in user:
        # An AWS service acting on its own (`"type": "AWSService"`) names no user: the actor is
        # then the service in invokedBy, and the type stays in `unmapped`.
        if kind is not None:
            identity["type"] = kind
        return {}
    return user


def _session(identity: dict[str, Any], credential: Any) -> dict[str, Any] | None:
    """The session of a role or federated user (sessionContext stays in `unmapped` as well: its
    web identity and source identity details have no place here)."""
    context = identity.get("sessionContext")
    if not isinstance(context, dict):
        return None
    session: dict[str, Any] = {}
    attributes = context.get("attributes")
    if isinstance(attributes, dict):
        created = epoch_ms(attributes.get("creationDate"))
        if created is not None:
            session["created_time"] = created
        # CloudTrail writes this flag as the string "true" or "false".
        mfa = attributes.get("mfaAuthenticated")
        if mfa in ("true", "false", True, False):
            session["is_mfa"] = mfa in ("true", True)
    issuer = context.get("sessionIssuer")
    if isinstance(issuer, dict) and (issuer_arn := _text(issuer.get("arn"))) is not None:
        session["issuer"] = issuer_arn
    if session and isinstance(credential, str) and credential:
        session["credential_uid"] = credential
    return session or None


# The text fields a CloudTrail record maps, taken out in one call (`_take_texts`), in this order.
_TRAIL_TEXTS = ("eventCategory", "eventID", "eventVersion", "awsRegion", "recipientAccountId", "errorCode",
                "errorMessage", "sourceIPAddress", "userAgent", "requestID", "apiVersion")
_IDENTITY_TEXTS = ("arn", "userName", "principalId", "type", "accessKeyId", "accountId")


def _cloudtrail(record: dict[str, Any], raw: str, log_group: str) -> dict[str, Any] | None:
    """API Activity (or Authentication for sign-ins) of one CloudTrail record. The record is
    consumed: each field mapped is taken out of it, and what remains becomes `unmapped`."""
    time_ms = epoch_ms(record.get("eventTime"))
    name = _text(record.get("eventName"))
    source = _text(record.get("eventSource"))
    if time_ms is None or name is None or source is None:
        return None  # Insights events (no eventSource) among them
    del record["eventTime"], record["eventName"]
    identity = record.get("userIdentity")
    if isinstance(identity, dict):
        del record["userIdentity"]  # what is left of it goes back below
    else:
        identity = {}
    credential = identity.get("accessKeyId")
    category, uid, version, region, account, error, detail, address, agent, request_id, api_version = (
        _take_texts(record, _TRAIL_TEXTS))
    product: dict[str, Any] = {"name": "CloudTrail", "vendor_name": "AWS"}
    if category is not None:
        product["feature"] = {"name": category}
    metadata: dict[str, Any] = {"version": OCSF_VERSION, "product": product, "profiles": ["cloud"],
                                "event_code": name}
    if uid is not None:
        metadata["uid"] = uid
    if log_group:
        metadata["log_name"] = log_group
    if version is not None:
        metadata["log_version"] = version
    cloud = _cloud(region, account)
    user = _take_user(identity)
    session = _session(identity, credential)
    src_endpoint = _endpoint(address)

    event_type = record.get("eventType")
    if event_type == "AwsConsoleSignIn":
        response = record.get("responseElements")
        outcome = response.get(name) if isinstance(response, dict) else None
        failed = outcome == "Failure" or (outcome != "Success" and (error or detail) is not None)
        activity = _CONSOLE_ACTIVITY.get(name, _OTHER)
        is_mfa: bool | None = None
        extra = record.get("additionalEventData")
        if isinstance(extra, dict) and extra.get("MFAUsed") in ("Yes", "No"):
            is_mfa = extra["MFAUsed"] == "Yes"
    elif source == "cognito-idp.amazonaws.com" and name in _COGNITO_SIGN_INS:
        failed = error is not None or _cognito_refused(record)
        activity = 1  # Logon
        is_mfa = None
        if "uid" not in user and (client := _cognito_client(record)) is not None:
            user["uid"] = client
    else:
        read_only = record.get("readOnly")  # kept in `unmapped` too: CloudTrail's own verdict
        if not isinstance(read_only, bool):
            read_only = None
        activity = (_api_activity(name, read_only) if len(name) <= _CACHED_NAME_MAX
                    else _api_activity.__wrapped__(name, read_only))
        event = _envelope(API_ACTIVITY, _APPLICATION, activity,
                          time_ms, _FAILURE if error else _SUCCESS, metadata, cloud)
        actor: dict[str, Any] = {}
        if user:
            actor["user"] = user
        if session is not None:
            actor["session"] = session
        if (invoked_by := _take_text(identity, "invokedBy")) is not None:
            actor["invoked_by"] = invoked_by
        if not actor:
            actor["user"] = {"name": "unknown", "type": "Unknown"}
        event["actor"] = actor
        api: dict[str, Any] = {"operation": name, "service": {"name": source}}
        del record["eventSource"]
        if request_id is not None:
            api["request"] = {"uid": request_id}
        if api_version is not None:
            api["version"] = api_version
        event["api"] = api
        event["src_endpoint"] = src_endpoint
        if agent is not None:
            event["http_request"] = {"user_agent": agent}
        if error is not None:
            event["status_code"] = error
        if detail is not None:
            event["status_detail"] = detail
        if "resources" in record:
            listed = record["resources"]
            resources = _resources(listed)
            if resources:
                event["resources"] = resources
                if len(resources) == len(listed):  # else the list stays whole in `unmapped`
                    del record["resources"]
        if identity:
            record["userIdentity"] = identity
        event["unmapped"] = record
        event["raw_data"] = raw
        return event

    # A sign-in maps no request id or API version: they stay in `unmapped`.
    if request_id is not None:
        record["requestID"] = request_id
    if api_version is not None:
        record["apiVersion"] = api_version
    event = _envelope(AUTHENTICATION, _IAM, activity, time_ms, _FAILURE if failed else _SUCCESS,
                      metadata, cloud)
    event["user"] = user or {"name": "unknown", "type": "Unknown"}
    event["service"] = {"name": record.pop("eventSource")}
    event["src_endpoint"] = src_endpoint
    if is_mfa is not None:
        event["is_mfa"] = is_mfa
    if agent is not None:
        event["http_request"] = {"user_agent": agent}
    if session is not None:
        event["session"] = session
    if error is not None:
        event["status_code"] = error
    if detail is not None:
        event["status_detail"] = detail
    if identity:
        record["userIdentity"] = identity
    event["unmapped"] = record
    event["raw_data"] = raw
    return event


def _cognito_client(record: dict[str, Any]) -> str | None:
    """The app client a Cognito sign-in names: the API's ClientId, or the hosted UI's client_id."""
    parameters = record.get("requestParameters")
    client = parameters.get("clientId") if isinstance(parameters, dict) else None
    extra = record.get("additionalEventData")
    hosted = extra.get("requestParameters") if isinstance(extra, dict) else None
    if client is None and isinstance(hosted, dict):
        # The hosted UI's endpoints log their query and form parameters as lists of strings.
        ids = hosted.get("client_id")
        client = ids[0] if isinstance(ids, list) and ids else ids
    return _text(client)


def _cognito_refused(record: dict[str, Any]) -> bool:
    """The hosted UI logs its HTTP answer in additionalEventData.responseParameters.status."""
    extra = record.get("additionalEventData")
    answer = extra.get("responseParameters") if isinstance(extra, dict) else None
    status = answer.get("status") if isinstance(answer, dict) else None
    return isinstance(status, (int, float)) and not isinstance(status, bool) and status >= 400


def _resources(value: Any) -> list[dict[str, Any]]:
    resources: list[dict[str, Any]] = []
    if not isinstance(value, list):
        return resources
    for item in value:
        if not isinstance(item, dict) or (arn := _text(item.get("ARN"))) is None:
            continue
        resource: dict[str, Any] = {"uid": arn}
        if (kind := _text(item.get("type"))) is not None:
            resource["type"] = kind
        if (account := _text(item.get("accountId"))) is not None:
            resource["owner"] = {"account": {"uid": account}}
        resources.append(resource)
    return resources


# -- API Gateway access log -------------------------------------------------------------------------

def _gateway(record: dict[str, Any], raw: str, log_group: str) -> dict[str, Any] | None:
    time_ms = _integer(record.get("requestTime"))  # $context.requestTimeEpoch: milliseconds
    request_id = _text(record.get("requestId"))
    if time_ms is None or request_id is None:
        return None
    route = record.get("routeKey")
    method, _, path = route.partition(" ") if isinstance(route, str) else ("", "", "")
    code = _integer(record.get("status"))
    status_id = _UNKNOWN if code is None else _SUCCESS if code < 400 else _FAILURE
    metadata = _metadata({"name": "API Gateway", "vendor_name": "AWS"}, log_group, request_id)
    event = _envelope(HTTP_ACTIVITY, _NETWORK, _HTTP_ACTIVITY.get(method, _OTHER), time_ms, status_id,
                      metadata, {"provider": "AWS"})
    request: dict[str, Any] = {"uid": request_id}
    if method in _HTTP_ACTIVITY:
        request["http_method"] = method
    if path.startswith("/"):
        url: dict[str, Any] = {"path": path}
        if (domain := _text(record.get("domainName"))) not in (None, "-"):
            url["hostname"] = domain
        request["url"] = url
    event["http_request"] = request
    if code is not None:
        response: dict[str, Any] = {"code": code}
        if (latency := _integer(record.get("responseLatency"))) is not None:
            response["latency"] = latency
        event["http_response"] = response
        event["status_code"] = str(code)
    if (address := record.get("sourceIp")) not in (None, "", "-"):
        event["src_endpoint"] = _endpoint(address)
    if (domain := _text(record.get("domainName"))) not in (None, "-"):
        event["dst_endpoint"] = {"hostname": domain}
    if (error := _text(record.get("error"))) not in (None, "-"):
        event["status_detail"] = error
    # The route as configured ("POST /partners/{partner}/predict") and the caller's identity (JWT
    # subject, client id, certificate) have no field in HTTP Activity: they stay here.
    event["unmapped"] = {key: value for key, value in record.items()
                         if (key not in _GATEWAY_MAPPED or key == "routeKey")
                         and value not in (None, "", "-")}
    event["raw_data"] = raw
    return event


# -- inference events -------------------------------------------------------------------------------

def _inference(record: dict[str, Any], raw: str, log_group: str) -> dict[str, Any] | None:
    time_ms = epoch_ms(record.get("time"))
    request_id = _text(record.get("requestId"))
    route = _text(record.get("route"))
    decision = record.get("decision")
    if time_ms is None or request_id is None or route is None or decision not in ("served", "refused"):
        return None
    source = _text(record.get("source")) or "unknown"
    product = {"name": "zero-trust-ai", "vendor_name": "zero-trust-ai",
               "feature": {"name": f"inference ({source})"}}
    metadata = _metadata(product, log_group, request_id)
    metadata["event_code"] = "inference"
    event = _envelope(API_ACTIVITY, _APPLICATION, _OTHER, time_ms,
                      _SUCCESS if decision == "served" else _FAILURE, metadata, {"provider": "AWS"})
    event["activity_name"] = "Inference"
    client = _text(record.get("clientId"))
    if client is not None:
        user: dict[str, Any] = {"uid": client}
        if (partner := _text(record.get("partner"))) is not None:
            user["org"] = {"name": partner}
        event["actor"] = {"app_name": client, "user": user}
    else:
        # A request refused before its token was read has no client to name.
        event["actor"] = {"user": {"name": "unauthenticated", "type": "Unknown"}}
    event["api"] = {"operation": route, "request": {"uid": request_id},
                    "service": {"name": "zero-trust-ai inference"}}
    # The agent sees requests through the gateway's VPC link, never the caller's address: that is
    # in the gateway's access log line with the same request id.
    event["src_endpoint"] = {"svc_name": "API Gateway"}
    model = _text(record.get("model"))
    if model is not None:
        resource: dict[str, Any] = {"name": model, "type": "model"}
        if (version := _text(record.get("modelVersion"))) is not None:
            resource["version"] = version
        event["resources"] = [resource]
    code = _integer(record.get("status"))
    if code is not None:
        event["status_code"] = str(code)
        response: dict[str, Any] = {"code": code}
        if (length := _integer(record.get("responseBytes"))) is not None:
            response["length"] = length
        event["http_response"] = response
    if (length := _integer(record.get("requestBytes"))) is not None:
        event["http_request"] = {"length": length, "uid": request_id}
    if (latency := _integer(record.get("latencyMs"))) is not None:
        event["duration"] = latency
    if (reason := _text(record.get("reason"))) is not None:
        event["status_detail"] = reason
    event["unmapped"] = {key: value for key, value in record.items()
                         if key not in _INFERENCE_MAPPED and value is not None}
    event["raw_data"] = raw
    return event


# -- JIT elevation decisions ------------------------------------------------------------------------

def _jit(record: dict[str, Any], kind: str, raw: str, log_group: str) -> dict[str, Any] | None:
    time_ms = epoch_ms(record.get("time"))
    who = _text(record.get("by")) or _text(record.get("caller"))
    if time_ms is None or who is None:
        return None  # scheduled expiry and unauthenticated calls: no person acted
    failed = kind in ("jit.api.refused", "jit.api.bad-request")
    metadata = _metadata({"name": "zero-trust-ai", "vendor_name": "zero-trust-ai",
                          "feature": {"name": "JIT elevation"}}, log_group, _text(record.get("request_id")))
    metadata["event_code"] = kind
    activity = _CREATE if kind == "jit.requested" else _OTHER if failed else _UPDATE
    event = _envelope(API_ACTIVITY, _APPLICATION, activity, time_ms, _FAILURE if failed else _SUCCESS,
                      metadata, {"provider": "AWS"})
    # `by` is "<principal ARN>/<session name>": the session name is the person.
    event["actor"] = {"user": {"uid": who, "name": who.rsplit("/", 1)[-1]}}
    api: dict[str, Any] = {"operation": kind, "service": {"name": "zero-trust-ai JIT"}}
    if (request_id := _text(record.get("request_id"))) is not None:
        api["request"] = {"uid": request_id}
    event["api"] = api
    # The JIT API is reached through API Gateway with IAM authorisation; the line has no address.
    event["src_endpoint"] = {"svc_name": "zero-trust-ai JIT"}
    if (elevation := _text(record.get("elevation"))) is not None:
        event["resources"] = [{"name": elevation, "type": "elevation"}]
    if failed and (error := _text(record.get("error"))) is not None:
        event["status_detail"] = error
    event["unmapped"] = {key: value for key, value in record.items()
                         if key not in _JIT_MAPPED and value is not None}
    event["raw_data"] = raw
    return event


# -- VPC flow logs ----------------------------------------------------------------------------------

def _flow_log(text: str, raw: str, log_group: str) -> dict[str, Any] | None:
    # version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start
    # end action log-status: https://docs.aws.amazon.com/vpc/latest/userguide/flow-log-records.html
    fields = text.split()
    if len(fields) != _FLOW_FIELDS or fields[0] != "2":
        return None
    (_, account, interface, source, destination, source_port, destination_port, protocol, packets,
     size, start, end, action, log_status) = fields
    activity = _FLOW_ACTIVITY.get(action)
    start_s, end_s = _integer(start), _integer(end)
    if activity is None or log_status != "OK" or start_s is None or end_s is None:
        return None  # NODATA and SKIPDATA lines carry no traffic
    metadata = _metadata({"name": "Amazon VPC", "vendor_name": "AWS", "feature": {"name": "Flowlogs"}},
                         log_group)
    metadata["log_version"] = "2"
    event = _envelope(NETWORK_ACTIVITY, _NETWORK, activity, end_s * 1000,
                      _SUCCESS if action == "ACCEPT" else _FAILURE, metadata,
                      _cloud(None, account if account != "-" else None))
    event["status_code"] = action
    src = _endpoint(source)
    src["interface_uid"] = interface
    dst = _endpoint(destination)
    if (port := _integer(source_port)) is not None and port <= 65535:
        src["port"] = port
    if (port := _integer(destination_port)) is not None and port <= 65535:
        dst["port"] = port
    event["src_endpoint"] = src
    event["dst_endpoint"] = dst
    connection: dict[str, Any] = {"direction_id": 0}  # version 2 records do not say which way
    if (number := _integer(protocol)) is not None:
        connection["protocol_num"] = number
    event["connection_info"] = connection
    traffic: dict[str, Any] = {}
    if (count := _integer(packets)) is not None:
        traffic["packets"] = count
    if (count := _integer(size)) is not None:
        traffic["bytes"] = count
    if traffic:
        event["traffic"] = traffic
    event["start_time"] = start_s * 1000
    event["end_time"] = end_s * 1000
    event["raw_data"] = raw
    return event


# -- Route 53 Resolver query logs -------------------------------------------------------------------

def _resolver(record: dict[str, Any], raw: str, log_group: str) -> dict[str, Any] | None:
    time_ms = epoch_ms(record.get("query_timestamp"))
    hostname = _text(record.get("query_name"))
    if time_ms is None or hostname is None:
        return None
    rcode = _text(record.get("rcode"))
    product = {"name": "Route 53", "vendor_name": "AWS", "feature": {"name": "Resolver Query Logs"}}
    metadata = _metadata(product, log_group)
    if (version := _text(record.get("version"))) is not None:
        metadata["log_version"] = version
    status_id = _UNKNOWN if rcode is None else _SUCCESS if rcode == "NOERROR" else _FAILURE
    event = _envelope(DNS_ACTIVITY, _NETWORK, 6, time_ms, status_id, metadata,  # 6: Traffic
                      _cloud(record.get("region"), record.get("account_id")))
    query: dict[str, Any] = {"hostname": hostname}
    if (kind := _text(record.get("query_type"))) is not None:
        query["type"] = kind
    if (klass := _text(record.get("query_class"))) is not None:
        query["class"] = klass
    event["query"] = query
    if rcode is not None:
        event["rcode"] = rcode
        event["rcode_id"] = _RCODES.get(rcode, _OTHER)
        event["status_code"] = rcode
    answers = []
    raw_answers = record.get("answers")
    for answer in raw_answers if isinstance(raw_answers, list) else ():
        if isinstance(answer, dict) and (rdata := _text(answer.get("Rdata"))) is not None:
            item: dict[str, Any] = {"rdata": rdata}
            if (kind := _text(answer.get("Type"))) is not None:
                item["type"] = kind
            if (klass := _text(answer.get("Class"))) is not None:
                item["class"] = klass
            answers.append(item)
    if answers:
        event["answers"] = answers
    src = _endpoint(record.get("srcaddr"))
    if (port := _integer(record.get("srcport"))) is not None and port <= 65535:
        src["port"] = port
    if (vpc := _text(record.get("vpc_id"))) is not None:
        src["vpc_uid"] = vpc
    ids = record.get("srcids")
    if isinstance(ids, dict) and (instance := _text(ids.get("instance"))) is not None:
        src["instance_uid"] = instance
    event["src_endpoint"] = src
    if (transport := _text(record.get("transport"))) is not None:
        event["connection_info"] = {"protocol_name": transport, "direction_id": 2}  # 2: Outbound
    # srcids, and the DNS Firewall's verdict (firewall_rule_action, its rule group and domain list)
    # when a rule matched.
    event["unmapped"] = {key: value for key, value in record.items()
                         if key not in _RESOLVER_MAPPED and value is not None}
    event["raw_data"] = raw
    return event
