"""The OCSF mapping: every real CloudTrail record of the dataset and a hand-written record of every
other source maps to an event valid against its class's schema, with the fields a SIEM searches
on set from the right source field; secrets never leave; what is not mapped gives None."""

from __future__ import annotations

import ast
import copy
import ipaddress
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from components.api_gateway import ACCESS_LOG_FORMAT
from tests.support.datasets import shared_dir, stratus_red_team_records
from ztai_runtime.siem.ocsf import OCSF_VERSION, to_ocsf
from ztai_runtime.siem.schemas import validate

ROOT = Path(__file__).resolve().parents[3]
TRAIL_GROUP = "/zero-trust-ai/dev/cloudtrail"
# The groups the components name (the mapping dispatches by group).
GATEWAY_GROUP = "/aws/apigateway/zero-trust-ai-dev"
INFERENCE_GROUP = "/zero-trust-ai/dev/inference-events"
JIT_GROUP = "/aws/lambda/zero-trust-ai-dev-jit-api"
FLOW_GROUP = "/zero-trust-ai/dev/vpc-flow-logs/vpc-0a1b2c3d"
RESOLVER_GROUP = "/zero-trust-ai/dev/resolver-query-logs"
ACCOUNT = "111122223333"
ENI = "eni-0a1b2c3d4e5f60718"
ROLE_SESSION = {
    "type": "AssumedRole",
    "principalId": "AROAEXAMPLEROLEID:i-0abc123",
    "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/zero-trust-ai-dev-inference/i-0abc123",
    "accountId": ACCOUNT,
    "accessKeyId": "ASIAEXAMPLEKEY",
    "sessionContext": {
        "sessionIssuer": {"type": "Role", "principalId": "AROAEXAMPLEROLEID",
                          "arn": f"arn:aws:iam::{ACCOUNT}:role/zero-trust-ai-dev-inference",
                          "accountId": ACCOUNT, "userName": "zero-trust-ai-dev-inference"},
        "attributes": {"creationDate": "2026-12-07T10:00:00Z", "mfaAuthenticated": "false"},
        "ec2RoleDelivery": "2.0",
    },
}


def mapped(record: dict[str, Any] | str, log_group: str = TRAIL_GROUP) -> dict[str, Any]:
    """The event of one line, checked valid; a line that gives None fails here."""
    line = record if isinstance(record, str) else json.dumps(record)
    event = to_ocsf(line, log_group=log_group)
    assert event is not None, line
    assert validate(event) == []
    assert event["metadata"]["version"] == OCSF_VERSION
    assert event["type_uid"] == event["class_uid"] * 100 + event["activity_id"]
    json.dumps(event)  # ready to serialise as it is
    return event


def trail_record(**fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "eventVersion": "1.10", "userIdentity": copy.deepcopy(ROLE_SESSION),
        "eventTime": "2026-12-07T10:15:42Z", "awsRegion": "eu-west-1", "sourceIPAddress": "10.0.1.23",
        "userAgent": "Boto3/1.44.8 md/Botocore#1.44.8", "requestID": "R3QU35T1D",
        "eventID": "0f0e0d0c-0b0a-4909-8807-060504030201", "eventType": "AwsApiCall",
        "recipientAccountId": ACCOUNT, "eventCategory": "Management", "managementEvent": True,
        "tlsDetails": {"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256"},
    }
    record.update(fields)
    return record


# -- the dataset: real CloudTrail records of 35 attack techniques ---------------------------------

def test_every_dataset_record_maps_to_a_valid_event() -> None:
    records = stratus_red_team_records()
    files = {name for name, _ in records}
    # The count is read from the files, never written here: each file is one JSON array.
    folder = shared_dir() / "datasets" / "stratus-red-team"
    on_disk = sum(len(json.loads((folder / name).read_text(encoding="utf-8"))) for name in files)
    problems: dict[str, list[str]] = {}
    classes: dict[int, int] = {}
    for name, record in records:
        event = to_ocsf(json.dumps(record), log_group=TRAIL_GROUP)
        if event is None:
            problems[f"{name} {record.get('eventID')}"] = ["mapped to None"]
            continue
        found = validate(event)
        if found:
            problems[f"{name} {record.get('eventID')}"] = found
        classes[event["class_uid"]] = classes.get(event["class_uid"], 0) + 1
    assert problems == {}
    assert sum(classes.values()) == len(records) == on_disk
    assert len(files) == len(list(folder.glob("aws.*.json")))
    # The one console sign-in is an Authentication; every API call an API Activity.
    assert classes == {6003: len(records) - 1, 3002: 1}


def test_dataset_record_count_is_what_the_files_hold() -> None:
    records = stratus_red_team_records()
    mapped_events = [to_ocsf(json.dumps(record)) for _, record in records]
    assert all(event is not None for event in mapped_events)
    # Every eventID is unique in the dataset, so each record gave its own event.
    assert len({event["metadata"]["uid"] for event in mapped_events if event}) == len(records) > 300


def dataset_record(event_name: str, **match: Any) -> dict[str, Any]:
    for _, record in stratus_red_team_records():
        if record["eventName"] == event_name and all(record.get(k) == v for k, v in match.items()):
            return record
    raise AssertionError(f"no {event_name} record in the dataset")


def test_iam_user_call_fields() -> None:
    record = dataset_record("GetFederationToken")
    event = mapped(record)
    assert event["class_uid"] == 6003 and event["category_uid"] == 6
    assert event["activity_id"] == 2  # Get... is a read, although CloudTrail says readOnly false
    identity = record["userIdentity"]
    assert event["actor"]["user"] == {
        "name": identity["userName"], "uid": identity["principalId"], "uid_alt": identity["arn"],
        "type": "IAMUser", "credential_uid": identity["accessKeyId"],
        "account": {"uid": identity["accountId"]}}
    assert event["api"] == {"operation": "GetFederationToken", "service": {"name": "sts.amazonaws.com"},
                            "request": {"uid": record["requestID"]}}
    assert event["status_id"] == 1 and event["status"] == "Success"
    assert event["time"] == 1732956197000  # 2024-11-30T08:43:17Z
    assert event["cloud"] == {"provider": "AWS", "region": record["awsRegion"],
                              "account": {"uid": record["recipientAccountId"]}}
    assert event["metadata"]["uid"] == record["eventID"]
    assert event["metadata"]["log_version"] == record["eventVersion"]
    assert event["metadata"]["log_name"] == TRAIL_GROUP
    assert event["metadata"]["product"] == {"name": "CloudTrail", "vendor_name": "AWS",
                                            "feature": {"name": "Management"}}
    assert event["http_request"] == {"user_agent": record["userAgent"]}
    assert event["unmapped"]["tlsDetails"] == record["tlsDetails"]
    assert event["unmapped"]["requestParameters"] == record["requestParameters"]


def test_failed_call_fields() -> None:
    record = dataset_record("GetPasswordData", errorCode="Client.UnauthorizedOperation")
    event = mapped(record)
    assert event["status_id"] == 2 and event["status"] == "Failure"
    assert event["status_code"] == "Client.UnauthorizedOperation"
    assert event["status_detail"] == record["errorMessage"]


def test_invalid_source_address_goes_to_the_endpoint_name() -> None:
    # The dataset's addresses were anonymised with leading zeros, which no IP parser accepts.
    record = next(r for _, r in stratus_red_team_records() if r["sourceIPAddress"].startswith("0"))
    event = mapped(record)
    assert event["src_endpoint"] == {"name": record["sourceIPAddress"]}
    valid = next(r for _, r in stratus_red_team_records() if is_ip(r["sourceIPAddress"]))
    assert mapped(valid)["src_endpoint"] == {"ip": valid["sourceIPAddress"]}


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def test_assumed_role_session_fields() -> None:
    record = next(r for _, r in stratus_red_team_records()
                  if r["userIdentity"]["type"] == "AssumedRole" and "sessionContext" in r["userIdentity"])
    event = mapped(record)
    identity = record["userIdentity"]
    assert event["actor"]["user"]["name"] == identity["arn"].rsplit("/", 1)[-1]
    assert event["actor"]["user"]["type"] == "AssumedRole"
    assert event["actor"]["session"]["issuer"] == identity["sessionContext"]["sessionIssuer"]["arn"]
    # CloudTrail writes the MFA flag as a string; OCSF wants a boolean.
    assert event["actor"]["session"]["is_mfa"] is (
        identity["sessionContext"]["attributes"]["mfaAuthenticated"] == "true")
    assert event["unmapped"]["userIdentity"]["sessionContext"] == identity["sessionContext"]


@pytest.mark.parametrize(("event_name", "activity"), [
    ("UpdateFunctionCode20150331v2", 3),  # Lambda's API version suffix is not part of the verb
    ("AddPermission20150331v2", 1),
    ("DeleteTrail", 4),
    ("StopLogging", 4),
    ("CreateAccessKey", 1),
    ("DescribeInstances", 2),
    ("BatchGetSecretValue", 2),
    ("PutEventSelectors", 3),
    ("AssumeRole", 2),  # no verb of the table; readOnly true
])
def test_activity_from_the_operation(event_name: str, activity: int) -> None:
    event = mapped(dataset_record(event_name))
    assert (event["activity_id"], event["api"]["operation"]) == (activity, event_name)


# -- data events (no such record in the dataset) ---------------------------------------------------

def test_s3_get_object_on_the_model_bucket() -> None:
    object_arn = "arn:aws:s3:::zero-trust-ai-dev-models/models/credit/v3/weights.ztw"
    record = trail_record(
        eventSource="s3.amazonaws.com", eventName="GetObject", eventCategory="Data", readOnly=True,
        managementEvent=False, vpcEndpointId="vpce-0123456789abcdef0",
        requestParameters={"bucketName": "zero-trust-ai-dev-models", "key": "models/credit/v3/weights.ztw",
                           "Host": "zero-trust-ai-dev-models.s3.eu-west-1.amazonaws.com"},
        responseElements=None,
        additionalEventData={"SignatureVersion": "SigV4", "bytesTransferredOut": 1048576,
                             "SSEApplied": "SSE_KMS"},
        resources=[{"type": "AWS::S3::Object", "ARN": object_arn},
                   {"accountId": ACCOUNT, "type": "AWS::S3::Bucket",
                    "ARN": "arn:aws:s3:::zero-trust-ai-dev-models"}])
    event = mapped(record)
    assert event["activity_id"] == 2
    assert event["metadata"]["product"]["feature"] == {"name": "Data"}
    assert event["api"]["operation"] == "GetObject"
    assert event["api"]["service"] == {"name": "s3.amazonaws.com"}
    assert event["resources"] == [
        {"uid": object_arn, "type": "AWS::S3::Object"},
        {"uid": "arn:aws:s3:::zero-trust-ai-dev-models", "type": "AWS::S3::Bucket",
         "owner": {"account": {"uid": ACCOUNT}}}]
    assert event["actor"]["user"]["name"] == "i-0abc123"
    assert event["actor"]["session"] == {
        "created_time": 1796637600000, "is_mfa": False, "credential_uid": "ASIAEXAMPLEKEY",
        "issuer": f"arn:aws:iam::{ACCOUNT}:role/zero-trust-ai-dev-inference"}
    assert event["src_endpoint"] == {"ip": "10.0.1.23"}
    assert event["unmapped"]["requestParameters"]["key"] == "models/credit/v3/weights.ztw"
    assert event["unmapped"]["vpcEndpointId"] == "vpce-0123456789abcdef0"
    assert event["unmapped"]["additionalEventData"]["bytesTransferredOut"] == 1048576
    assert "resources" not in event["unmapped"]


def test_dynamodb_get_item_on_the_token_vault() -> None:
    table = f"arn:aws:dynamodb:eu-west-1:{ACCOUNT}:table/zero-trust-ai-dev-token-vault"
    record = trail_record(
        eventSource="dynamodb.amazonaws.com", eventName="GetItem", eventCategory="Data", readOnly=True,
        managementEvent=False,
        requestParameters={"tableName": "zero-trust-ai-dev-token-vault",
                           "key": {"pk": "token#ssn#abc"}, "consistentRead": True},
        resources=[{"accountId": ACCOUNT, "type": "AWS::DynamoDB::Table", "ARN": table}])
    event = mapped(record)
    assert (event["activity_id"], event["api"]["operation"]) == (2, "GetItem")
    assert event["resources"] == [{"uid": table, "type": "AWS::DynamoDB::Table",
                                   "owner": {"account": {"uid": ACCOUNT}}}]
    assert event["unmapped"]["requestParameters"]["tableName"] == "zero-trust-ai-dev-token-vault"


def test_lambda_invoke_by_a_service() -> None:
    function = f"arn:aws:lambda:eu-west-1:{ACCOUNT}:function:zero-trust-ai-dev-key-rotation"
    record = trail_record(
        eventSource="lambda.amazonaws.com", eventName="Invoke", eventCategory="Data", readOnly=False,
        managementEvent=False, sourceIPAddress="scheduler.amazonaws.com", userAgent="scheduler.amazonaws.com",
        userIdentity={"type": "AWSService", "invokedBy": "scheduler.amazonaws.com"},
        requestParameters={"functionName": function, "invocationType": "Event"},
        resources=[{"accountId": ACCOUNT, "type": "AWS::Lambda::Function", "ARN": function}])
    event = mapped(record)
    assert event["actor"] == {"invoked_by": "scheduler.amazonaws.com"}
    assert event["unmapped"]["userIdentity"] == {"type": "AWSService"}
    assert event["src_endpoint"] == {"name": "scheduler.amazonaws.com"}
    assert event["activity_id"] == 99  # Invoke is neither of the four, and not read-only
    assert event["resources"][0]["uid"] == function


def test_kms_decrypt_refused() -> None:
    key = f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    message = (f"User: {ROLE_SESSION['arn']} is not authorized to perform: kms:Decrypt on resource: "
               f"{key} because no resource-based policy allows the kms:Decrypt action")
    record = trail_record(
        eventSource="kms.amazonaws.com", eventName="Decrypt", readOnly=True, errorCode="AccessDenied",
        errorMessage=message, requestParameters={"encryptionAlgorithm": "SYMMETRIC_DEFAULT",
                                                 "encryptionContext": {"purpose": "weights"}},
        resources=[{"accountId": ACCOUNT, "type": "AWS::KMS::Key", "ARN": key}])
    event = mapped(record)
    assert (event["activity_id"], event["status_id"], event["status"]) == (2, 2, "Failure")
    assert event["status_code"] == "AccessDenied"
    assert event["status_detail"] == message
    assert event["api"]["request"] == {"uid": "R3QU35T1D"}


# -- sign-ins ------------------------------------------------------------------------------------

def test_console_login_from_the_dataset() -> None:
    record = dataset_record("ConsoleLogin")
    event = mapped(record)
    assert (event["class_uid"], event["category_uid"], event["activity_id"]) == (3002, 3, 1)
    assert event["is_mfa"] is False  # MFAUsed "No"
    assert event["status_id"] == 1
    assert event["user"]["name"] == record["userIdentity"]["userName"]
    assert event["service"] == {"name": "signin.amazonaws.com"}
    assert event["unmapped"]["additionalEventData"]["LoginTo"] == record["additionalEventData"]["LoginTo"]
    assert "api" not in event and "actor" not in event


def console_login(outcome: str, mfa: str, **extra: Any) -> dict[str, Any]:
    return trail_record(
        eventSource="signin.amazonaws.com", eventName="ConsoleLogin", eventType="AwsConsoleSignIn",
        requestID=None, sourceIPAddress="198.51.100.7",
        userIdentity={"type": "IAMUser", "principalId": "AIDAEXAMPLE", "accountId": ACCOUNT,
                      "accessKeyId": "", "userName": "break-glass",
                      "arn": f"arn:aws:iam::{ACCOUNT}:user/break-glass"},
        additionalEventData={"LoginTo": "https://console.aws.amazon.com/console/home", "MobileVersion": "No",
                             "MFAUsed": mfa},
        responseElements={"ConsoleLogin": outcome}, **extra)


def test_console_login_with_mfa() -> None:
    event = mapped(console_login("Success", "Yes"))
    assert (event["is_mfa"], event["status_id"]) == (True, 1)
    assert event["src_endpoint"] == {"ip": "198.51.100.7"}
    assert event["user"]["uid_alt"] == f"arn:aws:iam::{ACCOUNT}:user/break-glass"


def test_console_login_failure() -> None:
    event = mapped(console_login("Failure", "No", errorMessage="Failed authentication"))
    assert (event["status_id"], event["status"]) == (2, "Failure")
    assert event["status_detail"] == "Failed authentication"
    assert "credential_uid" not in event["user"]  # the empty accessKeyId of a console sign-in


def test_cognito_token_endpoint_sign_in() -> None:
    record = trail_record(
        eventSource="cognito-idp.amazonaws.com", eventName="Token_POST", eventType="AwsServiceEvent",
        userIdentity={"accountId": ACCOUNT}, requestID=None, sourceIPAddress="203.0.113.9",
        additionalEventData={"responseParameters": {"status": 400.0},
                             "requestParameters": {"grant_type": ["client_credentials"],
                                                   "client_id": ["1example23456789"],
                                                   "client_secret": ["s3cr3t-value"]}})
    event = mapped(record)
    assert (event["class_uid"], event["activity_id"]) == (3002, 1)
    assert event["user"] == {"uid": "1example23456789", "account": {"uid": ACCOUNT}}
    assert event["status_id"] == 2  # the token endpoint answered 400
    assert "s3cr3t-value" not in json.dumps(event)


# -- redaction -------------------------------------------------------------------------------------

def test_federation_token_session_token_never_leaves() -> None:
    record = dataset_record("GetFederationToken")
    token = record["responseElements"]["credentials"]["sessionToken"]
    assert len(token) > 100
    event = mapped(record)
    serialised = json.dumps(event)
    assert token not in serialised
    assert token[:40] not in serialised
    assert event["unmapped"]["responseElements"]["credentials"]["sessionToken"] == "REDACTED"
    raw = json.loads(event["raw_data"])
    assert raw["responseElements"]["credentials"]["sessionToken"] == "REDACTED"
    # The rest of the record is kept as received.
    assert raw["responseElements"]["credentials"]["accessKeyId"] == "ASIASTJKC5GCM7ZE6LUP"
    assert raw["eventID"] == record["eventID"]


@pytest.mark.parametrize("key", ["sessionToken", "secretAccessKey", "password", "newPassword", "PASSWORD",
                                 "clientSecret", "ClientSecret", "client_secret", "SecretString",
                                 "PrivateKey", "keyMaterial", "Authorization", "Plaintext", "refreshToken"])
def test_secret_named_keys_are_redacted_at_any_depth(key: str) -> None:
    secret = "do-not-forward-6f1d2"
    record = trail_record(eventSource="example.amazonaws.com", eventName="CreateThing",
                          requestParameters={"items": [{"inner": {key: secret}}]},
                          responseElements={key: secret})
    event = mapped(record)
    assert secret not in json.dumps(event)
    assert event["unmapped"]["requestParameters"]["items"][0]["inner"][key] == "REDACTED"
    assert json.loads(event["raw_data"])["responseElements"][key] == "REDACTED"


def test_raw_data_is_the_line_as_received_when_nothing_is_secret() -> None:
    record = dataset_record("DeleteTrail")
    line = json.dumps(record, indent=2)
    assert mapped(line)["raw_data"] == line


# -- the gateway's access log ----------------------------------------------------------------------

def access_log_line(**values: str) -> str:
    """A line as the stage writes it: the committed format with each $context variable filled."""
    template = json.loads(ACCESS_LOG_FORMAT)
    defaults = {"requestId": "Ab1CdEfGhIjKlMnO=", "requestTime": "1796638542123", "sourceIp": "198.51.100.20",
                "callerSub": "7f1c", "clientId": "partner-acme-client", "domainName": "api.example.com",
                "routeKey": "POST /partners/{partner}/predict", "status": "200", "responseLatency": "48",
                "integrationLatency": "41", "integrationStatus": "200", "authorizerError": "-", "error": "-",
                "clientCertSubject": "CN=acme", "clientCertIssuer": "CN=acme-ca", "clientCertSerial": "01",
                "clientCertNotAfter": "Dec 31 00:00:00 2027 GMT"}
    assert set(template) == set(defaults), "the access log format changed: update this test and the mapping"
    defaults.update(values)
    return json.dumps({key: defaults[key] for key in template})


def test_gateway_request_served() -> None:
    event = mapped(access_log_line(), log_group=GATEWAY_GROUP)
    assert (event["class_uid"], event["category_uid"], event["activity_id"]) == (4002, 4, 6)  # POST
    assert event["time"] == 1796638542123
    assert event["http_request"] == {
        "uid": "Ab1CdEfGhIjKlMnO=", "http_method": "POST",
        "url": {"path": "/partners/{partner}/predict", "hostname": "api.example.com"}}
    assert event["http_response"] == {"code": 200, "latency": 48}
    assert event["src_endpoint"] == {"ip": "198.51.100.20"}
    assert event["status_id"] == 1
    assert event["unmapped"]["clientId"] == "partner-acme-client"
    assert event["unmapped"]["clientCertSubject"] == "CN=acme"
    assert "authorizerError" not in event["unmapped"]  # "-" is the gateway's empty value


def test_gateway_request_refused() -> None:
    event = mapped(access_log_line(status="403", error="Forbidden", clientId="-", routeKey="GET /health"),
                   log_group=GATEWAY_GROUP)
    assert (event["activity_id"], event["status_id"], event["status_code"]) == (3, 2, "403")
    assert event["status_detail"] == "Forbidden"
    assert "clientId" not in event["unmapped"]


def test_gateway_request_without_a_status_has_an_unknown_outcome() -> None:
    # The gateway writes "-" for a variable it has no value for.
    event = mapped(access_log_line(status="-", responseLatency="-", sourceIp="-", routeKey="$default"),
                   log_group=GATEWAY_GROUP)
    assert (event["status_id"], event["status"], event["activity_id"]) == (0, "Unknown", 99)
    assert "http_response" not in event and "src_endpoint" not in event
    assert event["http_request"] == {"uid": "Ab1CdEfGhIjKlMnO="}


def test_gateway_number_that_is_not_ascii_digits_is_left_out() -> None:
    # "²" is a digit to str.isdigit but not to int(): the line still maps, without the latency.
    event = mapped(access_log_line(responseLatency="\u00b2"), log_group=GATEWAY_GROUP)
    assert event["http_response"] == {"code": 200}


# -- inference events ------------------------------------------------------------------------------

def inference(**fields: Any) -> dict[str, Any]:
    line = {"event": "inference", "time": "2026-12-07T10:15:42.250Z", "source": "parent",
            "requestId": "Ab1CdEfGhIjKlMnO=", "clientId": "partner-acme-client", "partner": "acme",
            "route": "POST /partners/{partner}/predict", "rows": 12, "requestBytes": 2048,
            "responseBytes": 512, "latencyMs": 41.7, "model": "credit", "modelVersion": "v3",
            "decision": "served", "reason": None, "status": 200}
    line.update(fields)
    return line


def test_inference_served() -> None:
    event = mapped(inference(), log_group=INFERENCE_GROUP)
    assert (event["class_uid"], event["activity_id"], event["status_id"]) == (6003, 99, 1)
    assert event["time"] == 1796638542250
    assert event["actor"] == {"app_name": "partner-acme-client",
                              "user": {"uid": "partner-acme-client", "org": {"name": "acme"}}}
    assert event["api"]["operation"] == "POST /partners/{partner}/predict"
    assert event["api"]["request"] == {"uid": "Ab1CdEfGhIjKlMnO="}
    assert event["resources"] == [{"name": "credit", "type": "model", "version": "v3"}]
    assert event["http_response"] == {"code": 200, "length": 512}
    assert event["http_request"] == {"length": 2048, "uid": "Ab1CdEfGhIjKlMnO="}
    assert event["duration"] == 41
    assert event["unmapped"] == {"source": "parent", "rows": 12}


def test_inference_input_summary_stays_in_unmapped() -> None:
    """The enclave's input summary has no OCSF attribute: it is kept in `unmapped`, so the detector
    reading the SIEM finds it there (and in `raw_data`); an event without it maps as before."""
    event = mapped(inference(inputCells=[3, 41, 172], inputCellCount=3), log_group=INFERENCE_GROUP)
    assert event["unmapped"] == {"source": "parent", "rows": 12, "inputCells": [3, 41, 172],
                                 "inputCellCount": 3}
    assert json.loads(event["raw_data"])["inputCells"] == [3, 41, 172]
    assert validate(event) == []


def test_inference_refused() -> None:
    event = mapped(inference(decision="refused", reason="client certificate revoked", status=403,
                             clientId=None, partner=None, model=None, modelVersion=None, source="enclave"),
                   log_group=INFERENCE_GROUP)
    assert (event["status_id"], event["status"], event["status_code"]) == (2, "Failure", "403")
    assert event["status_detail"] == "client certificate revoked"
    assert event["actor"] == {"user": {"name": "unauthenticated", "type": "Unknown"}}
    assert "resources" not in event
    assert event["metadata"]["product"]["feature"] == {"name": "inference (enclave)"}


# -- JIT decisions and the other decision lines ----------------------------------------------------

def test_jit_approval_maps_with_the_person() -> None:
    line = {"event": "jit.approved", "time": "2026-12-07T10:20:00Z", "request_id": "req-42",
            "elevation": "key-admin", "requester": "arn:aws:iam::1:role/Ops/alice", "reason": "rotate",
            "action": "approved", "by": f"arn:aws:iam::{ACCOUNT}:role/zero-trust-ai-approver/bob",
            "why": "", "at": "2026-12-07T10:20:00Z"}
    event = mapped(line, log_group=JIT_GROUP)
    assert (event["activity_id"], event["status_id"]) == (3, 1)
    assert event["actor"]["user"]["name"] == "bob"
    assert event["api"]["operation"] == "jit.approved"
    assert event["api"]["request"] == {"uid": "req-42"}
    assert event["resources"] == [{"name": "key-admin", "type": "elevation"}]
    assert event["unmapped"]["requester"] == "arn:aws:iam::1:role/Ops/alice"


def test_jit_refusal_is_a_failure() -> None:
    line = {"event": "jit.api.refused", "time": "2026-12-07T10:20:00Z",
            "caller": f"arn:aws:iam::{ACCOUNT}:role/Ops/mallory", "error": "self-approval is refused"}
    event = mapped(line, log_group=JIT_GROUP)
    assert (event["status_id"], event["status_detail"]) == (2, "self-approval is refused")


@pytest.mark.parametrize("line", [
    {"event": "jit.expire.skipped", "time": "2026-12-07T10:20:00Z", "request_id": "r", "state": "denied"},
    {"event": "jit.api.unauthenticated", "time": "2026-12-07T10:20:00Z"},
    {"event": "key-rotation", "time": "2026-12-07T10:20:00Z", "month": "2026-12"},
    {"event": "instance-refresh", "time": "2026-12-07T10:20:00Z"},
])
def test_decision_lines_without_an_honest_mapping_are_left_unmapped(line: dict[str, Any]) -> None:
    assert to_ocsf(json.dumps(line)) is None


# -- VPC flow logs and Resolver query logs ---------------------------------------------------------

def test_flow_log_accept() -> None:
    line = f"2 {ACCOUNT} {ENI} 10.0.1.23 10.0.2.40 49152 443 6 10 5120 1796638500 1796638560 ACCEPT OK"
    event = mapped(line, log_group=FLOW_GROUP)
    assert (event["class_uid"], event["activity_id"], event["status_id"]) == (4001, 6, 1)  # Traffic
    assert event["src_endpoint"] == {"ip": "10.0.1.23", "port": 49152, "interface_uid": ENI}
    assert event["dst_endpoint"] == {"ip": "10.0.2.40", "port": 443}
    assert event["connection_info"] == {"direction_id": 0, "protocol_num": 6}
    assert event["traffic"] == {"packets": 10, "bytes": 5120}
    assert (event["start_time"], event["end_time"], event["time"]) == (1796638500000, 1796638560000,
                                                                      1796638560000)
    assert event["cloud"] == {"provider": "AWS", "account": {"uid": ACCOUNT}}
    assert event["raw_data"] == line


def test_flow_log_reject() -> None:
    line = f"2 {ACCOUNT} {ENI} 203.0.113.5 10.0.1.23 51515 22 6 1 40 1796638500 1796638560 REJECT OK"
    event = mapped(line, log_group=FLOW_GROUP)
    assert (event["activity_id"], event["status_id"], event["status_code"]) == (5, 2, "REJECT")  # Refuse


@pytest.mark.parametrize("line", [
    f"2 {ACCOUNT} {ENI} - - - - - - - 1796638500 1796638560 - NODATA",
    f"2 {ACCOUNT} {ENI} - - - - - - - 1796638500 1796638560 - SKIPDATA",
    "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end "
    "action log-status",
    f"3 {ACCOUNT} {ENI} 10.0.1.23 10.0.2.40 49152 443 6 10 5120 1796638500 1796638560 ACCEPT OK",
    f"2 {ACCOUNT} eni-0a1b 10.0.1.23 10.0.2.40 49152 443 6 10 5120 soon later ACCEPT OK",
])
def test_flow_log_lines_without_traffic_are_left_unmapped(line: str) -> None:
    assert to_ocsf(line) is None


def test_resolver_query() -> None:
    line = {"version": "1.100000", "account_id": ACCOUNT, "region": "eu-west-1", "vpc_id": "vpc-0abc",
            "query_timestamp": "2026-12-07T10:15:42Z", "query_name": "kms.eu-west-1.amazonaws.com.",
            "query_type": "A", "query_class": "IN", "rcode": "NOERROR",
            "answers": [{"Rdata": "10.0.3.17", "Type": "A", "Class": "IN"}],
            "srcaddr": "10.0.1.23", "srcport": "53124", "transport": "UDP",
            "srcids": {"instance": "i-0abc123"}}
    event = mapped(line, log_group=RESOLVER_GROUP)
    assert (event["class_uid"], event["activity_id"], event["status_id"]) == (4003, 6, 1)
    assert event["query"] == {"hostname": "kms.eu-west-1.amazonaws.com.", "type": "A", "class": "IN"}
    assert event["answers"] == [{"rdata": "10.0.3.17", "type": "A", "class": "IN"}]
    assert (event["rcode"], event["rcode_id"]) == ("NOERROR", 0)
    assert event["src_endpoint"] == {"ip": "10.0.1.23", "port": 53124, "vpc_uid": "vpc-0abc",
                                     "instance_uid": "i-0abc123"}
    assert event["cloud"]["region"] == "eu-west-1"


def test_resolver_query_blocked_by_the_dns_firewall() -> None:
    line = {"version": "1.100000", "account_id": ACCOUNT, "region": "eu-west-1", "vpc_id": "vpc-0abc",
            "query_timestamp": "2026-12-07T10:15:42Z", "query_name": "exfil.example.net.",
            "query_type": "TXT", "query_class": "IN", "rcode": "NXDOMAIN", "answers": [],
            "srcaddr": "10.0.1.23", "srcport": "53124",
            "transport": "UDP", "firewall_rule_action": "BLOCK", "firewall_rule_group_id": "rslvr-frg-1"}
    event = mapped(line, log_group=RESOLVER_GROUP)
    assert (event["rcode_id"], event["status_id"]) == (3, 2)
    assert event["unmapped"]["firewall_rule_action"] == "BLOCK"


def test_resolver_query_without_a_response_code_has_an_unknown_outcome() -> None:
    line = {"query_timestamp": "2026-12-07T10:15:42Z", "query_name": "a.example.", "srcaddr": "10.0.1.23"}
    event = mapped(line, log_group=RESOLVER_GROUP)
    assert (event["status_id"], event["status"]) == (0, "Unknown")
    assert "rcode" not in event and "cloud" in event


# -- what is not mapped, and bad input -------------------------------------------------------------

INSIGHT = {"eventVersion": "1.08", "eventTime": "2026-12-07T10:00:00Z", "awsRegion": "eu-west-1",
           "eventID": "a", "eventType": "AwsCloudTrailInsight", "recipientAccountId": ACCOUNT,
           "sharedEventID": "b", "eventCategory": "Insight",
           "insightDetails": {"state": "Start", "eventSource": "kms.amazonaws.com", "eventName": "Decrypt",
                              "insightType": "ApiCallRateInsight", "insightContext": {}}}


@pytest.mark.parametrize("line", [
    "", "   ", "\n", "not json", "{", "}", "[]", "null", "123", '"a string"', "[1, 2]", "{}",
    '{"eventVersion": "1.08"}',
    json.dumps(INSIGHT),
    json.dumps(trail_record(eventSource="s3.amazonaws.com", eventName="GetObject", eventTime="yesterday")),
    json.dumps(trail_record(eventSource="s3.amazonaws.com", eventName="GetObject", eventTime=1765102542)),
    json.dumps(trail_record(eventSource="s3.amazonaws.com", eventName=42)),
    json.dumps(trail_record(eventSource=None, eventName="GetObject")),
    json.dumps({"event": "inference", "time": "2026-12-07T10:15:42Z"}),
    json.dumps(inference(decision="maybe")),
    json.dumps(inference(time="not a time")),
    json.dumps({"routeKey": "GET /", "requestId": "x", "requestTime": "-"}),
    json.dumps({"routeKey": "GET /", "requestId": "x", "requestTime": "\u00b2\u00b3"}),  # digits, not ASCII
    json.dumps({"query_name": "a.", "srcaddr": "10.0.0.1", "query_timestamp": None}),
    "[" * 100_000,
    "{" + '"a":' * 10 + "1",
    "\x00\x01\x02",
    "2 only three",
], ids=lambda line: repr(line[:40]))
def test_garbage_and_unknown_lines_give_none(line: str) -> None:
    assert to_ocsf(line) is None


@pytest.mark.parametrize("message", [None, b'{"event": "inference"}', 42, ["a"], {"eventVersion": "1.08"}])
def test_a_message_that_is_not_a_string_gives_none(message: Any) -> None:
    assert to_ocsf(message) is None


@pytest.mark.parametrize("field", ["userIdentity", "sourceIPAddress", "resources", "requestParameters",
                                   "awsRegion", "recipientAccountId", "eventID", "readOnly", "errorCode",
                                   "userAgent", "requestID", "eventCategory"])
@pytest.mark.parametrize("value", [None, 7, 1.5, True, "", [], {}, ["x"], {"ARN": 3}])
def test_odd_types_in_a_trail_record_never_make_an_invalid_event(field: str, value: Any) -> None:
    record = trail_record(eventSource="s3.amazonaws.com", eventName="GetObject")
    record[field] = value
    event = to_ocsf(json.dumps(record))
    assert event is not None
    assert validate(event) == []


@pytest.mark.parametrize("field", ["awsRegion", "recipientAccountId", "sourceIPAddress", "eventID",
                                   "userAgent", "requestID", "errorCode", "eventCategory", "userIdentity",
                                   "readOnly"])
def test_a_field_of_an_odd_type_is_kept_in_unmapped(field: str) -> None:
    record = trail_record(eventSource="s3.amazonaws.com", eventName="GetObject")
    record[field] = 7
    assert mapped(record)["unmapped"][field] == 7


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=10), children, max_size=3),
    max_leaves=8)


@settings(max_examples=300, deadline=None)
@given(field=st.sampled_from(["userIdentity", "sourceIPAddress", "resources", "eventTime", "eventName",
                              "eventSource", "responseElements", "additionalEventData", "eventType",
                              "awsRegion", "errorCode", "errorMessage"]),
       value=json_values, which=st.sampled_from(["GetFederationToken", "ConsoleLogin", "DescribeInstances"]))
def test_any_json_in_any_field_gives_none_or_a_valid_event(field: str, value: Any, which: str) -> None:
    base = {"GetFederationToken": trail_record(eventSource="sts.amazonaws.com",
                                               eventName="GetFederationToken"),
            "ConsoleLogin": console_login("Success", "No"),
            "DescribeInstances": trail_record(eventSource="ec2.amazonaws.com", eventName="DescribeInstances")}
    record = base[which]
    record[field] = value
    event = to_ocsf(json.dumps(record))
    assert event is None or validate(event) == []


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_any_text_gives_none_or_a_valid_event(text: str) -> None:
    event = to_ocsf(text)
    assert event is None or validate(event) == []


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from([*sorted(json.loads(ACCESS_LOG_FORMAT)), "event", "query_name",
                                        "srcaddr", "route"]),
                       json_values, max_size=8))
def test_any_json_object_of_the_known_fields_gives_none_or_a_valid_event(record: dict[str, Any]) -> None:
    event = to_ocsf(json.dumps(record))
    assert event is None or validate(event) == []


# -- what the mapping may import -------------------------------------------------------------------

def test_the_mapping_imports_the_standard_library_and_its_codec_only() -> None:
    # The Lambda ships the ztai_runtime directory and the codec's optional packages (test_codec.py).
    source = ROOT / "ztai_runtime" / "siem" / "ocsf.py"
    tree = ast.parse(source.read_text(encoding="utf-8"))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module and node.level == 0}
    assert imported - {"__future__", "ztai_runtime"} <= sys.stdlib_module_names
    runtime = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
               and node.module and node.module.startswith("ztai_runtime")}
    assert runtime == {"ztai_runtime.siem", "ztai_runtime.siem.codec"}
    assert "ipaddress" in imported
