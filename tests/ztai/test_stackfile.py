"""Stacks of one project that deploy to the same account and Region share its default quotas."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ztai.stackfile import load_stack, network_footprint, shared_target_warnings


def project(tmp_path: Path, stacks: dict[str, dict[str, object]]) -> Path:
    (tmp_path / "Pulumi.yaml").write_text("name: zero-trust-ai\nruntime: python\n", encoding="utf-8")
    for name, config in stacks.items():
        (tmp_path / f"Pulumi.{name}.yaml").write_text(json.dumps({"config": config}), encoding="utf-8")
    return tmp_path


def admins(account: str) -> list[str]:
    return [f"arn:aws:iam::{account}:role/key-admin"]


def stack(region: str = "eu-west-1", account: str = "111122223333", zones: int = 3,
          egress: tuple[str, ...] = ("management",), **extra: object) -> dict[str, object]:
    return {"aws:region": region, "zero-trust-ai:keyAdministratorRoleArns": admins(account),
            "zero-trust-ai:azCount": zones, "zero-trust-ai:egressSegments": list(egress), **extra}


def test_two_stacks_in_one_account_and_region_are_named_with_what_they_need(tmp_path: Path) -> None:
    root = project(tmp_path, {"dev": stack(zones=2), "prod": stack(), "qa": stack(zones=3)})
    [with_prod, with_qa] = shared_target_warnings(load_stack(root, "dev"))
    assert with_prod.startswith("stacks 'dev' and 'prod' both target account 111122223333 in eu-west-1")
    # 4 + 4 VPCs; NAT gateways with an Elastic IP in each zone of each egress segment: 2 + 3.
    assert "together they need 8 VPCs, 5 Elastic IP addresses, 2 internet gateways" in with_prod
    assert "over the default quotas: 8 VPCs (default quota 5)" in with_prod
    assert "'dev' and 'qa'" in with_qa
    assert network_footprint(load_stack(root, "prod")) == {
        "VPCs": 4, "Elastic IP addresses": 3, "internet gateways": 1}


def test_elastic_ips_over_the_quota_are_named(tmp_path: Path) -> None:
    root = project(tmp_path, {"a": stack(), "b": stack(egress=("management", "training"))})
    [warning] = shared_target_warnings(load_stack(root, "a"))
    assert "9 Elastic IP addresses (default quota 5)" in warning


@pytest.mark.parametrize("other", [
    stack(account="444455556666"),
    stack(region="eu-central-1"),
    # allowedAccountIds decides over the administrators' accounts
    stack() | {"aws:allowedAccountIds": ["444455556666"]},
    # a stack whose file names no account is not guessed at
    {"aws:region": "eu-west-1"},
])
def test_stacks_in_other_accounts_or_regions_share_nothing(tmp_path: Path, other: dict[str, object]) -> None:
    root = project(tmp_path, {"dev": stack(), "prod": other})
    assert shared_target_warnings(load_stack(root, "dev")) == []


def test_a_broken_sibling_stack_file_is_left_to_its_own_preview(tmp_path: Path) -> None:
    root = project(tmp_path, {"dev": stack()})
    (root / "Pulumi.broken.yaml").write_text("config: [", encoding="utf-8")
    assert shared_target_warnings(load_stack(root, "dev")) == []
