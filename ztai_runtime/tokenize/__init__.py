"""Tokenization of training data (control map: tokenization): deterministic tokens and a token vault.

- `deterministic`: joinable one-way tokens `tk1_...`, HMAC-SHA256 under a per-domain key derived
  with one KMS GenerateMac call (`keys`);
- `vault`: reversible random tokens `tv1_...` kept in DynamoDB, values encrypted under a KMS data key;
  detokenization logs who asked;
- `stream` / `batch`: CSV and JSON Lines files, selected columns, bounded memory, resumable.

Runtime code: boto3, botocore and `cryptography` only; AWS clients are passed in.
"""

from ztai_runtime.tokenize.batch import detokenize_file, tokenize_file
from ztai_runtime.tokenize.deterministic import DeterministicTokenizer
from ztai_runtime.tokenize.errors import AwsCallError, InputError, ResumeError, TokenizeError, VaultError
from ztai_runtime.tokenize.keys import DomainKey, derive_domain_key
from ztai_runtime.tokenize.vault import VaultDetokenizer, VaultTokenizer

__all__ = [
    "AwsCallError", "DeterministicTokenizer", "DomainKey", "InputError", "ResumeError", "TokenizeError",
    "VaultDetokenizer", "VaultError", "VaultTokenizer", "derive_domain_key", "detokenize_file",
    "tokenize_file",
]
