"""ImmutableAmiPipeline: its component documents (parsed as Image Builder would, and the files they
write rendered and read back), and the resources it registers under Pulumi's mock monitor."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any

import pytest
import yaml

from components.ami_pipeline import (
    AGENT_EXECUTABLE,
    AGENT_USER,
    COMPONENT_DOCUMENTS,
    DOCUMENTS_DIR,
    FORBIDDEN_FLAGS,
    ImmutableAmiPipeline,
    ImmutableAmiPipelineArgs,
    component_parameters,
    document_text,
    document_version,
    kms_endpoint,
    validate_document,
)
from components.keys import (
    SERVICE_GRANT_ACTIONS,
    SERVICE_USE_ACTIONS,
    KeyHierarchy,
    KeyHierarchyArgs,
)
from ztai.preview.recorder import RecordedResource, RecordedStack, record
from ztpolicy.rule import Resource
from ztpolicy.rules.image_builder_infrastructure_hardened import image_builder_infrastructure_hardened
from ztpolicy.rules.image_pipeline_scans_images import image_pipeline_scans_images

AMI_KEY = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
LOGS_KEY = "arn:aws:kms:eu-west-1:111122223333:key/5678abcd-12ab-34cd-56ef-1234567890ab"
ARGS = ImmutableAmiPipelineArgs(
    environment="dev", owner="ml-platform", region="eu-west-1", vpc_id="vpc-0management",
    vpc_cidr="10.13.0.0/16", subnet_id="subnet-0management", ami_key_arn=AMI_KEY,
    logs_key_arn=LOGS_KEY, launch_template_id="lt-0fleet", enclave_memory_mib=6144,
    enclave_cpu_count=4)
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


def test_updates_happen_at_build_time_only() -> None:
    hardening = documents()["base-hardening"]
    build = "\n".join(scripts(hardening, "build"))
    assert "dnf -y --refresh --releasever=latest upgrade" in build
    for phase in ("validate", "test"):
        assert not re.search(r"dnf\b.*\b(upgrade|update|install)", "\n".join(scripts(hardening, phase)))
    for key, document in documents().items():
        if key != "base-hardening":
            assert "upgrade" not in "\n".join(scripts(document, "build"))
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
    assert unit["ConditionPathExists"] == [AGENT_EXECUTABLE]  # skipped, not failed, until installed
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
        "ami-base-hardening", "ami-nitro-enclaves", "ami-parent-agent", "ami-imagebuilder-endpoint"}
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
    assert re.fullmatch(r"1\.0\.\d+", recipe["version"])


def test_recipe_version_changes_with_what_defines_it() -> None:
    versions = {named(build(args), "ami-recipe").inputs["version"] for args in (
        ARGS, replace(ARGS, enclave_memory_mib=8192), replace(ARGS, ami_key_arn=LOGS_KEY),
        replace(ARGS, root_volume_size_gib=32))}
    assert len(versions) == 4


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
    assert statement["Condition"] == {"StringEquals": {"aws:PrincipalAccount": "111122223333"}}
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
    for role, service in (("ami-instance-role", "ec2.amazonaws.com"),
                          ("ami-execution-role", "imagebuilder.amazonaws.com")):
        [trust] = statements(named(dev, role), "assumeRolePolicy")
        assert trust["Principal"] == {"Service": service}
        assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": "111122223333"}}
        assert named(dev, role).inputs["maxSessionDuration"] == 3600


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
    pass_role, publish = statements(named(dev, "ami-execution-role-policy"))
    assert publish["Action"] == ["ssm:GetParameter", "ssm:PutParameter"]
    assert publish["Resource"] == (
        "arn:aws:ssm:eu-west-1:111122223333:parameter/zero-trust-ai/dev/enclave-parent/ami-id")
    assert pass_role["Action"] == "iam:PassRole"
    assert pass_role["Resource"] == named(dev, "ami-instance-role").outputs["arn"]
    assert pass_role["Condition"] == {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}


def test_distribution_encrypts_the_ami_and_updates_the_launch_template(dev: RecordedStack) -> None:
    [distribution] = named(dev, "ami-distribution").inputs["distributions"]
    assert distribution["region"] == "eu-west-1"
    ami = distribution["amiDistributionConfiguration"]
    assert ami["kmsKeyId"] == AMI_KEY and "launchPermission" not in ami
    assert ami["name"] == "zero-trust-ai-dev-enclave-parent-{{ imagebuilder:buildDate }}"
    assert distribution["launchTemplateConfigurations"] == [
        {"launchTemplateId": "lt-0fleet", "default": True}]
    assert distribution["ssmParameterConfigurations"] == [
        {"parameterName": "/zero-trust-ai/dev/enclave-parent/ami-id", "dataType": "aws:ec2:image"}]
    alone = named(build(replace(ARGS, launch_template_id=None)), "ami-distribution")
    assert "launchTemplateConfigurations" not in alone.inputs["distributions"][0]


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
    ({"enclave_cpu_count": 3}, "even number"),
    ({"enclave_cpu_count": 0}, "even number"),
    ({"schedule_expression": "rate(7 days)"}, "six-field cron"),
    ({"start_condition": "ALWAYS"}, "start_condition 'ALWAYS'"),
    ({"image_tests_timeout_minutes": 30}, "60 to 1440"),
    ({"root_volume_size_gib": 4}, "at least 8"),
    ({"log_retention_days": 42}, "not a CloudWatch Logs retention"),
])
def test_bad_arguments_are_refused_before_anything_is_declared(overrides: dict[str, Any],
                                                               fragment: str) -> None:
    with pytest.raises(ValueError, match=re.escape(fragment)):
        build(replace(ARGS, **overrides))


def test_the_hierarchy_grants_the_execution_role_use_through_ec2_only() -> None:
    def program() -> None:
        keys = KeyHierarchy("keys", KeyHierarchyArgs(environment="dev", owner="o", region="eu-west-1"))
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
    logs = statements(named(stack, "keys-logs-policy"))
    assert any(s.get("Condition", {}).get("ArnLike", {}).get("kms:EncryptionContext:aws:logs:arn", "")
               .endswith(":log-group:/aws/imagebuilder/zero-trust-ai-dev-enclave-parent*") for s in logs)
    recipe = named(stack, "ami-recipe").inputs
    inference_key = named(stack, "keys-inference").outputs["arn"]
    assert recipe["blockDeviceMappings"][0]["ebs"]["kmsKeyId"] == inference_key
