"""KeyHierarchy under Pulumi's mock monitor: keys, aliases, rotation and the policies it writes."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pulumi_aws as aws
import pytest

from components.keys import (
    ADMIN_ACTIONS,
    DOCUMENT_ACTIONS,
    PURPOSES,
    TWO_PERSON_ACTIONS,
    EnclaveMeasurements,
    KeyHierarchy,
    KeyHierarchyArgs,
    _Grant,
    _policy_document,
    _through_s3_for_bucket,
)
from tests.support.key_policy import Request, evaluate
from ztai.preview.recorder import RecordedResource, RecordedStack, record

# Two-person key administration has tests of its own (below); elsewhere the keys have none.
ARGS = KeyHierarchyArgs(environment="dev", owner="ml-platform", region="eu-west-1",
                        two_person_purposes=())
USE = ("kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:ReEncrypt", "kms:GenerateMac",
       "kms:VerifyMac", "kms:CreateGrant")


def build(args: KeyHierarchyArgs = ARGS,
          compose: Callable[[KeyHierarchy], object] | None = None) -> RecordedStack:
    def program() -> None:
        keys = KeyHierarchy("keys", args)
        if compose is not None:
            compose(keys)

    return record(program, project="zero-trust-ai", stack="test", config={}, region=args.region)


def named(stack: RecordedStack, name: str) -> RecordedResource:
    [resource] = [r for r in stack.resources if r.name == name]
    return resource


def statements(resource: RecordedResource) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in json.loads(resource.inputs["policy"])["Statement"]}


def role(name: str) -> aws.iam.Role:
    return aws.iam.Role(name, assume_role_policy=json.dumps({"Version": "2012-10-17", "Statement": []}))


@pytest.fixture(scope="module")
def unsealed() -> RecordedStack:
    return build()


def test_one_key_and_alias_per_purpose(unsealed: RecordedStack) -> None:
    for purpose in PURPOSES:
        key = named(unsealed, f"keys-{purpose}")
        assert key.inputs["deletionWindowInDays"] == 30
        assert key.inputs["tags"]["ztai:key-purpose"] == purpose
        alias = named(unsealed, f"keys-{purpose}-alias")
        assert alias.inputs["name"] == f"alias/zero-trust-ai/dev/{purpose}"
        assert alias.inputs["targetKeyId"] == key.outputs["keyId"]


def test_symmetric_keys_rotate_every_90_days_and_the_hmac_key_is_hmac(unsealed: RecordedStack) -> None:
    for purpose in ("training-data", "model-weights", "logs", "secrets"):
        key = named(unsealed, f"keys-{purpose}")
        assert (key.inputs["enableKeyRotation"], key.inputs["rotationPeriodInDays"]) == (True, 90)
        assert key.inputs["customerMasterKeySpec"] == "SYMMETRIC_DEFAULT"
    tokens = named(unsealed, "keys-tokens")
    assert (tokens.inputs["customerMasterKeySpec"], tokens.inputs["keyUsage"]) == (
        "HMAC_256", "GENERATE_VERIFY_MAC")
    assert tokens.inputs["enableKeyRotation"] is False  # KMS cannot rotate HMAC keys


def test_an_unsealed_hierarchy_is_usable_by_nobody(unsealed: RecordedStack) -> None:
    assert not [r for r in unsealed.resources if r.type == "aws:kms/keyPolicy:KeyPolicy"]
    for purpose in PURPOSES:
        key = named(unsealed, f"keys-{purpose}")
        # The logs key admits CloudWatch Logs from its creation (checked below), no role.
        admin, *service = statements(key).values()
        assert [s["Principal"] for s in service] == (
            [{"Service": "logs.eu-west-1.amazonaws.com"}] if purpose == "logs" else [])
        assert admin["Principal"] == {"AWS": "arn:aws:iam::111122223333:root"}
        assert admin["Action"] == list(ADMIN_ACTIONS)
        assert not any(a.startswith(USE) or "*" in a for a in admin["Action"])
        assert "bypassPolicyLockoutSafetyCheck" not in key.inputs


def test_grants_name_the_role_and_only_on_their_key() -> None:
    def compose(keys: KeyHierarchy) -> None:
        trainer = role("trainer")
        keys.grant_decrypt("training-data", trainer)
        keys.grant_encrypt("model-weights", trainer)
        keys.grant_generate_mac(role("tokenizer"))
        keys.seal()

    stack = build(compose=compose)
    trainer_arn = named(stack, "trainer").outputs["arn"]
    decrypt = statements(named(stack, "keys-training-data-policy"))["Decrypt0"]
    assert decrypt["Principal"] == {"AWS": trainer_arn}
    assert decrypt["Action"] == ["kms:Decrypt", "kms:DescribeKey"]
    encrypt = statements(named(stack, "keys-model-weights-policy"))["Encrypt0"]
    assert "kms:Decrypt" not in encrypt["Action"]
    mac = statements(named(stack, "keys-tokens-policy"))["GenerateMac0"]
    assert mac["Action"] == ["kms:GenerateMac", "kms:DescribeKey"]
    assert set(statements(named(stack, "keys-secrets-policy"))) == {"AdministerWithoutUse"}
    # A key is created without statements naming roles of the stack (KMS refuses a principal that
    # does not exist yet); the KeyPolicy, which waits for the role, writes them and owns the
    # policy from then on.
    key = named(stack, "keys-training-data")
    assert set(statements(key)) == {"AdministerWithoutUse"}
    assert named(stack, "trainer").urn in named(stack, "keys-training-data-policy").dependencies


def test_the_logs_key_admits_cloudwatch_logs_from_its_creation_for_the_stack_prefixes_only() -> None:
    def compose(keys: KeyHierarchy) -> None:
        keys.grant_cloudwatch_logs("/zero-trust-ai/dev/vpc-flow-logs/")
        keys.seal()

    stack = build(compose=compose)
    expected = {"ArnLike": {"kms:EncryptionContext:aws:logs:arn": [
        f"arn:aws:logs:eu-west-1:111122223333:log-group:{prefix}*" for prefix in (
            "/zero-trust-ai/dev/", "/aws/lambda/zero-trust-ai-dev-", "/aws/imagebuilder/zero-trust-ai-dev-",
            "/aws/apigateway/zero-trust-ai-dev-", "/aws/vendedlogs/zero-trust-ai-dev-")]}}
    # In the policy the key is created with (a log group never waits for the sealed policy), and
    # still in the sealed one (a later deploy adding a log group does not race it either).
    for resource in ("keys-logs", "keys-logs-policy"):
        logs = statements(named(stack, resource))["CloudWatchLogs0"]
        assert logs["Principal"] == {"Service": "logs.eu-west-1.amazonaws.com"}
        assert logs["Condition"] == expected
    # Another environment's log groups, or any other name, are not admitted, and a prefix
    # outside the admitted ones is refused at composition.
    with pytest.raises(ValueError, match="'/aws/lambda/other-' is not under the prefixes"):
        build(compose=lambda keys: keys.grant_cloudwatch_logs("/aws/lambda/other-"))
    with pytest.raises(ValueError, match="log_group_prefixes: 'logs' is not"):
        build(replace(ARGS, log_group_prefixes=("logs",)))


def test_administrators_and_break_glass() -> None:
    admins = ("arn:aws:iam::111122223333:role/kms-admin",)
    glass = "arn:aws:iam::111122223333:role/break-glass"
    stack = build(replace(ARGS, administrator_role_arns=admins, break_glass_role_arn=glass,
                          protect=True), compose=lambda keys: keys.seal())
    policy = statements(named(stack, "keys-secrets-policy"))
    assert policy["AdministerWithoutUse"]["Principal"] == {"AWS": list(admins)}
    assert policy["BreakGlass"] == {
        "Sid": "BreakGlass", "Effect": "Allow", "Principal": {"AWS": glass}, "Action": "kms:*",
        "Resource": "*", "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"}}}
    assert all(named(stack, f"keys-{purpose}").protect for purpose in PURPOSES)


@pytest.mark.parametrize("compose, error, message", [
    (lambda keys: keys.grant_decrypt("weights", role("r1")), ValueError, "unknown key purpose"),
    (lambda keys: keys.grant_decrypt("tokens", role("r2")), ValueError, "do not fit the tokens key"),
    (lambda keys: [keys.seal(), keys.grant_decrypt("secrets", role("r3"))],
     RuntimeError, "grant after seal"),
])
def test_misuse_is_refused(compose: Callable[[KeyHierarchy], Any], error: type[Exception],
                           message: str) -> None:
    with pytest.raises(error, match=message):
        build(compose=compose)


def test_deletion_window_outside_kms_limits_is_refused() -> None:
    with pytest.raises(ValueError, match="deletion_window_in_days must be 7 to 30"):
        build(replace(ARGS, deletion_window_in_days=3))



def test_replicas_carry_the_same_policy_rendered_for_their_region() -> None:
    def compose(keys: KeyHierarchy) -> None:
        keys.grant_cloudwatch_logs("/zero-trust-ai/dev/")
        keys.grant_decrypt("secrets", role("reader"))
        keys.seal()

    stack = build(replace(ARGS, replica_regions=("eu-central-1",)), compose=compose)
    primary = named(stack, "keys-logs")
    assert primary.inputs["multiRegion"] is True and primary.id.startswith("mrk-")
    replica = named(stack, "keys-logs-eu-central-1")
    assert replica.inputs["region"] == "eu-central-1"
    assert replica.inputs["primaryKeyArn"] == primary.outputs["arn"]
    assert replica.outputs["keyId"] == primary.id  # replicas share the mrk- id
    replica_logs = statements(named(stack, "keys-logs-eu-central-1-policy"))["CloudWatchLogs0"]
    assert replica_logs["Principal"] == {"Service": "logs.eu-central-1.amazonaws.com"}
    assert all(":logs:eu-central-1:" in arn for arn in replica_logs["Condition"]["ArnLike"][
        "kms:EncryptionContext:aws:logs:arn"])
    replica_secrets = statements(named(stack, "keys-secrets-eu-central-1-policy"))
    assert replica_secrets["Decrypt0"]["Principal"] == {"AWS": named(stack, "reader").outputs["arn"]}
    alias = named(stack, "keys-secrets-eu-central-1-alias")
    assert (alias.inputs["region"], alias.inputs["name"]) == ("eu-central-1",
                                                             "alias/zero-trust-ai/dev/secrets")


@pytest.mark.parametrize("regions, message", [
    (("eu-west-1",), "exclude the primary region"),
    (("eu-central-1", "eu-central-1"), "must be distinct"),
    (("cn-north-1",), "not a known region of the aws partition"),
])
def test_bad_replica_regions_are_refused(regions: tuple[str, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build(replace(ARGS, replica_regions=regions))


def test_use_through_a_service_is_conditioned_and_table_creation_uses_only_through_dynamodb() -> None:
    from ztpolicy.rules.kms.kms_key_policy_least_privilege import document_problems

    admins = ("arn:aws:iam::111122223333:role/deployer",)
    table = "zero-trust-ai-dev-token-vault"

    def compose(keys: KeyHierarchy) -> None:
        keys.grant_use_through_service("secrets", role("tokenizer"), "dynamodb")
        keys.seal()

    stack = build(replace(ARGS, administrator_role_arns=admins, dynamodb_tables={"secrets": [table]}),
                  compose=compose)
    policy = statements(named(stack, "keys-secrets-policy"))
    via = {"kms:ViaService": "dynamodb.eu-west-1.amazonaws.com", "kms:CallerAccount": "111122223333"}
    through = policy["ThroughDynamodb3"]
    assert through["Condition"] == {"StringEquals": via}
    assert "kms:Decrypt" in through["Action"] and "kms:CreateGrant" not in through["Action"]
    assert policy["GrantThroughDynamodb4"]["Action"] == ["kms:CreateGrant"]
    assert policy["GrantThroughDynamodb4"]["Condition"] == {
        "StringEquals": via, "Bool": {"kms:GrantIsForAWSResource": "true"}}
    # What DynamoDB asks of the table's creator (KMS Developer Guide): describe, grant, and the
    # data-key actions, the last only for the named table; in the policy the key is created with.
    created = statements(named(stack, "keys-secrets"))
    describe, grant, use = (created[f"CreateDynamodbTables{sid}"] for sid in ("Describe0", "Grant1", "Use2"))
    assert [policy[f"CreateDynamodbTables{sid}"] for sid in ("Describe0", "Grant1", "Use2")] == [
        describe, grant, use]
    assert not [sid for sid in created if "Through" in sid]  # the tokenizer's: sealed policy only
    for statement in (describe, grant, use):
        assert statement["Principal"] == {"AWS": list(admins)}
    assert describe["Action"] == ["kms:DescribeKey"] and describe["Condition"] == {"StringEquals": via}
    assert grant["Action"] == ["kms:CreateGrant"]
    assert grant["Condition"]["Bool"] == {"kms:GrantIsForAWSResource": "true"}
    assert set(use["Action"]) == {"kms:Encrypt", "kms:Decrypt", "kms:ReEncryptFrom", "kms:ReEncryptTo",
                                  "kms:GenerateDataKey", "kms:GenerateDataKeyWithoutPlaintext"}
    assert use["Condition"] == {"StringEquals": {
        **via, "kms:EncryptionContext:aws:dynamodb:tableName": [table]}}
    # The administrators use the key only through DynamoDB for that table, and the pack's
    # least-privilege rule accepts exactly that...
    document = json.loads(named(stack, "keys-secrets-policy").inputs["policy"])
    assert document_problems(document, "secrets", set()) == []
    # ...and nothing looser: without the table's context, with a pattern, or with a wildcard
    # action, it is administration plus use.
    loosenings: list[Callable[[dict[str, Any]], Any]] = [
        lambda s: s["Condition"]["StringEquals"].pop("kms:EncryptionContext:aws:dynamodb:tableName"),
        lambda s: s["Condition"]["StringEquals"].update(
            {"kms:EncryptionContext:aws:dynamodb:tableName": ["zero-trust-ai-*"]}),
        lambda s: s.update(Action=["kms:ReEncrypt*", "kms:Decrypt"])]
    for loosen in loosenings:
        loosened = json.loads(json.dumps(use))
        loosen(loosened)
        document["Statement"] = [*(s for s in policy.values() if s != use), loosened]
        problems = document_problems(document, "secrets", set())
        assert any(f"lets {admins[0]} administer the key" in problem for problem in problems), problems


@pytest.mark.parametrize("tables, message", [
    ({"model-weights": ["t-1"]}, "the model-weights key cannot encrypt a table"),
    ({"tokens": ["t-1"]}, "the tokens key cannot encrypt a table"),
    ({"secrets": []}, "name each table"),
    ({"secrets": ["zero-trust-ai-*"]}, "name each table"),
])
def test_table_creation_needs_a_table_key_and_named_tables(tables: dict[str, list[str]],
                                                           message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build(replace(ARGS, dynamodb_tables=tables))


# -- attested decryption ----------------------------------------------------------------------------
PCRS = {"pcr0": "a1" * 48, "pcr1": "b2" * 48, "pcr2": "c3" * 48}
# An attested key needs named administrators (seal() refuses the account root).
ADMINISTERED = replace(ARGS, administrator_role_arns=("arn:aws:iam::111122223333:role/kms-admin",))


def test_an_attested_key_administered_by_the_account_root_is_refused() -> None:
    def compose(keys: KeyHierarchy) -> None:
        keys.grant_decrypt_with_attestation("model-weights", role("parent"), EnclaveMeasurements(**PCRS))
        keys.seal()

    with pytest.raises(ValueError, match=r"model-weights key decrypts only with enclave attestation, "
                                         r"but its administrators would be the account root.*"
                                         r"kms:PutKeyPolicy.*administrator_role_arns"):
        build(compose=compose)
    # Named administrators: sealed, and the root is not given the key's administration.
    policy = statements(named(build(ADMINISTERED, compose=compose), "keys-model-weights-policy"))
    assert policy["AdministerWithoutUse"]["Principal"] == {
        "AWS": ["arn:aws:iam::111122223333:role/kms-admin"]}


def test_attested_decrypt_allows_the_role_only_with_the_measurements_and_denies_the_rest() -> None:
    measurements = EnclaveMeasurements(**PCRS, pcr8="D4" * 48)

    def compose(keys: KeyHierarchy) -> None:
        keys.grant_decrypt_with_attestation("model-weights", role("parent"), measurements)
        keys.seal()

    stack = build(ADMINISTERED, compose=compose)
    parent = {"AWS": named(stack, "parent").outputs["arn"]}
    policy = statements(named(stack, "keys-model-weights-policy"))
    absent = {"Null": {"kms:RecipientAttestation:PCR0": "true"}}
    assert policy["DecryptWithAttestation0"] == {
        "Sid": "DecryptWithAttestation0", "Effect": "Allow", "Principal": parent,
        "Action": ["kms:Decrypt"], "Resource": "*",
        "Condition": {"StringEqualsIgnoreCase": {
            "kms:RecipientAttestation:PCR0": "a1" * 48, "kms:RecipientAttestation:PCR1": "b2" * 48,
            "kms:RecipientAttestation:PCR2": "c3" * 48, "kms:RecipientAttestation:PCR8": "d4" * 48}}}
    assert policy["DenyWithoutAttestation1"] == {
        "Sid": "DenyWithoutAttestation1", "Effect": "Deny", "Principal": parent,
        "Action": ["kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*"], "Resource": "*",
        "Condition": absent}
    # One deny per pinned PCR, for everyone: a missing key makes the negated operator true.
    for index, (name, value) in enumerate([("PCR0", "a1"), ("PCR1", "b2"), ("PCR2", "c3"),
                                           ("PCR8", "d4")], start=2):
        sid = f"DenyPlaintextUnless{name}Pinned{index}"
        assert policy[sid] == {
            "Sid": sid, "Effect": "Deny", "Principal": {"AWS": "*"},
            "Action": ["kms:Decrypt", "kms:ReEncryptFrom"], "Resource": "*",
            "Condition": {"StringNotEqualsIgnoreCase": {f"kms:RecipientAttestation:{name}": value * 48}}}
    assert len(policy) == 7  # administration, allow, the role's deny, four PCR denies: nothing else
    # Only the model key changes.
    assert set(statements(named(stack, "keys-training-data-policy"))) == {"AdministerWithoutUse"}


def test_several_attested_grants_list_every_pinned_value_and_pcr8_only_if_all_pin_it() -> None:
    current = EnclaveMeasurements(**PCRS, pcr8="d4" * 48)
    previous = EnclaveMeasurements(pcr0="e5" * 48, pcr1="b2" * 48, pcr2="f6" * 48)  # unsigned

    def compose(keys: KeyHierarchy) -> None:
        keys.grant_decrypt_with_attestation("model-weights", role("parent-new"), current)
        keys.grant_decrypt_with_attestation("model-weights", role("parent-old"), previous)
        keys.seal()

    policy = statements(named(build(ADMINISTERED, compose=compose), "keys-model-weights-policy"))
    denies = {sid: s["Condition"]["StringNotEqualsIgnoreCase"] for sid, s in policy.items()
              if sid.startswith("DenyPlaintextUnless")}
    assert denies == {
        "DenyPlaintextUnlessPCR0Pinned4": {"kms:RecipientAttestation:PCR0": ["a1" * 48, "e5" * 48]},
        "DenyPlaintextUnlessPCR1Pinned5": {"kms:RecipientAttestation:PCR1": "b2" * 48},
        "DenyPlaintextUnlessPCR2Pinned6": {"kms:RecipientAttestation:PCR2": ["c3" * 48, "f6" * 48]}}


@pytest.mark.parametrize("other, refused", [
    (lambda keys: keys.grant_use_through_service("model-weights", role("p2"), "s3"),
     "GrantThroughS3, ThroughS3"),
    (lambda keys: keys.grant_decrypt("model-weights", role("p3")), "Decrypt"),
    (lambda keys: keys.grant_decrypt_through_service("model-weights", role("p4"), "s3"),
     "DecryptThroughS3"),
    # A KMS grant cannot carry attestation conditions: nobody may create one on this key (the
    # table-creation statements are refused on it when the hierarchy is declared).
    (lambda keys: keys.grant_use_through_service("model-weights", role("m1"), "ec2"),
     "GrantThroughEc2, ThroughEc2"),
])
def test_a_key_that_decrypts_with_attestation_takes_no_plain_decrypt_grant(
        other: Callable[[KeyHierarchy], None], refused: str) -> None:
    def compose(keys: KeyHierarchy) -> None:
        keys.grant_decrypt_with_attestation("model-weights", role("p1"), EnclaveMeasurements(**PCRS))
        other(keys)
        keys.seal()

    with pytest.raises(ValueError, match=rf"the model-weights key decrypts only with enclave "
                                         rf"attestation; remove .*\({refused}\)"):
        build(ADMINISTERED, compose=compose)


# -- who may do what on the attested key, evaluated as IAM does (tests/support/key_policy.py) ----
GLASS = "arn:aws:iam::111122223333:role/break-glass"
KEY_ADMIN = "arn:aws:iam::111122223333:role/kms-admin"
MFA = {"aws:MultiFactorAuthPresent": "true"}


@pytest.fixture(scope="module")
def attested_stack() -> RecordedStack:
    def compose(keys: KeyHierarchy) -> None:
        keys.grant_decrypt_with_attestation("model-weights", role("enclave-parent"),
                                            EnclaveMeasurements(**PCRS))
        keys.grant_generate_data_key("model-weights", role("publisher"))
        keys.seal()

    return build(replace(ARGS, administrator_role_arns=(KEY_ADMIN,), break_glass_role_arn=GLASS,
                         replica_regions=("eu-central-1",)), compose=compose)


def attestation(**pcrs: str) -> dict[str, str]:
    return {f"kms:RecipientAttestation:{name.upper()}": value for name, value in pcrs.items()}


PINNED = attestation(**PCRS)


@pytest.mark.parametrize("region", ["", "-eu-central-1"])
def test_the_attested_key_denies_everyone_plaintext_outside_the_pinned_enclave(
        attested_stack: RecordedStack, region: str) -> None:

    policy = named(attested_stack, f"keys-model-weights{region}-policy").inputs["policy"]
    key = "arn:aws:kms:eu-west-1:111122223333:key/k"

    def decide(principal: str, action: str, context: dict[str, str]) -> tuple[str, tuple[str, ...]]:
        decision = evaluate(policy, Request(principal, action, key, context))
        return decision.effect, decision.statements

    foreign = {**PINNED, "kms:RecipientAttestation:PCR0": "ee" * 48}
    debug = attestation(pcr0="0" * 96, pcr1="0" * 96, pcr2="0" * 96)
    # Break-glass holds kms:* under MFA, yet gets no data key for an enclave other than the pinned
    # one (its own EIF, a debug-mode enclave) nor without attestation, nor by re-wrapping it.
    assert decide(GLASS, "kms:Decrypt", {**foreign, **MFA}) == (
        "explicit-deny", ("DenyPlaintextUnlessPCR0Pinned3",))
    assert decide(GLASS, "kms:Decrypt", {**debug, **MFA}) == (
        "explicit-deny", ("DenyPlaintextUnlessPCR0Pinned3", "DenyPlaintextUnlessPCR1Pinned4",
                          "DenyPlaintextUnlessPCR2Pinned5"))
    for action in ("kms:Decrypt", "kms:ReEncryptFrom"):
        assert decide(GLASS, action, MFA)[0] == "explicit-deny", action
    assert decide(GLASS, "kms:Decrypt", {**PINNED, **MFA}) == ("allow", ("BreakGlass",))
    # The key administrators and the account (with whatever IAM or a grant would allow) likewise.
    for principal in (KEY_ADMIN, "arn:aws:iam::111122223333:root"):
        assert decide(principal, "kms:Decrypt", foreign)[0] == "explicit-deny"
        assert decide(principal, "kms:Decrypt", {})[0] == "explicit-deny"
    # Administration stays with the administrators, and break-glass may still rewrite the policy.
    for action in ADMIN_ACTIONS:
        assert decide(KEY_ADMIN, action, {}) == ("allow", ("AdministerWithoutUse",)), action
    assert decide(GLASS, "kms:PutKeyPolicy", MFA) == ("allow", ("BreakGlass",))
    # Publishing: GenerateDataKey without Recipient (a new data key, no existing ciphertext).
    publisher = named(attested_stack, "publisher").outputs["arn"]
    assert decide(publisher, "kms:GenerateDataKey", {}) == ("allow", ("GenerateDataKey2",))
    assert decide(publisher, "kms:Decrypt", {})[0] == "explicit-deny"
    # The enclave's parent gets no plaintext data key, not even a fresh one.
    parent = named(attested_stack, "enclave-parent").outputs["arn"]
    assert decide(parent, "kms:Decrypt", PINNED) == ("allow", ("DecryptWithAttestation0",))
    assert decide(parent, "kms:GenerateDataKey", {}) == ("explicit-deny", ("DenyWithoutAttestation1",))


@pytest.mark.parametrize("pcr0, message", [
    ("0" * 96, "all zeros"),
    ("a1" * 47, "94 characters"),
    ("g" * 96, "96 hex digits"),
])
def test_measurements_are_validated(pcr0: str, message: str) -> None:
    with pytest.raises(ValueError, match=f"enclave measurement PCR0 .*{message}"):
        EnclaveMeasurements(**{**PCRS, "pcr0": pcr0})


def test_decrypt_through_a_service_is_read_only() -> None:
    def compose(keys: KeyHierarchy) -> None:
        keys.grant_decrypt_through_service("inference", role("reader2"), "s3")
        keys.grant_use_through_service("inference", "arn:aws:iam::111122223333:role/aws-service-role/"
                                       "autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling_x", "ec2")
        keys.seal()

    policy = statements(named(build(compose=compose), "keys-inference-policy"))
    assert policy["DecryptThroughS30"]["Action"] == ["kms:Decrypt"]
    assert policy["DecryptThroughS30"]["Condition"] == {"StringEquals": {
        "kms:ViaService": "s3.eu-west-1.amazonaws.com", "kms:CallerAccount": "111122223333"}}
    assert policy["ThroughEc21"]["Principal"]["AWS"].endswith("AWSServiceRoleForAutoScaling_x")


# -- the administrators' one use: publishing through S3 (the API's mutual-TLS truststore) --------
DEPLOYER = "arn:aws:iam::111122223333:role/deployer"
DEPLOYED = replace(ARGS, administrator_role_arns=(DEPLOYER,))


def test_administrators_use_a_key_only_through_s3_for_one_bucket() -> None:
    from ztpolicy.rules.kms.kms_key_policy_least_privilege import document_problems

    def compose(keys: KeyHierarchy) -> None:
        bucket = aws.s3.Bucket("truststore")  # auto-named: its ARN is an Output until created
        keys.allow_administrators_through_s3("inference", bucket.arn)
        keys.grant_decrypt_through_service("inference", role("reader5"), "s3")
        keys.seal()

    stack = build(replace(DEPLOYED, replica_regions=("eu-central-1",)), compose=compose)
    bucket_arn = named(stack, "truststore").outputs["arn"]
    assert bucket_arn.startswith("arn:aws:s3:::truststore-")
    for suffix, region in (("", "eu-west-1"), ("-eu-central-1", "eu-central-1")):
        policy = statements(named(stack, f"keys-inference{suffix}-policy"))
        assert policy["AdministratorsPublishThroughS30"] == {
            "Sid": "AdministratorsPublishThroughS30", "Effect": "Allow",
            "Principal": {"AWS": [DEPLOYER]}, "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
            "Resource": "*",
            "Condition": {"StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com",
                                           "kms:CallerAccount": "111122223333",
                                           "kms:EncryptionContext:aws:s3:arn": bucket_arn}}}
    # No other key gets it.
    for purpose in PURPOSES:
        if purpose != "inference":
            assert set(statements(named(stack, f"keys-{purpose}-policy"))) == (
                {"AdministerWithoutUse", "CloudWatchLogs0"} if purpose == "logs"
                else {"AdministerWithoutUse"})

    # As IAM evaluates it: S3, for that bucket's objects, and nothing else.
    document = named(stack, "keys-inference-policy").inputs["policy"]
    key = "arn:aws:kms:eu-west-1:111122223333:key/k"
    through_s3 = {"kms:ViaService": "s3.eu-west-1.amazonaws.com", "kms:CallerAccount": "111122223333",
                  "kms:EncryptionContext:aws:s3:arn": bucket_arn}

    def decide(action: str, context: dict[str, str]) -> str:
        return evaluate(document, Request(DEPLOYER, action, key, context)).effect

    assert decide("kms:GenerateDataKey", through_s3) == decide("kms:Decrypt", through_s3) == "allow"
    direct = {k: v for k, v in through_s3.items() if k != "kms:ViaService"}
    assert decide("kms:Decrypt", direct) == "implicit-deny"
    for other in ("arn:aws:s3:::another-bucket", f"{bucket_arn}/truststore/truststore.pem"):
        assert decide("kms:Decrypt", {**through_s3, "kms:EncryptionContext:aws:s3:arn": other}) == (
            "implicit-deny"), other
    for action in ("kms:Encrypt", "kms:ReEncryptFrom", "kms:GenerateDataKeyWithoutPlaintext",
                   "kms:CreateGrant"):
        assert decide(action, through_s3) == "implicit-deny", action

    # The whole hierarchy still passes the pack's least-privilege rule.
    for resource in stack.resources:
        if resource.type == "aws:kms/keyPolicy:KeyPolicy":
            assert document_problems(json.loads(resource.inputs["policy"]), resource.name, set()) == []


def test_a_bucket_arn_given_as_text_is_written_as_is() -> None:
    bucket_arn = "arn:aws:s3:::ztai-dev-truststore"

    def compose(keys: KeyHierarchy) -> None:
        keys.allow_administrators_through_s3("secrets", bucket_arn, sid="TruststoreThroughS3")
        keys.seal()

    policy = statements(named(build(DEPLOYED, compose=compose), "keys-secrets-policy"))
    assert policy["TruststoreThroughS30"]["Condition"]["StringEquals"][
        "kms:EncryptionContext:aws:s3:arn"] == bucket_arn


@pytest.mark.parametrize("args, purpose, bucket_arn, message", [
    (DEPLOYED, "tokens", "arn:aws:s3:::truststore", "the tokens key is an HMAC key"),
    (DEPLOYED, "model-weights", "arn:aws:s3:::truststore",
     "the model-weights key's plaintext must stay in attested enclaves"),
    (ARGS, "inference", "arn:aws:s3:::truststore", "needs named administrator_role_arns"),
    (DEPLOYED, "inference", "arn:aws:s3:::truststore/truststore.pem", "is not a bucket ARN"),
    (DEPLOYED, "inference", "arn:aws:s3:::truststore-*", "is not a bucket ARN"),
    (DEPLOYED, "weights", "arn:aws:s3:::truststore", "unknown key purpose"),
])
def test_administrators_through_s3_is_refused(args: KeyHierarchyArgs, purpose: str, bucket_arn: str,
                                              message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build(args, compose=lambda keys: keys.allow_administrators_through_s3(purpose, bucket_arn))


def test_an_output_bucket_arn_is_checked_when_the_policy_is_rendered() -> None:
    # What seal() renders once the Output is known (a failed apply would outlive this test's run).
    grant = _Grant("AdministratorsPublishThroughS3", {}, ("kms:GenerateDataKey", "kms:Decrypt"),
                   _through_s3_for_bucket, to_administrators=True, inputs=("arn:aws:s3:::b/*",))
    with pytest.raises(ValueError, match=r"bucket_arn 'arn:aws:s3:::b/\*' is not a bucket ARN"):
        _policy_document("aws", "111122223333", "eu-west-1", [DEPLOYER], "", [(grant, {})])


SCHEDULE = "zero-trust-ai-dev-key-rotation"
SCHEDULE_ARN = f"arn:aws:scheduler:eu-west-1:111122223333:schedule/default/{SCHEDULE}"
COMPONENT = "zero-trust-ai-dev-base-hardening"
COMPONENT_ARN = f"arn:aws:imagebuilder:eu-west-1:111122223333:component/{COMPONENT}/*"


def _loosened_problems(document: dict[str, Any], statement: dict[str, Any],
                       loosen: Callable[[dict[str, Any]], Any]) -> list[str]:
    from ztpolicy.rules.kms.kms_key_policy_least_privilege import document_problems

    loosened = json.loads(json.dumps(statement))
    loosen(loosened)
    doctored = {**document, "Statement": [loosened if s == statement else s
                                          for s in document["Statement"]]}
    return document_problems(doctored, "logs", set())


def test_schedule_and_component_creation_are_admitted_from_creation_bound_to_their_names() -> None:
    from ztpolicy.rules.kms.kms_key_policy_least_privilege import document_problems

    admins = ("arn:aws:iam::111122223333:role/deployer",)

    def compose(keys: KeyHierarchy) -> None:
        keys.grant_schedule_decrypt("logs", role("scheduler"), SCHEDULE)
        keys.grant_component_decrypt("logs", role("build-instance"))
        keys.seal()

    stack = build(replace(ARGS, administrator_role_arns=admins, schedules={"logs": [SCHEDULE]},
                          image_builder_components={"logs": [COMPONENT]}), compose=compose)
    created = statements(named(stack, "keys-logs"))
    sealed = statements(named(stack, "keys-logs-policy"))
    schedule = next(s for sid, s in created.items() if sid.startswith("CreateSchedules"))
    component = next(s for sid, s in created.items() if sid.startswith("CreateImageBuilderComponents"))
    # The deployer's statements are in the policy the key is created with, and stay sealed.
    assert schedule in sealed.values() and component in sealed.values()
    assert schedule["Principal"] == component["Principal"] == {"AWS": list(admins)}
    assert schedule["Action"] == ["kms:Encrypt", "kms:GenerateDataKey", "kms:Decrypt"]
    assert schedule["Condition"] == {"StringEquals": {
        "kms:EncryptionContext:aws:scheduler:schedule-arn": [SCHEDULE_ARN]}}
    assert component["Action"] == ["kms:Encrypt", "kms:GenerateDataKey", "kms:Decrypt"]
    assert component["Condition"] == {
        "StringEquals": {"kms:ViaService": "imagebuilder.eu-west-1.amazonaws.com",
                         "kms:CallerAccount": "111122223333"},
        "StringLike": {"kms:EncryptionContext:aws:imagebuilder:arn": [COMPONENT_ARN]}}
    # The roles' reads: sealed policy only, Decrypt only, under the same bindings.
    [payload] = [s for sid, s in sealed.items() if sid.startswith("DecryptSchedulePayload")]
    assert payload["Action"] == ["kms:Decrypt"]
    assert payload["Condition"] == {"StringEquals": {
        "kms:EncryptionContext:aws:scheduler:schedule-arn": SCHEDULE_ARN}}
    [read] = [s for sid, s in sealed.items() if sid.startswith("DecryptComponentsThroughImagebuilder")]
    assert read["Action"] == ["kms:Decrypt"] and read["Condition"] == component["Condition"]
    assert not [sid for sid in created if sid.startswith(("DecryptSchedule", "DecryptComponents"))]
    # The pack accepts exactly these administrator uses...
    document = json.loads(named(stack, "keys-logs-policy").inputs["policy"])
    assert document_problems(document, "logs", set()) == []
    # ...and nothing looser: a pattern, a missing context or service, a wildcard or other
    # action, an IfExists operator.
    context = "kms:EncryptionContext:aws:scheduler:schedule-arn"
    for loosen in [
            lambda s: s["Condition"]["StringEquals"].update({context: [
                "arn:aws:scheduler:eu-west-1:111122223333:schedule/default/*"]}),
            lambda s: s.update(Condition={}),
            lambda s: s.update(Condition={"StringEqualsIfExists": {context: [SCHEDULE_ARN]}}),
            lambda s: s.update(Condition={"StringLike": {context: [SCHEDULE_ARN]}}),
            lambda s: s.update(Action=["kms:GenerateDataKey*", "kms:Decrypt"]),
            lambda s: s.update(Action=["kms:ReEncryptFrom"])]:
        problems = _loosened_problems(document, schedule, loosen)
        assert any(f"lets {admins[0]} administer the key" in p for p in problems), problems
    image_context = "kms:EncryptionContext:aws:imagebuilder:arn"
    for loosen in [
            lambda s: s["Condition"]["StringLike"].update({image_context: [
                "arn:aws:imagebuilder:eu-west-1:111122223333:component/*"]}),
            lambda s: s["Condition"]["StringLike"].update({image_context: [
                "arn:aws:imagebuilder:eu-west-1:111122223333:component/zero-trust-ai-*/*"]}),
            lambda s: s["Condition"].pop("StringLike"),
            lambda s: s["Condition"]["StringEquals"].pop("kms:ViaService"),
            lambda s: s["Condition"].update(
                StringLikeIfExists=s["Condition"].pop("StringLike")),
            lambda s: s.update(Action=["kms:Encrypt*", "kms:Decrypt"])]:
        problems = _loosened_problems(document, component, loosen)
        assert any(f"lets {admins[0]} administer the key" in p for p in problems), problems


@pytest.mark.parametrize("field_name, value, message", [
    ("schedules", {"model-weights": [SCHEDULE]}, "the model-weights key cannot encrypt them"),
    ("schedules", {"tokens": [SCHEDULE]}, "the tokens key cannot encrypt them"),
    ("schedules", {"logs": ["zero-trust-ai-*"]}, "name each in plain text"),
    ("schedules", {"logs": []}, "name each in plain text"),
    ("image_builder_components", {"logs": ["a/b"]}, "name each in plain text"),
    ("image_builder_components", {"model-weights": [COMPONENT]}, "cannot encrypt them"),
])
def test_schedules_and_components_are_named_plainly_on_a_usable_key(
        field_name: str, value: dict[str, list[str]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build(replace(ARGS, schedules=value) if field_name == "schedules"
              else replace(ARGS, image_builder_components=value))


def test_a_schedule_or_component_read_needs_its_creation_admitted() -> None:
    with pytest.raises(ValueError, match=r"not among KeyHierarchyArgs\.schedules"):
        build(compose=lambda keys: keys.grant_schedule_decrypt("logs", role("s"), SCHEDULE))
    with pytest.raises(ValueError, match="no image_builder_components on the logs key"):
        build(compose=lambda keys: keys.grant_component_decrypt("logs", role("b")))


# -- two-person key administration -----------------------------------------------------------------
DEPLOYER = "arn:aws:iam::111122223333:role/deployer"
GLASS = "arn:aws:iam::111122223333:role/break-glass"
ROOT = "arn:aws:iam::111122223333:root"
WRITER = "arn:aws:iam::111122223333:role/zero-trust-ai-dev-jit-api-role"
TWO_PERSON = replace(ARGS, administrator_role_arns=(DEPLOYER,), break_glass_role_arn=GLASS,
                     two_person_purposes=("model-weights",))


def elevated_stack(args: KeyHierarchyArgs = TWO_PERSON) -> tuple[RecordedStack, str]:
    arns: list[str] = []

    def compose(keys: KeyHierarchy) -> None:
        elevation = aws.iam.Role("key-admin", name="zero-trust-ai-dev-jit-key-admin",
                                 assume_role_policy=json.dumps({"Version": "2012-10-17", "Statement": []}))
        keys.grant_key_administration("model-weights", elevation, policy_writer=WRITER)
        elevation.arn.apply(arns.append)
        keys.seal()

    stack = build(args, compose)
    return stack, arns[0]


def kms_decides(policy: str, principal: str, action: str, mfa: bool = True) -> str:
    return evaluate(policy, Request(principal, action, "*",
                                    {"aws:PrincipalArn": principal,
                                     "aws:MultiFactorAuthPresent": "true" if mfa else "false"})).effect


def test_a_two_person_key_changes_only_in_the_key_admin_elevation() -> None:
    stack, elevation = elevated_stack()
    weights = named(stack, "keys-model-weights-policy")
    policy = weights.inputs["policy"]
    for action in TWO_PERSON_ACTIONS:
        # A policy document (a key's, or a replica's) only the JIT API writes, the one approved
        # by SHA-256; the elevation's session makes the rest.
        if action in DOCUMENT_ACTIONS:
            assert kms_decides(policy, elevation, action) == "implicit-deny"
            assert kms_decides(policy, WRITER, action) == ("allow" if action == "kms:PutKeyPolicy"
                                                           else "implicit-deny")
        else:
            assert kms_decides(policy, elevation, action) == "allow"
            assert kms_decides(policy, WRITER, action) == "implicit-deny"
        # The deployer, break-glass with MFA and the account root itself: explicit deny.
        for principal in (DEPLOYER, GLASS, ROOT):
            assert kms_decides(policy, principal, action) == "explicit-deny", (principal, action)
    # What is not a two-person action stays with the deployer (tags, rotation, descriptions).
    for action in ("kms:TagResource", "kms:EnableKeyRotation", "kms:DescribeKey", "kms:CreateAlias"):
        assert kms_decides(policy, DEPLOYER, action) == "allow"
    # The elevation administers without using: no plaintext, no data key.
    for action in ("kms:Decrypt", "kms:GenerateDataKey", "kms:CreateGrant", "kms:ReEncryptFrom"):
        assert kms_decides(policy, elevation, action) != "allow"
    # The deployer writes that first policy once, skipping KMS's lockout check (which would refuse
    # a policy that does not let the deployer write it again); the other keys keep the check.
    assert weights.inputs["bypassPolicyLockoutSafetyCheck"] is True
    secrets = named(stack, "keys-secrets-policy")
    assert not secrets.inputs.get("bypassPolicyLockoutSafetyCheck")
    assert kms_decides(secrets.inputs["policy"], DEPLOYER, "kms:PutKeyPolicy") == "allow"
    # The key is created with a policy the deployer may still change (CreateKey's lockout check).
    created = named(stack, "keys-model-weights").inputs["policy"]
    assert kms_decides(created, DEPLOYER, "kms:PutKeyPolicy") == "allow"


def test_a_two_person_key_that_no_elevation_administers_is_refused() -> None:
    with pytest.raises(ValueError, match=r"model-weights key is a two-person key .* no key-admin elevation"):
        build(TWO_PERSON, compose=lambda keys: keys.seal())
    # Administering another key does not count for model-weights.
    def other_key(keys: KeyHierarchy) -> None:
        keys.grant_key_administration("secrets", role("secrets-admin"), policy_writer=WRITER)
        keys.seal()
    with pytest.raises(ValueError, match="model-weights key is a two-person key"):
        build(TWO_PERSON, compose=other_key)


def test_without_two_person_keys_the_administrators_keep_every_action() -> None:
    stack = build(replace(TWO_PERSON, two_person_purposes=()), compose=lambda keys: keys.seal())
    weights = named(stack, "keys-model-weights-policy")
    assert "TwoPersonChangesOnly" not in "".join(statements(weights))
    assert not weights.inputs.get("bypassPolicyLockoutSafetyCheck")
    assert kms_decides(weights.inputs["policy"], DEPLOYER, "kms:PutKeyPolicy") == "allow"


@pytest.mark.parametrize("purposes", [("weights",), ("model-weights", "model-weights"), ("",)])
def test_bad_two_person_purposes_are_refused(purposes: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match=r"two_person_purposes .* distinct purposes of"):
        build(replace(TWO_PERSON, two_person_purposes=purposes))


def test_the_rotation_function_never_administers_a_two_person_key() -> None:
    def compose(keys: KeyHierarchy) -> None:
        keys.grant_key_administration("model-weights", role("key-admin-elevation"), policy_writer=WRITER)
        keys.grant_key_rotation(role("rotation"), create_successors=True)
        keys.seal()

    stack = build(TWO_PERSON, compose)
    weights = [s for sid, s in statements(named(stack, "keys-model-weights-policy")).items()
               if sid.startswith("KeyRotationWithoutUse")]
    training = [s for sid, s in statements(named(stack, "keys-training-data-policy")).items()
                if sid.startswith("KeyRotationWithoutUse")]
    assert "kms:PutKeyPolicy" not in weights[0]["Action"]
    assert "kms:PutKeyPolicy" in training[0]["Action"]


def test_the_replicas_of_a_two_person_key_carry_the_same_deny() -> None:
    stack, elevation = elevated_stack(replace(TWO_PERSON, replica_regions=("eu-central-1",)))
    replica = named(stack, "keys-model-weights-eu-central-1-policy")
    assert replica.inputs["bypassPolicyLockoutSafetyCheck"] is True
    assert kms_decides(replica.inputs["policy"], DEPLOYER, "kms:PutKeyPolicy") == "explicit-deny"
    assert kms_decides(replica.inputs["policy"], WRITER, "kms:PutKeyPolicy") == "allow"
    assert kms_decides(replica.inputs["policy"], elevation, "kms:DisableKey") == "allow"


def test_a_two_person_keys_replicas_are_made_before_its_sealed_policy() -> None:
    # The sealed policy denies kms:ReplicateKey to the deployer, who makes the replicas on the
    # first deploy: the primary's KeyPolicy must wait for them.
    stack, _ = elevated_stack(replace(TWO_PERSON, replica_regions=("eu-central-1",)))
    sealed = named(stack, "keys-model-weights-policy")
    replica = named(stack, "keys-model-weights-eu-central-1")
    assert replica.urn in sealed.dependencies
