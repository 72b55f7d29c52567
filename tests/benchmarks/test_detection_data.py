"""The detection evaluation's data: the benign generator's shape and validity, and the attack
records moved into it with their ground truth."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from benchmarks.detection_data import (
    ACCOUNT,
    KEY_PURPOSES,
    PERSONAS,
    REGION,
    benign_activity,
    key_id,
    load_stratus,
    mixed,
    on_call_night,
    rehome,
)
from tests.support.datasets import stratus_red_team_records
from ztai_runtime.siem.ocsf import to_ocsf
from ztai_runtime.siem.schemas import validate

TRAIL_GROUP = "/zero-trust-ai/prod/cloudtrail"
# Five weeks from a Monday: two 1sts of the month, weekends, releases and the on-call night.
START = datetime(2026, 11, 23, tzinfo=UTC)
DAYS = 35
PER_DAY = 400


@cache
def _window() -> tuple[dict[str, Any], ...]:
    return tuple(benign_activity(start=START, days=DAYS, seed=11, events_per_day=PER_DAY))


def window() -> list[dict[str, Any]]:
    """The shared window (generated once; tests read it, none changes it)."""
    return list(_window())


def when(record: dict[str, Any]) -> datetime:
    return datetime.strptime(record["eventTime"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def role_of(record: dict[str, Any]) -> str:
    return str(record["userIdentity"].get("sessionContext", {}).get("sessionIssuer", {}).get("userName", ""))


# -- the benign generator -----------------------------------------------------------------------

def test_the_same_seed_gives_the_same_records_and_another_seed_others() -> None:
    first = list(benign_activity(start=START, days=3, seed=5, events_per_day=300))
    again = list(benign_activity(start=START, days=3, seed=5, events_per_day=300))
    other = list(benign_activity(start=START, days=3, seed=6, events_per_day=300))
    assert json.dumps(first) == json.dumps(again)
    assert {r["eventID"] for r in first}.isdisjoint({r["eventID"] for r in other})


def test_every_record_maps_to_a_valid_ocsf_event() -> None:
    classes: Counter[int] = Counter()
    for record in window():
        event = to_ocsf(json.dumps(record), log_group=TRAIL_GROUP)
        assert event is not None, record
        assert validate(event) == [], record
        classes[event["class_uid"]] += 1
    sign_ins = sum(1 for r in window() if r["eventName"] == "ConsoleLogin")
    assert sign_ins > 0
    assert classes == {6003: len(window()) - sign_ins, 3002: sign_ins}


def test_records_are_in_event_time_order_with_unique_ids_in_the_account_and_region() -> None:
    records = window()
    assert [r["eventTime"] for r in records] == sorted(r["eventTime"] for r in records)
    assert len({r["eventID"] for r in records}) == len(records)
    assert {r["recipientAccountId"] for r in records} == {ACCOUNT}
    assert {r["awsRegion"] for r in records} == {REGION}
    assert {r["eventVersion"] for r in records} == {"1.11"}
    assert when(records[0]) >= START and when(records[-1]) < START + timedelta(days=DAYS)
    for record in records:
        identity = record["userIdentity"]
        if identity["type"] == "AssumedRole":
            session = identity["arn"].rsplit("/", 1)[1]
            assert identity["principalId"].endswith(f":{session}")
            assert identity["accessKeyId"].startswith("ASIA")
            assert identity["sessionContext"]["sessionIssuer"]["accountId"] == ACCOUNT


def test_reads_dominate_and_calls_from_the_segments_go_through_endpoints() -> None:
    records = window()
    reads = sum(1 for r in records if r["readOnly"])
    assert reads / len(records) > 0.7
    fleet = [r for r in records if role_of(r) == "zero-trust-ai-prod-enclave-parent"]
    assert fleet and all(r["vpcEndpointId"].startswith("vpce-") for r in fleet)
    # The enclave's Decrypt of the weights key always carries its attestation.
    decrypts = [r for r in fleet if r["eventName"] == "Decrypt"]
    assert decrypts and all("recipient" in r["requestParameters"] for r in decrypts)


def test_the_volume_follows_events_per_day_on_weekdays_and_weekends_are_quieter() -> None:
    by_day = Counter(when(r).date() for r in window())
    weekdays = [n for day, n in by_day.items() if day.weekday() < 5]
    weekends = [n for day, n in by_day.items() if day.weekday() >= 5]
    assert len(weekdays) == 25 and len(weekends) == 10
    # Scheduled automation (release, rotation, on-call) comes on top of the personas' volume.
    assert sorted(weekdays)[len(weekdays) // 2] == pytest.approx(PER_DAY, rel=0.1)
    assert max(weekends) < 0.6 * min(weekdays)


def test_people_work_their_hours_in_their_time_zone() -> None:
    for persona in (p for p in PERSONAS if p.human):
        hours: Counter[int] = Counter()
        weekend = 0
        for record in window():
            if role_of(record) != persona.role or record["eventName"] == "ConsoleLogin":
                continue
            local = when(record) + timedelta(hours=persona.utc_offset)
            if local.weekday() >= 5:
                weekend += 1
            hours[local.hour] += 1
        start, end = persona.hours
        working = sum(n for hour, n in hours.items() if start <= hour < end)
        night = sum(n for hour, n in hours.items() if hour < start - 1 or hour > end)
        assert working > 20 * max(night, 1), (persona.name, hours)
        assert weekend < 0.1 * working, persona.name


def test_the_fleet_runs_round_the_clock() -> None:
    hours = Counter(when(r).hour for r in window() if role_of(r) == "zero-trust-ai-prod-enclave-parent")
    assert len(hours) == 24
    assert min(hours.values()) > 0.5 * max(hours.values())


def test_the_key_rotation_runs_on_the_first_of_each_month_only() -> None:
    rotations = [r for r in window() if r["eventName"] == "RotateKeyOnDemand"]
    assert {when(r).date().isoformat() for r in rotations} == {"2026-12-01"}
    # Each of the stack's symmetric keys once.
    assert len({r["requestParameters"]["keyId"] for r in rotations}) == len(rotations) == len(KEY_PURPOSES)
    assert {role_of(r) for r in rotations} == {"zero-trust-ai-prod-key-rotation-role"}
    # A window over two 1sts rotates twice.
    two = [r for r in benign_activity(start=datetime(2026, 12, 31, tzinfo=UTC), days=33, seed=2,
                                      events_per_day=10)
           if r["eventName"] == "RotateKeyOnDemand"]
    assert Counter(when(r).date().isoformat() for r in two) == {"2027-01-01": 6, "2027-02-01": 6}


def test_releases_come_from_the_ci_deployer_on_thursdays() -> None:
    deploys = [r for r in window() if role_of(r) == "zero-trust-ai-prod-deploy-workload"]
    assert deploys
    assert {when(r).weekday() for r in deploys} == {3}
    assert all(r["userIdentity"]["sessionContext"]["webIdFederationData"] for r in deploys)
    assert any(not r["readOnly"] for r in deploys)


def test_one_on_call_night_with_a_jit_key_admin_elevation() -> None:
    night = on_call_night(START, DAYS, 11)
    assert night is not None and night.weekday() < 5 and night >= (START + timedelta(days=7)).date()
    late = [r for r in window() if r["userIdentity"].get("arn", "").endswith("/hana.sato")]
    assert late and {when(r).date() for r in late} == {night}
    assert all(1 <= when(r).hour < 4 for r in late)
    assume = [r for r in window() if r["eventName"] == "AssumeRole"
              and r["requestParameters"]["roleArn"].endswith("role/zero-trust-ai-prod-jit-key-admin")]
    assert len(assume) == 1 and when(assume[0]).date() == night
    assert any(role_of(r) == "zero-trust-ai-prod-jit-key-admin" and r["eventName"] == "GetKeyPolicy"
               for r in late)


@pytest.mark.parametrize(("arguments", "message"), [
    ({"start": START, "days": 0, "seed": 1}, "days must be at least 1"),
    ({"start": datetime(2026, 11, 23), "days": 1, "seed": 1}, "timezone-aware"),
    ({"start": START, "days": 1, "seed": 1, "events_per_day": -1}, "events_per_day must be 0 or more"),
])
def test_bad_arguments_are_refused_by_name(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        next(benign_activity(**arguments))


# -- attack records moved in --------------------------------------------------------------------

def techniques() -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for name, record in stratus_red_team_records():
        grouped.setdefault(name.removeprefix("aws.").removesuffix(".json"), []).append(record)
    return grouped


def test_load_stratus_reads_the_dataset_by_technique(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no Stratus Red Team records"):
        load_stratus(tmp_path)
    record = {"eventTime": "2024-08-01T00:00:00Z", "eventID": "e-1"}
    (tmp_path / "aws.impact.example.json").write_text(json.dumps([record]), encoding="utf-8")
    (tmp_path / "README.md").write_text("not records", encoding="utf-8")
    assert load_stratus(tmp_path) == {"impact.example": [record]}


def test_rehome_keeps_every_event_id_order_and_spacing_and_moves_account_region_and_time() -> None:
    at = datetime(2026, 12, 9, 13, 0, tzinfo=UTC)
    for name, records in techniques().items():
        moved = rehome(records, account=ACCOUNT, region=REGION, start=at, seed=3)
        assert [r["eventID"] for r in moved] == [r["eventID"] for r in records], name
        before = [when(r) - when(records[0]) for r in records]
        after = [when(r) - when(moved[0]) for r in moved]
        assert before == after, name
        assert at <= min(map(when, moved)) < at + timedelta(minutes=1), name
        old_accounts = {r["recipientAccountId"] for r in records} - {ACCOUNT}
        text = json.dumps(moved)
        assert not any(account in text for account in old_accounts), name
        assert {r["awsRegion"] for r in moved} == {REGION}, name
        assert {r["recipientAccountId"] for r in moved} == {ACCOUNT}, name
        for record in moved:
            event = to_ocsf(json.dumps(record), log_group=TRAIL_GROUP)
            assert event is not None and validate(event) == [], (name, record["eventID"])
    # The originals are untouched.
    assert all(r["awsRegion"] != REGION for rs in techniques().values() for r in rs)


def test_rehome_refuses_records_without_event_time_or_id() -> None:
    with pytest.raises(ValueError, match="record 1 has no eventTime or eventID"):
        rehome([{"eventTime": "2024-08-01T00:00:00Z", "eventID": "a"}, {"eventTime": "2024-08-01T00:00:01Z"}],
               account=ACCOUNT, region=REGION, start=START, seed=1)
    assert rehome([], account=ACCOUNT, region=REGION, start=START, seed=1) == []


def test_mixed_interleaves_techniques_and_its_ground_truth_is_exact() -> None:
    benign = list(benign_activity(start=START, days=14, seed=4, events_per_day=200))
    chosen = techniques()
    at = {name: START + timedelta(days=7, hours=index * 3 % 150, minutes=index)
          for index, name in enumerate(sorted(chosen))}
    stream, truth = mixed(benign, chosen, at, seed=4)
    assert set(truth) == set(chosen)
    for name, records in chosen.items():
        assert truth[name] == [r["eventID"] for r in records]
    assert len(stream) == len(benign) + sum(len(r) for r in chosen.values())
    assert [r["eventTime"] for r in stream] == sorted(r["eventTime"] for r in stream)
    attack_ids = {event_id for ids in truth.values() for event_id in ids}
    benign_ids = {r["eventID"] for r in benign}
    assert {r["eventID"] for r in stream} == attack_ids | benign_ids
    assert attack_ids.isdisjoint(benign_ids)
    # Each technique's records sit where it was placed, in the stream's account and region.
    for name in chosen:
        placed = [r for r in stream if r["eventID"] in set(truth[name])]
        assert min(map(when, placed)) - at[name] < timedelta(minutes=1)
        assert {r["recipientAccountId"] for r in placed} == {ACCOUNT}
    # The same arguments give the same stream.
    again, _ = mixed(benign, chosen, at, seed=4)
    assert json.dumps(again) == json.dumps(stream)


def test_mixed_refuses_a_technique_without_a_time_and_duplicate_event_ids() -> None:
    record = {"eventTime": "2024-08-01T00:00:00Z", "eventID": "e-1", "awsRegion": "x-1r"}
    with pytest.raises(ValueError, match="no start time in `at` for: b"):
        mixed([], {"a": [record], "b": [record]}, {"a": START})
    with pytest.raises(ValueError, match="eventID e-1 appears twice"):
        mixed([dict(record)], {"a": [record]}, {"a": START})


def test_only_the_enclave_decrypts_with_the_weights_key_and_only_the_pipeline_writes_the_ami() -> None:
    weights = [r for r in window() if r["eventSource"] == "kms.amazonaws.com"
               and (r["requestParameters"] or {}).get("keyId", "").endswith(key_id(ACCOUNT, "model-weights"))]
    by_role = Counter((role_of(r), r["eventName"]) for r in weights)
    assert {role for (role, name) in by_role if name == "Decrypt"} == {"zero-trust-ai-prod-enclave-parent"}
    assert by_role[("zero-trust-ai-prod-model-publisher", "GenerateDataKey")] > 0
    writes = [r for r in window() if r["eventName"] == "PutParameter"]
    assert writes and {role_of(r) for r in writes} == {"AWSServiceRoleForImageBuilder"}
    assert {when(r).weekday() for r in writes} == {1}
    refreshes = [r for r in window() if r["eventName"] == "StartInstanceRefresh"]
    assert len(refreshes) == len(writes)
