"""Supply chain: the hash-pinned lock files, who must review what (CODEOWNERS), and the CI recipe's
workflows (actions pinned by commit, no credentials where a pull request's code runs)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT
from tests.support.locks import LOCK_PAIRS, canonical, lock_pins, requirements

# --- Lock files ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("source", "lock"), LOCK_PAIRS)
def test_every_lock_entry_is_pinned_with_sha256_hashes(source: str, lock: str) -> None:
    entries = requirements(ROOT / lock)
    assert entries, f"{lock} is empty"
    for entry in entries:
        assert entry.operator == "==", f"{lock}:{entry.line}: {entry.name} is not pinned with =="
        assert entry.hashes, f"{lock}:{entry.line}: {entry.name} has no --hash"
        for digest in entry.hashes:
            assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest), f"{lock}:{entry.line}: {digest}"
    # Generated, not hand-written: the header names the command that regenerates it.
    assert "#    ./run lock" in (ROOT / lock).read_text().splitlines()[1]


@pytest.mark.parametrize(("source", "lock"), LOCK_PAIRS)
def test_every_input_pin_is_in_its_lock_at_the_same_version(source: str, lock: str) -> None:
    locked = lock_pins(lock)
    pins = requirements(ROOT / source)
    assert pins
    for pin in pins:
        # The readable inputs pin exact versions too: a lock regenerated with --upgrade moves only
        # what the inputs leave open (the dependencies of dependencies).
        assert pin.operator == "==", f"{source}:{pin.line}: {pin.name} is not pinned with =="
        assert not pin.hashes, f"{source}:{pin.line}: hashes belong in {lock}, not in its input"
        assert locked.get(pin.name) == pin.version, (
            f"{source} pins {pin.name}=={pin.version} but {lock} has {locked.get(pin.name)}: run ./run lock")


def test_the_tests_the_pack_and_the_enclave_run_the_versions_the_program_locks() -> None:
    # The tests install requirements-dev.txt; what they test must be what the program, the pack,
    # the enclave image and the Lambda functions (their shipped packages) install, version for version.
    tested = lock_pins("requirements-dev.txt")
    for lock in ("requirements.txt", "policy_packs/zero_trust/requirements.txt",
                 "enclave_images/requirements-enclave.txt", "requirements-lambda.txt"):
        for name, version in lock_pins(lock).items():
            assert tested.get(name) == version, f"{lock} has {name}=={version}, the tests {tested.get(name)}"


def test_the_pack_runs_the_pulumi_and_pulumi_policy_that_ztai_runs() -> None:
    program, pack = lock_pins("requirements.txt"), lock_pins("policy_packs/zero_trust/requirements.txt")
    for name in ("pulumi", "pulumi-policy"):
        assert pack[name] == program[name]


def test_the_enclave_image_installs_its_lock_with_require_hashes() -> None:
    dockerfile = (ROOT / "enclave_images" / "Dockerfile").read_text()
    installs = [line for line in dockerfile.splitlines() if "pip install" in line]
    assert installs, "the Dockerfile installs nothing with pip"
    for line in installs:
        assert "--require-hashes" in line and "--only-binary :all:" in line, line
        assert line.rstrip().endswith("-r /app/requirements-enclave.txt"), line
    assert "COPY enclave_images/requirements-enclave.txt /app/requirements-enclave.txt" in dockerfile


def test_requirement_names_are_compared_as_pypi_compares_them() -> None:
    assert canonical("PyYAML") == canonical("pyyaml") == "pyyaml"
    assert canonical("types_PyYAML") == canonical("types-pyyaml")
    assert canonical("zope.interface") == "zope-interface"


# --- CODEOWNERS ----------------------------------------------------------------------------------

SECURITY_TEAM = "@your-org/security"
CODEOWNERS = ROOT / ".github" / "CODEOWNERS"


def codeowners_rules(text: str) -> list[tuple[str, list[str]]]:
    rules = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        pattern, *owners = line.split()
        assert owners, f"CODEOWNERS line {number}: {pattern} has no owner"
        assert all(re.fullmatch(r"@[\w.-]+(/[\w.-]+)?|[^@\s]+@[^@\s]+", owner) for owner in owners), line
        rules.append((pattern, owners))
    return rules


def pattern_matches(pattern: str, path: str) -> bool:
    """GitHub's CODEOWNERS patterns (gitignore syntax): a `/` at the start or in the middle anchors
    at the root (otherwise any folder), a trailing `/` means everything under a folder, a pattern
    naming a folder covers what is under it, `*` does not cross `/`, `**` does."""
    directory = pattern.endswith("/")
    body = pattern.strip("/")
    anchored = pattern.startswith("/") or "/" in body
    wildcards = {"**": ".*", "*": "[^/]*", "?": "[^/]"}
    translated = "".join(wildcards.get(part, re.escape(part)) for part in re.split(r"(\*\*|\*|\?)", body))
    regex = ("" if anchored else "(?:.*/)?") + translated + ("/.*" if directory else "(?:/.*)?")
    return re.fullmatch(regex, path) is not None


def owners_of(path: str, rules: list[tuple[str, list[str]]]) -> list[str]:
    owners: list[str] = []
    for pattern, pattern_owners in rules:  # the last matching pattern wins
        if pattern_matches(pattern, path):
            owners = pattern_owners
    return owners


PROTECTED_PATHS = [
    # The policy pack, its rules and exclusions code, its own lock and configuration.
    "policy_packs/zero_trust/ztpolicy/rules/kms/kms_key_deletion_window.py",
    "policy_packs/zero_trust/ztpolicy/exclusions.py",
    "policy_packs/zero_trust/PulumiPolicy.yaml",
    "policy_packs/zero_trust/requirements.txt",
    "policy_packs/zero_trust/requirements.in",
    "ztai/policy/config.py",
    "ztai/policy/analyzer.py",
    # Policy configurations (exclusions) and the stack files.
    "stacks/policy/prod.json",
    "stacks/Pulumi.prod.yaml",
    "stacks/Pulumi.prod-keys.yaml",
    "stacks/Pulumi.dev.yaml",
    "stacks/jit/prod.yaml",
    "Pulumi.yaml",
    # The lock files and their inputs, and what installs them.
    *[path for pair in LOCK_PAIRS for path in pair],
    "enclave_images/requirements-parent.txt",
    "enclave_images/Dockerfile",
    "run",
    "components/lambda_packages.py",  # checks the wheels the Lambda functions ship
    # CI.
    ".github/CODEOWNERS",
    ".github/workflows/checks.yml",
    ".ci/run",
    # What holds key policies, the guardrails and the CI identity.
    "components/keys.py",
    "components/guardrails.py",
    "components/ci_identity.py",
    # What decides which secrets the SIEM transform redacts before its readers see a line.
    "ztai_runtime/siem/ocsf.py",
    "ztai_runtime/siem/codec.py",
    "ztai_runtime/siem/firehose.py",
]


@pytest.mark.parametrize("path", PROTECTED_PATHS)
def test_codeowners_sends_each_protected_path_to_the_security_team(path: str) -> None:
    assert SECURITY_TEAM in owners_of(path, codeowners_rules(CODEOWNERS.read_text())), path


@pytest.mark.parametrize("path", ["components/network.py", "docs/ci.md", "README.md",
                                  "tests/test_supply_chain.py", "enclave_images/enclave/app.py"])
def test_codeowners_leaves_other_paths_to_the_usual_review(path: str) -> None:
    # The matcher is not vacuous: paths outside the list have no code owner here.
    assert owners_of(path, codeowners_rules(CODEOWNERS.read_text())) == []


def test_codeowners_matcher_follows_the_last_matching_pattern() -> None:
    rules = codeowners_rules("/stacks/ @a/one\n/stacks/*.json @b/two\n*.md @c/three\n")
    assert owners_of("stacks/Pulumi.dev.yaml", rules) == ["@a/one"]
    assert owners_of("stacks/x.json", rules) == ["@b/two"]
    assert owners_of("stacks/policy/x.json", rules) == ["@a/one"]  # `*` does not cross a folder
    assert owners_of("docs/deep/page.md", rules) == ["@c/three"]  # unanchored: any folder
    assert owners_of("runbook", codeowners_rules("/run @a/one\n")) == []


# --- CI workflows --------------------------------------------------------------------------------

WORKFLOWS = sorted([*(ROOT / ".github" / "workflows").glob("*.yml"), *(ROOT / "docs" / "ci").glob("*.yml")])
# Events whose run executes a pull request's code, which nobody has approved yet.
PULL_REQUEST_EVENTS = {"pull_request", "pull_request_target", "pull_request_review",
                       "pull_request_review_comment", "issue_comment", "workflow_run"}


def load(path: Path) -> dict[Any, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), path
    return data


def triggers(workflow: dict[Any, Any]) -> set[str]:
    # YAML 1.1 (PyYAML) reads the bare key `on` as True.
    on = workflow.get("on", workflow.get(True))
    if isinstance(on, str):
        return {on}
    assert isinstance(on, (list, dict)), on
    return set(on)


def uses_of(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [value for key, value in node.items() if key == "uses"] + \
            [found for value in node.values() for found in uses_of(value)]
    if isinstance(node, list):
        return [found for value in node for found in uses_of(value)]
    return []


def test_there_are_workflows_to_check() -> None:
    names = {path.name for path in WORKFLOWS}
    assert {"checks.yml", "preview.yml", "deploy.yml", "drift.yml"} <= names


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.name)
def test_every_action_is_pinned_to_a_commit(path: Path) -> None:
    uses = uses_of(load(path))
    assert uses
    for action in uses:
        assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", action), \
            f"{path.name}: {action} is not pinned to a commit SHA"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.name)
def test_no_job_running_pull_request_code_gets_credentials_or_secrets(path: Path) -> None:
    workflow = load(path)
    events = triggers(workflow)
    assert "pull_request_target" not in events, \
        f"{path.name}: pull_request_target runs with the base's secrets"
    for name, job in workflow["jobs"].items():
        checks_out = any(str(action).startswith("actions/checkout@") for action in uses_of(job))
        permissions = {**(workflow.get("permissions") or {}), **(job.get("permissions") or {})}
        credentials = permissions.get("id-token") == "write" or "secrets." in yaml.safe_dump(job) \
            or "environment" in job
        if events & PULL_REQUEST_EVENTS and checks_out:
            assert not credentials, f"{path.name}: job {name} runs pull request code with credentials"
        if credentials:
            # Credentials only for approved commits: main, the merge queue, a schedule, or by hand.
            assert events <= {"push", "merge_group", "schedule", "workflow_dispatch"}, (path.name, events)
            on = workflow.get("on", workflow.get(True))
            pushes = (on.get("push") if isinstance(on, dict) else None) or {}
            assert pushes.get("branches", ["main"]) == ["main"], path.name
    # Least privilege by default: every workflow sets its token's permissions.
    assert workflow.get("permissions") == {"contents": "read"}, path.name


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.name)
def test_checkouts_do_not_keep_the_token(path: Path) -> None:
    steps = [step for job in load(path)["jobs"].values() for step in job["steps"]]
    for step in steps:
        if str(step.get("uses", "")).startswith("actions/checkout@"):
            assert step.get("with", {}).get("persist-credentials") is False, path.name


def test_pull_requests_run_the_suite_and_the_pack_without_credentials() -> None:
    workflow = load(ROOT / ".github" / "workflows" / "checks.yml")
    assert "pull_request" in triggers(workflow)
    runs = [step["run"] for job in workflow["jobs"].values() for step in job["steps"] if "run" in step]
    assert ".ci/run" in runs and "./run preview prod" in runs


def _assumed_roles(job: dict[str, Any]) -> list[str]:
    return [step["with"]["role-to-assume"] for step in job["steps"]
            if str(step.get("uses", "")).startswith("aws-actions/configure-aws-credentials@")]


def test_deploys_go_through_the_ci_roles_each_in_its_environment() -> None:
    jobs = load(ROOT / "docs" / "ci" / "deploy.yml")["jobs"]
    keys, workload = jobs["deploy-keys"], jobs["deploy-workload"]
    assert keys["environment"] == "prod-keys" and workload["environment"] == "prod"
    assert [role.rsplit("/", 1)[1] for role in _assumed_roles(keys)] == \
        ["zero-trust-ai-${{ env.ENV }}-deploy-keys"]
    assert [role.rsplit("/", 1)[1] for role in _assumed_roles(workload)] == \
        ["zero-trust-ai-${{ env.ENV }}-deploy-workload"]
    # The key layer only when a person starts it (inside an approved elevation), never on a push.
    assert "workflow_dispatch" in keys["if"] and "keys" in keys["if"]
    for job in (keys, workload):
        assert "--policy-pack policy_packs/zero_trust" in job["steps"][-1]["run"]


def test_previews_and_drift_use_the_read_only_role() -> None:
    for name in ("preview.yml", "drift.yml"):
        for job in load(ROOT / "docs" / "ci" / name)["jobs"].values():
            assert [role.rsplit("/", 1)[1] for role in _assumed_roles(job)] == \
                ["zero-trust-ai-${{ env.ENV }}-ci-preview"], name


def test_drift_runs_a_refresh_preview_per_stack_and_ztai_verify_on_a_schedule() -> None:
    workflow = load(ROOT / "docs" / "ci" / "drift.yml")
    assert "schedule" in triggers(workflow)
    jobs = workflow["jobs"]
    assert jobs["refresh"]["strategy"]["matrix"]["stack"] == ["prod-keys", "prod"]
    refresh = "\n".join(step.get("run", "") for step in jobs["refresh"]["steps"])
    assert 'pulumi refresh --preview-only --expect-no-changes --stack "$STACK"' in refresh
    verify = "\n".join(step.get("run", "") for step in jobs["verify"]["steps"])
    assert './run ztai verify --stack "$STACK" --state state.json' in verify
