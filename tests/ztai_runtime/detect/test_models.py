"""The behavioural models: each learns (no signal on its normal), flags the deviation, forgets
slowly, survives a state round trip, and refuses a bad state by name."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ztai_runtime.detect.engine import Engine
from ztai_runtime.detect.features import Stat, agent_family, origin
from ztai_runtime.detect.geo import GeoError, GeoLookup
from ztai_runtime.detect.models import Behaviour, ModelSettings
from ztai_runtime.detect.signals import Signal, principal_of
from ztai_runtime.detect.sources import event_from_record

ACCOUNT = "111122223333"
T0 = 1_793_577_600_000  # 2026-11-02T00:00:00Z, a Monday
HOUR = 3_600_000
DAY = 24 * HOUR
ROLE = "zero-trust-ai-prod-data-curator"
BUCKET = "zero-trust-ai-prod-training-data-4c1e2a7"
BOTO = "Boto3/1.35.90 md/Botocore#1.35.90 ua/2.0 os/linux#6.8.0 lang/python#3.11.11 Botocore/1.35.90"
# Small numbers so that a test runs a few days of events: a one-day baseline, a short warm-up.
FAST = ModelSettings(baseline_days=1, min_events=20, min_age_days=0, min_windows=3)

_counter = 0


def _iso(ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ct(
    ms: int,
    name: str = "GetObject",
    *,
    source: str = "s3.amazonaws.com",
    session: str = "anna",
    role: str = ROLE,
    ip: str = "198.51.100.17",
    agent: str = BOTO,
    params: dict[str, Any] | None = None,
    endpoint: bool = False,
    error: str | None = None,
    size: int = 1000,
    identity: dict[str, Any] | None = None,
    read_only: bool = True,
) -> dict[str, Any]:
    """One CloudTrail record of an assumed-role session (an S3 read of the training bucket unless told)."""
    global _counter
    _counter += 1
    record: dict[str, Any] = {
        "eventVersion": "1.11",
        "eventTime": _iso(ms),
        "eventSource": source,
        "eventName": name,
        "awsRegion": "eu-west-1",
        "sourceIPAddress": ip,
        "userAgent": agent,
        "eventID": f"e-{_counter}",
        "readOnly": read_only,
        "recipientAccountId": ACCOUNT,
        "userIdentity": identity
        or {
            "type": "AssumedRole",
            "principalId": f"AROAEXAMPLE:{session}",
            "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{session}",
            "accountId": ACCOUNT,
            "accessKeyId": "ASIAEXAMPLE",
            "sessionContext": {
                "sessionIssuer": {
                    "type": "Role",
                    "userName": role,
                    "arn": f"arn:aws:iam::{ACCOUNT}:role/{role}",
                },
                "attributes": {"mfaAuthenticated": "true"},
            },
        },
        "requestParameters": params
        if params is not None
        else ({"bucketName": BUCKET, "key": "raw/shard.parquet"} if name == "GetObject" else None),
    }
    if name == "GetObject" and source == "s3.amazonaws.com":
        record["additionalEventData"] = {"bytesTransferredOut": size}
    if endpoint:
        record["vpcEndpointId"] = "vpce-0a3f1c5e7b9d20461"
    if error:
        record["errorCode"] = error
    return record


def feed(model: Behaviour, records: Iterable[dict[str, Any]]) -> list[Signal]:
    out: list[Signal] = []
    for index, record in enumerate(records):
        event = event_from_record(record, f"t:{index}")
        out.extend(model.observe(event, principal_of(event)))
    return out


def kinds(signals: Iterable[Signal]) -> set[str]:
    return {s.rule for s in signals}


def workdays(
    days: int, *, start: int = T0, per_hour: int = 12, hours: range = range(9, 17), **kwargs: Any
) -> list[dict[str, Any]]:
    """`per_hour` calls in each working hour of `days` days, spread over the hour."""
    out = []
    for day in range(days):
        for hour in hours:
            for i in range(per_hour):
                out.append(ct(start + day * DAY + hour * HOUR + i * (HOUR // per_hour), **kwargs))
    return out


# -- learning: nothing on the normal, nothing in the baseline ----------------------------------------


def test_normal_work_raises_nothing_after_the_baseline() -> None:
    model = Behaviour(FAST)
    assert feed(model, workdays(6)) == []


def test_nothing_is_flagged_in_the_baseline_even_a_burst() -> None:
    model = Behaviour(FAST)
    burst = [ct(T0 + 3 * HOUR + i * 1000) for i in range(800)]  # 800 objects at 03:00 on day one
    assert feed(model, workdays(1)[:5] + burst) == []


# -- rate per action --------------------------------------------------------------------------------


def test_rate_flags_a_burst_of_one_action_far_above_normal() -> None:
    model = Behaviour(FAST)
    feed(model, workdays(4, name="ListObjects", params={"bucketName": BUCKET}))
    burst = [
        ct(T0 + 4 * DAY + 10 * HOUR + i * 1000, "ListObjects", params={"bucketName": BUCKET})
        for i in range(60)
    ]
    signals = [s for s in feed(model, burst) if s.rule == "model:rate"]
    assert signals, "60 ListObjects in 10 min against a normal of 2 should be flagged"
    assert signals[0].group == "s3:ListObjects"
    assert "normal for this principal is 2 ± 0" in signals[0].reason
    # The same count spread over the day is normal.
    calm = [
        ct(T0 + 5 * DAY + 9 * HOUR + i * 600_000, "ListObjects", params={"bucketName": BUCKET})
        for i in range(40)
    ]
    assert "model:rate" not in kinds(feed(model, calm))


def test_rate_forgets_the_old_normal_slowly() -> None:
    settings = ModelSettings(baseline_days=1, min_events=20, min_age_days=0, min_windows=3, half_life_days=1)
    model = Behaviour(settings)
    feed(model, workdays(3, name="ListObjects", params={"bucketName": BUCKET}, per_hour=6))
    heavy = workdays(10, start=T0 + 3 * DAY, name="ListObjects", params={"bucketName": BUCKET}, per_hour=300)
    signals = feed(model, heavy)
    first_day = [s for s in signals if s.rule == "model:rate"]
    assert first_day, "the new, heavier pace is flagged at first"
    # After several half-lives of the new pace it is the normal: its last day raises nothing.
    last = workdays(1, start=T0 + 13 * DAY, name="ListObjects", params={"bucketName": BUCKET}, per_hour=300)
    assert "model:rate" not in kinds(feed(model, last))


def test_stat_weight_halves_every_half_life() -> None:
    stat = Stat()
    for i in range(10):
        stat.update(5.0, i, 1000.0)
    assert stat.mean == pytest.approx(5.0)
    assert stat.weight(9 + 1000, 1000.0) == pytest.approx(stat.weight(9, 1000.0) / 2)


# -- data volume --------------------------------------------------------------------------------------


def test_volume_flags_an_hour_of_reads_far_above_normal_with_the_figures() -> None:
    model = Behaviour(FAST)
    feed(model, workdays(4, per_hour=12, size=20_000_000))
    bulk = [ct(T0 + 4 * DAY + 10 * HOUR + i * 3000, size=30_000_000) for i in range(1200)]
    signals = [s for s in feed(model, bulk) if s.rule == "model:volume"]
    assert signals and signals[0].group == f"s3:{BUCKET}"
    reason = signals[-1].reason
    assert "read 1,200 objects (36.0 GB)" in reason and BUCKET in reason
    assert "normal for this principal is 12 ± 0 objects" in reason


def test_volume_floor_flags_a_new_principal_reading_many_secrets_not_a_few() -> None:
    model = Behaviour(FAST)
    feed(model, workdays(2))
    few = [
        ct(
            T0 + 2 * DAY + 10 * HOUR + i * 1000,
            "GetSecretValue",
            source="secretsmanager.amazonaws.com",
            session="newcomer",
            params={"secretId": f"s{i}"},
        )
        for i in range(5)
    ]
    assert "model:volume" not in kinds(feed(model, few))
    many = [
        ct(
            T0 + 2 * DAY + 12 * HOUR + i * 1000,
            "GetSecretValue",
            source="secretsmanager.amazonaws.com",
            session="newcomer",
            params={"secretId": f"s{i}"},
        )
        for i in range(25)
    ]
    signals = [s for s in feed(model, many) if s.rule == "model:volume"]
    assert signals and "read 20 secrets" in signals[0].reason and "no normal" in signals[0].reason


def test_volume_counts_decrypted_parameters_and_vault_items() -> None:
    model = Behaviour(FAST)
    feed(model, workdays(2))
    names = [f"/p/{i}" for i in range(10)]
    plain = [
        ct(T0 + 2 * DAY + 10 * HOUR + i, "GetParameters", source="ssm.amazonaws.com", params={"names": names})
        for i in range(5)
    ]
    assert "model:volume" not in kinds(feed(model, plain)), (
        "parameters read without decryption are no secrets"
    )
    decrypted = [
        ct(
            T0 + 2 * DAY + 11 * HOUR + i,
            "GetParameters",
            source="ssm.amazonaws.com",
            params={"names": names, "withDecryption": True},
        )
        for i in range(3)
    ]
    assert "model:volume" in kinds(feed(model, decrypted))
    vault = [
        ct(
            T0 + 2 * DAY + 12 * HOUR + i * 100,
            "GetItem",
            source="dynamodb.amazonaws.com",
            params={"tableName": "zero-trust-ai-prod-token-vault"},
        )
        for i in range(1001)
    ]
    signals = [s for s in feed(model, vault) if s.rule == "model:volume"]
    assert signals and "token vault zero-trust-ai-prod-token-vault" in signals[0].reason


def test_volume_forgets_the_old_normal() -> None:
    settings = ModelSettings(baseline_days=1, min_events=20, min_age_days=0, min_windows=3, half_life_days=1)
    model = Behaviour(settings)
    feed(model, workdays(3, per_hour=5))
    # A new team pace, 150 objects an hour: flagged at first, the normal after some half-lives.
    assert "model:volume" in kinds(feed(model, workdays(1, start=T0 + 3 * DAY, per_hour=150)))
    feed(model, workdays(8, start=T0 + 4 * DAY, per_hour=150))
    assert "model:volume" not in kinds(feed(model, workdays(1, start=T0 + 12 * DAY, per_hour=150)))


# -- network origin ------------------------------------------------------------------------------------


def test_network_flags_a_new_prefix_not_a_known_one_or_a_peers() -> None:
    model = Behaviour(FAST)
    feed(model, workdays(2, ip="198.51.100.17") + workdays(2, ip="203.0.113.9", session="bruno"))
    assert feed(model, [ct(T0 + 2 * DAY + 10 * HOUR, ip="198.51.100.200")]) == []
    # bruno's office is his role's: not new for anna.
    assert "model:new-network" not in kinds(feed(model, [ct(T0 + 2 * DAY + 11 * HOUR, ip="203.0.113.5")]))
    signals = feed(model, [ct(T0 + 2 * DAY + 12 * HOUR, ip="192.0.2.44")])
    assert [s.rule for s in signals] == ["model:new-network"]
    assert "192.0.2.0/24" in signals[0].reason and signals[0].severity == "low"


@pytest.mark.parametrize(
    "address",
    ["035.249.253.232", "ec2.amazonaws.com", "AWS Internal", "", "1.2.3", "300.1.1.1", "::zz", None, 17],
)
def test_unparseable_addresses_are_unknown_origin_never_a_crash(address: Any) -> None:
    assert origin(address) is None
    model = Behaviour(FAST)
    feed(model, workdays(2))
    record = ct(T0 + 2 * DAY + 10 * HOUR)
    record["sourceIPAddress"] = address
    assert "model:new-network" not in kinds(feed(model, [record]))


def test_origin_prefixes_and_public_addresses() -> None:
    assert origin("198.51.100.17") == ("198.51.100.0/24", True)
    assert origin("10.23.4.17") == ("10.23.4.0/24", False)
    assert origin("2001:db8:1234:5678::1") == ("2001:db8:1234::/48", True)
    assert origin("::ffff:18.236.253.47") == ("18.236.253.0/24", True)
    assert origin("fd00:1:2:3::1") == ("fd00:1:2::/48", False)


def test_network_expires_a_prefix_not_seen_for_the_expiry() -> None:
    settings = ModelSettings(
        baseline_days=1, min_events=20, min_age_days=0, min_windows=3, seen_expiry_days=3
    )
    model = Behaviour(settings)
    feed(model, workdays(1, ip="192.0.2.10") + workdays(4, start=T0 + DAY, ip="198.51.100.17"))
    # 192.0.2/24 was last seen four days ago: new again.
    assert "model:new-network" in kinds(feed(model, [ct(T0 + 5 * DAY + 10 * HOUR, ip="192.0.2.10")]))


@pytest.fixture(scope="module")
def mmdb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mmdb_writer import MmdbU32, MMDBWriter
    from netaddr import IPSet  # type: ignore[import-untyped]

    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="ztai-test")
    writer.insert_network(
        IPSet(["198.51.100.0/24", "198.51.101.0/24"]),
        {"autonomous_system_number": MmdbU32(64500), "country": {"iso_code": "DE"}},
    )
    writer.insert_network(
        IPSet(["203.0.113.0/24"]), {"autonomous_system_number": MmdbU32(64511), "country": {"iso_code": "KP"}}
    )
    path = tmp_path_factory.mktemp("geo") / "test.mmdb"
    writer.to_db_file(str(path))
    return path


def test_a_lambda_user_agent_does_not_hide_a_new_network_when_a_database_is_given(mmdb: Path) -> None:
    """The Lambda marker is only the caller's word: a function's credentials used from an ASN the
    principal never called from are flagged (without a database, address pools hide it)."""
    lambda_agent = BOTO + " exec-env/AWS_Lambda_python3.13"
    model = Behaviour(FAST, geo=GeoLookup(mmdb))
    feed(model, workdays(3, ip="198.51.100.17", agent=lambda_agent))
    same_asn = feed(model, [ct(T0 + 3 * DAY + 10 * HOUR, ip="198.51.101.4", agent=lambda_agent)])
    assert "model:new-network" not in kinds(same_asn)
    other = feed(model, [ct(T0 + 3 * DAY + 13 * HOUR, ip="203.0.113.50", agent=lambda_agent)])
    assert [s.severity for s in other if s.rule == "model:new-network"] == ["medium"]
    blind = Behaviour(FAST)
    feed(blind, workdays(3, ip="198.51.100.17", agent=lambda_agent))
    assert "model:new-network" not in kinds(
        feed(blind, [ct(T0 + 3 * DAY + 13 * HOUR, ip="203.0.113.50", agent=lambda_agent)]))


def test_geo_lookup_reads_asn_and_country(mmdb: Path) -> None:
    geo = GeoLookup(mmdb)
    assert geo.lookup("198.51.100.9") == ("AS64500", "DE")
    assert geo.lookup("192.0.2.1") == (None, None)
    assert geo.lookup("035.249.253.232") == (None, None)
    assert geo.lookup("ec2.amazonaws.com") == (None, None)


def test_network_with_a_database_raises_a_new_asn_and_country_to_medium(mmdb: Path) -> None:
    model = Behaviour(FAST, geo=GeoLookup(mmdb))
    feed(model, workdays(3, ip="198.51.100.17"))
    same_asn = feed(model, [ct(T0 + 3 * DAY + 10 * HOUR, ip="198.51.101.4")])
    assert [s.severity for s in same_asn] == ["low"]
    other = feed(model, [ct(T0 + 3 * DAY + 13 * HOUR, ip="203.0.113.50")])
    assert [s.severity for s in other] == ["medium"]
    assert "network AS64511 and country KP new for it" in other[0].reason


def test_geo_refuses_a_missing_or_bad_database(tmp_path: Path) -> None:
    with pytest.raises(GeoError, match="no such file"):
        GeoLookup(tmp_path / "none.mmdb")
    bad = tmp_path / "bad.mmdb"
    bad.write_bytes(b"not a database at all")
    with pytest.raises(GeoError, match="not a MaxMind DB"):
        GeoLookup(bad)


# -- time of day ------------------------------------------------------------------------------------------


def test_rare_hour_flags_many_calls_in_an_hour_never_worked_not_a_stray_call() -> None:
    model = Behaviour(FAST)
    feed(model, workdays(4))
    stray = [ct(T0 + 4 * DAY + 3 * HOUR + i * 60_000) for i in range(3)]
    assert "model:rare-hour" not in kinds(feed(model, stray))
    night = [ct(T0 + 5 * DAY + 2 * HOUR + i * 60_000) for i in range(15)]
    signals = [s for s in feed(model, night) if s.rule == "model:rare-hour"]
    assert len(signals) == 6 and "between 02:00 and 02:59 UTC" in signals[0].reason


def test_rare_hour_forgets_old_hours() -> None:
    settings = ModelSettings(baseline_days=1, min_events=20, min_age_days=0, min_windows=3, half_life_days=1)
    model = Behaviour(settings)
    # Night shift for a week, then day shift for two: by then the nights are rare again.
    feed(model, workdays(7, hours=range(1, 5)))
    assert "model:rare-hour" not in kinds(feed(model, workdays(1, start=T0 + 7 * DAY, hours=range(2, 3))))
    feed(model, workdays(14, start=T0 + 8 * DAY))
    assert "model:rare-hour" in kinds(feed(model, workdays(1, start=T0 + 22 * DAY, hours=range(2, 3))))


# -- user agent -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("agent", "family"),
    [
        ("aws-cli/2.22.26 md/awscrt#0.23.4 ua/2.0 os/macos#24.2.0", "aws-cli/2"),
        ("aws-cli/1.18.0 Python/3.8", "aws-cli/1"),
        (BOTO, "Boto3/1"),
        ("Botocore/1.35.90 ua/2.0", "botocore/1"),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 Chrome/131.0.0.0 "
            "Safari/537.36",
            "browser:chrome",
        ),
        (
            "APN/1.0 HashiCorp/1.0 Terraform/1.5.7 terraform-provider-aws/5.82.2 aws-sdk-go-v2/1.32.7 "
            "pulumi-aws/6.66.2",
            "pulumi-aws/6",
        ),
        ("stratus-red-team_10e7edf3-5063-4eba-8842-68f83bb52d65", "stratus-red-team_#"),
        ("config.amazonaws.com", "service:config.amazonaws.com"),
        ("[aws-cli/2.15.0 Python/3.11]", "aws-cli/2"),
    ],
)
def test_agent_family_drops_versions(agent: str, family: str) -> None:
    assert agent_family(agent) == family


def test_agent_flags_a_new_family_not_a_new_version() -> None:
    model = Behaviour(FAST)
    feed(model, workdays(2))
    newer = BOTO.replace("1.35.90", "1.36.2")
    assert feed(model, [ct(T0 + 2 * DAY + 10 * HOUR, agent=newer)]) == []
    signals = feed(
        model, [ct(T0 + 2 * DAY + 11 * HOUR, agent="stratus-red-team_0a05817a-84d2-40d7-afde-8311715b1ee6")]
    )
    assert [s.rule for s in signals] == ["model:new-agent"] and signals[0].group == "stratus-red-team_#"


# -- credentials outside AWS and the VPC endpoints ---------------------------------------------------------


def _instance(role: str = "zero-trust-ai-prod-enclave-parent", delivery: str = "2.0") -> dict[str, Any]:
    return {
        "type": "AssumedRole",
        "principalId": "AROAPARENT:i-0a1b2c3d4e5f60718",
        "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/i-0a1b2c3d4e5f60718",
        "accountId": ACCOUNT,
        "accessKeyId": "ASIAPARENT",
        "sessionContext": {
            "sessionIssuer": {"type": "Role", "userName": role},
            "attributes": {"mfaAuthenticated": "false"},
            "ec2RoleDelivery": delivery,
        },
    }


def test_instance_credentials_used_from_a_public_address_without_endpoint_are_high() -> None:
    model = Behaviour(FAST)
    fleet = workdays(
        3,
        hours=range(24),
        per_hour=4,
        identity=_instance(),
        ip="10.22.1.9",
        endpoint=True,
        agent="aws-nitro-enclaves-sdk-c/0.4.1",
    )
    assert feed(model, fleet) == []
    stolen = feed(
        model,
        [
            ct(
                T0 + 3 * DAY + 10 * HOUR,
                "GetCallerIdentity",
                source="sts.amazonaws.com",
                identity=_instance(),
                ip="18.236.253.47",
                agent="aws-nitro-enclaves-sdk-c/0.4.1",
            )
        ],
    )
    by_rule = {s.rule: s for s in stolen}
    assert by_rule["model:instance-credentials-outside"].severity == "high"
    assert "18.236.253.47" in by_rule["model:instance-credentials-outside"].reason
    # The same call through the endpoint is the fleet's normal.
    assert (
        feed(
            model,
            [
                ct(
                    T0 + 3 * DAY + 11 * HOUR,
                    "GetObject",
                    identity=_instance(),
                    ip="10.22.1.9",
                    endpoint=True,
                    agent="aws-nitro-enclaves-sdk-c/0.4.1",
                )
            ],
        )
        == []
    )


def test_instance_credentials_from_a_nat_seen_in_the_baseline_are_learned() -> None:
    model = Behaviour(FAST)
    feed(model, workdays(3, hours=range(24), per_hour=4, identity=_instance(), ip="52.16.1.9"))
    assert "model:instance-credentials-outside" not in kinds(
        feed(model, [ct(T0 + 3 * DAY + 10 * HOUR, identity=_instance(), ip="52.16.1.77")])
    )


def test_imdsv1_delivery_is_flagged_when_the_fleet_requires_imdsv2() -> None:
    model = Behaviour(FAST)
    feed(model, workdays(2, identity=_instance(), ip="10.22.1.9", endpoint=True))
    record = ct(T0 + 2 * DAY + 10 * HOUR, identity=_instance(delivery="1.0"), ip="10.22.1.9", endpoint=True)
    assert "model:imdsv1" in kinds(feed(model, [record]))
    relaxed = Behaviour(ModelSettings(baseline_days=1, min_events=20, min_age_days=0, require_imdsv2=False))
    feed(relaxed, workdays(2, identity=_instance(), ip="10.22.1.9", endpoint=True))
    assert "model:imdsv1" not in kinds(feed(relaxed, [record]))


def test_a_role_that_always_came_through_endpoints_is_flagged_without_one() -> None:
    model = Behaviour(FAST)
    feed(model, workdays(4, ip="10.23.4.17", endpoint=True, per_hour=20))
    signals = feed(model, [ct(T0 + 4 * DAY + 10 * HOUR, ip="198.51.100.17")])
    assert "model:outside-endpoints" in kinds(signals)
    # A principal that mixes both (a curator at the office and on the VPN) is not.
    mixed = Behaviour(FAST)
    feed(mixed, workdays(4, ip="10.23.4.17", endpoint=True) + workdays(4, ip="198.51.100.17"))
    assert "model:outside-endpoints" not in kinds(
        feed(mixed, [ct(T0 + 4 * DAY + 10 * HOUR, ip="198.51.100.9")])
    )


# -- new API, failures ------------------------------------------------------------------------------------


def test_new_action_after_the_warm_up_and_new_service_is_medium() -> None:
    model = Behaviour(FAST)
    feed(model, workdays(2) + workdays(2, name="DescribeImages", source="ec2.amazonaws.com", session="bruno"))
    # Known to the role (bruno): not new for anna either.
    assert feed(model, [ct(T0 + 2 * DAY + 10 * HOUR, "DescribeImages", source="ec2.amazonaws.com")]) == []
    read = feed(model, [ct(T0 + 2 * DAY + 11 * HOUR, "ListBuckets")])
    assert [(s.rule, s.severity) for s in read] == [("model:new-action", "low")]
    bedrock = feed(
        model, [ct(T0 + 2 * DAY + 14 * HOUR, "InvokeModel", source="bedrock.amazonaws.com", read_only=False)]
    )
    assert [(s.rule, s.severity) for s in bedrock] == [("model:new-action", "medium")]
    assert "first call to bedrock.amazonaws.com" in bedrock[0].reason


def test_failures_burst_is_flagged_a_few_are_not() -> None:
    model = Behaviour(FAST)
    feed(model, workdays(2))
    few = [ct(T0 + 2 * DAY + 10 * HOUR + i, "GetObject", error="AccessDenied") for i in range(3)]
    assert "model:failures" not in kinds(feed(model, few))
    burst = [
        ct(
            T0 + 2 * DAY + 12 * HOUR + i * 1000,
            "GetPasswordData",
            source="ec2.amazonaws.com",
            error="Client.UnauthorizedOperation",
        )
        for i in range(30)
    ]
    signals = [s for s in feed(model, burst) if s.rule == "model:failures"]
    assert len(signals) == 21 and "Client.UnauthorizedOperation" in signals[0].reason


# -- new principals and IAM user keys ----------------------------------------------------------------------


def _user(key: str = "AKIA1JMTHE9ZMZMWG0MG") -> dict[str, Any]:
    return {
        "type": "IAMUser",
        "principalId": "AIDA45XCCHPPLELFTIIM",
        "arn": f"arn:aws:iam::{ACCOUNT}:user/christophe",
        "accountId": ACCOUNT,
        "accessKeyId": key,
        "userName": "christophe",
    }


def test_an_iam_user_after_the_baseline_is_high_and_says_why() -> None:
    model = Behaviour(FAST)
    feed(model, workdays(2))
    signals = feed(
        model,
        [
            ct(
                T0 + 2 * DAY + 10 * HOUR,
                "GetSecretValue",
                source="secretsmanager.amazonaws.com",
                identity=_user(),
                params={"secretId": "x"},
            )
        ],
    )
    by_rule = {s.rule: s for s in signals}
    assert by_rule["model:new-principal"].severity == "high"
    assert "this architecture has no IAM users" in by_rule["model:new-principal"].reason
    assert "AKIA1JMTHE9ZMZMWG0MG" in by_rule["model:long-term-key"].reason


def test_a_key_and_principal_in_use_in_the_baseline_are_not_new() -> None:
    model = Behaviour(FAST)
    feed(model, workdays(2, identity=_user()))
    signals = feed(model, [ct(T0 + 2 * DAY + 10 * HOUR, identity=_user())])
    assert [(s.rule, s.severity) for s in signals] == [("model:long-term-key", "medium")]
    assert "in use in the baseline" in signals[0].reason


def test_new_session_of_a_known_role_is_informational_a_new_role_without_mfa_medium() -> None:
    model = Behaviour(FAST)
    feed(model, workdays(2))
    session = feed(model, [ct(T0 + 2 * DAY + 10 * HOUR, session="dora")])
    assert [(s.rule, s.severity) for s in session] == [("model:new-principal", "informational")]
    identity = _instance("stratus-red-team-ec2-steal-credentials-role")
    role = feed(model, [ct(T0 + 2 * DAY + 11 * HOUR, identity=identity, ip="10.1.1.1", endpoint=True)])
    assert [(s.rule, s.severity) for s in role] == [("model:new-principal", "medium")]


def test_deviations_of_two_kinds_within_the_hour_are_high() -> None:
    model = Behaviour(FAST)
    feed(model, workdays(3))
    signals = feed(
        model,
        [
            ct(T0 + 3 * DAY + 10 * HOUR, ip="192.0.2.1"),
            ct(T0 + 3 * DAY + 10 * HOUR + 60_000, agent="curl/8.5.0", ip="198.51.100.17"),
        ],
    )
    assert [(s.rule, s.severity) for s in signals] == [
        ("model:new-network", "low"),
        ("model:new-agent", "high"),
    ]
    assert "together with new-network" in signals[1].reason


# -- the engine, gateway events -----------------------------------------------------------------------------


def test_engine_makes_one_finding_per_burst() -> None:
    engine = Engine([Behaviour(FAST)])
    records = workdays(4) + [ct(T0 + 4 * DAY + 10 * HOUR + i * 1000) for i in range(1200)]
    for index, record in enumerate(records):
        engine.process(event_from_record(record, f"t:{index}"))
    volume = [f for f in engine.finish() if f.rule == "model:volume"]
    assert len(volume) == 1 and volume[0].event_count > 1000


def test_gateway_clients_are_modelled_too() -> None:
    model = Behaviour(FAST)
    lines = [
        {
            "requestId": f"r{i}",
            "requestTime": T0 + (i // 8) * DAY + (9 + i % 8) * HOUR,
            "routeKey": "POST /predict",
            "status": 200,
            "sourceIp": "198.51.100.4",
            "clientId": "partner-a",
        }
        for i in range(8 * 4)
    ]
    assert feed(model, lines) == []
    odd = {
        "requestId": "x",
        "requestTime": T0 + 4 * DAY + 10 * HOUR,
        "routeKey": "POST /predict",
        "status": 200,
        "sourceIp": "192.0.2.99",
        "clientId": "partner-a",
    }
    assert kinds(feed(model, [odd])) == {"model:new-network"}


# -- state -------------------------------------------------------------------------------------------------


def _mixed_stream() -> list[dict[str, Any]]:
    records = (
        workdays(4, ip="10.23.4.17", endpoint=True, per_hour=20)
        + workdays(4, session="bruno")
        + workdays(3, hours=range(24), per_hour=4, identity=_instance(), ip="10.22.1.9", endpoint=True)
    )
    tail = (
        [ct(T0 + 4 * DAY + 10 * HOUR + i * 1000) for i in range(800)]
        + [
            ct(T0 + 4 * DAY + 11 * HOUR, ip="192.0.2.9", agent="curl/8"),
            ct(
                T0 + 4 * DAY + 12 * HOUR,
                "GetCallerIdentity",
                source="sts.amazonaws.com",
                identity=_instance(delivery="1.0"),
                ip="18.236.253.47",
            ),
        ]
        + [
            ct(
                T0 + 5 * DAY + 2 * HOUR + i * 1000,
                "GetPasswordData",
                source="ec2.amazonaws.com",
                error="AccessDenied",
                identity=_user(),
            )
            for i in range(15)
        ]
        # anna at 03:00 (her and her role's rare hour), listing in a loop (a rate burst), and
        # calling an API new for her role.
        + [
            ct(
                T0 + 5 * DAY + 3 * HOUR + i * 1000,
                "ListObjects",
                params={"bucketName": BUCKET},
                ip="10.23.4.17",
                endpoint=True,
            )
            for i in range(40)
        ]
        + [
            ct(
                T0 + 5 * DAY + 3 * HOUR + 50_000,
                "InvokeModel",
                source="bedrock.amazonaws.com",
                ip="10.23.4.17",
                endpoint=True,
                read_only=False,
            )
        ]
    )
    return sorted(records, key=lambda r: r["eventTime"]) + tail


def test_state_round_trip_gives_the_same_signals_after() -> None:
    records = _mixed_stream()
    half = len(records) - 950
    whole = Behaviour(FAST)
    expected = feed(whole, records)
    first = Behaviour(FAST)
    before = feed(first, records[:half])
    saved = json.loads(json.dumps(first.to_state()))
    resumed = Behaviour.from_state(saved, settings=FAST)
    after = feed(resumed, records[half:])
    assert before + after == expected
    assert {s.rule for s in after} >= {
        "model:volume",
        "model:new-network",
        "model:instance-credentials-outside",
        "model:failures",
        "model:new-principal",
        "model:new-agent",
        "model:long-term-key",
        "model:imdsv1",
        "model:rate",
        "model:rare-hour",
        "model:new-action",
    }
    assert json.loads(json.dumps(resumed.to_state())) == json.loads(json.dumps(whole.to_state()))


def test_state_is_bounded_by_the_caps() -> None:
    settings = ModelSettings(baseline_days=1, min_events=20, min_age_days=0, max_principals=3, max_items=4)
    model = Behaviour(settings)
    records = [
        ct(T0 + i * 60_000, session=f"s{i % 10}", ip=f"198.51.{i % 50}.1", name=f"Get{i % 9}")
        for i in range(2000)
    ]
    feed(model, records)
    state = model.to_state()
    assert len(state["principals"]) == 3
    for principal in state["principals"].values():
        assert (
            len(principal["networks"]) <= 4
            and len(principal["actions"]) <= 4
            and len(principal["rates"]) <= 4
        )


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda s: s.update(version=7), "version 7 is not 1"),
        (lambda s: s.update(principals=[]), "principals must be an object"),
        (lambda s: s.update(roles=None), "roles must be an object"),
        (lambda s: s.update(start="yesterday"), "start must be epoch milliseconds"),
        (lambda s: s.update(keys={"AKIA": "x"}), "keys must be an object of name -> epoch milliseconds"),
        (lambda s: next(iter(s["principals"].values())).update(hours=[1.0]), "hours must be a list of 24"),
        (lambda s: next(iter(s["principals"].values())).pop("first"), "'first'"),
        (lambda s: next(iter(s["principals"].values())).update(events=1.5), "events must be an integer"),
        (
            lambda s: next(iter(next(iter(s["principals"].values()))["rates"].values()))[7].__setitem__(
                0, -1
            ),
            "a statistic is",
        ),
        (
            lambda s: next(iter(s["principals"].values()))["rates"].update(x=[1, 2]),
            "rates\\['x'\\] must be a list of 9",
        ),
        (lambda s: next(iter(s["roles"].values())).update(hours="x"), "hours must be a list of 24"),
    ],
)
def test_bad_state_is_refused_by_name(mutate: Any, message: str) -> None:
    model = Behaviour(FAST)
    feed(model, workdays(2))
    state = json.loads(json.dumps(model.to_state()))
    mutate(state)
    with pytest.raises(ValueError, match=message):
        Behaviour.from_state(state, settings=FAST)


def test_state_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(ValueError, match="must be an object, not list"):
        Behaviour.from_state([], settings=FAST)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("half_life_days", 0, "half_life_days must be above 0"),
        ("sigmas", -1, "sigmas must be a number >= 0"),
        ("min_events", "many", "min_events must be a number >= 0"),
        ("vault_tables", ["x"], "vault_tables must be a tuple"),
        ("require_imdsv2", "yes", "require_imdsv2 must be true or false"),
        ("endpoint_share", 1.5, "endpoint_share must be in"),
    ],
)
def test_bad_settings_are_refused_by_name(field: str, value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ModelSettings(**{field: value})


# -- robustness ---------------------------------------------------------------------------------------------

_ODD = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.lists(st.text(max_size=5), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)


@settings(max_examples=300, deadline=None)
@given(
    fields=st.dictionaries(
        st.sampled_from(
            [
                "sourceIPAddress",
                "userAgent",
                "requestParameters",
                "additionalEventData",
                "errorCode",
                "vpcEndpointId",
                "readOnly",
                "userIdentity",
            ]
        ),
        _ODD,
    ),
    name=st.sampled_from(
        [
            "GetObject",
            "GetSecretValue",
            "BatchGetSecretValue",
            "GetParameters",
            "BatchGetItem",
            "Query",
            "RunInstances",
        ]
    ),
    source=st.sampled_from(
        [
            "s3.amazonaws.com",
            "secretsmanager.amazonaws.com",
            "ssm.amazonaws.com",
            "dynamodb.amazonaws.com",
            "ec2.amazonaws.com",
        ]
    ),
)
def test_odd_field_values_never_crash_a_model(fields: dict[str, Any], name: str, source: str) -> None:
    model = Behaviour(ModelSettings(baseline_days=0, min_events=0, min_age_days=0))
    record = ct(T0, name, source=source)
    record.update(fields)
    feed(model, [record, ct(T0 + 1000, name, source=source)])
    json.dumps(model.to_state())  # still JSON-safe


def test_a_late_event_counts_in_the_open_window() -> None:
    model = Behaviour(FAST)
    feed(model, workdays(4))
    late = [ct(T0 + 4 * DAY + 10 * HOUR + i * 1000) for i in range(600)] + [ct(T0 + 4 * DAY + 9 * HOUR)]
    signals = [s for s in feed(model, late) if s.rule == "model:volume"]
    assert "read 601 objects" in signals[-1].reason


def test_geo_without_maxminddb_says_what_to_install(monkeypatch: pytest.MonkeyPatch, mmdb: Path) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "maxminddb", None)  # makes `import maxminddb` raise ImportError
    with pytest.raises(GeoError, match="needs the maxminddb package"):
        GeoLookup(mmdb)


def test_gateway_refusals_burst_is_flagged() -> None:
    model = Behaviour(FAST)
    ok = [
        {
            "requestId": f"r{i}",
            "requestTime": T0 + i * HOUR,
            "routeKey": "POST /predict",
            "status": 200,
            "sourceIp": "198.51.100.4",
            "clientId": "partner-a",
        }
        for i in range(40)
    ]
    denied = [
        {
            "requestId": f"d{i}",
            "requestTime": T0 + 2 * DAY + i * 1000,
            "routeKey": "POST /predict",
            "status": "403",
            "sourceIp": "198.51.100.4",
            "clientId": "partner-a",
        }
        for i in range(12)
    ]
    signals = feed(model, ok + denied)
    assert [s.rule for s in signals] == ["model:failures"] * 3
    assert signals[0].principal == "client:partner-a" and "api:POST /predict 403" in signals[0].reason


def test_inference_events_learn_a_rate_per_model() -> None:
    model = Behaviour(FAST)
    from datetime import UTC, datetime

    def inference(ms: int, index: int) -> dict[str, Any]:
        moment = datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        return {
            "event": "inference",
            "time": moment,
            "requestId": f"i{index}",
            "clientId": "partner-a",
            "model": "ranker-v7",
            "rows": 10,
        }

    normal = [
        inference(T0 + day * DAY + hour * HOUR + i * 120_000, day * 1000 + hour * 10 + i)
        for day in range(4)
        for hour in range(9, 17)
        for i in range(3)
    ]
    assert feed(model, normal) == []
    burst = [inference(T0 + 4 * DAY + 10 * HOUR + i * 1000, 90_000 + i) for i in range(80)]
    signals = [s for s in feed(model, burst) if s.rule == "model:rate"]
    assert signals and signals[0].group == "inference:ranker-v7"
