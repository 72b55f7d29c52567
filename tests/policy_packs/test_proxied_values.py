"""Rules read properties as the analyzer hands them over: lists and maps wrapped in pulumi_policy's
read-only proxies (Sequence and Mapping, never `list` or `dict`). A check written against `list`
passes everything it should inspect when it runs under the engine; these tests run the rules on
proxied properties so such a check fails here first."""

from __future__ import annotations

from typing import Any

import pytest
from pulumi_policy.proxy import UNKNOWN_OBJECT_VALUE, unknown_checking_proxy

from tests.policy_packs.dynamodb.test_dynamodb_rules import VAULT
from ztpolicy.rule import Resource
from ztpolicy.rules.apigateway.api_route_authorized import ROUTE_V2, api_route_authorized
from ztpolicy.rules.dynamodb.dynamodb_deletion_protection import dynamodb_deletion_protection
from ztpolicy.rules.dynamodb.dynamodb_pitr_enabled import dynamodb_pitr_enabled
from ztpolicy.rules.dynamodb.dynamodb_table_encrypted_with_cmk import dynamodb_table_encrypted_with_cmk

TABLE = "aws:dynamodb/table:Table"


def proxied(value: Any) -> Any:
    """`value` as the analyzer wraps it (pulumi_policy.proxy), all the way down."""
    return unknown_checking_proxy(value)


def test_the_proxies_are_not_lists_or_dicts() -> None:
    # What makes the tests below meaningful.
    assert not isinstance(proxied([1]), list) and not isinstance(proxied({"a": 1}), dict)


def route(scopes: list[str]) -> Resource:
    props = {"routeKey": "POST /v1/infer", "authorizationType": "JWT", "authorizerId": "abc123",
             "authorizationScopes": scopes}
    return Resource(type=ROUTE_V2, name="route", urn=f"urn:pulumi:prod::p::{ROUTE_V2}::route",
                    props=proxied(props))


def test_route_scopes_are_read_through_the_proxy() -> None:
    assert api_route_authorized(route(["https://api.example.com/invoke"]), {}) == []
    [message] = api_route_authorized(route([]), {})
    assert "without authorizationScopes" in message


@pytest.mark.parametrize("check, replica, fragment", [
    (dynamodb_pitr_enabled, {"regionName": "eu-central-1", "pointInTimeRecovery": False},
     "no point-in-time recovery"),
    (dynamodb_deletion_protection, {"regionName": "eu-central-1", "deletionProtectionEnabled": False},
     "replica in eu-central-1"),
    (dynamodb_table_encrypted_with_cmk, {"regionName": "eu-central-1"}, "replica in eu-central-1"),
])
def test_table_replicas_are_read_through_the_proxy(check: Any, replica: dict[str, Any],
                                                   fragment: str) -> None:
    table = Resource(type=TABLE, name="vault", urn=f"urn:pulumi:prod::p::{TABLE}::vault",
                     props=proxied({**VAULT, "replicas": [replica]}))
    messages = check(table, {})
    assert any(fragment in message for message in messages), messages


@pytest.mark.parametrize("check, replica, fragment", [
    (dynamodb_pitr_enabled, {"regionName": "eu-central-1", "pointInTimeRecovery": False},
     "no point-in-time recovery"),
    (dynamodb_deletion_protection, {"regionName": "eu-central-1", "deletionProtectionEnabled": False},
     "replica in eu-central-1"),
    (dynamodb_table_encrypted_with_cmk, {"regionName": "eu-central-1"}, "replica in eu-central-1"),
])
def test_an_unknown_replica_does_not_hide_a_known_one(check: Any, replica: dict[str, Any],
                                                      fragment: str) -> None:
    # A preview: the first replica is not known yet; the second is, and violates.
    table = Resource(type=TABLE, name="vault", urn=f"urn:pulumi:prod::p::{TABLE}::vault",
                     props=proxied({**VAULT, "replicas": [UNKNOWN_OBJECT_VALUE, replica]}))
    messages = check(table, {})
    assert any(fragment in message for message in messages), messages
    # And the unknown replica alone is no violation.
    alone = Resource(type=TABLE, name="vault", urn=f"urn:pulumi:prod::p::{TABLE}::vault",
                     props=proxied({**VAULT, "replicas": [UNKNOWN_OBJECT_VALUE]}))
    assert check(alone, {}) == []
