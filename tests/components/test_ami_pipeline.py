"""ImmutableAmiPipeline: its component documents (parsed as Image Builder would, and the files they
write rendered and read back), and the resources it registers under Pulumi's mock monitor."""

from __future__ import annotations

import grp
import hashlib
import io
import json
import os
import pwd
import re
import stat
import subprocess
import tarfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml

from components.ami_pipeline import (
    AGENT_EXECUTABLE,
    AGENT_USER,
    ARTIFACTS_DOCUMENT,
    BASE_DOCUMENTS,
    COMPONENT_DOCUMENTS,
    DOCUMENTS_DIR,
    FORBIDDEN_FLAGS,
    EnclaveArtifacts,
    ImmutableAmiPipeline,
    ImmutableAmiPipelineArgs,
    component_parameters,
    deploy_build_timeout_minutes,
    document_text,
    document_version,
    kms_endpoint,
    validate_document,
)
from components.enclave_fleet import ARTIFACT_PREFIX, DEFAULT_EIF_PATH
from components.keys import (
    SERVICE_GRANT_ACTIONS,
    SERVICE_USE_ACTIONS,
    KeyHierarchy,
    KeyHierarchyArgs,
)
from enclave_images import package_agent
from tests.support.key_policy import cloudwatch_logs_may_encrypt
from tests.support.shellcheck import shellcheck
from tests.support.wheels import build_agent_package
from ztai.preview.recorder import RecordedResource, RecordedStack, record
from ztpolicy.rule import Resource
from ztpolicy.rules.imagebuilder.image_builder_infrastructure_hardened import (
    image_builder_infrastructure_hardened,
)
from ztpolicy.rules.imagebuilder.image_pipeline_scans_images import image_pipeline_scans_images

AMI_KEY = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
LOGS_KEY = "arn:aws:kms:eu-west-1:111122223333:key/5678abcd-12ab-34cd-56ef-1234567890ab"
PARAMETER = "/zero-trust-ai/dev/enclave-parent/ami-id"
ARTIFACTS = EnclaveArtifacts(eif_key="artifacts/digits-7.eif", eif_sha256="e1" * 32,
                             agent_key="artifacts/parent-agent-7.tar.gz", agent_sha256="a9" * 32)
ARGS = ImmutableAmiPipelineArgs(
    environment="dev", owner="ml-platform", region="eu-west-1", vpc_id="vpc-0management",
    vpc_cidr="10.13.0.0/16", subnet_id="subnet-0management", ami_key_arn=AMI_KEY,
    logs_key_arn=LOGS_KEY, ami_id_parameter_name=PARAMETER, enclave_memory_mib=6144,
    enclave_cpu_count=4, enclave_artifacts=ARTIFACTS, artifacts_bucket_name="ztai-dev-models")
BASE = replace(ARGS, enclave_artifacts=None, artifacts_bucket_name=None)
KNOWN_ACTIONS = {"ExecuteBash", "Reboot"}
ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"


# -- the component documents ----------------------------------------------------------------------
def documents() -> dict[str, dict[str, Any]]:
    return {key: yaml.safe_load(document_text(key)) for key in COMPONENT_DOCUMENTS}


def scripts(document: dict[str, Any], phase: str) -> list[str]:
    [steps] = [p["steps"] for p in document["phases"] if p["name"] == phase]
    return [command for step in steps if step["action"] == "ExecuteBash"
            for command in step["inputs"]["commands"]]


def render(text: str, parameters: dict[str, str]) -> str:
    """AWSTOE's substitution of {{ Parameter }} references."""
    return re.sub(r"{{\s*([A-Za-z0-9_-]+)\s*}}", lambda m: parameters[m.group(1)], text)


def written_file(script: str, path: str) -> str:
    """The content a script writes to `path` with `cat > path <<'MARK'`."""
    match = re.search(rf"cat > {re.escape(path)} <<'(\w+)'\n(.*?)\n\1\n", script, re.S)
    assert match, f"no heredoc writes {path}"
    return match.group(2) + "\n"


def test_every_document_in_the_folder_is_used() -> None:
    assert sorted(p.stem for p in DOCUMENTS_DIR.glob("*.yaml")) == sorted(COMPONENT_DOCUMENTS)


# AWSTOE writes each {{ Parameter }} into the step's text before bash runs it, so a step that checks
# a parameter (`[[ '4096' =~ ^[1-9][0-9]*$ ]]`) tests a literal on purpose: SC2050 ("this
# expression is constant") is what that substitution looks like, not a forgotten `$`.
PARAMETER_SUBSTITUTION = ("SC2050",)


def shell_steps() -> list[tuple[str, str, str]]:
    return [(key, phase["name"], step["name"]) for key, document in documents().items()
            for phase in document["phases"] for step in phase["steps"] if step["action"] == "ExecuteBash"]


@pytest.mark.parametrize(("key", "phase", "step"), shell_steps())
def test_every_shell_step_passes_shellcheck(key: str, phase: str, step: str) -> None:
    # The step as AWSTOE runs it: its commands in one bash script, the recipe's values filled in.
    [commands] = [s["inputs"]["commands"] for p in documents()[key]["phases"] if p["name"] == phase
                  for s in p["steps"] if s["name"] == step]
    parameters = component_parameters(key, ARGS, "zero-trust-ai-dev-models")
    assert shellcheck(render("\n".join(commands), parameters), exclude=PARAMETER_SUBSTITUTION) == []


def test_shell_steps_are_all_linted() -> None:
    # Every step is a shell step but the reboot: none escapes the lint above by its action.
    steps = [step["action"] for document in documents().values() for phase in document["phases"]
             for step in phase["steps"]]
    assert set(steps) == KNOWN_ACTIONS and steps.count("ExecuteBash") == len(shell_steps()) >= 10


@pytest.mark.parametrize("key", COMPONENT_DOCUMENTS)
def test_documents_are_valid_image_builder_documents(key: str) -> None:
    text = document_text(key)
    document = yaml.safe_load(text)
    assert document["schemaVersion"] == 1.0 and document["name"] and document["description"]
    assert [phase["name"] for phase in document["phases"]] == ["build", "validate", "test"]
    for phase in document["phases"]:
        for step in phase["steps"]:
            assert re.fullmatch(r"[A-Za-z][A-Za-z0-9]+", step["name"]) and step["action"] in KNOWN_ACTIONS
    for phase in ("build", "validate", "test"):
        for script in scripts(document, phase):
            assert script.startswith("set -euo pipefail\n"), "every script stops at its first error"
    # Parameters: every reference is declared, typed string, and given a value by the recipe.
    declared = {name: spec for item in document.get("parameters") or [] for name, spec in item.items()}
    assert all(spec["type"] == "string" for spec in declared.values())
    assert set(re.findall(r"{{\s*([A-Za-z0-9_-]+)\s*}}", text)) == set(declared)
    assert set(component_parameters(key, ARGS)) == set(declared)
    assert validate_document(key, text) == document


@pytest.mark.parametrize("key", COMPONENT_DOCUMENTS)
def test_no_document_can_start_a_debuggable_enclave(key: str) -> None:
    text = document_text(key)
    assert not any(flag in text for flag in FORBIDDEN_FLAGS)
    # The image only prepares the parent; the launch template's user data starts the enclave.
    assert "run-enclave" not in text and "nitro-cli console" not in text
    # Nothing in the image writes the launch template (Pulumi is its only writer).
    assert "launch-template" not in text and "LaunchTemplate" not in text


def test_updates_happen_at_build_time_only() -> None:
    hardening = documents()["base-hardening"]
    build = "\n".join(scripts(hardening, "build"))
    assert "dnf -y --refresh --releasever=latest upgrade" in build
    for phase in ("validate", "test"):
        assert not re.search(r"dnf\b.*\b(upgrade|update|install)", "\n".join(scripts(hardening, phase)))
    for key, document in documents().items():
        if key != "base-hardening":
            assert "upgrade" not in "\n".join(scripts(document, "build"))
        for phase in ("validate", "test"):
            assert not re.search(r"dnf\b.*\binstall", "\n".join(scripts(document, phase))), key
    # Timers that would update a running instance are disabled and masked.
    assert "dnf-automatic.timer" in build and "systemctl mask" in build
    # The new kernel is booted before the next component: the reboot is the last build step.
    [steps] = [p["steps"] for p in hardening["phases"] if p["name"] == "build"]
    assert steps[-1]["action"] == "Reboot"


def test_ssh_is_off_and_password_logins_refused() -> None:
    hardening = documents()["base-hardening"]
    build = "\n".join(scripts(hardening, "build"))
    sshd = written_file(build, "/etc/ssh/sshd_config.d/00-zero-trust-ai.conf")
    assert sshd.splitlines() == ["PasswordAuthentication no", "KbdInteractiveAuthentication no",
                                 "PermitRootLogin no"]
    assert 'for unit in sshd.service sshd.socket' in build
    assert 'systemctl disable --now "$unit"' in build and 'systemctl mask "$unit"' in build
    assert "dnf -y remove ec2-instance-connect" in build and "passwd -l root" in build
    assert yaml.safe_load(written_file(build, "/etc/cloud/cloud.cfg.d/99-zero-trust-ai.cfg")) == {
        "ssh_pwauth": False, "disable_root": True}
    rules = written_file(build, "/etc/audit/rules.d/50-zero-trust-ai.rules")
    assert "-w /etc/nitro_enclaves/ -p wa -k ztai-enclave-config" in rules
    assert "systemctl enable auditd.service" in build
    assert "systemctl enable amazon-ssm-agent.service" in build
    test = "\n".join(scripts(hardening, "test"))
    assert "! systemctl is-active --quiet sshd.service" in test and "sport = :22" in test
    validate = "\n".join(scripts(hardening, "validate"))
    assert "expected masked" in validate


def test_the_allocator_reserve_comes_from_the_recipe_parameters() -> None:
    nitro = documents()["nitro-enclaves"]
    build = render("\n".join(scripts(nitro, "build")), component_parameters("nitro-enclaves", ARGS))
    assert "dnf -y install aws-nitro-enclaves-cli aws-nitro-enclaves-cli-devel" in build
    assert yaml.safe_load(written_file(build, "/etc/nitro_enclaves/allocator.yaml")) == {
        "memory_mib": 6144, "cpu_count": 4}
    # Enabled for the fleet's instances; not started on build instances, which have no enclaves.
    assert "systemctl enable nitro-enclaves-allocator.service nitro-enclaves-vsock-proxy.service" in build
    assert "systemctl start" not in build and "--now nitro" not in build


@pytest.mark.parametrize("region, endpoint", [("eu-west-1", "kms.eu-west-1.amazonaws.com"),
                                              ("cn-north-1", "kms.cn-north-1.amazonaws.com.cn")])
def test_vsock_proxy_allows_only_the_regions_kms_endpoint(region: str, endpoint: str) -> None:
    assert kms_endpoint(region) == endpoint
    parameters = component_parameters("nitro-enclaves", replace(ARGS, region=region))
    build = render("\n".join(scripts(documents()["nitro-enclaves"], "build")), parameters)
    allowlist = yaml.safe_load(written_file(build, "/etc/nitro_enclaves/vsock-proxy.yaml"))
    assert allowlist == {"allowlist": [{"address": endpoint, "port": 443}]}
    drop_in = written_file(
        build, "/etc/systemd/system/nitro-enclaves-vsock-proxy.service.d/50-zero-trust-ai.conf")
    assert drop_in.splitlines()[1:3] == [
        "ExecStart=", f"ExecStart=/usr/bin/vsock-proxy 8000 {endpoint} 443 "
                      "--config /etc/nitro_enclaves/vsock-proxy.yaml"]
    assert "DynamicUser=yes" in drop_in and "NoNewPrivileges=yes" in drop_in


def test_validate_and_test_phases_check_what_was_installed() -> None:
    nitro = documents()["nitro-enclaves"]
    for phase in ("validate", "test"):
        checks = "\n".join(scripts(nitro, phase))
        assert "nitro-cli --version" in checks
        assert '{"allowlist": [{"address": endpoint, "port": 443}]}' in checks
        assert '{"memory_mib": memory, "cpu_count": cpus}' in checks
        assert "systemctl is-enabled" in checks
    assert "grep -rIl -e 'debug-mode' -e 'attach-console'" in "\n".join(scripts(nitro, "validate"))


def unit_directives(unit: str) -> dict[str, list[str]]:
    directives: dict[str, list[str]] = {}
    for line in unit.splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            directives.setdefault(key, []).append(value)
    return directives


def test_the_parent_agent_runs_as_a_dedicated_user_in_a_hardened_unit() -> None:
    agent = documents()["parent-agent"]
    build = "\n".join(scripts(agent, "build"))
    assert f"--shell /sbin/nologin --comment \"zero-trust-ai parent agent\" {AGENT_USER}" in build
    unit = unit_directives(written_file(build, "/etc/systemd/system/ztai-parent-agent.service"))
    # The fleet's user data writes the agent's arguments into the EnvironmentFile.
    assert unit["ExecStart"] == [f"{AGENT_EXECUTABLE} $ZTAI_AGENT_ARGS"]
    assert unit["EnvironmentFile"] == ["-/etc/zero-trust-ai/parent-agent.env"]
    # Skipped, not failed, on an image built without the artifacts (enclave-artifacts.yaml).
    assert unit["ConditionPathExists"] == [AGENT_EXECUTABLE]
    expected = {"User": AGENT_USER, "Group": AGENT_USER, "NoNewPrivileges": "yes",
                "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
                "PrivateDevices": "yes", "CapabilityBoundingSet": "", "AmbientCapabilities": "",
                "RestrictSUIDSGID": "yes", "ProtectKernelModules": "yes", "LimitCORE": "0",
                "UMask": "0077"}
    assert {key: unit[key] for key in expected} == {key: [value] for key, value in expected.items()}
    assert "AF_VSOCK" in unit["RestrictAddressFamilies"][0]
    assert unit["SystemCallFilter"] == ["@system-service", "~@privileged @resources"]
    assert "systemctl enable ztai-parent-agent.service" in build
    validate = "\n".join(scripts(agent, "validate"))
    assert "grep -qxE 'ne|wheel|docker'" in validate  # may not manage enclaves or become root
    assert "systemd-analyze verify" in validate


# -- the artifacts: pinned, verified, installed read-only --------------------------------------------
def step_script(key: str, phase: str, step: str, parameters: dict[str, str]) -> str:
    [steps] = [p["steps"] for p in documents()[key]["phases"] if p["name"] == phase]
    [script] = [command for s in steps if s["name"] == step for command in s["inputs"]["commands"]]
    return render(script, parameters)


def test_the_artifacts_are_verified_before_they_are_installed() -> None:
    parameters = component_parameters(ARTIFACTS_DOCUMENT, ARGS)
    eif = step_script(ARTIFACTS_DOCUMENT, "build", "InstallEnclaveImage", parameters)
    assert eif.index("aws s3 cp --region 'eu-west-1'") < eif.index("sha256sum --check") < eif.index(
        "install -o root -g root -m 0444")
    assert "'s3://ztai-dev-models/artifacts/digits-7.eif'" in eif
    assert eif.rstrip().endswith("/opt/zero-trust-ai/enclave/digits.eif")
    agent = step_script(ARTIFACTS_DOCUMENT, "build", "InstallParentAgent", parameters)
    assert agent.index("sha256sum --check") < agent.index("tar -xzf") < agent.index('cp -R')
    assert "--no-same-owner --no-same-permissions" in agent
    build = "\n".join(scripts(documents()[ARTIFACTS_DOCUMENT], "build"))
    assert "dnf -y install python3.11" in build  # the launcher's interpreter (system python is 3.9)
    for phase in ("validate", "test"):
        checks = "\n".join(scripts(documents()[ARTIFACTS_DOCUMENT], phase))
        assert "{{ EifSha256 }}" in checks and "{{ AgentSha256 }}" in checks
        assert "runuser -u ztai-agent --" in checks  # the agent's own user can start it


def test_the_paths_agree_with_the_fleet_and_the_packager() -> None:
    """The EIF where the user data looks for it, the launcher where the unit runs it, the
    artifacts where the fleet lets the build role read them."""
    text = document_text(ARTIFACTS_DOCUMENT)
    assert DEFAULT_EIF_PATH in text
    assert f"{package_agent.INSTALL_DIR}/{package_agent.LAUNCHER}" == AGENT_EXECUTABLE
    assert "agent=" + package_agent.INSTALL_DIR in text and package_agent.LAUNCHER in text
    assert package_agent.ARTIFACT_PREFIX == ARTIFACT_PREFIX
    assert package_agent.DEFAULT_PYTHON == "/usr/bin/python3.11" and "dnf -y install python3.11" in text


@dataclass
class Sandbox:
    """Runs the document's scripts as on a build instance, under a temporary root: `aws s3 cp`
    copies from a local bucket directory, dnf does nothing, runuser runs the command as is, and
    ownership is the current user's (the scripts say root)."""

    root: Path
    parameters: dict[str, str]

    @property
    def opt(self) -> Path:
        return self.root / "opt" / "zero-trust-ai"

    def put(self, key: str, data: bytes) -> None:
        path = self.root / "s3" / "ztai-dev-models" / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def script(self, phase: str, step: str) -> str:
        text = step_script(ARTIFACTS_DOCUMENT, phase, step, self.parameters)
        user, group = pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name
        for old, new in (("/opt/zero-trust-ai", str(self.opt)), ("/var/tmp", str(self.root / "tmp")),
                         ("-o root -g root", f"-o {user} -g {group}"), ("root:root", f"{user}:{group}"),
                         ("! -user root", f"! -user {user}")):
            text = text.replace(old, new)
        return text

    def run(self, phase: str, step: str) -> subprocess.CompletedProcess[str]:
        stubs = self.root / "bin"
        if not stubs.exists():
            stubs.mkdir(parents=True)
            (self.root / "tmp").mkdir()
            for name, body in (
                    ("aws", f'[ "$1 $2" = "s3 cp" ] || exit 2\nfor last; do :; done\n'
                            f'src=$(printf %s "${{@: -2:1}}" | sed "s|^s3://|{self.root}/s3/|")\n'
                            f'cp "$src" "$last"\n'),
                    ("dnf", "exit 0\n"),
                    ("reboot", f"touch {self.root}/rebooted\n"),
                    ("runuser", 'while [ "$1" != "--" ]; do shift; done\nshift\nexec "$@"\n')):
                (stubs / name).write_text(f"#!/bin/bash\nset -euo pipefail\n{body}")
                (stubs / name).chmod(0o755)
        return subprocess.run(["bash", "-c", self.script(phase, step)], capture_output=True, text=True,
                              env={"PATH": f"{stubs}:/usr/bin:/bin"}, timeout=120, check=False)

    def build(self) -> None:
        for step in ("CheckParameters", "InstallPython", "InstallEnclaveImage", "InstallParentAgent"):
            result = self.run("build", step)
            assert result.returncode == 0, f"{step}: {result.stderr}"


@pytest.fixture(scope="module")
def agent_package(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real package of the agent (enclave_images/package_agent.py) with a stand-in boto3."""
    directory = tmp_path_factory.mktemp("agent-package")
    build_agent_package(directory, directory / "parent-agent.tar.gz")
    return (directory / "parent-agent.tar.gz").read_bytes()


def sandbox(root: Path, eif: bytes, package: bytes, **pins: str) -> Sandbox:
    artifacts = replace(ARTIFACTS, eif_sha256=hashlib.sha256(eif).hexdigest(),
                        agent_sha256=hashlib.sha256(package).hexdigest())
    box = Sandbox(root, component_parameters(
        ARTIFACTS_DOCUMENT, replace(ARGS, enclave_artifacts=replace(artifacts, **pins))))
    box.put(ARTIFACTS.eif_key, eif)
    box.put(ARTIFACTS.agent_key, package)
    return box


def test_pinned_artifacts_are_installed_read_only_and_the_agent_starts(
        tmp_path: Path, agent_package: bytes) -> None:
    box = sandbox(tmp_path, b"EIF" * 1000, agent_package)
    box.build()
    eif = box.opt / "enclave" / "digits.eif"
    assert eif.read_bytes() == b"EIF" * 1000 and stat.S_IMODE(eif.stat().st_mode) == 0o444
    launcher = box.opt / "parent-agent" / "bin" / "ztai-parent-agent"
    assert stat.S_IMODE(launcher.stat().st_mode) == 0o755
    modes = {stat.S_IMODE(p.stat().st_mode) for p in (box.opt / "parent-agent").rglob("*")
             if p.is_file() and p != launcher}
    assert modes == {0o644}
    kept = box.opt / "artifacts" / "parent-agent.tar.gz"
    assert kept.read_bytes() == agent_package and stat.S_IMODE(kept.stat().st_mode) == 0o444
    assert not list((tmp_path / "tmp").iterdir())  # staging removed
    for phase, step in (("validate", "CheckArtifacts"), ("test", "CheckArtifactsOnLaunchedImage")):
        result = box.run(phase, step)
        assert result.returncode == 0, result.stderr
        assert "packaged boto3 stand-in" in result.stderr  # the launcher ran the packaged agent


def test_an_artifact_that_is_not_the_pinned_one_is_refused(tmp_path: Path, agent_package: bytes) -> None:
    box = sandbox(tmp_path / "eif", b"EIF", agent_package, eif_sha256="0" * 64)
    result = box.run("build", "InstallEnclaveImage")
    assert result.returncode != 0 and "not the pinned " + "0" * 64 in result.stderr
    assert not (box.opt / "enclave" / "digits.eif").exists()
    box = sandbox(tmp_path / "agent", b"EIF", agent_package + b"\0")
    box.put(ARTIFACTS.agent_key, agent_package)  # the bucket holds other bytes than were pinned
    result = box.run("build", "InstallParentAgent")
    assert result.returncode != 0 and "refusing it" in result.stderr
    assert not (box.opt / "parent-agent").exists()


def test_a_pinned_package_with_a_link_or_an_escape_is_refused(tmp_path: Path) -> None:
    for name, member in (("link", tarfile.TarInfo("bin/ztai-parent-agent")),
                         ("escape", tarfile.TarInfo("../outside"))):
        if name == "link":
            member.type, member.linkname = tarfile.SYMTYPE, "/bin/sh"
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
            archive.addfile(member, io.BytesIO(b""))
        box = sandbox(tmp_path / name, b"EIF", buffer.getvalue())
        result = box.run("build", "InstallParentAgent")
        assert result.returncode != 0, name
        assert ("link or special file" if name == "link" else "absolute or .. path") in result.stderr
        assert not (tmp_path / name / "opt" / "outside").exists()


def test_a_changed_file_after_the_build_fails_validation(tmp_path: Path, agent_package: bytes) -> None:
    box = sandbox(tmp_path, b"EIF", agent_package)
    box.build()
    agent = box.opt / "parent-agent" / "lib" / "enclave_images" / "parent" / "agent.py"
    agent.write_text(agent.read_text() + "\n# changed\n")
    result = box.run("validate", "CheckArtifacts")
    assert result.returncode != 0 and "differs from the pinned package" in result.stderr


@pytest.mark.parametrize("parameter, value", [
    ("EifS3Uri", "s3://ztai-dev-models/artifacts/digits.eif'; reboot; '"),
    ("AgentSha256", "A9" * 32),
    ("Region", "eu-west-1; reboot"),
])
def test_parameters_are_checked_before_use(tmp_path: Path, parameter: str, value: str) -> None:
    box = Sandbox(tmp_path, component_parameters(ARTIFACTS_DOCUMENT, ARGS) | {parameter: value})
    result = box.run("build", "CheckParameters")
    # Refused (a quote that breaks the script's syntax stops it before anything runs, too).
    assert result.returncode != 0 and not (tmp_path / "rebooted").exists()
    assert parameter in result.stderr or "unexpected token" in result.stderr


@pytest.mark.parametrize("text, fragment", [
    ("schemaVersion: 1.0\nphases: [{name: build, steps: [{name: A, action: ExecuteBash}]}]\n"
     "# nitro-cli run-enclave --debug-mode\n", "--debug-mode"),
    ("schemaVersion: 2.0\nphases: [{name: build, steps: [{name: A, action: ExecuteBash}]}]\n",
     "schemaVersion"),
    ("schemaVersion: 1.0\nphases: [{name: deploy, steps: [{name: A, action: ExecuteBash}]}]\n",
     "phases"),
    ("schemaVersion: 1.0\nphases: [{name: build, steps: [{name: A}]}]\n", "name and an action"),
    ("schemaVersion: 1.0\nphases: [{name: build, steps: [{name: A, action: ExecuteBash, "
     "inputs: {commands: ['echo {{ Missing }}']}}]}]\n", "undeclared parameters ['Missing']"),
])
def test_bad_documents_are_refused(text: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=re.escape(fragment)):
        validate_document("doc", text)


def test_versions_follow_the_content() -> None:
    text = document_text("nitro-enclaves")
    assert document_version(text) == document_version(text)
    assert document_version(text) != document_version(text + "\n")
    assert all(0 <= int(node) <= 2**30 - 1 for node in document_version(text).split("."))


# -- the resources ------------------------------------------------------------------------------
def build(args: ImmutableAmiPipelineArgs = ARGS) -> RecordedStack:
    def program() -> None:
        ImmutableAmiPipeline("ami", args)

    return record(program, project="zero-trust-ai", stack="test", config={}, region=args.region)


def named(stack: RecordedStack, name: str) -> RecordedResource:
    [resource] = [r for r in stack.resources if r.name == name]
    return resource


def of_type(stack: RecordedStack, token: str) -> list[RecordedResource]:
    return [r for r in stack.resources if r.type == token]


def as_policy_resource(resource: RecordedResource) -> Resource:
    return Resource(type=resource.type, name=resource.name, urn=resource.urn, props=resource.inputs)


@pytest.fixture(scope="module")
def dev() -> RecordedStack:
    return build()


def test_component_is_typed_and_parents_what_it_declares(dev: RecordedStack) -> None:
    component = named(dev, "ami")
    assert component.type == "zero-trust-ai:images:ImmutableAmiPipeline" and not component.custom
    children = [r for r in dev.resources if r.parent == component.urn]
    assert {r.name for r in children} >= {
        "ami-recipe", "ami-infrastructure", "ami-distribution", "ami-pipeline", "ami-build-sg",
        "ami-instance-role", "ami-execution-role", "ami-image-logs", "ami-pipeline-logs",
        "ami-base-hardening", "ami-nitro-enclaves", "ami-parent-agent", "ami-enclave-artifacts",
        "ami-imagebuilder-endpoint"}
    assert all(r.name.startswith("ami-") for r in dev.resources if r.type.startswith("aws:"))
    assert not dev.errors


def test_components_carry_the_documents_with_content_versions(dev: RecordedStack) -> None:
    for key in COMPONENT_DOCUMENTS:
        inputs = named(dev, f"ami-{key}").inputs
        assert inputs["data"] == document_text(key) and inputs["platform"] == "Linux"
        assert inputs["version"] == document_version(document_text(key))
        assert inputs["name"] == f"zero-trust-ai-dev-{key}"


def test_recipe_builds_on_the_al2023_parameter_with_an_encrypted_root(dev: RecordedStack) -> None:
    recipe = named(dev, "ami-recipe").inputs
    assert recipe["parentImage"] == (
        "ssm:/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64")
    [device] = recipe["blockDeviceMappings"]
    assert device == {"deviceName": "/dev/xvda", "ebs": {
        "encrypted": "true", "kmsKeyId": AMI_KEY, "deleteOnTermination": "true", "volumeSize": 16,
        "volumeType": "gp3"}}
    assert recipe["systemsManagerAgent"] == {"uninstallAfterBuild": False}
    arns = [component["componentArn"] for component in recipe["components"]]
    assert arns == [named(dev, f"ami-{key}").outputs["arn"] for key in COMPONENT_DOCUMENTS]
    [nitro] = [c for c in recipe["components"] if "nitro-enclaves" in c["componentArn"]]
    assert {p["name"]: p["value"] for p in nitro["parameters"]} == {
        "EnclaveMemoryMiB": "6144", "EnclaveCpuCount": "4", "KmsEndpoint": "kms.eu-west-1.amazonaws.com"}
    [artifacts] = [c for c in recipe["components"] if "enclave-artifacts" in c["componentArn"]]
    assert {p["name"]: p["value"] for p in artifacts["parameters"]} == {
        "EifS3Uri": "s3://ztai-dev-models/artifacts/digits-7.eif", "EifSha256": "e1" * 32,
        "AgentS3Uri": "s3://ztai-dev-models/artifacts/parent-agent-7.tar.gz",
        "AgentSha256": "a9" * 32, "Region": "eu-west-1"}
    assert re.fullmatch(r"1\.0\.\d+", recipe["version"])


def test_without_pinned_artifacts_the_image_is_built_without_them() -> None:
    base = build(BASE)
    recipe = named(base, "ami-recipe").inputs
    assert [c["componentArn"] for c in recipe["components"]] == [
        named(base, f"ami-{key}").outputs["arn"] for key in BASE_DOCUMENTS]
    assert not [r for r in base.resources if r.name == f"ami-{ARTIFACTS_DOCUMENT}"]
    policy = {s["Sid"]: s for s in statements(named(base, "ami-instance-role-policy"))}
    assert not any(ARTIFACTS_DOCUMENT in arn for arn in policy["ReadThisPipelinesComponents"]["Resource"])


def test_recipe_version_changes_with_what_defines_it() -> None:
    versions = {named(build(args), "ami-recipe").inputs["version"] for args in (
        ARGS, replace(ARGS, enclave_memory_mib=8192), replace(ARGS, ami_key_arn=LOGS_KEY),
        replace(ARGS, root_volume_size_gib=32), BASE,
        replace(ARGS, enclave_artifacts=replace(ARTIFACTS, agent_sha256="b8" * 32)),
        replace(ARGS, artifacts_bucket_name="other-bucket"))}
    assert len(versions) == 7


def test_build_instances_are_private_short_lived_and_keyless(dev: RecordedStack) -> None:
    infrastructure = named(dev, "ami-infrastructure").inputs
    assert infrastructure["instanceMetadataOptions"] == {"httpTokens": "required",
                                                         "httpPutResponseHopLimit": 1}
    assert infrastructure["terminateInstanceOnFailure"] is True and "keyPair" not in infrastructure
    assert infrastructure["instanceTypes"] == ["m6i.large"]
    assert infrastructure["subnetId"] == "subnet-0management"
    assert infrastructure["securityGroupIds"] == [named(dev, "ami-build-sg").outputs["id"]]
    assert infrastructure["instanceProfileName"] == named(dev, "ami-instance-profile").outputs["name"]
    assert "logging" not in infrastructure  # no S3 bucket: logs go to the encrypted log groups
    assert image_builder_infrastructure_hardened(
        as_policy_resource(named(dev, "ami-infrastructure")), {}) == []


def test_build_security_group_allows_only_https_to_endpoints_and_s3(dev: RecordedStack) -> None:
    group = named(dev, "ami-build-sg").inputs
    assert group.get("ingress", []) == []
    assert [(rule["protocol"], rule["fromPort"], rule["toPort"]) for rule in group["egress"]] == [
        ("tcp", 443, 443), ("tcp", 443, 443)]
    assert group["egress"][0]["cidrBlocks"] == ["10.13.0.0/16"]
    [prefix_list] = group["egress"][1]["prefixListIds"]
    assert prefix_list.startswith("pl-") and "cidrBlocks" not in group["egress"][1]


def test_the_imagebuilder_endpoint_admits_only_build_instances(dev: RecordedStack) -> None:
    endpoint = named(dev, "ami-imagebuilder-endpoint").inputs
    assert endpoint["serviceName"] == "com.amazonaws.eu-west-1.imagebuilder"
    assert endpoint["privateDnsEnabled"] is True and endpoint["subnetIds"] == ["subnet-0management"]
    [statement] = json.loads(endpoint["policy"])["Statement"]
    # Our principals on our resources only: the build role reads only this account's components,
    # and a principal condition alone would let it reach another account's.
    assert statement["Condition"] == {"StringEquals": {"aws:PrincipalAccount": "111122223333",
                                                       "aws:ResourceAccount": "111122223333"}}
    [group] = [r for r in of_type(dev, "aws:ec2/securityGroup:SecurityGroup") if r.name == "ami-endpoint-sg"]
    [ingress] = group.inputs["ingress"]
    assert ingress["securityGroups"] == [named(dev, "ami-build-sg").outputs["id"]]
    assert "cidrBlocks" not in ingress and group.inputs.get("egress", []) == []
    without = build(replace(ARGS, imagebuilder_endpoint=False))
    assert not of_type(without, "aws:ec2/vpcEndpoint:VpcEndpoint")


def statements(resource: RecordedResource, field: str = "policy") -> list[dict[str, Any]]:
    document: list[dict[str, Any]] = json.loads(resource.inputs[field])["Statement"]
    return document


def test_roles_are_trusted_by_their_service_in_this_account_only(dev: RecordedStack) -> None:
    [trust] = statements(named(dev, "ami-execution-role"), "assumeRolePolicy")
    assert trust["Principal"] == {"Service": "imagebuilder.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": "111122223333"}}
    for role in ("ami-instance-role", "ami-execution-role"):
        assert named(dev, role).inputs["maxSessionDuration"] == 3600


def test_the_build_instance_role_trusts_ec2_without_a_condition_ec2_never_sends(
        dev: RecordedStack) -> None:
    # EC2 sends no aws:SourceAccount when it assumes an instance profile's role: a condition on
    # it would leave every build instance without credentials.
    [trust] = statements(named(dev, "ami-instance-role"), "assumeRolePolicy")
    assert trust == {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
                     "Action": "sts:AssumeRole"}
    # Only the execution role may pass it, and only to EC2: that is the confused-deputy guard.
    [passing] = statements(named(dev, "ami-execution-role-policy"), "policy")
    assert passing["Resource"] == named(dev, "ami-instance-role").outputs["arn"]


def test_instance_role_holds_only_ssm_and_this_pipelines_resources(dev: RecordedStack) -> None:
    attachments = {r.inputs["policyArn"] for r in of_type(dev, ATTACHMENT)
                   if r.inputs["role"] == named(dev, "ami-instance-role").outputs["name"]}
    assert attachments == {"arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"}
    policy = {s["Sid"]: s for s in statements(named(dev, "ami-instance-role-policy"))}
    assert policy["ReadThisPipelinesComponents"]["Resource"] == [
        f"arn:aws:imagebuilder:eu-west-1:111122223333:component/zero-trust-ai-dev-{key}/*"
        for key in COMPONENT_DOCUMENTS]
    assert policy["DownloadAwsToe"]["Resource"] == "arn:aws:s3:::ec2imagebuilder-toe-eu-west-1-prod/*"
    log_group = named(dev, "ami-image-logs").outputs["arn"]
    assert policy["WriteThisPipelinesImageLogs"]["Resource"] == [log_group, f"{log_group}:log-stream:*"]
    for statement in policy.values():
        assert statement["Effect"] == "Allow" and "*" not in json.dumps(statement["Action"])
        assert statement["Resource"] != "*"


def test_execution_role_may_pass_only_the_instance_role_to_ec2(dev: RecordedStack) -> None:
    [attachment] = [r for r in of_type(dev, ATTACHMENT)
                    if r.inputs["role"] == named(dev, "ami-execution-role").outputs["name"]]
    assert attachment.inputs["policyArn"] == "arn:aws:iam::aws:policy/EC2ImageBuilderExecutionPolicy"
    # Writing the image parameter is the fleet's grant (tests/components/test_enclave_fleet.py).
    [pass_role] = statements(named(dev, "ami-execution-role-policy"))
    assert pass_role["Action"] == "iam:PassRole"
    assert pass_role["Resource"] == named(dev, "ami-instance-role").outputs["arn"]
    assert pass_role["Condition"] == {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}


def test_distribution_encrypts_the_ami_and_publishes_its_id_only(dev: RecordedStack) -> None:
    [distribution] = named(dev, "ami-distribution").inputs["distributions"]
    assert distribution["region"] == "eu-west-1"
    ami = distribution["amiDistributionConfiguration"]
    assert ami["kmsKeyId"] == AMI_KEY and "launchPermission" not in ami
    assert ami["name"] == "zero-trust-ai-dev-enclave-parent-{{ imagebuilder:buildDate }}"
    # The fleet's template resolves the parameter: Image Builder never writes a template version.
    assert "launchTemplateConfigurations" not in distribution
    assert distribution["ssmParameterConfigurations"] == [
        {"parameterName": PARAMETER, "dataType": "aws:ec2:image"}]
    alone = named(build(replace(ARGS, ami_id_parameter_name=None)), "ami-distribution")
    assert "ssmParameterConfigurations" not in alone.inputs["distributions"][0]


def test_image_arns_of_the_recipe_are_announced() -> None:
    def program() -> None:
        pulumi.export("prefix", ImmutableAmiPipeline("ami", ARGS).image_arn_prefix)

    stack = record(program, project="zero-trust-ai", stack="test", config={}, region="eu-west-1")
    prefix = stack.stack_outputs["prefix"]
    # Image Builder names an image's ARN after its recipe: image/<recipe>/<version>/<build>.
    assert prefix == "arn:aws:imagebuilder:eu-west-1:111122223333:image/zero-trust-ai-dev-enclave-parent/"
    assert named(stack, "ami-recipe").inputs["name"] == prefix.rsplit("/", 2)[1]


def test_pipeline_is_scheduled_tested_scanned_and_logged(dev: RecordedStack) -> None:
    pipeline = named(dev, "ami-pipeline")
    inputs = pipeline.inputs
    assert inputs["status"] == "ENABLED"
    assert inputs["imageScanningConfiguration"] == {"imageScanningEnabled": True}
    assert inputs["imageTestsConfiguration"] == {"imageTestsEnabled": True, "timeoutMinutes": 60}
    assert inputs["schedule"] == {"scheduleExpression": "cron(0 4 ? * sun *)", "timezone": "Etc/UTC",
                                  "pipelineExecutionStartCondition": "EXPRESSION_MATCH_ONLY"}
    assert [w["workflowArn"] for w in inputs["workflows"]] == [
        "arn:aws:imagebuilder:eu-west-1:aws:workflow/build/build-image/x.x.x",
        "arn:aws:imagebuilder:eu-west-1:aws:workflow/test/test-image/x.x.x"]
    assert inputs["executionRole"] == named(dev, "ami-execution-role").outputs["arn"]
    assert inputs["imageRecipeArn"] == named(dev, "ami-recipe").outputs["arn"]
    assert inputs["distributionConfigurationArn"] == named(dev, "ami-distribution").outputs["arn"]
    assert inputs["enhancedImageMetadataEnabled"] is True
    assert inputs["loggingConfiguration"] == {
        "imageLogGroupName": "/aws/imagebuilder/zero-trust-ai-dev-enclave-parent",
        "pipelineLogGroupName": "/aws/imagebuilder/zero-trust-ai-dev-enclave-parent-pipeline"}
    assert image_pipeline_scans_images(as_policy_resource(pipeline), {}) == []
    # The execution role's permissions exist before the pipeline can run.
    assert named(dev, "ami-execution-role-policy").urn in pipeline.dependencies


def test_log_groups_are_encrypted_and_kept(dev: RecordedStack) -> None:
    for name in ("ami-image-logs", "ami-pipeline-logs"):
        inputs = named(dev, name).inputs
        assert inputs["kmsKeyId"] == LOGS_KEY and inputs["retentionInDays"] == 365
        assert inputs["name"].startswith("/aws/imagebuilder/zero-trust-ai-dev-enclave-parent")
    prod = build(replace(ARGS, environment="prod", protect=True))
    assert named(prod, "ami-image-logs").protect and named(prod, "ami-image-logs").inputs[
        "deletionProtectionEnabled"] is True


def test_graviton_builds_from_the_arm64_parameter() -> None:
    graviton = build(replace(ARGS, architecture="arm64", enclave_cpu_count=1))
    recipe = named(graviton, "ami-recipe").inputs
    assert recipe["parentImage"].endswith("al2023-ami-kernel-default-arm64")
    assert named(graviton, "ami-infrastructure").inputs["instanceTypes"] == ["m7g.large"]


@pytest.mark.parametrize("overrides, fragment", [
    ({"architecture": "riscv64"}, "architecture 'riscv64'"),
    ({"instance_types": ()}, "instance_types is empty"),
    ({"enclave_memory_mib": 32}, "enclave_memory_mib must be at least 64"),
    ({"enclave_cpu_count": 3}, "2 thread(s) per core needs a positive multiple of 2"),
    ({"enclave_cpu_count": 0}, "needs a positive multiple of 2"),
    ({"enclave_cpu_count": 3, "enclave_threads_per_core": 2}, "a positive multiple of 2"),
    ({"schedule_expression": "rate(7 days)"}, "six-field cron"),
    ({"start_condition": "ALWAYS"}, "start_condition 'ALWAYS'"),
    ({"image_tests_timeout_minutes": 30}, "60 to 1440"),
    ({"root_volume_size_gib": 4}, "at least 8"),
    ({"log_retention_days": 42}, "not a CloudWatch Logs retention"),
    ({"artifacts_bucket_name": None}, "go together"),
    ({"enclave_artifacts": None}, "go together"),
    ({"enclave_artifacts": replace(ARTIFACTS, eif_sha256="E1" * 32)}, "eif_sha256"),
    ({"enclave_artifacts": replace(ARTIFACTS, agent_key="artifacts/agent.tar.gz; reboot")}, "agent_key"),
])
def test_bad_arguments_are_refused_before_anything_is_declared(overrides: dict[str, Any],
                                                               fragment: str) -> None:
    with pytest.raises(ValueError, match=re.escape(fragment)):
        build(replace(ARGS, **overrides))


def test_a_parent_without_smt_may_reserve_an_odd_number_of_cpus() -> None:
    # m7a (AMD 7th generation) runs one thread per core: 3 vCPUs are 3 whole cores, as the
    # fleet's sizing accepts.
    stack = build(replace(ARGS, enclave_cpu_count=3, enclave_threads_per_core=1))
    recipe = named(stack, "ami-recipe").inputs
    [nitro] = [c for c in recipe["components"] if "nitro-enclaves" in c["componentArn"]]
    assert {p["name"]: p["value"] for p in nitro["parameters"]}["EnclaveCpuCount"] == "3"


def test_the_hierarchy_grants_the_execution_role_use_through_ec2_only() -> None:
    def program() -> None:
        keys = KeyHierarchy("keys", KeyHierarchyArgs(environment="dev", owner="o", region="eu-west-1",
                                                      two_person_purposes=()))
        pipeline = ImmutableAmiPipeline("ami", replace(
            ARGS, ami_key_arn=keys.key_arn("inference"), logs_key_arn=keys.key_arn("logs")))
        keys.grant_use_through_service("inference", pipeline.execution_role, "ec2")
        keys.grant_cloudwatch_logs(pipeline.log_group_prefix)
        keys.seal()

    stack = record(program, project="zero-trust-ai", stack="test", config={}, region="eu-west-1")
    role_arn = named(stack, "ami-execution-role").outputs["arn"]
    policy = statements(named(stack, "keys-inference-policy"))
    granted = [s for s in policy if s.get("Principal") == {"AWS": role_arn}]
    assert sorted(s["Sid"] for s in granted)[0].startswith("GrantThroughEc2")
    assert {action for s in granted for action in s["Action"]} == {
        *SERVICE_USE_ACTIONS, *SERVICE_GRANT_ACTIONS}
    assert all(s["Condition"]["StringEquals"]["kms:ViaService"] == "ec2.eu-west-1.amazonaws.com"
               for s in granted)
    for log_group in ("ami-image-logs", "ami-pipeline-logs"):
        log_group_arn = named(stack, log_group).outputs["arn"]
        assert ":log-group:/aws/imagebuilder/zero-trust-ai-dev-enclave-parent" in log_group_arn
        assert cloudwatch_logs_may_encrypt(named(stack, "keys-logs").inputs["policy"], log_group_arn)
    recipe = named(stack, "ami-recipe").inputs
    inference_key = named(stack, "keys-inference").outputs["arn"]
    assert recipe["blockDeviceMappings"][0]["ebs"]["kmsKeyId"] == inference_key


# -- the image built at deploy (first boot) -------------------------------------------------------
def test_build_image_builds_once_from_the_pipelines_recipe_infrastructure_and_distribution() -> None:
    def program() -> None:
        pipeline = ImmutableAmiPipeline("ami", ARGS)
        grant = pulumi.CustomResource("test:index:Grant", "publish-grant", {})
        pulumi.export("image", pipeline.build_image(after=[grant]).arn)

    stack = record(program, project="zero-trust-ai", stack="test", config={}, region="eu-west-1")
    assert stack.errors == []
    image = named(stack, "ami-image")
    for key, source in (("imageRecipeArn", "ami-recipe"),
                        ("infrastructureConfigurationArn", "ami-infrastructure"),
                        ("distributionConfigurationArn", "ami-distribution")):
        assert image.inputs[key] == named(stack, source).outputs["arn"]
    pipeline = named(stack, "ami-pipeline").inputs
    assert image.inputs["executionRole"] == pipeline["executionRole"]
    assert image.inputs["workflows"] == pipeline["workflows"]
    assert image.inputs["imageTestsConfiguration"] == pipeline["imageTestsConfiguration"]
    assert image.inputs["imageScanningConfiguration"] == {"imageScanningEnabled": True}
    assert image.inputs["enhancedImageMetadataEnabled"] is True
    assert image.inputs["loggingConfiguration"] == {
        "logGroupName": named(stack, "ami-image-logs").inputs["name"]}
    # A realistic ARN: image/<recipe name>/<recipe version>/<build>, under the rollout's prefix.
    recipe = named(stack, "ami-recipe").inputs
    assert image.outputs["arn"] == (f"arn:aws:imagebuilder:eu-west-1:111122223333:image/"
                                    f"{recipe['name']}/{recipe['version']}/1")
    assert stack.stack_outputs["image"] == image.outputs["arn"]
    # It waits for the grants it uses: the given ones and the execution role's own.
    assert named(stack, "publish-grant").urn in image.dependencies
    assert named(stack, "ami-execution-role-policy").urn in image.dependencies
    assert image.parent == named(stack, "ami").urn


def test_the_deploy_time_build_may_take_hours_not_the_providers_hour() -> None:
    # Build (updates, reboot, nitro-cli, artifacts), tests and the Inspector scan outlast the
    # provider's 60-minute default: `pulumi up` would fail while the build still runs.
    for tests_timeout, expected in ((60, "240m"), (180, "360m")):
        def program(minutes: int = tests_timeout) -> None:
            pipeline = ImmutableAmiPipeline("ami", replace(ARGS, image_tests_timeout_minutes=minutes))
            pipeline.build_image()

        stack = record(program, project="zero-trust-ai", stack="test", config={}, region="eu-west-1")
        image = named(stack, "ami-image")
        assert image.custom_timeouts == {"create": expected}
        assert image.inputs["imageTestsConfiguration"]["timeoutMinutes"] == tests_timeout
    assert deploy_build_timeout_minutes(60) > 60 + 60


def test_the_ami_key_admits_image_builders_service_linked_role_once_it_exists() -> None:
    def program() -> None:
        keys = KeyHierarchy("keys", KeyHierarchyArgs(environment="dev", owner="o", region="eu-west-1",
                                                      two_person_purposes=()))
        pipeline = ImmutableAmiPipeline("ami", replace(
            ARGS, ami_key_arn=keys.key_arn("inference"), logs_key_arn=keys.key_arn("logs")))
        keys.grant_use_through_service("inference", pipeline.service_linked_role_arn, "ec2")
        keys.seal()

    stack = record(program, project="zero-trust-ai", stack="test", config={}, region="eu-west-1")
    role = ("arn:aws:iam::111122223333:role/aws-service-role/imagebuilder.amazonaws.com/"
            "AWSServiceRoleForImageBuilder")
    key_policy = named(stack, "keys-inference-policy")
    granted = [s for s in statements(key_policy) if s.get("Principal") == {"AWS": role}]
    assert {action for s in granted for action in s["Action"]} == {
        *SERVICE_USE_ACTIONS, *SERVICE_GRANT_ACTIONS}
    assert all(s["Condition"]["StringEquals"]["kms:ViaService"] == "ec2.eu-west-1.amazonaws.com"
               for s in granted)
    # KMS refuses a policy naming a role that does not exist yet: the policy is written only
    # after every Image Builder resource of the pipeline, the first of which makes Image Builder
    # create its role.
    for name in ("ami-base-hardening", "ami-nitro-enclaves", "ami-parent-agent",
                 "ami-enclave-artifacts", "ami-recipe", "ami-infrastructure", "ami-distribution"):
        assert named(stack, name).urn in key_policy.dependencies, name


def test_build_image_needs_pinned_artifacts_and_happens_once() -> None:
    errors: list[str] = []

    def program() -> None:
        for args in (BASE, ARGS):
            pipeline = ImmutableAmiPipeline("ami" if args is ARGS else "base", args)
            try:
                pipeline.build_image()
                pipeline.build_image()
            except ValueError as error:
                errors.append(str(error))

    record(program, project="zero-trust-ai", stack="test", config={}, region="eu-west-1")
    assert len(errors) == 2
    assert "pins no enclave artifacts" in errors[0] and "already declared" in errors[1]


def test_the_pipeline_alone_builds_no_image() -> None:
    assert not [r for r in build().resources if r.type == "aws:imagebuilder/image:Image"]


def test_component_documents_are_encrypted_with_the_given_key_only_when_one_is_given() -> None:
    components = "aws:imagebuilder/component:Component"
    assert all("kmsKeyId" not in c.inputs for c in of_type(build(BASE), components))
    encrypted = of_type(build(replace(BASE, component_key_arn=AMI_KEY)), components)
    assert encrypted and all(c.inputs["kmsKeyId"] == AMI_KEY for c in encrypted)
