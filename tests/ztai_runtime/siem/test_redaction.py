"""Nothing leaves the SIEM transform unredacted: secret-named values are replaced whether a line is
mapped, unmapped, malformed or in the wrong log group, and the secret-name rule covers every member
botocore marks `sensitive` in the services CloudTrail records most (bar a reasoned list)."""

from __future__ import annotations

import base64
import json
from typing import Any

import botocore.loaders
import pytest

from tests.support import firehose_records as fx
from ztai_runtime.siem import firehose
from ztai_runtime.siem.ocsf import REDACTED, is_secret_name, misplaced, redact_line, to_ocsf

SECRET = "FQoGZXIvYXdzEXAMPLEsessionTOKEN6f1d2b7e"
TRAIL_GROUP = "/zero-trust-ai/dev/cloudtrail"
INFERENCE_GROUP = "/zero-trust-ai/dev/inference-events"


def session_token_record(**changes: Any) -> dict[str, Any]:
    """A GetSessionToken record: CloudTrail logs the new session token in responseElements."""
    record: dict[str, Any] = {
        "eventVersion": "1.08", "eventTime": "2026-12-07T10:00:00Z", "eventSource": "sts.amazonaws.com",
        "eventName": "GetSessionToken", "awsRegion": "eu-west-1", "sourceIPAddress": "192.0.2.10",
        "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/alice",
                         "accountId": "111122223333", "accessKeyId": "AKIAEXAMPLE"},
        "responseElements": {"credentials": {"accessKeyId": "ASIAEXAMPLE", "sessionToken": SECRET,
                                             "expiration": "Dec 7, 2026, 10:00:00 PM"}},
        "eventID": "0b1c2d3e-0000-0000-0000-000000000001",
    }
    for key, value in changes.items():
        if value is _ABSENT:
            record.pop(key, None)
        else:
            record[key] = value
    return record


_ABSENT = object()


def forwarded(message: str, *, log_group: str = TRAIL_GROUP,
              mapper: firehose.Mapper = to_ocsf) -> tuple[str, firehose.TransformStats]:
    stats = firehose.TransformStats()
    [line] = firehose.ocsf_lines([message], log_group, stats, mapper)
    return line.decode(), stats


# -- every fallback path of the transform redacts --------------------------------------------------

@pytest.mark.parametrize("changes", [
    {"eventTime": _ABSENT}, {"eventTime": None}, {"eventTime": "yesterday"},
    {"eventName": 42}, {"eventSource": _ABSENT},
], ids=["no-eventTime", "null-eventTime", "bad-eventTime", "eventName-not-a-string", "no-eventSource"])
def test_an_unmapped_cloudtrail_line_is_forwarded_redacted(changes: dict[str, Any]) -> None:
    message = json.dumps(session_token_record(**changes))
    assert to_ocsf(message, log_group=TRAIL_GROUP) is None
    line, stats = forwarded(message)
    assert SECRET not in line and SECRET[:20] not in line
    record = json.loads(line)
    assert record["responseElements"]["credentials"]["sessionToken"] == REDACTED
    assert record["responseElements"]["credentials"]["accessKeyId"] == "ASIAEXAMPLE"  # kept
    assert (stats.unmapped_events, stats.mapped_events) == (1, 0)


def test_a_line_the_mapper_fails_on_is_forwarded_redacted() -> None:
    def failing(message: str, *, log_group: str = "") -> dict[str, Any] | None:
        raise RuntimeError("a mapper bug")

    line, stats = forwarded(json.dumps(session_token_record()), mapper=failing)
    assert SECRET not in line
    assert stats.mapper_errors == 1 and stats.unmapped_events == 1


def test_a_line_json_refuses_is_redacted_as_text() -> None:
    # An integer of more than 4,300 digits: json.loads refuses it, so the pairs are redacted as text.
    message = json.dumps(session_token_record())[:-1] + ', "n": ' + "9" * 5000 + "}"
    line, _ = forwarded(message)
    assert SECRET not in line
    assert '"sessionToken": "REDACTED"' in line and '"accessKeyId": "ASIAEXAMPLE"' in line


def test_a_line_nested_too_deep_to_parse_is_redacted_as_text() -> None:
    message = '{"password": "hunter2-6f1d", "a": ' + "[" * 100_000 + "]" * 100_000 + "}"
    assert "hunter2-6f1d" not in redact_line(message)


def test_a_mapped_line_carries_no_secret_either() -> None:
    line, stats = forwarded(json.dumps(session_token_record()))
    assert stats.mapped_events == 1
    assert SECRET not in line


def test_lines_without_key_names_are_forwarded_as_they_are() -> None:
    for message in ("START RequestId: 8f5 Version: $LATEST", "password=hunter2", "42", '"token"',
                    '["a", "b"]', "{not json"):
        assert redact_line(message) == message


def test_a_json_line_without_secrets_is_forwarded_byte_for_byte() -> None:
    message = '{"b": 1,  "a": "token type"}'
    assert redact_line(message) == message


def test_a_json_array_line_is_redacted_too() -> None:
    assert json.loads(redact_line('[{"clientSecret": "s3cr3t"}]')) == [{"clientSecret": REDACTED}]


def test_flags_stay_and_lists_under_a_secret_name_are_replaced() -> None:
    line = json.dumps({"passwordResetRequired": True, "ManageMasterUserPassword": False,
                       "grantTokens": ["t1", "t2"], "tokenType": "Bearer", "nextToken": "page-2",
                       "PasswordLength": 32, "DbPassword": 1234})
    assert json.loads(redact_line(line)) == {
        "passwordResetRequired": True, "ManageMasterUserPassword": False,
        "grantTokens": [REDACTED, REDACTED], "tokenType": "Bearer", "nextToken": "page-2",
        "PasswordLength": 32, "DbPassword": REDACTED}


# -- the secret-name rule --------------------------------------------------------------------------

# The names the review found passing through, and the ones the old exact list knew.
@pytest.mark.parametrize("name", [
    "authorizationToken", "secretKey", "token", "webIdentityToken", "SAMLAssertion", "randomPassword",
    "ServicePassword", "ServiceCredentialSecret", "Base32StringSeed", "MasterUserPassword", "DbPassword",
    "PreSharedKey", "PasswordData", "UserData", "SecretHash", "SecretCode", "Session",
    "RawSecretAccessKey", "sessionToken", "secretAccessKey", "password", "new_password", "PASSWORD",
    "client_secret", "SecretString", "SecretBinary", "PrivateKey", "keyMaterial", "Authorization",
    "Plaintext", "refreshToken", "id_token", "access_token", "passwordHash", "credentials",
    "SECRET_HASH", "REFRESH_TOKEN", "PreSignedUrl", "QRCodePNG", "X-Amz-Security-Token",
])
def test_secret_names_are_matched(name: str) -> None:
    assert is_secret_name(name)
    assert json.loads(redact_line(json.dumps({"x": {name: "value-6f1d"}}))) == {"x": {name: REDACTED}}


@pytest.mark.parametrize("name", [
    "tokenType", "nextToken", "clientToken", "secretId", "SecretArn", "secretName", "PasswordLength",
    "passwordLastUsed", "privateKeyArn", "accessKeyId", "sessionContext", "sessionName",
    "roleSessionName", "masterUserPasswordSecretKmsKeyId", "eventName", "userName", "keyId",
    "X-Amz-Credential", "SignatureVersion", "sessionCredentialFromConsole",
])
def test_names_about_a_secret_are_not_redacted(name: str) -> None:
    assert not is_secret_name(name)


# The services CloudTrail records most, for this project's accounts.
SERVICES = ("sts", "iam", "kms", "secretsmanager", "cognito-idp", "cognito-identity", "ecr", "rds",
            "redshift", "ec2", "ssm", "lambda")
# Members botocore marks sensitive that are not credentials, by why they are kept.
NOT_CREDENTIALS = {
    # Identities and addresses (personal data, not secrets): the SIEM needs them to say who and where.
    "Username", "ClientId", "AccessKeyId", "IPAddress", "IpAddress", "LastIPAddress", "Issuer",
    "Subject", "SubjectType", "UserContextData",
    # Free text and data payloads that CloudTrail does not log or that hold no credential by design.
    "Description", "OwnerInformation", "Message", "Payload", "InputPayload", "Result", "Reason",
    "ErrorData", "ErrorMessage", "ErrorType", "StackTrace", "LogFileData", "InitQuery", "ZipFile",
    "UefiData", "Input", "Value", "Values",
    # Public keys, and an S3 upload policy document (what may be uploaded; its signature, the part
    # that grants, is redacted).
    "PublicKey", "KeyValue", "UploadPolicy",
    # Maps and structures whose own keys are walked by name (AuthParameters' PASSWORD and
    # SECRET_HASH, Lambda's environment variables, a tunnel's PreSharedKey, a launch's UserData).
    "AuthParameters", "ChallengeResponses", "Variables", "Parameters", "TaskParameters",
    "TunnelOptions", "LaunchSpecification", "Configuration",
    # A disk image's S3 location (a plain URL when the image is imported from the caller's bucket).
    "Url",
}


def sensitive_members() -> dict[str, set[str]]:
    """Each member name botocore marks sensitive (its shape, or its list's member shape), with where."""
    loader = botocore.loaders.Loader()
    found: dict[str, set[str]] = {}
    for service in SERVICES:
        shapes = loader.load_service_model(service, "service-2")["shapes"]
        sensitive = {name for name, shape in shapes.items() if shape.get("sensitive")}
        for shape_name, shape in shapes.items():
            for member, reference in shape.get("members", {}).items():
                target = shapes[reference["shape"]]
                if reference["shape"] in sensitive or (
                        target.get("type") == "list" and target["member"]["shape"] in sensitive):
                    found.setdefault(member, set()).add(f"{service} {shape_name}.{member}")
    return found


def test_every_sensitive_botocore_member_is_redacted() -> None:
    members = sensitive_members()
    assert len(members) > 50, "the service models were read"
    missed = {name: sorted(where)[:2] for name, where in members.items()
              if name not in NOT_CREDENTIALS and not is_secret_name(name)}
    assert missed == {}
    # The exception list names only members that are there, so it cannot hide a new one.
    assert set(members) >= NOT_CREDENTIALS


def test_a_map_of_auth_parameters_is_walked_by_its_own_keys() -> None:
    line = json.dumps({"requestParameters": {"authParameters": {
        "USERNAME": "alice", "PASSWORD": "p-6f1d", "SECRET_HASH": "h-6f1d", "REFRESH_TOKEN": "r-6f1d"}}})
    assert json.loads(redact_line(line))["requestParameters"]["authParameters"] == {
        "USERNAME": "alice", "PASSWORD": REDACTED, "SECRET_HASH": REDACTED, "REFRESH_TOKEN": REDACTED}


# -- the log group decides the mapping -------------------------------------------------------------

INFERENCE = {"event": "inference", "time": "2026-12-07T10:00:00Z", "requestId": "Ab1CdEfGhIjKlMnO=",
             "route": "POST /partners/acme/predict", "decision": "served", "status": 200}


def test_a_cloudtrail_line_in_the_inference_group_is_not_mapped_and_is_counted() -> None:
    forged = json.dumps(session_token_record(eventName="StopLogging",
                                             eventSource="cloudtrail.amazonaws.com"))
    assert to_ocsf(forged, log_group=TRAIL_GROUP) is not None
    assert to_ocsf(forged, log_group=INFERENCE_GROUP) is None
    assert misplaced(forged, INFERENCE_GROUP)
    line, stats = forwarded(forged, log_group=INFERENCE_GROUP)
    assert (stats.mapped_events, stats.unmapped_events, stats.misplaced_events) == (0, 1, 1)
    assert SECRET not in line and json.loads(line)["eventName"] == "StopLogging"


def test_an_inference_line_in_the_cloudtrail_group_is_not_mapped_and_is_counted() -> None:
    message = json.dumps(INFERENCE)
    assert to_ocsf(message, log_group=INFERENCE_GROUP) is not None
    assert to_ocsf(message, log_group=TRAIL_GROUP) is None
    line, stats = forwarded(message, log_group=TRAIL_GROUP)
    assert (stats.mapped_events, stats.misplaced_events) == (0, 1)
    assert line == message


@pytest.mark.parametrize("group", ["/aws/lambda/zero-trust-ai-dev-other", "/my/app", "/x/cloudtrail/y"])
def test_a_group_of_no_known_source_maps_nothing(group: str) -> None:
    for message in (json.dumps(session_token_record()), json.dumps(INFERENCE)):
        assert to_ocsf(message, log_group=group) is None
        assert misplaced(message, group)


def test_without_a_log_group_the_content_decides() -> None:
    assert to_ocsf(json.dumps(session_token_record())) is not None
    assert to_ocsf(json.dumps(INFERENCE)) is not None
    assert not misplaced(json.dumps(INFERENCE), "")


def test_a_line_of_no_mapped_kind_is_not_misplaced() -> None:
    assert not misplaced("START RequestId: 8f5", INFERENCE_GROUP)
    assert not misplaced('{"event": "inference-events-dropped", "count": 3}', INFERENCE_GROUP)
    line, stats = forwarded("START RequestId: 8f5", log_group=INFERENCE_GROUP)
    assert stats.misplaced_events == 0 and line == "START RequestId: 8f5"


def test_through_the_whole_transform_no_secret_reaches_the_output() -> None:
    """Firehose records in, response records out: the mapped, the unmapped and the misplaced line."""
    unmapped = json.dumps(session_token_record(eventTime=None))
    mapped = json.dumps(session_token_record())
    trail = fx.record("a", fx.encode(fx.payload([mapped, unmapped], log_group=TRAIL_GROUP)))
    misplaced_line = fx.record("b", fx.encode(fx.payload([mapped], log_group=INFERENCE_GROUP)))
    result = firehose.transform_records([trail, misplaced_line])
    lines = [line for output in result.outputs for line in fx.decoded_lines(output)]
    assert len(lines) == 3
    assert all(SECRET not in line for line in lines)
    assert (result.stats.mapped_events, result.stats.unmapped_events, result.stats.misplaced_events) == (
        1, 2, 1)


# -- lines written to slip a secret past the walk (review45 H1, M3, M5) --------------------------------

@pytest.mark.parametrize("inner", [
    '"sessionToken": "%s", "sessionToken": "REDACTED"',         # the parser keeps the last value
    '"sessionToken": "%s", "sessionToken": null',
    '"sessionToken": "%s", "session\\u0054oken": ""',            # the same name, spelt with an escape
])
def test_a_duplicate_secret_key_does_not_carry_the_first_value_out(inner: str) -> None:
    text = json.dumps(session_token_record())
    line = text.replace(f'"sessionToken": "{SECRET}"', inner % SECRET)
    assert SECRET in line and line != text
    event = to_ocsf(line, log_group=TRAIL_GROUP)
    assert event is not None and SECRET not in json.dumps(event)
    assert SECRET not in redact_line(line)
    out, _ = forwarded(line, log_group="/aws/lambda/some-app")  # unmapped there
    assert SECRET not in out


def test_a_line_too_deep_to_parse_loses_numbers_and_lists_under_secret_names_too() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    message = ('{"password": 12345678, "passwords": ["pw-one", 42, ["pw-two"]], "PIN_CODE": 7, '
               '"credentials": {"accessKeyId": "ASIAKEEP", "secretAccessKey": "sak-three"}, '
               '"flag": true, "pass\\u0077ord": "pw-four", "a": ' + deep + "}")
    line = redact_line(message)
    for secret in ("12345678", "pw-one", "42", "pw-two", "sak-three", "pw-four"):
        assert secret not in line, secret
    assert '"accessKeyId": "ASIAKEEP"' in line and '"flag": true' in line
    assert line.count("[") == 100_002  # the structure is kept (the deep arrays and two lists)


@pytest.mark.parametrize("depth", [240, 260, 900, 990, 1000, 1030])
def test_a_deep_line_never_fails_the_batch_and_keeps_no_secret(depth: int) -> None:
    # orjson reads 1,024 levels and writes 254; json recurses with the interpreter. Whatever the
    # depth, the line is answered, redacted, and the records around it are transformed.
    deep = '{"password": "TOPSECRET", "pin": 1, "k": ' + "[" * depth + "]" * depth + "}"
    trail = json.dumps(session_token_record())
    records = [fx.record(name, fx.encode(fx.payload(lines, log_group=TRAIL_GROUP)))
               for name, lines in (("a", [trail]), ("b", [deep, trail]), ("c", [trail]))]
    result = firehose.transform_records(records)
    assert [output["result"] for output in result.outputs] == ["Ok", "Ok", "Ok"]
    body = b"".join(fx_decode(output["data"]) for output in result.outputs)
    assert b"TOPSECRET" not in body and SECRET.encode() not in body
    assert result.stats.events == 4


def fx_decode(data: str) -> bytes:
    return base64.b64decode(data)


def test_long_key_names_are_not_kept_in_the_caches() -> None:
    from ztai_runtime.siem import ocsf
    before = ocsf._cached_secret_name.cache_info().currsize
    names = [f"k{index}-" + "x" * 8_000 for index in range(20)]
    for name in names:
        redact_line(json.dumps({name: "v", "token": "t"}))
        to_ocsf(json.dumps({**session_token_record(), name: 1}), log_group=TRAIL_GROUP)
    assert not any(name in ocsf._PLAIN_NAMES for name in names)
    assert max(map(len, ocsf._PLAIN_NAMES)) <= ocsf._CACHED_NAME_MAX
    assert ocsf._cached_secret_name.cache_info().currsize - before < len(names)
    # An address field is the writer's too: a long one is not an IP and never reaches the cache.
    lookups = ocsf._parsed_ip.cache_info()
    assert ocsf._endpoint("1" * 5_000) == {"name": "1" * 5_000}
    after = ocsf._parsed_ip.cache_info()
    assert (after.hits, after.misses) == (lookups.hits, lookups.misses)


def test_the_plain_name_cache_never_holds_a_secret_name() -> None:
    from ztai_runtime.siem import ocsf
    for record in (session_token_record(), {"password": "p", "nested": {"apiToken": "t", "x": 1}},
                   {"credentials": [{"SecretAccessKey": "s"}]}):
        redact_line(json.dumps(record))
        to_ocsf(json.dumps(record))
    assert ocsf._PLAIN_NAMES, "the walk records the plain names it meets"
    assert not [name for name in ocsf._PLAIN_NAMES if is_secret_name(name)]


# Secret names as writers spell them, separators included: `is_secret_name` reads them without
# `_` and `-`, and so must every path, the text scan of lines that do not parse too (review50 H1).
SPELLED_SECRETS = ["plain_text", "pre_signed_url", "pre-signed-url", "mfa-code", "user-code",
                   "manifest-url", "qr_code_png", "pass_word", "session_token", "Secret-Access-Key",
                   "private_key", "sessionToken", "Session"]


@pytest.mark.parametrize("name", SPELLED_SECRETS)
def test_every_spelling_of_a_secret_name_is_redacted_on_every_path(name: str) -> None:
    assert is_secret_name(name), name
    parsed = json.dumps({name: "s3cr3t-6f1d", "keep": "k"})
    head = json.dumps(name) + ': "s3cr3t-6f1d", '
    unparseable = "{" + head + '"n": 01, "keep": "k"}'  # 01: not JSON
    too_deep = "{" + head + '"keep": "k", "a": ' + "[" * 3000 + "]" * 3000 + "}"
    for line in (parsed, unparseable, too_deep):
        out = redact_line(line)
        assert "s3cr3t-6f1d" not in out, (name, line[:60])
        assert '"keep": "k"' in out or '"keep":"k"' in out


def test_a_line_that_is_not_json_loses_every_word_after_a_secret_name() -> None:
    # review50 L6: the scan holds the secret until the value ends, not after its first word.
    line = redact_line('{"token": abc def-6f1d ghi, "keep": "k", "password": "p" "q-6f1d"}')
    assert "abc" not in line and "def-6f1d" not in line and "ghi" not in line and "q-6f1d" not in line
    assert '"keep": "k"' in line
