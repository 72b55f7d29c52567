"""The bootstrap layer's stack keys (CI_KEYS in components/ci_identity.py, merged into KEYS): the
defaults, and one clear message per bad value, naming the key, the value and what is allowed,
from the key's own parser (through parse_stack_config, as `pulumi up` and `ztai config check`
read it) and from the checks across keys (parse_ci_settings); exit 2 from `ztai config check`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from components.ci_identity import (
    CI_KEYS,
    GITHUB_ISSUER,
    GITLAB_ISSUER,
    CiSettings,
    CiSettingsError,
    CiSubjects,
    parse_ci_settings,
)
from components.stack_config import KEYS, StackConfigError, parse_layer_config, parse_stack_config
from tests.components.test_stack_config import VALID
from tests.conftest import ROOT
from ztai.cli import main
from ztai.stackfile import load_stack

ADMINS = json.dumps(["arn:aws:iam::111122223333:role/zero-trust-ai-key-admin"])
BASE = {"zero-trust-ai:ciRepository": "example-org/zero-trust-ai",
        "zero-trust-ai:keyAdministratorRoleArns": ADMINS}


def settings(**changes: Any) -> CiSettings:
    raw = {**BASE, **{f"zero-trust-ai:{key}": value for key, value in changes.items()}}
    return parse_ci_settings({k: v for k, v in raw.items() if v is not None}, "prod")


def problems(**changes: Any) -> list[str]:
    with pytest.raises(CiSettingsError) as caught:
        settings(**changes)
    return caught.value.problems


def test_the_keys_are_declared_once_in_one_block_of_the_bootstrap_layer() -> None:
    names = list(KEYS)
    start = names.index(next(iter(CI_KEYS)))
    assert names[start:start + len(CI_KEYS)] == list(CI_KEYS)
    assert not any(spec.required for spec in CI_KEYS.values())  # required in the bootstrap layer only
    assert all(KEYS[key].layers == ("bootstrap",) for key in CI_KEYS)


def test_the_other_layers_stacks_parse_unchanged() -> None:
    parse_stack_config(VALID)  # no bootstrap key set: nothing required, nothing reported


def test_defaults_are_github_actions_with_protected_environments() -> None:
    parsed = settings()
    assert (parsed.provider, parsed.issuer_url, parsed.audience, parsed.branch) == (
        "github", GITHUB_ISSUER, "sts.amazonaws.com", "main")
    assert parsed.subjects == CiSubjects(
        preview=("repo:example-org/zero-trust-ai:environment:prod-preview",),
        workload="repo:example-org/zero-trust-ai:environment:prod",
        keys="repo:example-org/zero-trust-ai:environment:prod-keys")
    assert (parsed.object_lock_days, parsed.object_lock_mode, parsed.state_bucket_name) == (
        0, "compliance", None)


def test_gitlab_and_a_generic_issuer() -> None:
    gitlab = settings(ciProvider="gitlab", ciRepository="group/sub/project")
    assert gitlab.issuer_url == GITLAB_ISSUER
    assert gitlab.subjects.keys == "project_path:group/sub/project:ref_type:branch:ref:main-keys"
    generic = settings(ciProvider="oidc", ciIssuerUrl="https://ci.example.com/oidc",
                       ciPreviewSubject="ci:zero-trust-ai:preview",
                       ciWorkloadSubject="ci:zero-trust-ai:prod", ciKeysSubject="ci:zero-trust-ai:keys")
    assert generic.issuer_host == "ci.example.com/oidc"
    assert generic.subjects.workload == "ci:zero-trust-ai:prod"


def test_object_lock_and_bucket_name() -> None:
    parsed = settings(stateObjectLockDays="30", stateObjectLockMode="governance",
                      stateBucketName="example-org-ztai-prod-state")
    assert (parsed.object_lock_days, parsed.object_lock_mode, parsed.state_bucket_name) == (
        30, "governance", "example-org-ztai-prod-state")


# -- each key's parser, as the program reads the stack ------------------------------------------
@pytest.mark.parametrize("key, value, expected", [
    ("ciProvider", "jenkins",
     "zero-trust-ai:ciProvider = 'jenkins': allowed values are github, gitlab, oidc"),
    ("ciIssuerUrl", "http://gitlab.example.com", "zero-trust-ai:ciIssuerUrl = 'http://gitlab.example.com': "
                                                 "the issuer's https URL"),
    ("ciIssuerUrl", "https://gitlab.example.com/", "without query or trailing slash"),
    ("ciAudience", "sts.*", "zero-trust-ai:ciAudience = 'sts.*': one audience"),
    ("ciRepository", "example-org/*", "zero-trust-ai:ciRepository = 'example-org/*': the repository as "
                                      "owner/name"),
    ("ciRepository", "zero-trust-ai", "owner/name (GitHub) or group/project (GitLab)"),
    ("ciBranch", "release/*", "zero-trust-ai:ciBranch = 'release/*': a branch or environment name"),
    ("ciBranch", "main:x", "without wildcards or `:`"),
    ("ciDeployEnvironment", "prod*", "zero-trust-ai:ciDeployEnvironment = 'prod*'"),
    ("ciKeysEnvironment", "a b", "zero-trust-ai:ciKeysEnvironment = 'a b'"),
    ("ciWorkloadSubject", "repo:example-org/*", "zero-trust-ai:ciWorkloadSubject = 'repo:example-org/*': "
                                                "one exact token subject"),
    ("ciIdentityProviderArn", "arn:aws:iam::111122223333:role/x",
     "zero-trust-ai:ciIdentityProviderArn = 'arn:aws:iam::111122223333:role/x': an IAM OIDC provider ARN"),
    ("stateBucketName", "Bad_Name", "zero-trust-ai:stateBucketName = 'Bad_Name': an S3 bucket name"),
    ("stateObjectLockDays", "-1", "zero-trust-ai:stateObjectLockDays = -1: 0 (no Object Lock) to 36500 days"),
    ("stateObjectLockDays", "a month", "zero-trust-ai:stateObjectLockDays = 'a month': expected an integer"),
    ("stateObjectLockMode", "legal-hold", "zero-trust-ai:stateObjectLockMode = 'legal-hold': allowed values "
                                          "are compliance, governance"),
])
def test_each_bad_value_is_named_with_what_is_allowed(key: str, value: str, expected: str) -> None:
    raw = {**load_stack(ROOT, "bootstrap-prod").config, f"zero-trust-ai:{key}": value}
    with pytest.raises(StackConfigError) as caught:
        parse_layer_config(raw)
    found = caught.value.problems
    assert any(expected in problem for problem in found), found
    assert any(expected in problem for problem in problems(**{key: value}))


# -- across keys, in the bootstrap layer ---------------------------------------------------------
@pytest.mark.parametrize("changes, expected", [
    ({"ciRepository": None}, "zero-trust-ai:ciRepository: missing; the bootstrap layer needs the repository"),
    ({"keyAdministratorRoleArns": None}, "zero-trust-ai:keyAdministratorRoleArns: missing; the bootstrap "
                                         "layer's keys"),
    ({"ciRepository": "group/sub/project"}, "zero-trust-ai:ciRepository = 'group/sub/project': GitHub "
                                            "repositories are owner/name"),
    ({"ciProvider": "oidc", "ciPreviewSubject": "a", "ciWorkloadSubject": "b", "ciKeysSubject": "c"},
     "zero-trust-ai:ciIssuerUrl: missing; ciProvider oidc needs the issuer's URL"),
    ({"ciProvider": "oidc", "ciIssuerUrl": "https://ci.example.com"},
     "zero-trust-ai:ciPreviewSubject, zero-trust-ai:ciWorkloadSubject, zero-trust-ai:ciKeysSubject: missing"),
    ({"ciProvider": "oidc", "ciIssuerUrl": "https://ci.example.com", "ciPreviewSubject": "a",
      "ciWorkloadSubject": "a", "ciKeysSubject": "c"}, "three different subjects, one per role"),
    ({"ciWorkloadSubject": "x"}, "zero-trust-ai:ciWorkloadSubject: only with ciProvider oidc"),
    ({"ciProvider": "gitlab", "ciKeysEnvironment": "prod-keys"},
     "zero-trust-ai:ciKeysEnvironment: only with ciProvider github"),
    ({"ciKeysBranch": "keys"}, "zero-trust-ai:ciKeysBranch: only with ciProvider gitlab"),
    ({"ciDeployEnvironment": "prod", "ciKeysEnvironment": "prod"},
     "the two deployers need two protected environments"),
    ({"ciProvider": "gitlab", "ciKeysBranch": "main"}, "the key deployer needs its own protected branch"),
])
def test_each_inconsistent_setting_is_named(changes: dict[str, Any], expected: str) -> None:
    found = problems(**changes)
    assert any(expected in problem for problem in found), found


def test_a_refused_value_is_reported_once() -> None:
    found = problems(ciRepository="example-org/*")
    assert len([p for p in found if "ciRepository" in p]) == 1, found


# -- the CLI: a bad value in a stack file exits 2 ------------------------------------------------
def test_config_check_refuses_a_bad_ci_key_with_exit_2(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    (tmp_path / "stacks").mkdir()
    text = (ROOT / "stacks" / "Pulumi.bootstrap-prod.yaml").read_text(encoding="utf-8")
    (tmp_path / "stacks" / "Pulumi.bootstrap-prod.yaml").write_text(
        text.replace("example-org/zero-trust-ai", "example-org/*"), encoding="utf-8")
    assert main(["config", "check", "--stack", "bootstrap-prod", "--project-dir", str(tmp_path)]) == 2
    assert "zero-trust-ai:ciRepository = 'example-org/*'" in capsys.readouterr().err
