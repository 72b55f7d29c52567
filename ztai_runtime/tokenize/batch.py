"""Whole files: the streaming engine (`stream`) joined to a tokenizer or the detokenizer.

The parameters recorded in each checkpoint are the ones that decide the output: the mode, the
domain, the vault table, and a fingerprint of the derived domain key (so a resume after the KMS
alias moved to another key is refused instead of mixing two sets of tokens in one file).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from ztai_runtime.tokenize._aws import DynamoDbClient, KmsClient, StsClient
from ztai_runtime.tokenize.deterministic import DeterministicTokenizer
from ztai_runtime.tokenize.errors import InputError
from ztai_runtime.tokenize.keys import PURPOSE_TOKEN, check_domain, derive_domain_key
from ztai_runtime.tokenize.stream import StreamJob, StreamResult, format_for, run, validate
from ztai_runtime.tokenize.vault import MAX_VALUE_BYTES, VaultDetokenizer, VaultTokenizer

MODES = ("deterministic", "vault")
# Deterministic rows cost microseconds: checkpoint rarely. Vault rows cost DynamoDB round trips:
# checkpoint more often, so an interruption loses less work.
DETERMINISTIC_CHECKPOINT_ROWS = 50_000
VAULT_CHECKPOINT_ROWS = 5_000
DETERMINISTIC_BATCH_ROWS = 1_000
VAULT_BATCH_ROWS = 500


def tokenize_file(kms: KmsClient, source: Path, destination: Path, *, key_id: str, domain: str,
                  columns: Sequence[str], normalizers: Mapping[str, tuple[str, ...]] | None = None,
                  file_format: str | None = None, mode: str = "deterministic",
                  dynamodb: DynamoDbClient | None = None, table: str | None = None,
                  vault_key_id: str | None = None, resume: bool = False, force: bool = False,
                  checkpoint_every: int | None = None, batch_rows: int | None = None,
                  progress: Callable[[int], None] | None = None) -> StreamResult:
    """Tokenize `columns` of `source` into `destination`.

    key_id: the HMAC tokens key (deterministic tokens, and the vault's lookup index).
    mode "vault": random tokens kept in `table`, values encrypted under `vault_key_id`.
    checkpoint_every, batch_rows: rows between checkpoints, rows per batch (per vault round trip);
        the defaults suit each mode.
    progress: told the input position in bytes after each batch (a progress bar).
    """
    check_domain(domain)
    if mode not in MODES:
        raise InputError(f"mode {mode!r} is not one of {', '.join(MODES)}")
    if mode == "vault" and (dynamodb is None or not table or not vault_key_id):
        raise InputError("vault mode needs the vault table and the vault (secrets) key: "
                         "--table NAME --vault-key-id KEY")
    if mode == "deterministic" and (table or vault_key_id):
        raise InputError("--table and --vault-key-id belong to --mode vault; deterministic tokens "
                         "use only the HMAC key")
    job = StreamJob(source=source, destination=destination,
                    file_format=file_format or format_for(source), columns=tuple(columns),
                    normalizers=dict(normalizers or {}), resume=resume, force=force,
                    event="tokenize-file", progress=progress)
    validate(job)  # fail on the files and columns before spending a KMS call
    if mode == "deterministic":
        tokenizer = DeterministicTokenizer(derive_domain_key(kms, key_id, domain, PURPOSE_TOKEN))
        return run(replace(job, parameters={"mode": mode, "domain": domain, "token_scheme": "tk1",
                                            "key_check": tokenizer.key.check_value()},
                           checkpoint_every=checkpoint_every or DETERMINISTIC_CHECKPOINT_ROWS,
                           batch_rows=batch_rows or DETERMINISTIC_BATCH_ROWS), tokenizer.tokens)
    assert dynamodb is not None and table and vault_key_id  # checked above
    vault = VaultTokenizer.open(dynamodb, kms, table=table, domain=domain, mac_key_id=key_id,
                                vault_key_id=vault_key_id)
    return run(replace(job, parameters={"mode": mode, "domain": domain, "table": table,
                                        "token_scheme": "tv1", "key_check": vault.index_key.check_value()},
                       checkpoint_every=checkpoint_every or VAULT_CHECKPOINT_ROWS,
                       batch_rows=batch_rows or VAULT_BATCH_ROWS, max_value_bytes=MAX_VALUE_BYTES),
               vault.tokenize)


def detokenize_file(dynamodb: DynamoDbClient, kms: KmsClient, sts: StsClient, source: Path,
                    destination: Path, *, table: str, domain: str, vault_key_id: str,
                    columns: Sequence[str], file_format: str | None = None, resume: bool = False,
                    force: bool = False, checkpoint_every: int | None = None,
                    batch_rows: int | None = None,
                    progress: Callable[[int], None] | None = None) -> StreamResult:
    """Replace the vault tokens in `columns` by their values; every batch is one logged call."""
    job = StreamJob(source=source, destination=destination,
                    file_format=file_format or format_for(source), columns=tuple(columns),
                    parameters={"mode": "detokenize", "domain": domain, "table": table},
                    accept_integers=False, resume=resume, force=force,
                    checkpoint_every=checkpoint_every or VAULT_CHECKPOINT_ROWS,
                    batch_rows=batch_rows or VAULT_BATCH_ROWS, event="detokenize-file",
                    progress=progress)
    validate(job)
    detokenizer = VaultDetokenizer(dynamodb, kms, sts, table=table, domain=domain,
                                   vault_key_id=vault_key_id)
    return run(job, detokenizer.detokenize)

