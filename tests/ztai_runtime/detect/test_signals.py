"""principal_of: one stable name per actor, people separated within a shared role, machines not
split per instance or function."""

from __future__ import annotations

from typing import Any

import pytest

from ztai_runtime.detect.signals import principal_of, severity_rank
from ztai_runtime.detect.sources import event_from_record

ACCOUNT = "111122223333"


def trail(identity: Any, **extra: Any) -> dict[str, Any]:
    return {"eventVersion": "1.10", "eventSource": "s3.amazonaws.com", "eventName": "GetObject",
            "eventTime": "2026-01-01T00:00:00Z", "eventID": "e", "userIdentity": identity, **extra}


def assumed(role: str, session: str) -> dict[str, Any]:
    return {"type": "AssumedRole", "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{session}",
            "sessionContext": {"sessionIssuer": {"type": "Role", "userName": role}}}


@pytest.mark.parametrize(("record", "principal"), [
    (trail(assumed("curator", "alice@example.com")),
     f"arn:aws:iam::{ACCOUNT}:role/curator/alice@example.com"),
    (trail(assumed("fleet", "i-0123456789abcdef0")), f"arn:aws:iam::{ACCOUNT}:role/fleet"),
    (trail(assumed("rotation", "zero-trust-ai-prod-rotation"),
           userAgent="Boto3/1.35 exec-env/AWS_Lambda_python3.13"), f"arn:aws:iam::{ACCOUNT}:role/rotation"),
    (trail(assumed("deploy", "deploy")), f"arn:aws:iam::{ACCOUNT}:role/deploy"),
    (trail({"type": "IAMUser", "arn": f"arn:aws:iam::{ACCOUNT}:user/christophe"}),
     f"arn:aws:iam::{ACCOUNT}:user/christophe"),
    (trail({"type": "Root", "arn": f"arn:aws:iam::{ACCOUNT}:root"}), f"arn:aws:iam::{ACCOUNT}:root"),
    (trail({"type": "AWSService", "invokedBy": "ec2.amazonaws.com"}), "service:ec2.amazonaws.com"),
    (trail({"type": "WebIdentityUser", "userName": "repo:org/x:environment:prod"}),
     "repo:org/x:environment:prod"),
    (trail("not an object"), "unknown"),
    ({"event": "inference", "time": "2026-01-01T00:00:00Z", "requestId": "r", "clientId": "c1"},
     "client:c1"),
    ({"event": "inference", "time": "2026-01-01T00:00:00Z", "requestId": "r", "clientId": None},
     "client:-"),
    ({"class_uid": 2004, "time": 1, "metadata": {"version": "1.7.0", "uid": "u"},
      "actor": {"user": {"name": "bob"}}}, "bob"),
])
def test_principal_of(record: dict[str, Any], principal: str) -> None:
    assert principal_of(event_from_record(record, "test")) == principal


def test_severity_rank_orders_and_refuses_unknown_names() -> None:
    assert severity_rank("low") < severity_rank("medium") < severity_rank("critical")
    with pytest.raises(ValueError, match="allowed are informational, low, medium, high, critical"):
        severity_rank("severe")


def test_a_repeated_arn_is_decided_per_record_not_by_its_first_answer() -> None:
    # The parsed ARN is remembered; whether the session is a function's is decided per record: the
    # same session seen from a Lambda function and then from a person's CLI are two answers.
    identity = assumed("ops", "on-call")
    role = f"arn:aws:iam::{ACCOUNT}:role/ops"
    lambda_call = trail(identity, userAgent="Boto3/1.35 exec-env/AWS_Lambda_python3.13")
    cli_call = trail(identity, userAgent="aws-cli/2.17")
    for _ in range(2):
        assert principal_of(event_from_record(lambda_call, "test")) == role
        assert principal_of(event_from_record(cli_call, "test")) == f"{role}/on-call"
    named_after_role = trail(assumed("deploy", "deploy"))
    assert principal_of(event_from_record(named_after_role, "test")) == f"arn:aws:iam::{ACCOUNT}:role/deploy"
    # Not an assumed role's ARN: the ARN itself, again from the remembered answer.
    odd = trail({"type": "AssumedRole", "arn": "arn:aws:sts::short:assumed-role/x"})
    for _ in range(2):
        assert principal_of(event_from_record(odd, "test")) == "arn:aws:sts::short:assumed-role/x"
