"""Token vault (tokenization): the DynamoDB table behind reversible tokens, and who may use it.

The table follows the item layout of `ztai_runtime/tokenize/vault.py` (which this module must not
import: components package runtime code, they do not run it). One string hash key `pk`:

    "L#<domain>#<hex MAC>"  lookup item: a value's token, found by the tokenizing role
    "T#<domain>#<token>"    token item: the value, AES-GCM-encrypted under a KMS data key

Secure by default: on-demand billing, server-side encryption with the customer managed key passed
in (the key hierarchy's `secrets` key), point-in-time recovery for the longest window DynamoDB keeps
(35 days), deletion protection on, no TTL (tokens never expire: a token in a dataset must resolve as
long as the dataset exists), no stream (nothing copies the items elsewhere).

Access is granted by the vault, as in CDK (`table.grant_read_data(role)`): `grant_tokenize` and
`grant_detokenize` write least-privilege IAM role policies on this table's ARN only, split by item
kind with `dynamodb:LeadingKeys`:

- tokenize: `dynamodb:BatchGetItem` on `L#...` items, `dynamodb:PutItem` (the puts of
  TransactWriteItems) on `L#...` and `T#...` items, without returning old items. It can learn the
  token of a value it holds, never the value of a token;
- detokenize: `dynamodb:BatchGetItem` on `T#<domain>#...` items, optionally for named domains only.

Neither gets Scan, Query, UpdateItem, DeleteItem or BatchWriteItem: none of them carries the key
conditions, and the library needs none of them.

KMS, granted by the key hierarchy (only it writes key policies), for each role:

- tokenize: `kms:GenerateMac` on the tokens key (`keys.grant_generate_mac(role)`: derives the vault's
  lookup key) and `kms:GenerateDataKey` on the secrets key (`keys.grant_generate_data_key("secrets",
  role)`: encrypts new values). DynamoDB also uses a CMK-encrypted table's key in the caller's name
  (CloudTrail shows the caller, invoked by DynamoDB; cached per connection for at most five
  minutes), for writes as for reads: `keys.grant_use_through_service("secrets", role, "dynamodb")`
  allows that under `kms:ViaService = dynamodb.<region>.amazonaws.com` only, so the tokenizer still
  cannot decrypt vault values directly.
- detokenize: `kms:Decrypt` on the secrets key (`keys.grant_decrypt("secrets", role)`): it unwraps the
  values' data keys; plus the same use through DynamoDB for reading the table.
- the deploying role: creating a table under a customer managed key makes DynamoDB use the key as
  the creator (AWS KMS Developer Guide, "How Amazon DynamoDB uses AWS KMS": Encrypt, Decrypt,
  ReEncrypt*, GenerateDataKey*, DescribeKey and CreateGrant). `KeyHierarchyArgs(dynamodb_tables=
  {"secrets": [vault_table_name(environment)]})` (in `__main__.py`) gives the key administrators
  exactly that, through DynamoDB only, the data-key actions only under this table's encryption
  context, in the policy the key is created with, so the table never races the sealed policy. A
  direct KMS call by an administrator still gets nothing.

`grant_tokenize(role, keys=...)` / `grant_detokenize(role, keys=...)` make the IAM grant and, given the
hierarchy, the KMS grants it can express, in one call.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import pulumi
import pulumi_aws as aws

PARTITION_KEY = "pk"
LOOKUP_KEY_PREFIX = "L#"
TOKEN_KEY_PREFIX = "T#"
VAULT_KEY_PURPOSE = "secrets"
# The domain rule of ztai_runtime.tokenize.keys.DOMAIN_PATTERN (a test holds the two equal): no '#',
# which separates the parts of an item key, and no '*' or '?', which are wildcards in StringLike.
DOMAIN_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}")
TABLE_NAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]{3,255}")
# The KMS encryption context of vault data keys, as ztai_runtime.tokenize.vault.encryption_context
# sets it (a test holds the two equal; components do not import the runtime).
CONTEXT_PURPOSE_KEY, CONTEXT_PURPOSE = "zero-trust-ai:purpose", "token-vault"
CONTEXT_DOMAIN_KEY = "zero-trust-ai:domain"
KEY_ARN_PATTERN = re.compile(r"arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+")
LONGEST_RECOVERY_DAYS = 35  # the longest point-in-time recovery window DynamoDB offers

# Named action sets: each grant is one call over `_grant`.
TOKENIZE_READ_ACTIONS = ("dynamodb:BatchGetItem",)
TOKENIZE_WRITE_ACTIONS = ("dynamodb:PutItem",)
DETOKENIZE_READ_ACTIONS = ("dynamodb:BatchGetItem",)


class _Keys(Protocol):
    """What the vault asks of `components.keys.KeyHierarchy` (typed here to keep the import light)."""

    def grant_generate_mac(self, role: aws.iam.Role) -> None: ...
    def grant_generate_data_key(self, purpose: str, role: aws.iam.Role, *,
                                encryption_context: Mapping[str, Sequence[str]] | None = None) -> None: ...
    def grant_decrypt(self, purpose: str, role: aws.iam.Role, *,
                      encryption_context: Mapping[str, Sequence[str]] | None = None) -> None: ...
    def grant_use_through_service(self, purpose: str, role: aws.iam.Role, service: str) -> None: ...


@dataclass
class TokenVaultArgs:
    """Inputs of `TokenVault`; every default is the secure one.

    environment, owner: tags, and the default table name.
    kms_key_arn: ARN of the customer managed key that encrypts the table (the hierarchy's
        `key_arn("secrets")`). Required: there is no AWS-owned or AWS-managed fallback.
    table_name: default `zero-trust-ai-<environment>-token-vault`. A fixed name, so operators and
        policies can name it. Changing it replaces the table and loses every token, unless it is
        first restored (point-in-time recovery) under the new name.
    point_in_time_recovery_days: 1-35; default 35, the longest DynamoDB keeps.
    deletion_protection: DynamoDB refuses DeleteTable while it is on. Default True; a development
        stack may turn it off to tear down.
    protect: Pulumi `protect` on the table (prod). Default False.
    """

    environment: str
    owner: str
    kms_key_arn: pulumi.Input[str]
    table_name: str | None = None
    point_in_time_recovery_days: int = LONGEST_RECOVERY_DAYS
    deletion_protection: bool = True
    protect: bool = False


def vault_table_name(environment: str, table_name: str | None = None) -> str:
    """The vault table's name, known before anything is declared: the key that encrypts it names
    it in the policy it is created with (KeyHierarchyArgs.dynamodb_tables)."""
    return table_name or f"zero-trust-ai-{environment}-token-vault"


class TokenVault(pulumi.ComponentResource):
    """The vault table and its grants. Type token `zero-trust-ai:tokenization:TokenVault`."""

    table: aws.dynamodb.Table

    def __init__(self, name: str, args: TokenVaultArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        _validate(args)
        super().__init__("zero-trust-ai:tokenization:TokenVault", name, None, opts)
        self._name = name
        self._granted: set[tuple[str, str]] = set()
        tags = {"data-classification": "restricted", "ztai:purpose": "token-vault"}
        self.table = aws.dynamodb.Table(
            f"{name}-table",
            name=vault_table_name(args.environment, args.table_name),
            billing_mode="PAY_PER_REQUEST",
            hash_key=PARTITION_KEY,
            attributes=[aws.dynamodb.TableAttributeArgs(name=PARTITION_KEY, type="S")],
            server_side_encryption=aws.dynamodb.TableServerSideEncryptionArgs(
                enabled=True, kms_key_arn=args.kms_key_arn),
            point_in_time_recovery=aws.dynamodb.TablePointInTimeRecoveryArgs(
                enabled=True, recovery_period_in_days=args.point_in_time_recovery_days),
            deletion_protection_enabled=args.deletion_protection,
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )
        self.table_name: pulumi.Output[str] = self.table.name
        self.table_arn: pulumi.Output[str] = self.table.arn
        self.register_outputs({"tableName": self.table_name, "tableArn": self.table_arn})

    # -- grants ----------------------------------------------------------------------------------
    def grant_tokenize(self, role: aws.iam.Role, *, keys: _Keys | None = None) -> aws.iam.RolePolicy:
        """Let `role` tokenize into the vault (any domain: the lookup needs no domain scope, and a
        tokenizer learns only the tokens of values it already holds)."""
        policy = self._grant("tokenize", role, [
            _statement("ReadLookupItems", TOKENIZE_READ_ACTIONS, [f"{LOOKUP_KEY_PREFIX}*"]),
            _statement("WriteNewTokens", TOKENIZE_WRITE_ACTIONS,
                       [f"{LOOKUP_KEY_PREFIX}*", f"{TOKEN_KEY_PREFIX}*"],
                       # A put must not hand back the item it would replace.
                       {"StringEqualsIfExists": {"dynamodb:ReturnValues": "NONE"}}),
        ])
        if keys is not None:
            keys.grant_generate_mac(role)
            # Data keys only for vault values: the context the runtime sets (a test holds them equal).
            keys.grant_generate_data_key(VAULT_KEY_PURPOSE, role,
                                         encryption_context={CONTEXT_PURPOSE_KEY: [CONTEXT_PURPOSE]})
            keys.grant_use_through_service(VAULT_KEY_PURPOSE, role, "dynamodb")
        return policy

    def grant_detokenize(self, role: aws.iam.Role, *, domains: Sequence[str] | None = None,
                         keys: _Keys | None = None) -> aws.iam.RolePolicy:
        """Let `role` resolve tokens of `domains` (default: every domain) back to values."""
        if domains is not None:
            if not domains:
                raise ValueError("grant_detokenize: domains is empty; pass None for every domain")
            for domain in domains:
                if not DOMAIN_PATTERN.fullmatch(domain):
                    raise ValueError(f"grant_detokenize: domain {domain!r} is not a valid domain "
                                     "(letters, digits and . _ : @ / -, at most 128)")
        prefixes = [f"{TOKEN_KEY_PREFIX}{domain}#*" for domain in domains] if domains else [
            f"{TOKEN_KEY_PREFIX}*"]
        policy = self._grant("detokenize", role, [
            _statement("ReadTokenItems", DETOKENIZE_READ_ACTIONS, prefixes)])
        if keys is not None:
            # Only vault data keys, and only of the granted domains: the DynamoDB reads are scoped
            # by domain, and so is the key, even for a copy of the items (an export, a restore).
            context = {CONTEXT_PURPOSE_KEY: [CONTEXT_PURPOSE]}
            if domains:
                context[CONTEXT_DOMAIN_KEY] = list(domains)
            keys.grant_decrypt(VAULT_KEY_PURPOSE, role, encryption_context=context)
            keys.grant_use_through_service(VAULT_KEY_PURPOSE, role, "dynamodb")
        return policy

    def _grant(self, kind: str, role: aws.iam.Role,
               statements: list[dict[str, Any]]) -> aws.iam.RolePolicy:
        role_name = role.pulumi_resource_name
        if (kind, role_name) in self._granted:
            raise ValueError(f"{self._name}: {kind} is already granted to role {role_name}")
        self._granted.add((kind, role_name))
        document = self.table.arn.apply(lambda arn: json.dumps(
            {"Version": "2012-10-17",
             "Statement": [{**statement, "Resource": arn} for statement in statements]},
            sort_keys=True))
        return aws.iam.RolePolicy(f"{self._name}-{kind}-{role_name}", role=role.name,
                                  policy=document, opts=pulumi.ResourceOptions(parent=self))


def _statement(sid: str, actions: Sequence[str], leading_keys: Sequence[str],
               extra_conditions: dict[str, Any] | None = None) -> dict[str, Any]:
    # ForAllValues: every key of the request must match. Only key-addressed actions are granted,
    # because ForAllValues holds vacuously for a request without keys (a Scan).
    return {"Sid": sid, "Effect": "Allow", "Action": list(actions),
            "Condition": {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": list(leading_keys)},
                          **(extra_conditions or {})}}


def _validate(args: TokenVaultArgs) -> None:
    """Reject what DynamoDB would reject, and a key that is not a customer managed key's ARN."""
    for label, value in (("environment", args.environment), ("owner", args.owner)):
        if not value:
            raise ValueError(f"TokenVaultArgs.{label} must not be empty")
    if args.table_name is not None and not TABLE_NAME_PATTERN.fullmatch(args.table_name):
        raise ValueError(f"table_name {args.table_name!r}: DynamoDB allows 3-255 characters from "
                         "letters, digits, _ . -")
    if not 1 <= args.point_in_time_recovery_days <= LONGEST_RECOVERY_DAYS:
        raise ValueError(f"point_in_time_recovery_days must be 1 to {LONGEST_RECOVERY_DAYS}, got "
                         f"{args.point_in_time_recovery_days}")
    # An Output (the hierarchy's key) is checked by the policy pack once known.
    if isinstance(args.kms_key_arn, str) and not KEY_ARN_PATTERN.fullmatch(args.kms_key_arn):
        raise ValueError(f"kms_key_arn {args.kms_key_arn!r} is not a KMS key ARN "
                         "(arn:aws:kms:<region>:<account>:key/<id>); pass the customer managed key "
                         "itself, not an alias (alias/aws/dynamodb is AWS's key, not yours)")
