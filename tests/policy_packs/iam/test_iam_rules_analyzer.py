"""The IAM rules through the pack's gRPC analyzer, on a stack export whose properties are the
deployed outputs or, with no outputs recorded, the inputs: an access role with an open trust, a
long session and no boundary, an elevation role with a standing grant and a wildcard outside
break-glass are each found by their rule; the secure roles pass."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import PACK_DIR
from ztai.export import analyzed_resources
from ztai.policy.analyzer import PolicyPackProcess, analyze, pack_environment

PREFIX = "urn:pulumi:prod::zero-trust-ai::"
ACCOUNT = "111122223333"
BOUNDARY = f"arn:aws:iam::{ACCOUNT}:policy/ztai-boundary"
SAML = f"arn:aws:iam::{ACCOUNT}:saml-provider/corp-idp"
IAM_RULES = {"iam-role-trust-restricted", "iam-no-wildcard-action", "iam-human-role-conditions",
             "iam-role-permissions-boundary", "iam-role-session-duration", "jit-grant-expiry"}


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


SECURE_TRUST = policy({"Effect": "Allow", "Principal": {"Federated": SAML},
                       "Action": "sts:AssumeRoleWithSAML", "Condition": {"StringEquals": {"SAML:aud": "https://signin.aws.amazon.com/saml",
                                                      "aws:SourceVpce": "vpce-0123456789abcdef0"},
                                     "Bool": {"aws:MultiFactorAuthPresent": "true"}}})
EXPIRING = {"Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::training/raw/*",
            "Condition": {"DateLessThan": {"aws:CurrentTime": "2026-12-07T06:00:00Z"}}}


def role_entry(name: str, access: str, **props: Any) -> dict[str, Any]:
    values = {"name": name, "arn": f"arn:aws:iam::{ACCOUNT}:role/{name}", "assumeRolePolicy": SECURE_TRUST,
              "tags": {"ztai:access": access}, "permissionsBoundary": BOUNDARY, "maxSessionDuration": 3600,
              **props}
    return {"urn": f"{PREFIX}aws:iam/role:Role::{name}", "custom": True, "type": "aws:iam/role:Role",
            "id": name, "outputs": {"id": name, **values}, "inputs": values}


def export(*resources: dict[str, Any], where: str) -> dict[str, Any]:
    """A deployment with these resources, keeping only `where` (outputs, or inputs alone)."""
    if where == "inputs":
        resources = tuple({k: v for k, v in r.items() if k != "outputs"} for r in resources)
    return {"version": 3, "deployment": {"resources": list(resources)}}


@pytest.fixture(scope="module")
def pack() -> Iterator[PolicyPackProcess]:
    with PolicyPackProcess(PACK_DIR, env=pack_environment("zero-trust-ai", "prod", {}, True)) as running:
        yield running


def iam_findings(pack: PolicyPackProcess, document: dict[str, Any]) -> set[tuple[str, str]]:
    _, _, resources = analyzed_resources(document)
    result = analyze(pack, resources, user_config=None, project="zero-trust-ai", stack="prod")
    return {(v.policy, v.urn.rsplit("::", 1)[-1]) for v in result.mandatory_violations
            if v.policy in IAM_RULES}


@pytest.mark.parametrize("where", ["outputs", "inputs"])
def test_secure_access_roles_pass_through_the_analyzer(pack: PolicyPackProcess, where: str) -> None:
    document = export(
        role_entry("curator", "human"),
        role_entry("glass", "break-glass", inlinePolicies=[
            {"name": "all", "policy": policy({"Effect": "Allow", "Action": "*", "Resource": "*"})}]),
        role_entry("training-data-write", "jit-elevation",
                   inlinePolicies=[{"name": "grant", "policy": policy(EXPIRING)}]),
        where=where)
    assert iam_findings(pack, document) == set()


@pytest.mark.parametrize("where", ["outputs", "inputs"])
def test_each_insecure_access_role_is_caught_through_the_analyzer(pack: PolicyPackProcess,
                                                                  where: str) -> None:
    open_trust = policy({"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"})
    standing = {"Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::training/raw/*"}
    document = export(
        role_entry("curator", "human", assumeRolePolicy=open_trust, maxSessionDuration=43200,
                   permissionsBoundary=""),
        role_entry("engineer", "human", inlinePolicies=[
            {"name": "all", "policy": policy({"Effect": "Allow", "Action": "iam:*", "Resource": "*"})}]),
        role_entry("training-data-write", "jit-elevation",
                   inlinePolicies=[{"name": "grant", "policy": policy(standing)}]),
        where=where)
    assert iam_findings(pack, document) == {
        ("iam-role-trust-restricted", "curator"),
        ("iam-human-role-conditions", "curator"),
        ("iam-role-session-duration", "curator"),
        ("iam-role-permissions-boundary", "curator"),
        ("iam-no-wildcard-action", "engineer"),
        ("jit-grant-expiry", "training-data-write"),
    }


def _in(minutes: int) -> str:
    from datetime import UTC, datetime, timedelta

    return (datetime.now(UTC) + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


def trust_of(principal: dict[str, Any], condition: dict[str, Any], action: Any = "sts:AssumeRole") -> str:
    return policy({"Effect": "Allow", "Principal": principal, "Action": action, "Condition": condition})


ROOT = {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}
NETWORK = {"aws:SourceVpce": "vpce-0123456789abcdef0"}


@pytest.mark.parametrize("where", ["outputs", "inputs"])
def test_the_gaps_of_the_hostile_review_are_caught_through_the_analyzer(pack: PolicyPackProcess,
                                                                       where: str) -> None:
    """Near-wildcards, a far expiry, an MFA claimed in a request tag on a plain AssumeRole, and a
    role people assume without the tag; beside each, the secure variant passes."""
    granted = {"AWS": f"arn:aws:iam::{ACCOUNT}:role/curator"}
    document = export(
        # iam:P* reaches iam:PutRolePolicy; iam:Get* reaches nothing sensitive.
        role_entry("publisher", "human", inlinePolicies=[
            {"name": "near", "policy": policy({"Effect": "Allow", "Action": "iam:P*", "Resource": "*"})}]),
        role_entry("auditor", "human", inlinePolicies=[
            {"name": "reads", "policy": policy({"Effect": "Allow", "Action": "iam:Get*", "Resource": "*"})}]),
        # An elevation's trust open until 2099, and one open for the next hour.
        role_entry("far", "jit-elevation", assumeRolePolicy=trust_of(
            granted, {"DateLessThan": {"aws:CurrentTime": "2099-01-01T00:00:00Z"}})),
        role_entry("near", "jit-elevation", assumeRolePolicy=trust_of(
            granted, {"DateLessThan": {"aws:CurrentTime": _in(60)}})),
        # MFA "proven" by a tag the caller of AssumeRole sets itself; the principal's tag proves it.
        role_entry("claimed", "human", assumeRolePolicy=trust_of(
            ROOT, {"StringEquals": {"aws:RequestTag/mfa-authenticated": "true", **NETWORK}},
            ["sts:AssumeRole", "sts:TagSession"])),
        role_entry("chained", "human", assumeRolePolicy=trust_of(
            ROOT, {"StringEquals": {"aws:PrincipalTag/mfa-authenticated": "true", **NETWORK}})),
        # A SAML trust without the tag, with a long session; a service role without it passes.
        role_entry("untagged", "", tags={}, maxSessionDuration=43200),
        role_entry("worker", "", tags={}, permissionsBoundary="", assumeRolePolicy=trust_of(
            {"Service": "lambda.amazonaws.com"}, {"StringEquals": {"aws:SourceAccount": ACCOUNT}})),
        where=where)
    assert iam_findings(pack, document) == {
        ("iam-no-wildcard-action", "publisher"),
        ("jit-grant-expiry", "far"),
        ("iam-human-role-conditions", "claimed"),
        ("iam-human-role-conditions", "untagged"),
        ("iam-role-session-duration", "untagged"),
    }
