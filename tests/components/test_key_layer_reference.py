"""Review finding (low): a workload stack may name any stack as its key layer.

`keyLayerStack` is checked for its form only (components/stack_config.py
_parse_stack_reference), and the pack's s3-bucket-encrypted-with-cmk accepts a key read from a
StackReference whose name equals that same setting. So a one-line edit of stacks/Pulumi.prod.yaml
(`keyLayerStack: organization/zero-trust-ai/dev`) makes the prod workload encrypt its training
data and weights under the dev stack's keys, whose policies dev's deployers write, and every check
passes; naming the workload itself makes it read its own outputs. Secure expectation (xfail
strict today): a workload's key layer is its own environment's keys stack, `<env>-keys`, of this
project.
"""

from __future__ import annotations

import pytest

from components.stack_config import StackConfigError, parse_layer_config
from tests.conftest import ROOT
from ztai.stackfile import load_stack


def test_the_shipped_reference_is_the_environments_key_layer() -> None:
    assert load_stack(ROOT, "prod").config["zero-trust-ai:keyLayerStack"].endswith("/zero-trust-ai/prod-keys")


@pytest.mark.parametrize("reference", ["organization/zero-trust-ai/dev", "organization/zero-trust-ai/prod",
                                       "organization/other-project/prod-keys"])
def test_a_workload_names_its_own_environments_key_layer(reference: str) -> None:
    raw = {**load_stack(ROOT, "prod").config, "zero-trust-ai:keyLayerStack": reference}
    with pytest.raises(StackConfigError, match="its own environment's key layer of this project"):
        parse_layer_config(raw)
