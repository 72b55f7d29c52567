"""Fixtures the review's tests share with the suite's own (the moto account of `ztai verify`)."""

from tests.ztai.test_verify_cmd import account, dev_export  # noqa: F401
