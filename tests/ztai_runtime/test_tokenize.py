"""Tokenization against moto (KMS GenerateMac/GenerateDataKey/Decrypt, DynamoDB BatchGetItem and
TransactWriteItems are implemented there) and botocore's Stubber where moto cannot refuse.

What is held: determinism and domain separation of tk1_ tokens (checked against an independent
computation through KMS VerifyMac), one KMS call per domain, the vault round trip and its
one-token-per-value guarantee under a lost race, encryption of values at rest, the detokenize audit
line, and the file engine's contract: streaming, resume after a crash byte-identical to an
uninterrupted run, refusal of a changed input, clear errors leaving no output.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import logging
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from ztai_runtime.tokenize import (
    AwsCallError,
    DeterministicTokenizer,
    InputError,
    ResumeError,
    VaultDetokenizer,
    VaultError,
    VaultTokenizer,
    derive_domain_key,
    detokenize_file,
    tokenize_file,
)
from ztai_runtime.tokenize.keys import DomainKey, KeyedMac, check_domain, derivation_label
from ztai_runtime.tokenize.normalize import composed
from ztai_runtime.tokenize.stream import StreamJob, checkpoint_path, partial_path, run
from ztai_runtime.tokenize.vault import Backoff, lookup_item_key, token_item_key

REGION = "eu-west-1"
MAC_ALIAS = "alias/zero-trust-ai/test/tokens"
TK = re.compile(r"tk1_[0-9a-f]{32}")
TV = re.compile(r"tv1_[0-9a-f]{32}")


@dataclass
class World:
    kms: Any
    dynamodb: Any
    sts: Any
    mac_key: str
    vault_key: str
    table: str = ""


def make_world() -> World:
    """Inside mock_aws: the hierarchy's tokens (HMAC, with its alias) and secrets keys."""
    kms, dynamodb, sts = (boto3.client(name, region_name=REGION) for name in ("kms", "dynamodb", "sts"))
    mac_key = kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]["Arn"]
    kms.create_alias(AliasName=MAC_ALIAS, TargetKeyId=mac_key)
    vault_key = kms.create_key()["KeyMetadata"]["Arn"]
    return World(kms, dynamodb, sts, mac_key, vault_key)


def create_vault_table(world: World, name: str) -> World:
    """A vault table as TokenVault declares it: hash key pk (S), encrypted with the secrets key."""
    world.dynamodb.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        SSESpecification={"Enabled": True, "SSEType": "KMS", "KMSMasterKeyId": world.vault_key})
    return replace(world, table=name)


@contextmanager
def aws_environment() -> Iterator[None]:
    """Credentials and a region for boto3's standard configuration, none of the machine's own."""
    with pytest.MonkeyPatch.context() as patch:
        for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
            patch.delenv(name, raising=False)
        patch.setenv("AWS_ACCESS_KEY_ID", "testing")
        patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        patch.setenv("AWS_DEFAULT_REGION", REGION)
        patch.setenv("AWS_CONFIG_FILE", "/nonexistent")
        patch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        yield


@pytest.fixture(scope="module")
def moto_world() -> Iterator[World]:
    # One moto account per module (starting it costs ~0.4 s); each test gets its own table.
    with aws_environment(), mock_aws():
        yield make_world()


@pytest.fixture
def aws(moto_world: World, request: pytest.FixtureRequest) -> World:
    return create_vault_table(moto_world, f"vault-{abs(hash(request.node.nodeid)):x}")


class Decisions(logging.Handler):
    """The JSON decision lines the library logs, parsed."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def events(self, event: str) -> list[dict[str, Any]]:
        return [parsed for line in self.lines if (parsed := json.loads(line))["event"] == event]


@pytest.fixture
def decisions() -> Iterator[Decisions]:
    handler = Decisions()
    logger = logging.getLogger("ztai.tokenize")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


class Counting:
    """A client whose calls are counted per operation (and optionally altered)."""

    def __init__(self, client: Any, **overrides: Callable[..., dict[str, Any]]) -> None:
        self._client, self._overrides = client, overrides
        self.calls: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        method = self._overrides.get(name) or getattr(self._client, name)

        def counted(**kwargs: Any) -> Any:
            self.calls[name] = self.calls.get(name, 0) + 1
            return method(**kwargs)

        return counted


def write_csv(path: Path, rows: list[list[str]], terminator: str = "\r\n") -> Path:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator=terminator).writerows(rows)
    path.write_bytes(buffer.getvalue().encode("utf-8"))
    return path


def read_csv(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def people(count: int, distinct: int = 40) -> list[list[str]]:
    return [["id", "email", "country"]] + [
        [str(i), f"user{i % distinct}@example.com", ["DE", "FR", ""][i % 3]] for i in range(count)]


# -- keys and deterministic tokens ---------------------------------------------------------------
def test_keyed_mac_is_hmac_sha256() -> None:
    # Keys longer than SHA-256's 64-byte block are hashed first (RFC 2104), as the stdlib does.
    for key in (b"", b"k", os.urandom(32), os.urandom(64), os.urandom(65), os.urandom(200)):
        mac = KeyedMac(key)
        for message in (b"", b"a", "Zoë@例え.jp".encode(), os.urandom(1000)):
            assert mac.digest(message) == hmac.digest(key, message, "sha256")
        assert mac.digest(b"a") == mac.digest(b"a")  # the keyed state is copied, never consumed


def test_tokens_are_pinned() -> None:
    # Known answers, computed before the MAC moved to the stdlib: tokens already issued must not change.
    tokenizer = DeterministicTokenizer(DomainKey("token-key", "customers", "arn:test", b"\x01" * 32))
    pinned = {"alice@example.com": "tk1_f0713837e39c53c620f23068d3dff33b",
              "Zoë@例え.jp": "tk1_e1d6845a2ddcbf4543830940873d33fc",
              "": "tk1_2e72eb6626e1d4f7fc6dff111585898f"}
    assert tokenizer.tokens(list(pinned)) == list(pinned.values())
    assert [tokenizer.token(value) for value in pinned] == list(pinned.values())


def hmac_key_setups(monkeypatch: pytest.MonkeyPatch, key: bytes) -> list[str]:
    """Calls of `hmac.new` and `hmac.digest` under `key` from now on: each sets the key up anew.
    (botocore signs every request with `hmac.new` under other keys.)"""
    calls: list[str] = []

    def counting(name: str) -> Callable[..., Any]:
        original = getattr(hmac, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            if (args[0] if args else kwargs.get("key")) == key:
                calls.append(name)
            return original(*args, **kwargs)
        return counted

    for name in ("new", "digest"):
        monkeypatch.setattr(hmac, name, counting(name))
    return calls


def test_values_are_maced_under_a_key_set_up_once(monkeypatch: pytest.MonkeyPatch) -> None:
    tokenizer = DeterministicTokenizer(DomainKey("token-key", "customers", "arn:test", b"\x01" * 32))
    setups = hmac_key_setups(monkeypatch, tokenizer.key.secret)
    tokens = tokenizer.tokens([f"user{i}@example.com" for i in range(100)])
    assert len(set(tokens)) == 100 and setups == []


def test_derivation_label_is_versioned_and_length_prefixed() -> None:
    assert derivation_label("token-key", "ds") == b"zero-trust-ai/token-key/v1\x00\x00\x02ds"
    # No two (purpose, domain) pairs share a label, even where a naive concatenation would.
    assert derivation_label("token-key", "a/b") != derivation_label("token-key/a", "b")
    for bad in ("", "a#b", "a*", "-x", "x" * 129, "tenant a"):
        with pytest.raises(InputError, match="is not allowed"):
            check_domain(bad)


def test_tokens_are_hmacs_under_a_kms_derived_domain_key(aws: World) -> None:
    key = derive_domain_key(aws.kms, MAC_ALIAS, "customers")
    # The domain key is KMS's MAC of the label: VerifyMac confirms it, independently of our code.
    assert aws.kms.verify_mac(KeyId=aws.mac_key, MacAlgorithm="HMAC_SHA_256",
                              Message=derivation_label("token-key", "customers"), Mac=key.secret)["MacValid"]
    token = DeterministicTokenizer(key).token("alice@example.com")
    assert TK.fullmatch(token)
    assert token == "tk1_" + hmac.new(key.secret, b"alice@example.com", hashlib.sha256).hexdigest()[:32]


def test_same_value_same_domain_same_token_and_domains_are_unlinkable(aws: World) -> None:
    first = DeterministicTokenizer(derive_domain_key(aws.kms, MAC_ALIAS, "customers"))
    again = DeterministicTokenizer(derive_domain_key(aws.kms, aws.mac_key, "customers"))  # ARN, new call
    other = DeterministicTokenizer(derive_domain_key(aws.kms, MAC_ALIAS, "partners"))
    values = ["alice@example.com", "bob@example.com", "alice@example.com", "Alice@example.com"]
    tokens = first.tokens(values)
    assert tokens == again.tokens(values) == [first.token(v) for v in values]
    assert tokens[0] == tokens[2] and len(set(tokens)) == 3
    assert not set(tokens) & set(other.tokens(values))


def test_another_hmac_key_gives_other_tokens(aws: World) -> None:
    second = aws.kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]["Arn"]
    one = DeterministicTokenizer(derive_domain_key(aws.kms, aws.mac_key, "customers"))
    two = DeterministicTokenizer(derive_domain_key(aws.kms, second, "customers"))
    assert one.token("alice") != two.token("alice")


def test_an_encryption_key_is_refused_with_the_aws_error(aws: World) -> None:
    with pytest.raises(AwsCallError, match="GenerateMac failed: InvalidKeyUsageException") as raised:
        derive_domain_key(aws.kms, aws.vault_key, "customers")
    assert raised.value.code == "InvalidKeyUsageException"


def test_one_kms_call_per_domain_for_a_whole_file(aws: World, tmp_path: Path, decisions: Decisions) -> None:
    kms = Counting(aws.kms)
    source = write_csv(tmp_path / "in.csv", people(3000))
    result = tokenize_file(kms, source, tmp_path / "out.csv", key_id=MAC_ALIAS, domain="customers",
                           columns=["email"])
    assert kms.calls == {"generate_mac": 1}
    assert (result.rows, result.values) == (3000, 3000)
    [derived] = decisions.events("token-key-derived")
    assert derived["domain"] == "customers" and derived["purpose"] == "token-key"


# -- the vault -----------------------------------------------------------------------------------
def vault_tokenizer(aws: World, domain: str = "customers", dynamodb: Any = None,
                    **options: Any) -> VaultTokenizer:
    return VaultTokenizer.open(dynamodb or aws.dynamodb, aws.kms, table=aws.table, domain=domain,
                               mac_key_id=MAC_ALIAS, vault_key_id=aws.vault_key, **options)


def detokenizer(aws: World, domain: str = "customers", kms: Any = None) -> VaultDetokenizer:
    return VaultDetokenizer(aws.dynamodb, kms or aws.kms, aws.sts, table=aws.table, domain=domain,
                            vault_key_id=aws.vault_key)


def test_vault_round_trip_and_one_token_per_value_across_runs(aws: World) -> None:
    values = ["alice", "bob", "alice", "ünïcødé ✓", "x" * 5000]
    tokens = vault_tokenizer(aws).tokenize(values)
    assert all(TV.fullmatch(token) for token in tokens)
    assert tokens[0] == tokens[2] and len(set(tokens)) == 4
    # A new run (empty cache, new data key) finds the same tokens in the table.
    assert vault_tokenizer(aws).tokenize(values) == tokens
    assert detokenizer(aws).detokenize(tokens) == values
    # Tokens are random: another domain gets other tokens for the same values.
    assert not set(vault_tokenizer(aws, "partners").tokenize(values)) & set(tokens)


def test_values_are_encrypted_in_the_table(aws: World) -> None:
    vault_tokenizer(aws).tokenize(["alice@example.com"])
    items = aws.dynamodb.scan(TableName=aws.table)["Items"]
    assert len(items) == 2 and b"alice" not in json.dumps(items, default=repr).encode()
    [token_item] = [item for item in items if item["pk"]["S"].startswith("T#customers#")]
    assert set(token_item) == {"pk", "v", "k", "c", "a"}


def test_a_token_resolves_only_in_its_domain(aws: World) -> None:
    [token] = vault_tokenizer(aws).tokenize(["alice"])
    with pytest.raises(VaultError, match=r"not in vault .* for domain partners"):
        detokenizer(aws, "partners").detokenize([token])
    with pytest.raises(VaultError, match="not a vault token"):
        detokenizer(aws).detokenize(["tk1_" + "0" * 32])


def test_a_ciphertext_moved_to_another_token_fails_its_integrity_check(aws: World) -> None:
    alice, bob = vault_tokenizer(aws).tokenize(["alice", "bob"])
    items = {item["pk"]["S"]: item for item in aws.dynamodb.scan(TableName=aws.table)["Items"]}
    moved = {**items[token_item_key("customers", bob)], "c": items[token_item_key("customers", alice)]["c"]}
    aws.dynamodb.put_item(TableName=aws.table, Item=moved)
    with pytest.raises(VaultError, match="fails its integrity check"):
        detokenizer(aws).detokenize([bob])


def test_a_restored_table_still_resolves_tokens(aws: World) -> None:
    # Point-in-time recovery always restores into a table with another name.
    values = ["alice", "bob"]
    tokens = vault_tokenizer(aws).tokenize(values)
    restored = create_vault_table(aws, aws.table + "-restored")
    for item in aws.dynamodb.scan(TableName=aws.table)["Items"]:
        aws.dynamodb.put_item(TableName=restored.table, Item=item)
    assert detokenizer(restored).detokenize(tokens) == values
    assert vault_tokenizer(restored).tokenize(values) == tokens


def test_tokens_still_resolve_after_the_alias_moves_to_a_successor_key(aws: World) -> None:
    alias = f"alias/vault-{aws.table}"
    aws.kms.create_alias(AliasName=alias, TargetKeyId=aws.vault_key)
    through_alias = replace(aws, vault_key=alias)
    values = ["alice", "bob"]
    tokens = vault_tokenizer(through_alias).tokenize(values)
    successor = aws.kms.create_key()["KeyMetadata"]["Arn"]
    aws.kms.update_alias(AliasName=alias, TargetKeyId=successor)  # what monthly rotation does
    # Old items name the key that wrapped them; new items get the successor.
    assert detokenizer(through_alias).detokenize(tokens) == values
    [carol] = vault_tokenizer(through_alias).tokenize(["carol"])
    item = aws.dynamodb.get_item(TableName=aws.table, Key={"pk": {"S": f"T#customers#{carol}"}})["Item"]
    assert item["a"]["S"] == successor
    assert detokenizer(through_alias).detokenize([*tokens, carol]) == [*values, "carol"]


def test_an_item_naming_another_accounts_key_is_refused(aws: World) -> None:
    [token] = vault_tokenizer(aws).tokenize(["alice"])
    key = {"pk": {"S": f"T#customers#{token}"}}
    item = aws.dynamodb.get_item(TableName=aws.table, Key=key)["Item"]
    item["a"] = {"S": "arn:aws:kms:eu-west-1:999999999999:key/11111111-2222-3333-4444-555555555555"}
    aws.dynamodb.put_item(TableName=aws.table, Item=item)
    with pytest.raises(VaultError, match="not a key of account"):
        detokenizer(aws).detokenize([token])


def test_a_lost_race_adopts_the_winners_token(aws: World, decisions: Decisions) -> None:
    [winner] = vault_tokenizer(aws).tokenize(["alice"])
    # The loser read the table before the winner committed: its lookup finds nothing.
    blind = Counting(aws.dynamodb, batch_get_item=lambda **kwargs: (
        {"Responses": {aws.table: []}, "UnprocessedKeys": {}} if blind.calls["batch_get_item"] == 1
        else aws.dynamodb.batch_get_item(**kwargs)))
    loser = vault_tokenizer(aws, dynamodb=blind, backoff=Backoff(sleep=lambda _: None))
    alice, bob = loser.tokenize(["alice", "bob"])
    # A fresh tokenizer (no cache) reads both mappings from the table: one token per value.
    assert (alice, bob) == (winner, *vault_tokenizer(aws).tokenize(["bob"]))
    assert blind.calls["transact_write_items"] == 2  # cancelled once, then bob alone
    assert decisions.events("vault-tokenize")[-2]["lost_race"] == 1
    lookups = [i for i in aws.dynamodb.scan(TableName=aws.table)["Items"] if i["pk"]["S"].startswith("L#")]
    assert len(lookups) == 2


def test_unprocessed_keys_are_retried_with_backoff(aws: World) -> None:
    [token] = vault_tokenizer(aws).tokenize(["alice"])
    sleeps: list[float] = []
    throttled = Counting(aws.dynamodb, batch_get_item=lambda **kwargs: (
        {"Responses": {}, "UnprocessedKeys": kwargs["RequestItems"]} if throttled.calls["batch_get_item"] == 1
        else aws.dynamodb.batch_get_item(**kwargs)))
    again = vault_tokenizer(aws, dynamodb=throttled, backoff=Backoff(sleep=sleeps.append))
    assert again.tokenize(["alice"]) == [token]
    assert throttled.calls == {"batch_get_item": 2} and len(sleeps) == 1
    never = Counting(aws.dynamodb, batch_get_item=lambda **kwargs: {
        "Responses": {}, "UnprocessedKeys": kwargs["RequestItems"]})
    with pytest.raises(AwsCallError, match="still unprocessed after 3 attempts"):
        vault_tokenizer(aws, dynamodb=never, backoff=Backoff(attempts=3, sleep=sleeps.append)).tokenize(["x"])


def test_lookups_are_batched_by_one_hundred(aws: World) -> None:
    # Writes are counted, not made: moto copies its tables for every transaction (slow), and
    # this test is about how requests are cut.
    written: list[int] = []

    def count_items(**kwargs: Any) -> dict[str, Any]:
        written.append(len(kwargs["TransactItems"]))
        return {}

    counting = Counting(aws.dynamodb, transact_write_items=count_items)
    values = [f"v{i}" for i in range(250)]
    tokenizer = vault_tokenizer(aws, dynamodb=counting)
    tokenizer.tokenize(values)
    assert counting.calls["batch_get_item"] == 3          # 100 + 100 + 50 keys
    assert written == [50] * 10                           # 25 new values (2 items each) per transaction
    assert tokenizer.tokenize(values) == tokenizer.tokenize(list(reversed(values)))[::-1]
    assert counting.calls["batch_get_item"] == 3          # the run's cache answered


def test_lookup_keys_use_a_mac_keyed_once(aws: World, monkeypatch: pytest.MonkeyPatch) -> None:
    tokenizer = vault_tokenizer(aws)
    setups = hmac_key_setups(monkeypatch, tokenizer.index_key.secret)
    values = [f"v{i}" for i in range(30)]
    tokenizer.tokenize(values)
    assert setups == []
    # The same lookup keys as one value at a time: tables written before stay readable.
    lookups = {item["pk"]["S"] for item in aws.dynamodb.scan(TableName=aws.table)["Items"]
               if item["pk"]["S"].startswith("L#")}
    assert lookups == {lookup_item_key(tokenizer.index_key, value) for value in values}


class CountedStr(str):
    """A value that counts how often it is encoded."""

    encodings: ClassVar[list[str]] = []

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        self.encodings.append(str(self))
        return super().encode(encoding, errors)


def test_each_new_value_is_encoded_once(aws: World) -> None:
    CountedStr.encodings.clear()
    tokenizer = vault_tokenizer(aws)
    values = [CountedStr("alice"), CountedStr("bob"), CountedStr("alice")]
    tokens = tokenizer.tokenize(values)
    # Once for its size, its lookup key and its encryption; cached values and repeats not at all.
    assert sorted(CountedStr.encodings) == ["alice", "bob"]
    assert tokenizer.tokenize(values) == tokens and len(CountedStr.encodings) == 2
    assert detokenizer(aws).detokenize(tokens) == values


def test_the_vault_value_limit_holds_for_direct_callers(aws: World) -> None:
    # The file engine checks first, naming the line; callers of the library get the same limit.
    counting = Counting(aws.dynamodb)
    with pytest.raises(InputError, match="a value of 65538 bytes is larger than the vault's limit of 65536"):
        vault_tokenizer(aws, dynamodb=counting).tokenize(["alice", "é" * 32769])  # 32769 characters
    assert counting.calls == {}


Damage = Callable[[dict[str, Any]], object]  # alters an item (or a checkpoint) in place


@pytest.mark.parametrize("damage, message", [
    (lambda item: item.pop("k"), "has no attribute 'k' of type binary"),
    (lambda item: item.pop("c"), "has no attribute 'c' of type binary"),
    (lambda item: item.update(c={"S": "sealed"}), "has no attribute 'c' of type binary"),
    (lambda item: item.update(c={"B": b"short"}), "holds a 5-byte sealed value; .* at least 28 bytes"),
])
def test_a_damaged_token_item_is_a_vault_error(aws: World, decisions: Decisions, damage: Damage,
                                              message: str) -> None:
    [token] = vault_tokenizer(aws).tokenize(["alice"])
    key = {"pk": {"S": token_item_key("customers", token)}}
    item = aws.dynamodb.get_item(TableName=aws.table, Key=key)["Item"]
    damage(item)
    aws.dynamodb.put_item(TableName=aws.table, Item=item)
    with pytest.raises(VaultError, match=f"the vault item of token tv1_.* {message}"):
        detokenizer(aws).detokenize([token])
    assert decisions.events("detokenize")[-1]["outcome"] == "failed"


@pytest.mark.parametrize("damage", [
    lambda item: item.pop("t"),
    lambda item: item.update(t={"B": b"tv1_"}),
    lambda item: item.update(t={"S": "alice@example.com"}),  # would be written out as the "token"
])
def test_a_damaged_lookup_item_is_a_vault_error(aws: World, damage: Damage) -> None:
    tokenizer = vault_tokenizer(aws)
    tokenizer.tokenize(["alice@example.com"])
    key = {"pk": {"S": lookup_item_key(tokenizer.index_key, "alice@example.com")}}
    item = aws.dynamodb.get_item(TableName=aws.table, Key=key)["Item"]
    damage(item)
    aws.dynamodb.put_item(TableName=aws.table, Item=item)
    with pytest.raises(VaultError, match=r"lookup item L#customers#.* has no token \(attribute t"):
        vault_tokenizer(aws).tokenize(["alice@example.com"])


def test_detokenize_logs_who_asked_without_values_or_tokens(aws: World, decisions: Decisions) -> None:
    tokens = vault_tokenizer(aws).tokenize(["alice@example.com", "bob@example.com"])
    values = detokenizer(aws).detokenize(tokens + tokens[:1])
    assert values == ["alice@example.com", "bob@example.com", "alice@example.com"]
    [line] = decisions.events("detokenize")
    identity = aws.sts.get_caller_identity()
    assert line | {"time": None} == {
        "event": "detokenize", "time": None, "outcome": "allowed", "caller": identity["Arn"],
        "account": identity["Account"], "table": aws.table, "domain": "customers", "tokens": 3,
        "distinct": 2, "vault_reads": 2, "kms_decrypts": 1}
    raw = next(text for text in decisions.lines if '"detokenize"' in text)
    assert not any(secret in raw for secret in (*values, *tokens, *(t[4:] for t in tokens)))


def test_a_refused_decrypt_is_logged_as_denied_and_raised(aws: World, decisions: Decisions) -> None:
    tokens = vault_tokenizer(aws).tokenize(["alice"])
    refusing = boto3.client("kms", region_name=REGION)
    with Stubber(refusing) as stub:
        stub.add_client_error("decrypt", service_error_code="AccessDeniedException",
                              service_message="not authorized to perform kms:Decrypt", http_status_code=400)
        with pytest.raises(AwsCallError, match="KMS Decrypt failed: AccessDeniedException"):
            detokenizer(aws, kms=refusing).detokenize(tokens)
    [line] = decisions.events("detokenize")
    assert (line["outcome"], line["error"], line["tokens"]) == ("denied", "AccessDeniedException", 1)


# -- files ---------------------------------------------------------------------------------------
def det(domain: str = "customers") -> DeterministicTokenizer:
    from ztai_runtime.tokenize.keys import DomainKey
    return DeterministicTokenizer(DomainKey("token-key", domain, "arn:test", b"\x01" * 32))


def job(source: Path, destination: Path, **options: Any) -> StreamJob:
    fields: dict[str, Any] = {"file_format": "csv", "columns": ("email",),
                              "parameters": {"mode": "deterministic", "domain": "customers"},
                              "checkpoint_every": 100, "batch_rows": 32}
    fields.update(options)
    return StreamJob(source=source, destination=destination, **fields)


def test_csv_selected_columns_are_tokenized_the_rest_kept(tmp_path: Path) -> None:
    rows = [["id", "email", "note"], ["1", "a@x.com", 'has "quotes", commas\nand a newline'],
            ["2", "", "empty stays empty"], ["3", " A@X.com ", "normalised"]]
    source = write_csv(tmp_path / "in.csv", rows)
    result = run(job(source, tmp_path / "out.csv", normalizers={"email": ("strip", "lower")}),
                 det().tokens)
    out = read_csv(tmp_path / "out.csv")
    assert out[0] == rows[0] and [r[2] for r in out] == [r[2] for r in rows]
    assert out[1][1] == out[3][1] == det().token("a@x.com") and out[2][1] == ""
    assert (result.rows, result.values) == (3, 2)
    assert (tmp_path / "out.csv").read_bytes().split(b"\n")[0].endswith(b"\r")  # CRLF kept


def test_csv_keeps_a_bom_and_lf_line_ends(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes(b"\xef\xbb\xbfemail,n\na@x.com,1\n")
    run(job(source, tmp_path / "out.csv"), det().tokens)
    assert (tmp_path / "out.csv").read_bytes() == f"\ufeffemail,n\n{det().token('a@x.com')},1\n".encode()


def test_jsonl_strings_integers_and_nulls(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"id": 42, "email": "a@x.com", "meta": {"email": "nested stays"}}\n\n'
                      '{"id": "42", "email": null, "meta": []}\n', encoding="utf-8")
    result = run(job(source, tmp_path / "out.jsonl", file_format="jsonl", columns=("id", "email")),
                 det().tokens)
    first, blank, second = (tmp_path / "out.jsonl").read_text(encoding="utf-8").split("\n")[:3]
    assert json.loads(first) == {"id": det().token("42"), "email": det().token("a@x.com"),
                                 "meta": {"email": "nested stays"}}
    assert blank == "" and json.loads(second) == {"id": det().token("42"), "email": None, "meta": []}
    assert (result.rows, result.values) == (3, 3)


def test_jsonl_numbers_in_other_fields_are_kept_exactly_or_refused(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"id": "a", "score": 0.25, "big": 12345678901234567890}\n', encoding="utf-8")
    run(job(source, tmp_path / "out.jsonl", file_format="jsonl", columns=("id",)), det().tokens)
    assert '"score":0.25,"big":12345678901234567890' in (tmp_path / "out.jsonl").read_text(encoding="utf-8")
    for number in ("1E2", "0.10000000000000000555", "1e400"):
        source.write_text(f'{{"id": "a", "x": {number}}}\n', encoding="utf-8")
        with pytest.raises(InputError, match=f"line 1: .*number {re.escape(number)} would be written back"):
            run(job(source, tmp_path / "bad.jsonl", file_format="jsonl", columns=("id",)), det().tokens)
        assert not (tmp_path / "bad.jsonl").exists()


def test_jsonl_lone_surrogate_is_an_input_error(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"id": "a", "note": "\\ud800"}\n', encoding="utf-8")
    with pytest.raises(InputError, match="lone UTF-16 surrogate"):
        run(job(source, tmp_path / "out.jsonl", file_format="jsonl", columns=("id",)), det().tokens)
    assert not (tmp_path / "out.jsonl").exists()


def nested_jsonl(depth: int) -> str:
    return '{"email": "a@x.com", "deep": ' + "[" * depth + "]" * depth + "}\n"


def test_deeply_nested_jsonl_is_an_input_error(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"email": "a@x.com"}\n' + nested_jsonl(100_000), encoding="utf-8")
    with pytest.raises(InputError, match=r"in\.jsonl line 2: JSON nested too deeply"):
        run(job(source, tmp_path / "out.jsonl", file_format="jsonl"), det().tokens)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["in.jsonl"]


def test_jsonl_near_the_nesting_limit_is_written_or_refused(tmp_path: Path) -> None:
    # Records are parsed and written at different stack depths: one nested just under the limit
    # parses, then fails to be written. Either way the answer is a clear error, never a crash.
    source, destination = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    refused = set()
    for depth in range(850, 1000):
        source.write_text(nested_jsonl(depth), encoding="utf-8")
        try:
            run(job(source, destination, file_format="jsonl", force=True), det().tokens)
        except InputError as error:
            assert "JSON nested too deeply" in str(error)
            refused.add(str(error).split(":")[0])
        else:
            assert json.loads(destination.read_text(encoding="utf-8"))["email"] == det().token("a@x.com")
    assert "in.jsonl line 1" in refused  # the parse path was reached


class CountingLookups(dict[str, Any]):
    lookups: ClassVar[list[str]] = []

    def get(self, key: str, default: Any = None) -> Any:
        self.lookups.append(key)
        return super().get(key, default)


@pytest.mark.parametrize("file_format", ["csv", "jsonl"])
def test_normalisers_and_the_size_limit_are_looked_up_once_per_file(tmp_path: Path, file_format: str,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    rows = people(300)
    if file_format == "csv":
        source = write_csv(tmp_path / "in.csv", rows)
    else:
        source = tmp_path / "in.jsonl"
        source.write_text("".join(json.dumps(dict(zip(rows[0], row, strict=True))) + "\n"
                                  for row in rows[1:]), encoding="utf-8")
    CountingLookups.lookups.clear()
    monkeypatch.setattr("ztai_runtime.tokenize.stream.composed",
                        lambda steps: CountingLookups(composed(steps)))
    checks: list[int] = []
    monkeypatch.setattr("ztai_runtime.tokenize.stream._State.check_size",
                        lambda self, value, line, column: checks.append(line))
    options: dict[str, Any] = {"file_format": file_format, "columns": ("id", "email"),
                               "normalizers": {"email": ("lower",)}}
    result = run(job(source, tmp_path / f"out.{file_format}", **options), det().tokens)
    assert result.values == 600
    assert sorted(CountingLookups.lookups) == ["email", "id"] and checks == []  # no limit: no checks
    run(job(source, tmp_path / f"limited.{file_format}", max_value_bytes=100, **options), det().tokens)
    assert len(checks) == 600  # with a limit, every value


def test_the_size_limit_names_the_line_in_jsonl_too(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"email": "a@x.com"}\n{"email": "%s"}\n' % ("é" * 6), encoding="utf-8")
    with pytest.raises(InputError, match=r"in\.jsonl line 2, column email: the value is 12 bytes; "
                                         "at most 11 are allowed"):
        run(job(source, tmp_path / "out.jsonl", file_format="jsonl", max_value_bytes=11), det().tokens)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["in.jsonl"]


def recording(batches: list[list[str]]) -> Callable[[list[str]], list[str]]:
    """Deterministic tokens, keeping each batch the engine hands over."""
    def transform(values: list[str]) -> list[str]:
        batches.append(list(values))
        return det().tokens(values)

    return transform


def test_memory_is_bounded_by_the_batch(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "in.csv", people(1000))
    batches: list[list[str]] = []
    run(job(source, tmp_path / "out.csv", batch_rows=64), recording(batches))
    sizes = [len(batch) for batch in batches]
    assert max(sizes) == 64 and sum(sizes) == 1000


class CrashError(Exception):
    """The process dying mid-file (an exception the library does not catch)."""


def crashing(after_batches: int) -> Callable[[list[str]], list[str]]:
    calls = [0]

    def transform(values: list[str]) -> list[str]:
        calls[0] += 1
        if calls[0] > after_batches:
            raise CrashError("the process died here")
        return det().tokens(values)

    return transform


@pytest.mark.parametrize("file_format", ["csv", "jsonl"])
def test_resume_after_a_crash_is_byte_identical(tmp_path: Path, file_format: str) -> None:
    rows = people(1000)
    if file_format == "csv":
        source = write_csv(tmp_path / "in.csv", rows)
    else:
        source = tmp_path / "in.jsonl"
        source.write_text("".join(json.dumps(dict(zip(rows[0], row, strict=True))) + "\n"
                                  for row in rows[1:]), encoding="utf-8")
    options = {"file_format": file_format}
    run(job(source, tmp_path / f"whole.{file_format}", **options), det().tokens)

    destination = tmp_path / f"out.{file_format}"
    with pytest.raises(CrashError):
        run(job(source, destination, **options), crashing(after_batches=10))  # 320 rows done
    assert not destination.exists() and partial_path(destination).exists()
    checkpoint = json.loads(checkpoint_path(destination).read_text())
    assert (checkpoint["format"], checkpoint["version"]) == ("zero-trust-ai/tokenize-checkpoint", 1)
    # Batches of 32, a checkpoint once 100 rows have passed: at rows 128 and 256.
    assert checkpoint["rows_done"] == 256
    assert partial_path(destination).stat().st_size > checkpoint["output_offset"]  # rows after it too

    batches: list[list[str]] = []
    result = run(job(source, destination, resume=True, **options), recording(batches))
    assert destination.read_bytes() == (tmp_path / f"whole.{file_format}").read_bytes()
    assert result.resumed_from_row == 256 and sum(map(len, batches)) == 1000 - 256
    assert not partial_path(destination).exists() and not checkpoint_path(destination).exists()


def interrupted(tmp_path: Path, rows: int = 1000) -> tuple[Path, Path]:
    source = write_csv(tmp_path / "in.csv", people(rows))
    destination = tmp_path / "out.csv"
    with pytest.raises(CrashError):
        run(job(source, destination), crashing(after_batches=10))
    return source, destination


def test_resume_refuses_a_changed_input(tmp_path: Path) -> None:
    source, destination = interrupted(tmp_path)
    with open(source, "ab") as handle:
        handle.write(b"1000,late@example.com,DE\r\n")
    with pytest.raises(ResumeError, match=r"not the file the checkpoint was taken from.*size"):
        run(job(source, destination, resume=True), det().tokens)
    assert not destination.exists() and checkpoint_path(destination).exists()


def test_resume_refuses_a_rewritten_prefix_even_with_the_same_size_and_time(tmp_path: Path) -> None:
    source, destination = interrupted(tmp_path)
    status = source.stat()
    data = bytearray(source.read_bytes())
    data[data.index(b"user1@")] = ord("U")  # inside the rows already tokenized
    source.write_bytes(bytes(data))
    os.utime(source, ns=(status.st_atime_ns, status.st_mtime_ns))
    with pytest.raises(ResumeError, match="content of the first"):
        run(job(source, destination, resume=True), det().tokens)


def test_resume_refuses_other_parameters(tmp_path: Path) -> None:
    source, destination = interrupted(tmp_path)
    with pytest.raises(ResumeError, match=r"'domain': 'customers'.*'domain': 'partners'"):
        run(job(source, destination, resume=True, parameters={"mode": "deterministic",
                                                                "domain": "partners"}), det().tokens)


def checkpoint_text(edit: Damage) -> Callable[[dict[str, Any]], str]:
    """A corruption of the checkpoint document by `edit`, as the text written back."""
    def corrupt(document: dict[str, Any]) -> str:
        edit(document)
        return json.dumps(document)
    return corrupt


@pytest.mark.parametrize("corrupt, message", [
    (checkpoint_text(lambda c: c.update(parameters=["mode"])),
     r"'parameters' is \[\"mode\"\], not a JSON object"),
    (checkpoint_text(lambda c: c.update(parameters="deterministic")), "'parameters' is .*not a JSON object"),
    (checkpoint_text(lambda c: c["input"].pop("size")), "'size' is null, not a JSON integer"),
    (checkpoint_text(lambda c: c.update(input=[1, 2])), "'input' is .*not a JSON object"),
    (checkpoint_text(lambda c: c["input"].pop("consumed_sha256")),
     "'consumed_sha256' is null, not a JSON string"),
    (checkpoint_text(lambda c: c["input"].update(mtime_ns="yesterday")),
     "'mtime_ns' is .*not a JSON integer"),
    (checkpoint_text(lambda c: c.update(output_offset=-5)), "'output_offset' is -5, not a count"),
    (checkpoint_text(lambda c: c.update(input_offset=1.5)), "'input_offset' is 1.5, not a JSON integer"),
    (checkpoint_text(lambda c: c.update(rows_done=True)), "'rows_done' is true, not a JSON integer"),
    (checkpoint_text(lambda c: c.update(version=2)),
     "not a zero-trust-ai/tokenize-checkpoint document of version 1"),
    (lambda c: json.dumps([c]), "not a zero-trust-ai/tokenize-checkpoint document"),
    (lambda c: "[" * 100_000, "maximum recursion depth exceeded"),
    (lambda c: "{", "Expecting property name"),
])
def test_a_damaged_checkpoint_is_refused_by_name(tmp_path: Path, corrupt: Callable[[dict[str, Any]], str],
                                                 message: str) -> None:
    source, destination = interrupted(tmp_path)
    checkpoint = checkpoint_path(destination)
    checkpoint.write_text(corrupt(json.loads(checkpoint.read_text())))
    expected = (rf"checkpoint out\.csv\.ztai-checkpoint cannot be read \(.*{message}.*\); "
                "pass --force to start over")
    with pytest.raises(ResumeError, match=expected):
        run(job(source, destination, resume=True), det().tokens)
    assert partial_path(destination).exists() and checkpoint.exists() and not destination.exists()
    assert run(job(source, destination, force=True), det().tokens).rows == 1000


@pytest.mark.parametrize("occupied", [
    lambda destination: destination,
    partial_path,
    checkpoint_path,
])
def test_a_directory_in_the_outputs_place_is_refused_before_any_work(
        tmp_path: Path, occupied: Callable[[Path], Path]) -> None:
    source, destination = write_csv(tmp_path / "in.csv", people(500)), tmp_path / "out.csv"
    occupied(destination).mkdir()
    (occupied(destination) / "kept").write_text("kept")
    batches: list[list[str]] = []
    with pytest.raises(InputError, match=f"{re.escape(occupied(destination).name)} is a directory; "
                                         "the output must be a file name"):
        run(job(source, destination, force=True), recording(batches))
    assert batches == []  # refused up front, not after the whole input
    assert sorted(path.name for path in tmp_path.iterdir()) == ["in.csv", occupied(destination).name]
    assert (occupied(destination) / "kept").read_text() == "kept"


def test_an_interrupted_run_needs_resume_or_force(tmp_path: Path) -> None:
    source, destination = interrupted(tmp_path)
    with pytest.raises(ResumeError, match="pass --resume to continue it or --force"):
        run(job(source, destination), det().tokens)
    result = run(job(source, destination, force=True), det().tokens)
    assert result.resumed_from_row == 0 and result.rows == 1000


def test_vault_resume_is_byte_identical_too(aws: World, tmp_path: Path) -> None:
    # Rows 0-149 hold 15 values, rows 150-299 15 others: the second half needs a new lookup.
    rows = [["id", "email"]] + [[str(i), f"{'early' if i < 150 else 'late'}{i % 15}@example.com"]
                                for i in range(300)]
    source = write_csv(tmp_path / "in.csv", rows)
    options: dict[str, Any] = dict(key_id=MAC_ALIAS, domain="customers", columns=["email"], mode="vault",
                                   table=aws.table, vault_key_id=aws.vault_key, checkpoint_every=50,
                                   batch_rows=50)
    destination = tmp_path / "out.csv"

    def dies_looking_up_the_second_half(**kwargs: Any) -> dict[str, Any]:
        if flaky.calls["batch_get_item"] > 1:
            raise CrashError("lost the network")
        result: dict[str, Any] = aws.dynamodb.batch_get_item(**kwargs)
        return result

    flaky = Counting(aws.dynamodb, batch_get_item=dies_looking_up_the_second_half)
    with pytest.raises(CrashError):
        tokenize_file(aws.kms, source, destination, dynamodb=flaky, **options)
    assert json.loads(checkpoint_path(destination).read_text())["rows_done"] == 150
    result = tokenize_file(aws.kms, source, destination, dynamodb=aws.dynamodb, resume=True, **options)
    assert result.resumed_from_row == 150
    tokenize_file(aws.kms, source, tmp_path / "whole.csv", dynamodb=aws.dynamodb, **options)
    assert destination.read_bytes() == (tmp_path / "whole.csv").read_bytes()
    back = detokenize_file(aws.dynamodb, aws.kms, aws.sts, destination, tmp_path / "back.csv",
                           table=aws.table, domain="customers", vault_key_id=aws.vault_key,
                           columns=["email"])
    assert read_csv(tmp_path / "back.csv") == rows and back.values == 300


@pytest.mark.parametrize("name, content, options, message", [
    ("in.csv", "id,mail\n1,a\n", {}, r"column 'email' not in the header; the columns are id, mail"),
    ("in.csv", "email,n\na,1\nb,2,3\n", {}, "in.csv line 3: 3 fields, the header has 2"),
    ("in.csv", 'email,n\n"a"b,1\n', {}, "in.csv line 2: malformed CSV"),
    ("in.csv", "email,email\na,b\n", {}, "appears twice in the header"),
    ("in.csv", "", {}, "is empty; a CSV input starts with a header"),
    ("in.jsonl", '{"email": "a"}\n{"email": "b",}\n', {"file_format": "jsonl"},
     "in.jsonl line 2: malformed JSON"),
    ("in.jsonl", '["email"]\n', {"file_format": "jsonl"}, "line 1: a JSON list, not an object"),
    ("in.jsonl", '{"email": 1.5}\n', {"file_format": "jsonl"},
     "field 'email' is a number with a fraction or exponent; it must be a string, an integer or null"),
    ("in.jsonl", '{"email": true}\n', {"file_format": "jsonl"}, "field 'email' is a boolean"),
    ("in.jsonl", '{"mail": "a"}\n', {"file_format": "jsonl"}, "line 1: field 'email' is missing"),
    ("in.jsonl", '{"email": NaN}\n', {"file_format": "jsonl"}, "line 1: malformed JSON"),
])
def test_bad_input_is_named_and_leaves_no_output(tmp_path: Path, name: str, content: str,
                                                 options: dict[str, Any], message: str) -> None:
    source = tmp_path / name
    source.write_text(content, encoding="utf-8")
    destination = tmp_path / f"out{source.suffix}"
    with pytest.raises(InputError, match=message):
        run(job(source, destination, **options), det().tokens)
    assert sorted(path.name for path in tmp_path.iterdir()) == [name]


def test_bad_input_late_in_the_file_removes_the_partial_output(tmp_path: Path) -> None:
    rows = people(500)
    source = write_csv(tmp_path / "in.csv", rows)
    with open(source, "ab") as handle:
        handle.write(b"\xff\xfe,not,utf8\r\n")
    with pytest.raises(InputError, match=r"in.csv line 502: not UTF-8 text"):
        run(job(source, tmp_path / "out.csv"), det().tokens)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["in.csv"]


def test_outputs_are_readable_by_their_owner_only(tmp_path: Path) -> None:
    source, destination = interrupted(tmp_path)
    for path in (partial_path(destination), checkpoint_path(destination)):
        assert path.stat().st_mode & 0o777 == 0o600
    run(job(source, destination, resume=True), det().tokens)
    assert destination.stat().st_mode & 0o777 == 0o600


def test_output_exists_is_refused_unless_forced(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "in.csv", people(5))
    destination = tmp_path / "out.csv"
    destination.write_text("keep me")
    with pytest.raises(InputError, match="exists; pass --force to replace it"):
        run(job(source, destination), det().tokens)
    assert destination.read_text() == "keep me"
    run(job(source, destination, force=True), det().tokens)
    assert read_csv(destination)[1][1] == det().token("user0@example.com")


def test_the_vault_value_limit_names_the_line(aws: World, tmp_path: Path) -> None:
    source = write_csv(tmp_path / "in.csv", [["email"], ["a"], ["x" * 70_000]])
    with pytest.raises(InputError, match="line 3, column email: the value is 70000 bytes; at most 65536"):
        tokenize_file(aws.kms, source, tmp_path / "out.csv", key_id=MAC_ALIAS, domain="customers",
                      columns=["email"], mode="vault", dynamodb=aws.dynamodb, table=aws.table,
                      vault_key_id=aws.vault_key)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["in.csv"]


def test_an_unknown_token_in_a_file_names_the_lines_and_leaves_no_output(aws: World, tmp_path: Path,
                                                                          decisions: Decisions) -> None:
    source = write_csv(tmp_path / "in.csv", [["email"], ["tv1_" + "ab" * 16]])
    with pytest.raises(VaultError, match=r"in.csv lines 2-2: 1 of 1 tokens are not in vault"):
        detokenize_file(aws.dynamodb, aws.kms, aws.sts, source, tmp_path / "out.csv", table=aws.table,
                        domain="customers", vault_key_id=aws.vault_key, columns=["email"])
    assert sorted(path.name for path in tmp_path.iterdir()) == ["in.csv"]
    assert decisions.events("detokenize")[0]["outcome"] == "failed"


def test_modes_need_their_own_options(aws: World, tmp_path: Path) -> None:
    source = write_csv(tmp_path / "in.csv", people(2))
    with pytest.raises(InputError, match="vault mode needs the vault table"):
        tokenize_file(aws.kms, source, tmp_path / "o.csv", key_id=MAC_ALIAS, domain="d",
                      columns=["email"], mode="vault")
    with pytest.raises(InputError, match="belong to --mode vault"):
        tokenize_file(aws.kms, source, tmp_path / "o.csv", key_id=MAC_ALIAS, domain="d",
                      columns=["email"], table=aws.table)
    text = source.rename(tmp_path / "in.txt")
    with pytest.raises(InputError, match=r"cannot tell the format of .*in.txt from its extension"):
        tokenize_file(aws.kms, text, tmp_path / "o.txt", key_id=MAC_ALIAS, domain="d", columns=["email"])
    assert not (tmp_path / "o.txt").exists()


def test_lookup_and_token_item_keys_fit_the_iam_prefixes() -> None:
    from ztai_runtime.tokenize.keys import DomainKey
    index = DomainKey("vault-index-key", "customers", "arn", b"\x02" * 32)
    assert re.fullmatch(r"L#customers#[0-9a-f]{64}", lookup_item_key(index, "alice"))
    assert token_item_key("customers", "tv1_" + "0" * 32) == "T#customers#tv1_" + "0" * 32

