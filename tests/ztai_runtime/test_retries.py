"""The one retry policy of the runtime's Lambda functions, and what each function takes from it."""

from __future__ import annotations

from botocore.config import Config

from ztai_runtime import instance_refresh, rotation
from ztai_runtime.retries import retry_config


def settings(config: Config) -> tuple[dict[str, object], int, int]:
    return config.retries, config.connect_timeout, config.read_timeout


def test_standard_retries_counted_in_total_attempts_with_timeouts() -> None:
    assert settings(retry_config(3)) == ({"mode": "standard", "total_max_attempts": 3}, 5, 20)


def test_each_function_keeps_its_number_of_attempts() -> None:
    assert settings(rotation.RETRY_CONFIG) == ({"mode": "standard", "total_max_attempts": 8}, 5, 20)
    assert settings(rotation.SINGLE_ATTEMPT_CONFIG) == (
        {"mode": "standard", "total_max_attempts": 1}, 5, 20)
    assert settings(instance_refresh.RETRY_CONFIG) == (
        {"mode": "standard", "total_max_attempts": 5}, 5, 20)
