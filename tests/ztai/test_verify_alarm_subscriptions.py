"""`ztai verify` in prod: a critical alarm topic nobody confirmed a subscription to is a blocking
finding, a missing topic too, a pending subscription is reported.

moto confirms every subscription at once (Subscribe answers with an ARN and the attributes say
PendingConfirmation false, for email and https alike), so a pending one cannot be made there: the
decision is tested on SNS's own answers through botocore's Stubber, which checks each canned
response against the SNS service model; moto shows the confirmed case, the missing topic, and
that the command reports the finding and fails on it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from components.alarm_topics import SEVERITIES as COMPONENT_SEVERITIES
from components.alarm_topics import alarm_topic_name as component_topic_name
from ztai.alarm_subscriptions import (
    SEVERITIES,
    TopicSubscriptions,
    alarm_topic_name,
    configured_endpoints,
    is_confirmed,
    read_alarm_topics,
    subscription_findings,
)
from ztai.cli import main

REGION, ACCOUNT = "eu-west-1", "111122223333"


def topic_arn(severity: str, environment: str = "prod") -> str:
    return f"arn:aws:sns:{REGION}:{ACCOUNT}:{alarm_topic_name(environment, severity)}"


def test_the_cli_names_the_topics_as_the_program_does() -> None:
    assert SEVERITIES == COMPONENT_SEVERITIES
    for severity in SEVERITIES:
        assert alarm_topic_name("prod", severity) == component_topic_name("prod", severity)


# --- SNS's answers, through the Stubber -----------------------------------------------------------

def stubbed(subscriptions: dict[str, list[tuple[str, str | None]]],
            topics: tuple[str, ...] = SEVERITIES) -> Any:
    """An SNS client answering ListTopics with `topics`, then for each severity its
    subscriptions: (SubscriptionArn, PendingConfirmation attribute or None when not asked)."""
    sns = boto3.client("sns", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    stubber = Stubber(sns)
    stubber.add_response("list_topics", {"Topics": [{"TopicArn": topic_arn(s)} for s in topics]})
    for severity in SEVERITIES:
        if severity not in topics:
            continue
        items = subscriptions.get(severity, [])
        stubber.add_response(
            "list_subscriptions_by_topic",
            {"Subscriptions": [{"SubscriptionArn": arn, "Owner": ACCOUNT, "Protocol": "email",
                                "Endpoint": f"oncall{i}@example.com", "TopicArn": topic_arn(severity)}
                               for i, (arn, _) in enumerate(items)]},
            {"TopicArn": topic_arn(severity)})
        for arn, pending in items:
            if pending is not None:
                attributes = {"PendingConfirmation": pending, "SubscriptionArn": arn}
                if arn in FILTERED:
                    attributes["FilterPolicy"] = '{"severity": ["none-such"]}'
                stubber.add_response("get_subscription_attributes", {"Attributes": attributes},
                                     {"SubscriptionArn": arn})
    stubber.activate()
    return sns


CONFIRMED = f"{topic_arn('critical')}:0b7c2f3e-0000-4000-8000-000000000001"
SECOND = f"{topic_arn('critical')}:0b7c2f3e-0000-4000-8000-000000000002"
FILTERED = {f"{topic_arn('critical')}:0b7c2f3e-0000-4000-8000-00000000000f"}


def kinds(findings: list[Any]) -> list[tuple[str, bool]]:
    return [(f.kind, f.blocking) for f in findings]


def test_a_confirmed_critical_subscription_passes() -> None:
    topics = read_alarm_topics(stubbed({"critical": [(CONFIRMED, "false")]}), "prod")
    assert [t.confirmed for t in topics] == [("email:oncall0@example.com",), (), ()]
    assert subscription_findings(topics, "prod", REGION) == []


def test_a_critical_topic_with_only_a_pending_email_subscription_is_blocking() -> None:
    # SNS lists a subscription its endpoint has not confirmed with "PendingConfirmation" for an ARN.
    topics = read_alarm_topics(stubbed({"critical": [("PendingConfirmation", None)]}), "prod")
    findings = subscription_findings(topics, "prod", REGION)
    assert kinds(findings) == [("alarm-subscription-pending", False),
                               ("no-confirmed-critical-subscription", True)]
    assert findings[1].resource == topic_arn("critical")
    assert ("zero-trust-ai-prod-alarms-critical has no confirmed subscription (1 pending)"
            in findings[1].message)
    assert "email:oncall0@example.com is not confirmed" in findings[0].message


def test_an_arn_whose_attributes_say_pending_is_not_confirmed() -> None:
    topics = read_alarm_topics(stubbed({"critical": [(CONFIRMED, "true")]}), "prod")
    assert kinds(subscription_findings(topics, "prod", REGION)) == [
        ("alarm-subscription-pending", False), ("no-confirmed-critical-subscription", True)]


def test_no_subscription_on_critical_is_blocking() -> None:
    topics = read_alarm_topics(stubbed({"high": [(CONFIRMED.replace("critical", "high"), "false")]}), "prod")
    assert kinds(subscription_findings(topics, "prod", REGION)) == [
        ("no-confirmed-critical-subscription", True)]


def test_a_pending_one_beside_a_confirmed_one_is_reported_not_blocking() -> None:
    topics = read_alarm_topics(stubbed({"critical": [(CONFIRMED, "false"), ("PendingConfirmation", None)],
                                        "medium": [("PendingConfirmation", None)]}), "prod")
    assert kinds(subscription_findings(topics, "prod", REGION)) == [
        ("alarm-subscription-pending", False), ("alarm-subscription-pending", False)]


def test_a_missing_topic_is_blocking() -> None:
    topics = read_alarm_topics(stubbed({"critical": [(CONFIRMED, "false")]}, topics=("critical", "medium")),
                               "prod")
    [finding] = subscription_findings(topics, "prod", REGION)
    assert (finding.kind, finding.resource, finding.blocking) == (
        "no-alarm-topic", "zero-trust-ai-prod-alarms-high", True)
    assert "the high alarms notify nobody" in finding.message


@pytest.mark.parametrize("environment", ["dev", "staging"])
def test_outside_prod_nothing_is_required(environment: str) -> None:
    topics = [TopicSubscriptions(s, alarm_topic_name(environment, s), None) for s in SEVERITIES]
    assert subscription_findings(topics, environment, REGION) == []


@pytest.mark.parametrize("subscription, attributes, confirmed", [
    ({"SubscriptionArn": "PendingConfirmation"}, None, False),
    ({"SubscriptionArn": "Deleted"}, None, False),
    ({}, None, False),
    ({"SubscriptionArn": CONFIRMED}, {"PendingConfirmation": "false"}, True),
    ({"SubscriptionArn": CONFIRMED}, {"PendingConfirmation": "true"}, False),
    ({"SubscriptionArn": CONFIRMED}, {"PendingConfirmation": "True"}, False),
    ({"SubscriptionArn": CONFIRMED}, {}, True),
])
def test_what_counts_as_confirmed(subscription: dict[str, str], attributes: dict[str, str] | None,
                                  confirmed: bool) -> None:
    assert is_confirmed(subscription, attributes) is confirmed


# --- moto, and the command ------------------------------------------------------------------------

@pytest.fixture
def moto_account(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": REGION, "MOTO_ACCOUNT_ID": ACCOUNT}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        sns = boto3.client("sns", region_name=REGION)
        for severity in SEVERITIES:
            sns.create_topic(Name=alarm_topic_name("prod", severity))
        yield sns


def test_moto_a_confirmed_subscription_is_read_as_confirmed(moto_account: Any) -> None:
    moto_account.subscribe(TopicArn=topic_arn("critical"), Protocol="email", Endpoint="oncall@example.com")
    topics = read_alarm_topics(moto_account, "prod")
    assert topics[0].confirmed == ("email:oncall@example.com",) and topics[0].pending == ()
    assert subscription_findings(topics, "prod", REGION) == []


def verify_prod_keys(capsys: pytest.CaptureFixture[str]) -> tuple[int, list[dict[str, Any]]]:
    status = main(["verify", "--stack", "prod-keys", "--json"])
    out = capsys.readouterr().out
    return status, json.loads(out)["findings"]


def test_verify_fails_a_prod_stack_whose_critical_topic_has_no_subscription(
        moto_account: Any, capsys: pytest.CaptureFixture[str]) -> None:
    status, findings = verify_prod_keys(capsys)
    assert status == 1
    assert {"kind": "no-confirmed-critical-subscription", "resource": topic_arn("critical"),
            "blocking": True} in [{k: f[k] for k in ("kind", "resource", "blocking")} for f in findings]
    # An endpoint the stack file does not list (stacks/Pulumi.prod-keys.yaml names
    # security-oncall@example.com) is reported and does not count.
    moto_account.subscribe(TopicArn=topic_arn("critical"), Protocol="email", Endpoint="oncall@example.com")
    status, findings = verify_prod_keys(capsys)
    assert status == 1
    assert {(f["kind"], f["blocking"]) for f in findings if "subscription" in f["kind"]} == {
        ("alarm-subscription-unlisted", False), ("no-confirmed-critical-subscription", True)}
    moto_account.subscribe(TopicArn=topic_arn("critical"), Protocol="email",
                           Endpoint="security-oncall@example.com")
    _, findings = verify_prod_keys(capsys)
    assert [f["kind"] for f in findings if "subscription" in f["kind"] or f["kind"] == "no-alarm-topic"] == [
        "alarm-subscription-unlisted"]


def test_verify_fails_a_prod_stack_without_its_alarm_topics(
        moto_account: Any, capsys: pytest.CaptureFixture[str]) -> None:
    moto_account.delete_topic(TopicArn=topic_arn("critical"))
    status, findings = verify_prod_keys(capsys)
    assert status == 1
    assert ("no-alarm-topic", "zero-trust-ai-prod-alarms-critical", True) in [
        (f["kind"], f["resource"], f["blocking"]) for f in findings]


LISTED = {"critical": {"email:oncall0@example.com"}}


def test_only_a_subscription_the_stack_lists_counts_as_someone_on_call() -> None:
    # oncall0 is listed; oncall1, added by hand outside the program, hears the alarms but is
    # reported and not counted.
    topics = read_alarm_topics(stubbed({"critical": [(CONFIRMED, "false"), (SECOND, "false")]}), "prod")
    findings = subscription_findings(topics, "prod", REGION, LISTED)
    assert kinds(findings) == [("alarm-subscription-unlisted", False)]
    assert "email:oncall1@example.com is not in the stack's" in findings[0].message
    only_unlisted = read_alarm_topics(stubbed({"critical": [(SECOND, "false")]}), "prod")
    # (the stub numbers endpoints by position: the one subscription is oncall0 again)
    assert kinds(subscription_findings(only_unlisted, "prod", REGION, {"critical": {"email:x@y"}})) == [
        ("alarm-subscription-unlisted", False), ("no-confirmed-critical-subscription", True)]


def test_a_subscription_with_a_filter_policy_does_not_count() -> None:
    [filtered] = FILTERED
    topics = read_alarm_topics(stubbed({"critical": [(filtered, "false")]}), "prod")
    assert topics[0].confirmed == () and topics[0].filtered == ("email:oncall0@example.com",)
    findings = subscription_findings(topics, "prod", REGION, LISTED)
    assert kinds(findings) == [("alarm-subscription-filtered", False),
                               ("no-confirmed-critical-subscription", True)]
    assert "1 confirmed but not listed in the stack file or filtered" in findings[1].message


@pytest.mark.parametrize("value, expected", [
    (["critical:email:a@example.com", "high:https:https://h.example.com/x"],
     {"critical": {"email:a@example.com"}, "high": {"https:https://h.example.com/x"}}),
    ('["critical:email:a@example.com"]', {"critical": {"email:a@example.com"}}),
    (["nonsense", "loud:email:a@example.com", "critical:"], {}),
    ("not json", {}),
    (None, {}),
])
def test_the_stack_files_subscriptions_are_read_as_the_program_writes_them(
        value: Any, expected: dict[str, set[str]]) -> None:
    assert configured_endpoints(value) == expected
