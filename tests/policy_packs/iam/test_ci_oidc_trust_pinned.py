"""ci-oidc-trust-pinned (control: CI deploys, humans read), called directly and through the pack's
analyzer: a CI role pinned to one repository and environment passes; a wildcard over the
organisation or the repository, a pattern operator, a missing audience or subject, two
repositories or a second kind of principal are caught. And the exemption it grants: a CI role's
pinned trust is not a person's (iam-human-role-conditions leaves it), but an unpinned one is."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import PACK_DIR
from tests.policy_packs.test_rules import STACK
from ztai.export import analyzed_resources
from ztai.policy.analyzer import PolicyPackProcess, analyze, pack_environment
from ztai.policy.config import PolicyConfigError
from ztpolicy.iam import ROLE, people_trust
from ztpolicy.rule import Resource
from ztpolicy.rules import ALL_RULES
from ztpolicy.rules.iam.ci_oidc_trust_pinned import RULE, ci_oidc_trust_pinned
from ztpolicy.rules.iam.iam_human_role_conditions import iam_human_role_conditions

ACCOUNT = "111122223333"
GITHUB = "token.actions.githubusercontent.com"
PROVIDER = f"arn:aws:iam::{ACCOUNT}:oidc-provider/{GITHUB}"
REPO = "example-org/zero-trust-ai"
DEFAULTS = RULE.defaults()
HUMAN_DEFAULTS = next(rule for rule in ALL_RULES if rule.name == "iam-human-role-conditions").defaults()


def trust(conditions: dict[str, Any] | None = None, *, provider: str = PROVIDER,
          principal: dict[str, Any] | None = None) -> str:
    host = provider.split(":oidc-provider/", 1)[1]
    if conditions is None:
        conditions = {"StringEquals": {f"{host}:aud": "sts.amazonaws.com",
                                       f"{host}:sub": f"repo:{REPO}:environment:prod"}}
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": principal or {"Federated": provider},
        "Action": "sts:AssumeRoleWithWebIdentity", "Condition": conditions}]})


def role(document: str, tags: dict[str, str] | None = None, name: str = "deploy") -> Resource:
    return Resource(type=ROLE, name=name, urn=f"{STACK}{ROLE}::{name}",
                    props={"assumeRolePolicy": document, "maxSessionDuration": 3600,
                           "permissionsBoundary": f"arn:aws:iam::{ACCOUNT}:policy/b",
                           "tags": {"ztai:access": "ci"} if tags is None else tags})


def findings(resource: Resource, config: dict[str, Any] | None = None) -> list[str]:
    return ci_oidc_trust_pinned(resource, {**DEFAULTS, **(config or {})})


def test_a_role_pinned_to_one_repository_and_environment_passes() -> None:
    assert findings(role(trust())) == []
    several = {"StringEquals": {f"{GITHUB}:aud": ["sts.amazonaws.com"],
                                f"{GITHUB}:sub": [f"repo:{REPO}:pull_request",
                                                  f"repo:{REPO}:ref:refs/heads/main"]}}
    assert findings(role(trust(several))) == []


@pytest.mark.parametrize("conditions, fragment", [
    ({"StringEquals": {f"{GITHUB}:aud": "sts.amazonaws.com"},
      "StringLike": {f"{GITHUB}:sub": "repo:example-org/*"}}, "stringlike on"),
    ({"StringEquals": {f"{GITHUB}:aud": "sts.amazonaws.com"},
      "StringLike": {f"{GITHUB}:sub": f"repo:{REPO}:*"}}, "stringlike on"),
    ({"StringEquals": {f"{GITHUB}:aud": "sts.amazonaws.com", f"{GITHUB}:sub": "repo:example-org/*"}},
     "a wildcard in a StringEquals value"),
    ({"StringEquals": {f"{GITHUB}:aud": "sts.amazonaws.com"},
      "StringEqualsIfExists": {f"{GITHUB}:sub": f"repo:{REPO}:environment:prod"}}, "stringequalsifexists"),
    ({"StringEquals": {f"{GITHUB}:aud": "sts.amazonaws.com"},
      "ForAnyValue:StringEquals": {f"{GITHUB}:sub": f"repo:{REPO}:environment:prod"}},
     "foranyvalue:stringequals"),
    ({"StringEquals": {f"{GITHUB}:sub": f"repo:{REPO}:environment:prod"}},
     f"no StringEquals on {GITHUB}:aud"),
    ({"StringEquals": {f"{GITHUB}:aud": "sts.amazonaws.com"}}, f"no StringEquals on {GITHUB}:sub"),
    ({"StringEquals": {f"{GITHUB}:aud": "sts.amazonaws.com", f"{GITHUB}:sub": "example-org"}},
     "not a subject naming one repository"),
    ({"StringEquals": {f"{GITHUB}:aud": "sts.amazonaws.com",
                       f"{GITHUB}:sub": [f"repo:{REPO}:environment:prod",
                                         "repo:example-org/other:environment:prod"]}},
     "names 2 repositories"),
])
def test_each_unpinned_trust_is_caught(conditions: dict[str, Any], fragment: str) -> None:
    found = findings(role(trust(conditions)))
    assert any(fragment in problem for problem in found), found


def test_a_ci_role_trusted_by_anything_but_its_provider_is_caught() -> None:
    document = trust(principal={"Federated": PROVIDER, "AWS": f"arn:aws:iam::{ACCOUNT}:root"})
    assert any("besides the CI system's OIDC provider" in p for p in findings(role(document)))
    saml = f"arn:aws:iam::{ACCOUNT}:saml-provider/corp"
    assert any("not an OIDC provider" in p for p in findings(role(trust(principal={"Federated": saml}))))


def test_a_look_alike_tag_does_not_escape() -> None:
    wildcard = {"StringEquals": {"ci.example.com:aud": "x"},
                "StringLike": {"ci.example.com:sub": "*"}}
    other = f"arn:aws:iam::{ACCOUNT}:oidc-provider/ci.example.com"
    assert findings(role(trust(wildcard, provider=other), tags={"ztai:access": " CI "}))


def test_an_untagged_role_of_a_known_ci_issuer_is_held_too() -> None:
    wildcard = {"StringEquals": {f"{GITHUB}:aud": "sts.amazonaws.com"},
                "StringLike": {f"{GITHUB}:sub": "repo:example-org/*"}}
    assert findings(role(trust(wildcard), tags={}))


def test_peoples_oidc_provider_is_left_to_the_human_role_rules_unless_configured() -> None:
    people = f"arn:aws:iam::{ACCOUNT}:oidc-provider/login.example.com"
    document = trust({"StringEquals": {"login.example.com:aud": "ztai-client"}}, provider=people)
    assert findings(role(document, tags={"ztai:access": "human"})) == []
    assert findings(role(document, tags={}), {"ciIssuerHosts": ["login.example.com"]})


def test_unknown_or_unreadable_trusts_wait() -> None:
    assert findings(role("not json")) == []


# -- the exemption from the human-role conditions ------------------------------------------------
def test_a_pinned_ci_role_is_not_a_persons_but_an_unpinned_one_is() -> None:
    pinned = role(trust())
    assert people_trust(pinned) is None
    assert iam_human_role_conditions([pinned], HUMAN_DEFAULTS) == []
    unpinned = role(trust({"StringEquals": {f"{GITHUB}:aud": "sts.amazonaws.com"},
                           "StringLike": {f"{GITHUB}:sub": "repo:example-org/*"}}))
    assert people_trust(unpinned) is not None
    assert iam_human_role_conditions([unpinned], HUMAN_DEFAULTS)
    # Only the exact tag earns it: a pinned trust on a role tagged otherwise is still people's.
    assert people_trust(role(trust(), tags={"ztai:access": "CI"})) is not None
    assert people_trust(role(trust(), tags={})) is not None


def test_metadata() -> None:
    assert RULE.control == "CI deploys, humans read" and not RULE.suppressible


# -- through the analyzer ------------------------------------------------------------------------
PREFIX = "urn:pulumi:prod::zero-trust-ai::"


def entry(name: str, document: str) -> dict[str, Any]:
    values = {"name": name, "arn": f"arn:aws:iam::{ACCOUNT}:role/{name}", "assumeRolePolicy": document,
              "tags": {"ztai:access": "ci"}, "maxSessionDuration": 3600,
              "permissionsBoundary": f"arn:aws:iam::{ACCOUNT}:policy/ci-boundary"}
    return {"urn": f"{PREFIX}aws:iam/role:Role::{name}", "custom": True, "type": "aws:iam/role:Role",
            "id": name, "outputs": {"id": name, **values}, "inputs": values}


@pytest.fixture(scope="module")
def pack() -> Iterator[PolicyPackProcess]:
    with PolicyPackProcess(PACK_DIR, env=pack_environment("zero-trust-ai", "prod", {}, True)) as running:
        yield running


def test_the_analyzer_passes_the_pinned_role_and_catches_the_organisation_wildcard(
        pack: PolicyPackProcess) -> None:
    wildcard = trust({"StringEquals": {f"{GITHUB}:aud": "sts.amazonaws.com"},
                      "StringLike": {f"{GITHUB}:sub": "repo:example-org/*"}})
    deployment = {"version": 3, "deployment": {"resources": [
        entry("pinned", trust()), entry("whole-org", wildcard)]}}
    result = analyze(pack, analyzed_resources(deployment)[2], user_config=None, project="zero-trust-ai",
                     stack="prod")
    found = {(v.policy, v.urn.rsplit("::", 1)[-1]) for v in result.violations}
    assert ("ci-oidc-trust-pinned", "whole-org") in found
    assert not {v for v in found if v[1] == "pinned"}, found


def test_the_analyzer_refuses_an_exclusion_of_the_rule(pack: PolicyPackProcess) -> None:
    wildcard = trust({"StringEquals": {f"{GITHUB}:aud": "sts.amazonaws.com"},
                      "StringLike": {f"{GITHUB}:sub": "repo:example-org/*"}})
    deployment = {"version": 3, "deployment": {"resources": [entry("whole-org", wildcard)]}}
    config = {"ci-oidc-trust-pinned": {"exclusions": [
        {"resource": "whole-org", "reason": "the whole organisation deploys"}]}}
    with pytest.raises(PolicyConfigError, match="ci-oidc-trust-pinned cannot be suppressed"):
        analyze(pack, analyzed_resources(deployment)[2], user_config=config, project="zero-trust-ai",
                stack="prod")
