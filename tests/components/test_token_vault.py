"""TokenVault under Pulumi's mock monitor: the table's secure defaults, the IAM policies its grants
write (and what those policies allow, evaluated), and the KMS grants it asks of the key hierarchy."""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pulumi
import pulumi_aws as aws
import pytest

from components.keys import KeyHierarchy, KeyHierarchyArgs
from components.tags import register_standard_tags
from components.token_vault import DOMAIN_PATTERN, TokenVault, TokenVaultArgs
from ztai.preview.recorder import RecordedResource, RecordedStack, record
from ztai_runtime.tokenize import keys as runtime_keys
from ztai_runtime.tokenize import vault as runtime_vault

KEY_ARN = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
ARGS = TokenVaultArgs(environment="dev", owner="ml-platform", kms_key_arn=KEY_ARN)
TABLE = "aws:dynamodb/table:Table"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"


def build(args: TokenVaultArgs = ARGS, compose: Callable[[TokenVault], None] | None = None) -> RecordedStack:
    def program() -> None:
        register_standard_tags(args.environment, args.owner)  # as __main__.py does
        vault = TokenVault("token-vault", args)
        if compose is not None:
            compose(vault)

    return record(program, project="zero-trust-ai", stack="test", config={}, region="eu-west-1")


def named(stack: RecordedStack, name: str) -> RecordedResource:
    [resource] = [r for r in stack.resources if r.name == name]
    return resource


def role(name: str) -> aws.iam.Role:
    return aws.iam.Role(name, assume_role_policy=json.dumps({"Version": "2012-10-17", "Statement": []}))


def statements(resource: RecordedResource) -> list[dict[str, Any]]:
    statements: list[dict[str, Any]] = json.loads(resource.inputs["policy"])["Statement"]
    return statements


# A small evaluator of the identity policies the vault writes: Allow statements, Action lists,
# one Resource, `ForAllValues:StringLike` on dynamodb:LeadingKeys and `StringEqualsIfExists`.
# It answers the question IAM would for the requests the runtime makes.
def allowed(policy: list[dict[str, Any]], action: str, resource: str, leading_keys: list[str],
            context: dict[str, str] | None = None) -> bool:
    for statement in policy:
        if statement["Effect"] != "Allow" or action not in statement["Action"]:
            continue
        if statement["Resource"] != resource:
            continue
        conditions = statement.get("Condition", {})
        patterns = conditions.get("ForAllValues:StringLike", {}).get("dynamodb:LeadingKeys")
        if patterns is not None and not all(
                any(fnmatch.fnmatchcase(key, pattern) for pattern in patterns) for key in leading_keys):
            continue
        if_exists = conditions.get("StringEqualsIfExists", {})
        if any(key in (context or {}) and (context or {})[key] != value for key, value in if_exists.items()):
            continue
        return True
    return False


@pytest.fixture(scope="module")
def default_stack() -> RecordedStack:
    return build()


def test_table_is_secure_by_default(default_stack: RecordedStack) -> None:
    table = named(default_stack, "token-vault-table")
    assert table.type == TABLE and table.parent.endswith("TokenVault::token-vault")
    inputs = table.inputs
    assert inputs["name"] == "zero-trust-ai-dev-token-vault"
    assert (inputs["billingMode"], inputs["hashKey"]) == ("PAY_PER_REQUEST", "pk")
    assert inputs["attributes"] == [{"name": "pk", "type": "S"}]
    assert inputs["serverSideEncryption"] == {"enabled": True, "kmsKeyArn": KEY_ARN}
    assert inputs["pointInTimeRecovery"] == {"enabled": True, "recoveryPeriodInDays": 35}
    assert inputs["deletionProtectionEnabled"] is True
    assert "ttl" not in inputs and "streamEnabled" not in inputs
    assert inputs["tags"]["environment"] == "dev" and inputs["tags"]["ztai:purpose"] == "token-vault"
    assert table.protect is False


def test_component_is_typed_and_parents_the_table(default_stack: RecordedStack) -> None:
    component = named(default_stack, "token-vault")
    assert component.type == "zero-trust-ai:tokenization:TokenVault" and not component.custom
    assert named(default_stack, "token-vault-table").parent == component.urn


def test_prod_protects_the_table_and_dev_may_drop_deletion_protection() -> None:
    prod = named(build(replace(ARGS, environment="prod", protect=True)), "token-vault-table")
    assert prod.protect is True and prod.inputs["deletionProtectionEnabled"] is True
    assert prod.inputs["name"] == "zero-trust-ai-prod-token-vault"
    dev = named(build(replace(ARGS, deletion_protection=False)), "token-vault-table")
    assert dev.inputs["deletionProtectionEnabled"] is False


def test_the_table_uses_the_hierarchy_secrets_key() -> None:
    def program() -> None:
        keys = KeyHierarchy("keys", KeyHierarchyArgs(environment="dev", owner="o", region="eu-west-1",
                                                      two_person_purposes=()))
        TokenVault("token-vault", TokenVaultArgs(environment="dev", owner="o",
                                                 kms_key_arn=keys.key_arn("secrets")))
        keys.seal()

    stack = record(program, project="zero-trust-ai", stack="test", config={}, region="eu-west-1")
    sse = named(stack, "token-vault-table").inputs["serverSideEncryption"]
    assert sse == {"enabled": True, "kmsKeyArn": named(stack, "keys-secrets").outputs["arn"]}


@pytest.fixture(scope="module")
def granted() -> RecordedStack:
    def compose(vault: TokenVault) -> None:
        role("ingest")
        vault.grant_tokenize(role("tokenizer"))
        vault.grant_detokenize(role("support"), domains=["tenant-a"])
        vault.grant_detokenize(role("auditor"))

    return build(compose=compose)


def policy_of(stack: RecordedStack, kind: str, role_name: str) -> list[dict[str, Any]]:
    resource = named(stack, f"token-vault-{kind}-{role_name}")
    assert resource.type == ROLE_POLICY
    assert resource.inputs["role"] == named(stack, role_name).outputs["name"]
    return statements(resource)


def test_grants_name_the_table_arn_only(granted: RecordedStack) -> None:
    arn = named(granted, "token-vault-table").outputs["arn"]
    for kind, role_name in (("tokenize", "tokenizer"), ("detokenize", "support"), ("detokenize", "auditor")):
        policy = policy_of(granted, kind, role_name)
        assert {statement["Resource"] for statement in policy} == {arn}
        actions = {action for statement in policy for action in statement["Action"]}
        assert actions <= {"dynamodb:BatchGetItem", "dynamodb:PutItem"}
        assert not any("*" in action for action in actions)


def test_tokenizer_reads_lookups_and_writes_new_tokens_but_never_reads_a_token_item(
        granted: RecordedStack) -> None:
    arn = named(granted, "token-vault-table").outputs["arn"]
    policy = policy_of(granted, "tokenize", "tokenizer")
    lookup, token_item = "L#tenant-a#" + "ab" * 32, "T#tenant-a#tv1_" + "0" * 32
    assert allowed(policy, "dynamodb:BatchGetItem", arn, [lookup, "L#other#" + "cd" * 32])
    assert allowed(policy, "dynamodb:PutItem", arn, [lookup])
    assert allowed(policy, "dynamodb:PutItem", arn, [token_item])
    assert not allowed(policy, "dynamodb:BatchGetItem", arn, [token_item])
    assert not allowed(policy, "dynamodb:BatchGetItem", arn, [lookup, token_item])
    assert not allowed(policy, "dynamodb:PutItem", arn, [token_item], {"dynamodb:ReturnValues": "ALL_OLD"})
    for action in ("dynamodb:Scan", "dynamodb:Query", "dynamodb:DeleteItem", "dynamodb:UpdateItem"):
        assert not allowed(policy, action, arn, [])


def test_detokenizer_reads_token_items_of_its_domains_only(granted: RecordedStack) -> None:
    arn = named(granted, "token-vault-table").outputs["arn"]
    support = policy_of(granted, "detokenize", "support")
    assert allowed(support, "dynamodb:BatchGetItem", arn, ["T#tenant-a#tv1_" + "1" * 32])
    assert not allowed(support, "dynamodb:BatchGetItem", arn, ["T#tenant-b#tv1_" + "1" * 32])
    assert not allowed(support, "dynamodb:BatchGetItem", arn, ["L#tenant-a#" + "ab" * 32])
    assert not allowed(support, "dynamodb:PutItem", arn, ["T#tenant-a#tv1_" + "1" * 32])
    auditor = policy_of(granted, "detokenize", "auditor")
    assert allowed(auditor, "dynamodb:BatchGetItem", arn, ["T#tenant-b#tv1_" + "1" * 32])
    assert not allowed(auditor, "dynamodb:BatchGetItem", arn, ["L#tenant-b#" + "ab" * 32])


def test_a_role_without_a_grant_gets_no_policy(granted: RecordedStack) -> None:
    assert not [r for r in granted.resources if r.type == ROLE_POLICY and r.name.endswith("-ingest")]


def test_the_grants_fit_the_item_keys_the_runtime_writes(granted: RecordedStack) -> None:
    # The runtime's own key functions, so a change of layout on either side fails here.
    arn = named(granted, "token-vault-table").outputs["arn"]
    index_key = runtime_keys.DomainKey(runtime_keys.PURPOSE_VAULT_INDEX, "tenant-a", "arn", b"k" * 32)
    token = runtime_vault.new_vault_token()
    lookup = runtime_vault.lookup_item_key(index_key, "alice@example.com")
    token_item = runtime_vault.token_item_key("tenant-a", token)
    assert allowed(policy_of(granted, "tokenize", "tokenizer"), "dynamodb:BatchGetItem", arn, [lookup])
    assert allowed(policy_of(granted, "detokenize", "support"), "dynamodb:BatchGetItem", arn, [token_item])
    assert named(granted, "token-vault-table").inputs["hashKey"] == runtime_vault.PARTITION_KEY


def test_domain_rule_matches_the_runtime() -> None:
    assert DOMAIN_PATTERN.pattern == runtime_keys.DOMAIN_PATTERN.pattern


def test_encryption_context_names_match_the_runtime() -> None:
    from components.token_vault import CONTEXT_DOMAIN_KEY, CONTEXT_PURPOSE, CONTEXT_PURPOSE_KEY
    assert runtime_vault.encryption_context("d") == {CONTEXT_PURPOSE_KEY: CONTEXT_PURPOSE,
                                                     CONTEXT_DOMAIN_KEY: "d"}


def test_kms_grants_are_bound_to_the_vault_context_and_domains() -> None:
    def program() -> None:
        keys = KeyHierarchy("keys", KeyHierarchyArgs(environment="dev", owner="o", region="eu-west-1",
                                                      two_person_purposes=()))
        vault = TokenVault("token-vault", TokenVaultArgs(environment="dev", owner="o",
                                                         kms_key_arn=keys.key_arn("secrets")))
        vault.grant_tokenize(role("tokenizer"), keys=keys)
        vault.grant_detokenize(role("tenant-a-support"), domains=["tenant-a"], keys=keys)
        keys.seal()

    stack = record(program, project="zero-trust-ai", stack="test", config={}, region="eu-west-1")
    secrets_policy = statements(named(stack, "keys-secrets-policy"))
    by_sid = {statement["Sid"]: statement for statement in secrets_policy}
    decrypt = next(s for sid, s in by_sid.items() if sid.startswith("Decrypt"))
    assert decrypt["Principal"] == {"AWS": named(stack, "tenant-a-support").outputs["arn"]}
    assert decrypt["Condition"] == {"StringEquals": {
        "kms:EncryptionContext:zero-trust-ai:purpose": ["token-vault"],
        "kms:EncryptionContext:zero-trust-ai:domain": ["tenant-a"]}}
    generate = next(s for sid, s in by_sid.items() if sid.startswith("GenerateDataKey"))
    assert generate["Condition"] == {"StringEquals": {
        "kms:EncryptionContext:zero-trust-ai:purpose": ["token-vault"]}}


def test_kms_grants_through_the_key_hierarchy() -> None:
    def program() -> None:
        keys = KeyHierarchy("keys", KeyHierarchyArgs(environment="dev", owner="o", region="eu-west-1",
                                                      two_person_purposes=()))
        vault = TokenVault("token-vault", TokenVaultArgs(environment="dev", owner="o",
                                                         kms_key_arn=keys.key_arn("secrets")))
        vault.grant_tokenize(role("tokenizer"), keys=keys)
        vault.grant_detokenize(role("support"), keys=keys)
        keys.seal()

    stack = record(program, project="zero-trust-ai", stack="test", config={}, region="eu-west-1")
    tokenizer, support = named(stack, "tokenizer").outputs["arn"], named(stack, "support").outputs["arn"]

    def granted_actions(policy_name: str, principal: str, through_dynamodb: bool = False) -> set[str]:
        via = "dynamodb.eu-west-1.amazonaws.com"
        return {action for statement in statements(named(stack, policy_name))
                if statement["Principal"] == {"AWS": principal}
                and (statement.get("Condition", {}).get("StringEquals", {}).get("kms:ViaService") == via)
                == through_dynamodb
                for action in statement["Action"]}

    # Direct use: only what each role's library calls.
    assert granted_actions("keys-tokens-policy", tokenizer) == {"kms:GenerateMac", "kms:DescribeKey"}
    assert granted_actions("keys-secrets-policy", tokenizer) == {"kms:GenerateDataKey", "kms:DescribeKey"}
    assert granted_actions("keys-secrets-policy", support) == {"kms:Decrypt", "kms:DescribeKey"}
    assert granted_actions("keys-tokens-policy", support) == set()
    # Through DynamoDB only (the table's encryption at rest): the tokenizer's Decrypt is there,
    # never outside the ViaService condition.
    for principal in (tokenizer, support):
        through = granted_actions("keys-secrets-policy", principal, through_dynamodb=True)
        assert {"kms:Decrypt", "kms:GenerateDataKey", "kms:CreateGrant"} <= through


@pytest.mark.parametrize("args, message", [
    (replace(ARGS, kms_key_arn="arn:aws:kms:eu-west-1:111122223333:alias/aws/dynamodb"), "not a KMS key ARN"),
    (replace(ARGS, kms_key_arn="alias/zero-trust-ai/dev/secrets"), "not a KMS key ARN"),
    (replace(ARGS, point_in_time_recovery_days=0), "1 to 35"),
    (replace(ARGS, table_name="x"), "3-255 characters"),
    (replace(ARGS, owner=""), "owner must not be empty"),
])
def test_bad_arguments_are_refused(args: TokenVaultArgs, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build(args)


@pytest.mark.parametrize("compose, message", [
    (lambda vault: vault.grant_detokenize(role("r1"), domains=["bad#domain"]), "not a valid domain"),
    (lambda vault: vault.grant_detokenize(role("r2"), domains=[]), "domains is empty"),
    (lambda vault: [vault.grant_tokenize(r := role("r3")), vault.grant_tokenize(r)], "already granted"),
])
def test_bad_grants_are_refused(compose: Callable[[TokenVault], Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build(compose=compose)


def test_vault_outputs_are_outputs() -> None:
    # table_name / table_arn are what __main__ exports; they must be Outputs, not plain strings.
    def program() -> None:
        vault = TokenVault("token-vault", ARGS)
        assert isinstance(vault.table_name, pulumi.Output) and isinstance(vault.table_arn, pulumi.Output)

    record(program, project="zero-trust-ai", stack="test", config={}, region="eu-west-1")
