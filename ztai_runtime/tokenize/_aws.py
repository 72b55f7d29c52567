"""The AWS calls the tokenizer makes, typed by what it uses, and their errors made readable.

boto3 clients carry no type information; these Protocols name the operations each role needs (the
same list the IAM grants in `components/token_vault.py` allow), and `call` turns botocore's
exceptions into an `AwsCallError` that names the operation and the AWS error code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from ztai_runtime.tokenize.errors import AwsCallError


class KmsClient(Protocol):
    def generate_mac(self, **kwargs: Any) -> dict[str, Any]: ...
    def generate_data_key(self, **kwargs: Any) -> dict[str, Any]: ...
    def decrypt(self, **kwargs: Any) -> dict[str, Any]: ...


class DynamoDbClient(Protocol):
    def batch_get_item(self, **kwargs: Any) -> dict[str, Any]: ...
    def transact_write_items(self, **kwargs: Any) -> dict[str, Any]: ...


class StsClient(Protocol):
    def get_caller_identity(self, **kwargs: Any) -> dict[str, Any]: ...


def call(operation: str, method: Callable[..., dict[str, Any]], **kwargs: Any) -> dict[str, Any]:
    """`method(**kwargs)`, raising `AwsCallError` (with the raw response kept) on any AWS failure."""
    try:
        return method(**kwargs)
    except ClientError as error:
        details = error.response.get("Error", {})
        raised = AwsCallError(operation, str(details.get("Code", "Unknown")),
                              str(details.get("Message", error)))
        raised.response = error.response
        raise raised from error
    except BotoCoreError as error:  # no credentials, no region, endpoint unreachable, ...
        raise AwsCallError(operation, type(error).__name__, str(error)) from error
