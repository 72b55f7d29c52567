"""CognitoApiIdentity under Pulumi's mock monitor: a pool nobody signs up to, one resource server
owning every scope, and one client-credentials app client per caller holding only its scopes;
bad input is refused before anything is declared."""

from __future__ import annotations

import hashlib
import re
from dataclasses import replace
from typing import Any

import pulumi
import pytest

from components.api_identity import (
    ApiClient,
    CognitoApiIdentity,
    CognitoApiIdentityArgs,
    unique_domain_prefix,
)
from components.tags import register_standard_tags
from ztai.preview.recorder import RecordedResource, RecordedStack, record

ARGS = CognitoApiIdentityArgs(
    environment="prod", owner="ml-platform", identifier="https://api.example.com",
    domain_prefix="api-example-com",
    scopes={"invoke": "first-party inference", "partner-acme": "routes of acme"},
    clients=[ApiClient("inference", ("invoke",)), ApiClient("partner-acme", ("partner-acme",))],
    deletion_protection=True, protect=True)


def build(args: CognitoApiIdentityArgs, seen: dict[str, Any] | None = None) -> RecordedStack:
    def program() -> None:
        register_standard_tags(args.environment, args.owner)  # as __main__.py does
        identity = CognitoApiIdentity("identity", args)
        if seen is not None:
            pulumi.Output.all(identity.issuer, identity.token_endpoint,
                              *identity.client_ids.values()).apply(
                lambda values: seen.update(issuer=values[0], token=values[1], ids=values[2:]))

    return record(program, project="zero-trust-ai", stack="prod", config={}, region="eu-west-1")


def of_type(stack: RecordedStack, token: str) -> list[RecordedResource]:
    return [r for r in stack.resources if r.type == token]


@pytest.fixture(scope="module")
def seen() -> dict[str, Any]:
    return {}


@pytest.fixture(scope="module")
def stack(seen: dict[str, Any]) -> RecordedStack:
    return build(ARGS, seen)


def test_pool_admits_no_sign_up_and_is_protected(stack: RecordedStack) -> None:
    [pool] = of_type(stack, "aws:cognito/userPool:UserPool")
    inputs = pool.inputs
    assert inputs["adminCreateUserConfig"]["allowAdminCreateUserOnly"] is True
    assert inputs["mfaConfiguration"] == "ON"
    assert inputs["softwareTokenMfaConfiguration"] == {"enabled": True}
    assert inputs["passwordPolicy"]["minimumLength"] >= 14
    assert inputs["accountRecoverySetting"]["recoveryMechanisms"] == [
        {"name": "admin_only", "priority": 1}]
    assert inputs["deletionProtection"] == "ACTIVE" and pool.protect
    # Only the pool is protected: a removed partner's client must be deletable.
    assert [r.name for r in stack.resources if r.protect] == ["identity-pool"]


def test_one_resource_server_owns_every_scope(stack: RecordedStack) -> None:
    [server] = of_type(stack, "aws:cognito/resourceServer:ResourceServer")
    assert server.inputs["identifier"] == "https://api.example.com"
    assert {s["scopeName"] for s in server.inputs["scopes"]} == {"invoke", "partner-acme"}


def test_each_client_is_client_credentials_with_only_its_scopes(stack: RecordedStack) -> None:
    clients = {c.inputs["name"]: c for c in of_type(stack, "aws:cognito/userPoolClient:UserPoolClient")}
    assert {name: c.inputs["allowedOauthScopes"] for name, c in clients.items()} == {
        "inference": ["https://api.example.com/invoke"],
        "partner-acme": ["https://api.example.com/partner-acme"]}
    [server] = of_type(stack, "aws:cognito/resourceServer:ResourceServer")
    for client in clients.values():
        inputs = client.inputs
        assert inputs["allowedOauthFlows"] == ["client_credentials"]
        assert inputs["allowedOauthFlowsUserPoolClient"] is True
        assert inputs["generateSecret"] is True and inputs["enableTokenRevocation"] is True
        assert inputs["explicitAuthFlows"] == ["ALLOW_REFRESH_TOKEN_AUTH"]
        # Short-lived tokens: 15 minutes at most, and no refresh token worth having.
        assert inputs["accessTokenValidity"] == 15 and inputs["idTokenValidity"] == 15
        assert inputs["tokenValidityUnits"]["accessToken"] == "minutes"
        assert inputs["refreshTokenValidity"] == 60
        assert inputs["tokenValidityUnits"]["refreshToken"] == "minutes"
        assert "callbackUrls" not in inputs
        assert server.urn in client.dependencies  # scopes exist before a client is allowed them


def test_issuer_token_endpoint_and_audiences(stack: RecordedStack, seen: dict[str, Any]) -> None:
    [pool] = of_type(stack, "aws:cognito/userPool:UserPool")
    assert seen["issuer"] == f"https://cognito-idp.eu-west-1.amazonaws.com/{pool.id}"
    # The derived prefix carries a suffix unique to the account, region, project and stack.
    suffix = hashlib.sha256(b"111122223333/eu-west-1/zero-trust-ai/prod").hexdigest()[:8]
    assert seen["token"] == (f"https://api-example-com-{suffix}.auth.eu-west-1.amazoncognito.com"
                             "/oauth2/token")
    [domain] = of_type(stack, "aws:cognito/userPoolDomain:UserPoolDomain")
    assert domain.inputs["domain"] == f"api-example-com-{suffix}"
    assert sorted(seen["ids"]) == sorted(
        c.id for c in of_type(stack, "aws:cognito/userPoolClient:UserPoolClient"))


def test_the_domain_suffix_is_stable_per_stack_and_differs_between_stacks() -> None:
    same = unique_domain_prefix("api-example-com", "111122223333", "eu-west-1", "zero-trust-ai", "prod")
    assert same == unique_domain_prefix("api-example-com", "111122223333", "eu-west-1", "zero-trust-ai",
                                        "prod")
    others = {unique_domain_prefix("api-example-com", *values) for values in (
        ("111122223333", "eu-west-1", "zero-trust-ai", "dev"),
        ("444455556666", "eu-west-1", "zero-trust-ai", "prod"),
        ("111122223333", "eu-central-1", "zero-trust-ai", "prod"),
        ("111122223333", "eu-west-1", "fork", "prod"))}
    assert same not in others and len(others) == 4
    assert re.fullmatch(r"api-example-com-[0-9a-f]{8}", same)


def test_a_prefix_set_by_hand_is_used_as_given() -> None:
    stack = build(replace(ARGS, unique_domain_suffix=False))
    [domain] = of_type(stack, "aws:cognito/userPoolDomain:UserPoolDomain")
    assert domain.inputs["domain"] == "api-example-com"


def test_a_derived_prefix_leaves_room_for_the_suffix() -> None:
    with pytest.raises(ValueError, match="1-54 lower-case letters"):
        build(replace(ARGS, domain_prefix="a" * 55))
    build(replace(ARGS, domain_prefix="a" * 55, unique_domain_suffix=False))  # 63 without it



def test_dev_pool_has_no_deletion_protection() -> None:
    dev = build(replace(ARGS, environment="dev", deletion_protection=False, protect=False))
    [pool] = of_type(dev, "aws:cognito/userPool:UserPool")
    assert pool.inputs["deletionProtection"] == "INACTIVE" and not pool.protect


@pytest.mark.parametrize("change, fragment", [
    ({"identifier": "http://api.example.com"}, "the API's https:// URL"),
    ({"domain_prefix": "my-cognito-pool"}, "Cognito refuses prefixes containing cognito"),
    ({"domain_prefix": "-api"}, "1-54 lower-case letters"),
    ({"scopes": {"bad/scope": "x"}, "clients": [ApiClient("c", ("bad/scope",))]},
     "scope 'bad/scope': printable ASCII"),
    ({"clients": []}, "clients: at least one"),
    ({"clients": [ApiClient("a", ())]}, "'a': at least one scope"),
    ({"clients": [ApiClient("a", ("nope",))]}, "scope 'nope' is not one of the resource server's"),
    ({"clients": [ApiClient("a", ("invoke",)), ApiClient("a", ("invoke",))]}, "declared twice"),
    ({"access_token_minutes": 2}, "access_token_minutes 2: 5 to 15"),
    ({"access_token_minutes": 16}, "access_token_minutes 16: 5 to 15"),
    ({"access_token_minutes": 60}, "access_token_minutes 60: 5 to 15"),
])
def test_bad_input_is_refused_before_anything_is_declared(change: dict[str, Any], fragment: str) -> None:
    declared: list[str] = []

    def program() -> None:
        try:
            CognitoApiIdentity("identity", replace(ARGS, **change))
        except ValueError as error:
            declared.append(str(error))

    stack = record(program, project="zero-trust-ai", stack="prod", config={}, region="eu-west-1")
    [message] = declared
    assert message.startswith("CognitoApiIdentity: ") and fragment in message
    assert not [r for r in stack.resources if r.type.startswith("aws:")]
