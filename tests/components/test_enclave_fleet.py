"""EnclaveInferenceFleet under Pulumi's mock monitor: the launch template, the group, the load
balancer, the security groups, the role and the bucket it declares; and, wired to a KeyHierarchy
as `__main__.py` wires it, the key policies the pack and an IAM-style evaluator accept."""

from __future__ import annotations

import base64
import json
import re
import runpy
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws
import pytest

from components.enclave_fleet import (
    BOOT_TEMPLATE,
    ROLLOUT_HANDLER,
    ROLLOUT_MODULES,
    SSM_AGENT_ACTIONS,
    UNTRUSTED_IMAGE_ACTIONS,
    EnclaveFleetSettings,
    EnclaveInferenceFleet,
    EnclaveInferenceFleetArgs,
    ImageRollout,
    ImageRolloutArgs,
    sizing_problems,
    user_data,
)
from components.functions import RUNTIME_DIR
from components.keys import EnclaveMeasurements, KeyHierarchy, KeyHierarchyArgs
from tests.conftest import ROOT
from tests.support.alarms import ALARMS
from tests.support.key_policy import Request, cloudwatch_logs_may_encrypt, evaluate
from tests.support.shellcheck import shellcheck
from ztai.preview import recorder
from ztai.preview.recorder import RecordedResource, RecordedStack, record
from ztai.stackfile import load_stack
from ztai_runtime.instance_refresh import UNTRUSTED_ACTIONS, settings_from_environment
from ztpolicy.rule import Resource
from ztpolicy.rules.apigateway.inference_path_tls_bound import inference_path_tls_bound
from ztpolicy.rules.ec2.enclave_user_data_no_debug import debug_flags, enclave_user_data_no_debug
from ztpolicy.rules.ec2.launch_template_hardened import launch_template_hardened
from ztpolicy.rules.kms.kms_key_policy_least_privilege import kms_key_policy_least_privilege
from ztpolicy.rules.kms.model_key_attestation_required import model_key_attestation_required
from ztpolicy.rules.logs.log_group_encrypted import log_group_encrypted
from ztpolicy.rules.network.instance_no_public_ip import instance_no_public_ip
from ztpolicy.rules.network.no_unrestricted_ingress import no_unrestricted_ingress

# pulumi-aws warns about its own deprecated types when lambda_ and s3 are first loaded.
pytestmark = [
    pytest.mark.filterwarnings("ignore:aws.lambda/microvmsimage.MicrovmsImage:DeprecationWarning"),
    pytest.mark.filterwarnings(r"ignore:(s3\.BucketV2|aws\.s3/\w+v2\.\w+V2) has been deprecated:"
                               "DeprecationWarning"),
]

MEASUREMENTS = EnclaveMeasurements(pcr0="a1" * 48, pcr1="b2" * 48, pcr2="c3" * 48)
ARGS = EnclaveInferenceFleetArgs(
    environment="dev", owner="ml-platform", region="eu-west-1",
    vpc_id="vpc-0inference", vpc_cidr="10.12.0.0/16",
    subnet_ids=["subnet-0private0", "subnet-0private1"],
    storage_key_arn="arn:aws:kms:eu-west-1:111122223333:key/inference",
    model_key_arn="arn:aws:kms:eu-west-1:111122223333:key/model-weights",
    measurements=MEASUREMENTS,
    certificate_domain_name="inference.api.dev.example.com",
    certificate_arn="arn:aws:acm:eu-west-1:111122223333:certificate/inference",
)
ACCOUNT = "111122223333"


def build(args: EnclaveInferenceFleetArgs = ARGS) -> RecordedStack:
    def program() -> None:
        EnclaveInferenceFleet("fleet", args)

    return record(program, project="zero-trust-ai", stack="test", config={}, region=args.region)


def build_with_keys(measurements: EnclaveMeasurements = MEASUREMENTS,
                    replica_regions: tuple[str, ...] = ()) -> RecordedStack:
    """The fleet and the key hierarchy wired as in __main__.py."""
    def program() -> None:
        keys = KeyHierarchy("keys", KeyHierarchyArgs(
            environment="dev", owner="ml-platform", region="eu-west-1",
            administrator_role_arns=("arn:aws:iam::111122223333:role/kms-admin",),
            replica_regions=replica_regions))
        fleet = EnclaveInferenceFleet("fleet", replace(
            ARGS, storage_key_arn=keys.key_arn("inference"),
            model_key_arn=keys.key_arn("model-weights"), measurements=measurements))
        keys.grant_decrypt_with_attestation("model-weights", fleet.instance_role, measurements)
        keys.grant_use_through_service("inference", fleet.autoscaling_role, "ec2")
        keys.grant_decrypt_through_service("inference", fleet.instance_role, "s3")
        keys.grant_key_administration("model-weights", aws.iam.Role(
            "key-admin-elevation", assume_role_policy=json.dumps({"Version": "2012-10-17", "Statement": []})),
            policy_writer="arn:aws:iam::111122223333:role/zero-trust-ai-dev-jit-api-role")
        keys.seal()

    return record(program, project="zero-trust-ai", stack="test", config={}, region="eu-west-1")


def named(stack: RecordedStack, name: str) -> RecordedResource:
    [resource] = [r for r in stack.resources if r.name == name]
    return resource


def of_type(stack: RecordedStack, token: str) -> list[RecordedResource]:
    return [r for r in stack.resources if r.type == token]


def as_rule_input(resource: RecordedResource) -> Resource:
    return Resource(type=resource.type, name=resource.name, urn=resource.urn, props=resource.inputs,
                    property_dependencies={k: tuple(v) for k, v in resource.property_dependencies.items()})


def script(stack: RecordedStack) -> str:
    return base64.b64decode(named(stack, "fleet-launch-template").inputs["userData"]).decode()


@pytest.fixture(scope="module")
def fleet() -> RecordedStack:
    return build()


@pytest.fixture(scope="module")
def wired() -> RecordedStack:
    return build_with_keys()


# -- launch template -----------------------------------------------------------------------------
def test_launch_template_is_hardened(fleet: RecordedStack) -> None:
    template = named(fleet, "fleet-launch-template").inputs
    assert template["enclaveOptions"] == {"enabled": True}
    assert template["metadataOptions"] == {
        "httpEndpoint": "enabled", "httpTokens": "required", "httpPutResponseHopLimit": 1,
        "httpProtocolIpv6": "disabled", "instanceMetadataTags": "disabled"}
    assert "keyName" not in template
    [interface] = template["networkInterfaces"]
    assert interface["associatePublicIpAddress"] == "false"
    assert interface["securityGroups"] == [named(fleet, "fleet-instance-sg").id]
    [root] = template["blockDeviceMappings"]
    assert root["deviceName"] == "/dev/xvda"
    assert root["ebs"] == {"encrypted": "true", "kmsKeyId": ARGS.storage_key_arn, "volumeType": "gp3",
                           "volumeSize": 30, "deleteOnTermination": "true"}
    assert template["instanceType"] == "m6i.xlarge"
    assert template["iamInstanceProfile"]["arn"] == named(fleet, "fleet-instance-profile").outputs["arn"]
    for rule in (launch_template_hardened, enclave_user_data_no_debug, instance_no_public_ip):
        assert rule(as_rule_input(named(fleet, "fleet-launch-template")), {}) == []


def test_the_template_takes_its_image_from_the_fleets_parameter(fleet: RecordedStack) -> None:
    parameter = named(fleet, "fleet-image-parameter")
    template = named(fleet, "fleet-launch-template")
    assert parameter.inputs["name"] == "/zero-trust-ai/dev/enclave-parent/ami-id"
    assert template.inputs["imageId"] == "resolve:ssm:/zero-trust-ai/dev/enclave-parent/ami-id"
    # The template waits for the parameter (EC2 resolves it when the template is used).
    assert parameter.urn in template.property_dependencies["imageId"]
    assert (parameter.inputs["type"], parameter.inputs["dataType"]) == ("String", "aws:ec2:image")
    assert parameter.inputs["tags"]["ztai:workload"] == "enclave-inference"
    named_elsewhere = build(replace(ARGS, image_parameter_name="/team/enclave-parent"))
    assert named(named_elsewhere, "fleet-launch-template").inputs["imageId"] == (
        "resolve:ssm:/team/enclave-parent")


def test_the_parameter_starts_at_al2023_and_pulumi_never_writes_it_again() -> None:
    ignored: dict[str, list[str]] = {}
    register: Callable[..., Any] = recorder.RecordingMonitor.RegisterResource

    def remember_ignore_changes(self: recorder.RecordingMonitor, request: Any) -> Any:
        ignored[request.name] = list(request.ignoreChanges)
        return register(self, request)

    recorder.RecordingMonitor.RegisterResource = remember_ignore_changes  # type: ignore[method-assign]
    try:
        x86 = build()
        graviton = build(replace(ARGS, settings=EnclaveFleetSettings(instance_type="m7g.large",
                                                                     enclave_cpu_count=1)))
    finally:
        recorder.RecordingMonitor.RegisterResource = register  # type: ignore[method-assign]
    # The AMI AWS's public AL2023 parameter names for the architecture when it is created...
    first = [named(stack, "fleet-image-parameter").inputs["insecureValue"] for stack in (x86, graviton)]
    assert all(value.startswith("ami-") for value in first) and len(set(first)) == 2
    # ...then only the AMI pipeline writes it: Pulumi ignores its value, so neither side undoes
    # the other, and the template never changes when an image is built.
    assert ignored["fleet-image-parameter"] == ["insecureValue"]
    assert "value" not in named(x86, "fleet-image-parameter").inputs  # not a secret: an AMI id


def test_user_data_starts_the_enclave_in_production_mode(fleet: RecordedStack) -> None:
    text = script(fleet)
    assert text.startswith("#!/bin/bash\n") and "set -euo pipefail" in text
    assert "memory_mib: 4096\ncpu_count: 2\n" in text  # the allocator's reserve
    assert ('nitro-cli run-enclave --eif-path "$eif" --cpu-count 2 \\\n    --memory 4096 '
            "--enclave-cid 16\n") in text
    assert "eif=/opt/zero-trust-ai/enclave/digits.eif" in text
    assert debug_flags(text) == [] and "debug" not in text and "console" not in text
    # The EIF is refused at boot unless it measures as pinned.
    assert json.dumps({"PCR0": "a1" * 48, "PCR1": "b2" * 48, "PCR2": "c3" * 48}) in text
    assert text.index("describe-eif") < text.index("run-enclave") < text.index("systemctl enable --now")
    assert ("ZTAI_AGENT_ARGS=--bucket " + named(fleet, "fleet-models").outputs["bucket"]
            + " --key models/digits.enc --key-arn " + ARGS.model_key_arn
            + " --context model=digits --enclave vsock:16:5005 --listen 0.0.0.0:8080 --tls\n") in text
    assert "AWS_REGION=eu-west-1\n" in text
    assert text.endswith("systemctl enable --now ztai-parent-agent.service\n")


def test_signed_eif_measurements_include_pcr8() -> None:
    signed = build(replace(ARGS, measurements=replace(MEASUREMENTS, pcr8="d4" * 48)))
    assert '"PCR8": "' + "d4" * 48 + '"' in script(signed)


# The model key as the boot script receives it, resolved.
MODEL_KEY = "arn:aws:kms:eu-west-1:111122223333:key/model-weights"
BOOT_VARIANTS = {
    "default": ARGS,
    "plaintext listener": replace(ARGS, allow_plaintext_listener=True, certificate_domain_name=None,
                                  certificate_arn=None),
    "signed EIF": replace(ARGS, measurements=replace(MEASUREMENTS, pcr8="d4" * 48)),
    "EIF path that needs quoting": replace(ARGS, eif_path="/opt/zero trust/it's.eif"),
    "larger enclave, several contexts": replace(
        ARGS, settings=EnclaveFleetSettings(instance_type="m6i.4xlarge", enclave_cpu_count=8,
                                            enclave_memory_mib=32768),
        encryption_context={"model": "digits", "tenant": "acme/eu"}, agent_unit="ztai@agent.service"),
}


@pytest.mark.parametrize("variant", BOOT_VARIANTS)
def test_boot_script_passes_shellcheck(variant: str) -> None:
    # Rendered from components/enclave_fleet/boot.sh.tpl exactly as the launch template carries it.
    text = user_data(BOOT_VARIANTS[variant], "zero-trust-ai-dev-models", MODEL_KEY)
    assert "@{" not in text  # every placeholder filled
    assert shellcheck(text) == []


def test_boot_script_quotes_the_eif_path() -> None:
    text = user_data(BOOT_VARIANTS["EIF path that needs quoting"], "bucket", MODEL_KEY)
    assert "eif='/opt/zero trust/it'\"'\"'s.eif'\n" in text


def test_boot_script_is_the_template_with_its_values() -> None:
    # Everything but the placeholders is the template's text, byte for byte.
    template = BOOT_TEMPLATE.read_text(encoding="utf-8")
    literal = re.split(r"@\{[a-z_]+\}", template)
    text = user_data(ARGS, "bucket", MODEL_KEY)
    position = 0
    for piece in literal:
        found = text.find(piece, position)
        assert found >= position, piece
        position = found + len(piece)
    assert text.endswith(literal[-1])


@pytest.mark.parametrize("field_name", ["region", "bucket"])
def test_boot_script_refuses_a_line_break_in_here_document_data(field_name: str) -> None:
    args = replace(ARGS, region="eu-west-1\nEOF") if field_name == "region" else ARGS
    bucket = "bucket\nEOF" if field_name == "bucket" else "bucket"
    with pytest.raises(ValueError, match=r"holds a line break; it would end the boot script's "
                                         r"here-document early"):
        user_data(args, bucket, MODEL_KEY)


# -- group, load balancer, network ---------------------------------------------------------------
def test_group_spans_the_private_subnets_and_refreshes_on_template_change(fleet: RecordedStack) -> None:
    group = named(fleet, "fleet-asg").inputs
    template = named(fleet, "fleet-launch-template")
    assert group["vpcZoneIdentifiers"] == ARGS.subnet_ids
    assert group["launchTemplate"] == {"id": template.id, "version": "1"}  # latest, not $Latest
    # No image is built at deploy (the default): the group starts empty, max as configured.
    assert (group["minSize"], group["desiredCapacity"], group["maxSize"]) == (0, 0, 4)
    assert group["healthCheckType"] == "ELB"
    assert group["targetGroupArns"] == [named(fleet, "fleet-agents").outputs["arn"]]
    # No auto rollback: Auto Scaling refuses it when the template's image is an SSM parameter.
    assert group["instanceRefresh"] == {"strategy": "Rolling", "preferences": {
        "minHealthyPercentage": 100, "maxHealthyPercentage": 200, "instanceWarmup": "300",
        "autoRollback": False}}
    role = named(fleet, "fleet-autoscaling-role")
    assert role.inputs["awsServiceName"] == "autoscaling.amazonaws.com"
    assert group["serviceLinkedRoleArn"] == role.outputs["arn"]
    assert role.outputs["arn"].endswith("/AWSServiceRoleForAutoScaling_ztai-dev-fleet")



def test_without_an_image_built_at_deploy_the_group_is_empty_and_a_warning_says_why(
        monkeypatch: pytest.MonkeyPatch) -> None:
    warnings: list[str] = []
    monkeypatch.setattr(pulumi.log, "warn", lambda message, *_, **__: warnings.append(message))
    group = named(build(), "fleet-asg")
    assert (group.inputs["minSize"], group.inputs["desiredCapacity"], group.inputs["maxSize"]) == (0, 0, 4)
    [warning] = warnings
    assert all(key in warning for key in ("enclaveEifObjectKey", "enclaveEifSha256",
                                          "parentAgentObjectKey", "parentAgentSha256"))
    assert "min = desired = 0" in warning and "Amazon Linux 2023" in warning
    with pytest.raises(ValueError, match="without image_built_at_deploy"):
        def program() -> None:
            EnclaveInferenceFleet("fleet", ARGS).launch_after(aws.ssm.Parameter("p", type="String",
                                                                                value="x"))
        stack = record(program, project="zero-trust-ai", stack="test", config={}, region="eu-west-1")
        raise ValueError(" ".join(stack.errors))


def test_with_an_image_built_at_deploy_the_group_is_sized_and_waits_for_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    warnings: list[str] = []
    monkeypatch.setattr(pulumi.log, "warn", lambda message, *_, **__: warnings.append(message))

    def program() -> None:
        fleet = EnclaveInferenceFleet("fleet", replace(ARGS, image_built_at_deploy=True))
        image = aws.ssm.Parameter("stand-in-image", type="String", value="ami-0",
                                  opts=pulumi.ResourceOptions(depends_on=[fleet.image_parameter]))
        fleet.launch_after(image)

    stack = record(program, project="zero-trust-ai", stack="test", config={}, region="eu-west-1")
    group = named(stack, "fleet-asg")
    assert (group.inputs["minSize"], group.inputs["desiredCapacity"], group.inputs["maxSize"]) == (2, 2, 4)
    assert named(stack, "stand-in-image").urn in group.dependencies
    assert warnings == []

def test_internal_load_balancer_forwards_to_the_agents(fleet: RecordedStack) -> None:
    balancer = named(fleet, "fleet-nlb").inputs
    assert (balancer["internal"], balancer["loadBalancerType"]) == (True, "network")
    assert balancer["subnets"] == ARGS.subnet_ids
    assert balancer["securityGroups"] == [named(fleet, "fleet-nlb-sg").id]
    # TLS from the API gateway to the load balancer and from the load balancer to the agents.
    target = named(fleet, "fleet-agents").inputs
    assert (target["protocol"], target["port"], target["targetType"]) == ("TLS", 8080, "instance")
    assert target["healthCheck"]["path"] == "/health" and target["healthCheck"]["protocol"] == "HTTPS"
    listener = named(fleet, "fleet-listener").inputs
    assert (listener["protocol"], listener["port"], listener["sslPolicy"], listener["certificateArn"]) == (
        "TLS", 443, "ELBSecurityPolicy-TLS13-1-2-2021-06", ARGS.certificate_arn)
    assert inference_path_tls_bound([as_rule_input(r) for r in fleet.resources], {}) == []


def test_the_listener_certificate_can_be_requested_in_the_zone() -> None:
    stack = build(replace(ARGS, certificate_arn=None, hosted_zone_id="Z0123456789ABCDEFGHIJ"))
    certificate = named(stack, "fleet-listener-certificate").inputs
    assert (certificate["domainName"], certificate["validationMethod"]) == (
        "inference.api.dev.example.com", "DNS")
    assert named(stack, "fleet-listener-certificate-validation").inputs["zoneId"] == "Z0123456789ABCDEFGHIJ"
    issued = named(stack, "fleet-listener-certificate-issued")
    assert named(stack, "fleet-listener").inputs["certificateArn"] == issued.outputs["certificateArn"]


def test_a_plaintext_listener_must_be_named() -> None:
    plain = build(replace(ARGS, certificate_domain_name=None, certificate_arn=None,
                          allow_plaintext_listener=True))
    listener = named(plain, "fleet-listener").inputs
    assert (listener["protocol"], listener["port"]) == ("TCP", 8080)
    assert "certificateArn" not in listener and "sslPolicy" not in listener
    assert named(plain, "fleet-agents").inputs["protocol"] == "TCP"
    assert "--listen 0.0.0.0:8080\n" in script(plain) and "--tls" not in script(plain)
    # Named or not, the pack refuses a plain-text path to the enclave (not suppressible).
    findings = inference_path_tls_bound([as_rule_input(r) for r in plain.resources], {})
    assert {(finding.urn, "uses protocol TCP" in finding.message) for finding in findings} == {
        (named(plain, "fleet-listener").urn, True), (named(plain, "fleet-agents").urn, True)}


@pytest.mark.parametrize(("change", "problem"), [
    ({"certificate_domain_name": None}, "the TLS listener's certificate name is required"),
    ({"certificate_domain_name": "Inference.Example.com"}, "a lower-case DNS name"),
    ({"certificate_arn": None}, "exactly one of hosted_zone_id"),
    ({"hosted_zone_id": "Z0123456789ABCDEFGHIJ"}, "exactly one of hosted_zone_id"),
    ({"certificate_arn": None, "hosted_zone_id": "zone"}, "a Route 53 zone id"),
    ({"allow_plaintext_listener": True}, "certificate_domain_name: not with allow_plaintext_listener"),
])
def test_a_listener_without_tls_or_with_two_certificates_is_refused(change: dict[str, Any],
                                                                   problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        build(replace(ARGS, **change))


def test_security_groups_admit_only_the_load_balancer_path(fleet: RecordedStack) -> None:
    lb_group, instance_group = named(fleet, "fleet-nlb-sg"), named(fleet, "fleet-instance-sg")
    assert "ingress" not in lb_group.inputs and "egress" not in instance_group.inputs
    ingress = of_type(fleet, "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    egress = of_type(fleet, "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule")
    rules = {r.name: r.inputs for r in ingress + egress}
    assert rules["fleet-nlb-in-0"] | {"tags": None} == {
        "securityGroupId": lb_group.id, "ipProtocol": "tcp", "fromPort": 443, "toPort": 443,
        "cidrIpv4": "10.12.0.0/16", "description": "clients of the inference API", "tags": None}
    assert rules["fleet-nlb-out"]["referencedSecurityGroupId"] == instance_group.id
    assert rules["fleet-instance-in"]["referencedSecurityGroupId"] == lb_group.id
    assert (rules["fleet-instance-in"]["fromPort"], rules["fleet-instance-in"]["toPort"]) == (8080, 8080)
    assert rules["fleet-instance-out-vpc"]["cidrIpv4"] == "10.12.0.0/16"
    assert rules["fleet-instance-out-s3"]["prefixListId"].startswith("pl-")
    assert {(r["fromPort"], r["toPort"]) for name, r in rules.items()
            if name.startswith("fleet-instance-out")} == {(443, 443)}
    assert set(rules) == {"fleet-nlb-in-0", "fleet-nlb-out", "fleet-instance-in",
                          "fleet-instance-out-vpc", "fleet-instance-out-s3"}
    for resource in ingress:
        assert no_unrestricted_ingress(as_rule_input(resource), {}) == []
    clients = build(replace(ARGS, client_cidrs=("10.13.0.0/16", "10.14.0.0/24")))
    # Resources register concurrently under the mock monitor, so compare by name, not by order.
    assert {r.name: r.inputs["cidrIpv4"] for r in of_type(
        clients, "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
        if r.name.startswith("fleet-nlb-in")} == {"fleet-nlb-in-0": "10.13.0.0/16",
                                                   "fleet-nlb-in-1": "10.14.0.0/24"}


def test_only_an_admitted_security_group_reaches_the_listener() -> None:
    def program() -> None:
        fleet = EnclaveInferenceFleet("fleet", replace(ARGS, clients_by_security_group_only=True))
        fleet.admit_clients_from("sg-0vpclink", "api-gateway")

    stack = record(program, project="zero-trust-ai", stack="test", config={}, region=ARGS.region)
    ingress = {r.name: r.inputs for r in of_type(
        stack, "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
        if r.name.startswith("fleet-nlb-in")}
    # No CIDR, not even the VPC's: the gateway's VPC link only, on the listener port.
    assert list(ingress) == ["fleet-nlb-in-api-gateway"]
    rule = ingress["fleet-nlb-in-api-gateway"]
    assert (rule["referencedSecurityGroupId"], rule["fromPort"], rule["toPort"]) == (
        "sg-0vpclink", 443, 443)
    assert "cidrIpv4" not in rule


# -- identity and bucket -------------------------------------------------------------------------
def test_instance_role_reads_model_objects_and_runs_the_ssm_agent_only(fleet: RecordedStack) -> None:
    role = named(fleet, "fleet-instance-role").inputs
    assert json.loads(role["assumeRolePolicy"])["Statement"] == [{
        "Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]
    policy = json.loads(named(fleet, "fleet-instance-policy").inputs["policy"])
    bucket = named(fleet, "fleet-models").outputs["bucket"]
    statements = {s["Sid"]: s for s in policy["Statement"]}
    assert statements["ReadEncryptedModelObjects"]["Action"] == "s3:GetObject"
    assert statements["ReadEncryptedModelObjects"]["Resource"] == f"arn:aws:s3:::{bucket}/models/*"
    assert statements["RegisterWithSsm"]["Resource"] == "arn:aws:ec2:eu-west-1:111122223333:instance/*"
    assert statements["SsmSessionsAndCommands"]["Action"] == list(SSM_AGENT_ACTIONS)
    actions = [a for s in policy["Statement"] for a in ([s["Action"]] if isinstance(s["Action"], str)
                                                         else s["Action"])]
    assert all(s["Effect"] == "Allow" for s in policy["Statement"])
    assert not any(a.startswith("kms:") or "*" in a for a in actions)  # KMS is the key policy's
    assert not of_type(fleet, "aws:iam/rolePolicyAttachment:RolePolicyAttachment")  # no managed policy


def test_model_bucket_is_private_versioned_cmk_encrypted_and_tls_only(fleet: RecordedStack) -> None:
    bucket = named(fleet, "fleet-models")
    assert named(fleet, "fleet-models-public-access").inputs | {"bucket": None} == {
        "bucket": None, "blockPublicAcls": True, "blockPublicPolicy": True, "ignorePublicAcls": True,
        "restrictPublicBuckets": True}
    assert named(fleet, "fleet-models-versioning").inputs["versioningConfiguration"]["status"] == "Enabled"
    assert named(fleet, "fleet-models-ownership").inputs["rule"] == {"objectOwnership": "BucketOwnerEnforced"}
    [rule] = named(fleet, "fleet-models-encryption").inputs["rules"]
    assert rule == {"applyServerSideEncryptionByDefault": {
        "sseAlgorithm": "aws:kms", "kmsMasterKeyId": ARGS.storage_key_arn}, "bucketKeyEnabled": True}
    document = json.loads(named(fleet, "fleet-models-policy").inputs["policy"])
    policy = {s["Sid"]: s for s in document["Statement"]}
    assert all(s["Effect"] == "Deny" for s in policy.values())
    assert policy["DenyInsecureTransport"]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    arn = bucket.outputs["arn"]
    assert policy["DenyInsecureTransport"]["Resource"] == [arn, f"{arn}/*"]
    assert policy["DenyOtherKey"]["Condition"] == {"StringNotEqualsIfExists": {
        "s3:x-amz-server-side-encryption-aws-kms-key-id": ARGS.storage_key_arn}}


def test_load_balancer_and_model_bucket_access_logs_go_to_an_sse_s3_log_bucket(
        fleet: RecordedStack) -> None:
    logs = named(fleet, "fleet-access-logs")
    assert named(fleet, "fleet-access-logs-encryption").inputs["rules"][0][
        "applyServerSideEncryptionByDefault"] == {"sseAlgorithm": "AES256"}  # what both services accept
    assert named(fleet, "fleet-access-logs-public-access").inputs["restrictPublicBuckets"] is True
    nlb = named(fleet, "fleet-nlb")
    assert nlb.inputs["accessLogs"] == {"bucket": logs.outputs["bucket"], "prefix": "elb", "enabled": True}
    assert named(fleet, "fleet-access-logs-policy").urn in nlb.dependencies
    models = named(fleet, "fleet-models")
    logging = named(fleet, "fleet-models-logging").inputs
    assert (logging["bucket"], logging["targetBucket"]) == (models.id, logs.id)
    assert logging["targetPrefix"] == f"s3/{models.outputs['bucket']}/"
    statements = {s["Sid"]: s for s in json.loads(
        named(fleet, "fleet-access-logs-policy").inputs["policy"])["Statement"]}
    account = statements["ElbLogDeliveryWrite"]["Condition"]["StringEquals"]["aws:SourceAccount"]
    assert statements["ElbLogDeliveryWrite"]["Resource"] == f"{logs.outputs['arn']}/elb/AWSLogs/{account}/*"
    assert statements["ElbLogDeliveryWrite"]["Condition"]["ArnLike"] == {
        "aws:SourceArn": f"arn:aws:logs:eu-west-1:{account}:*"}
    server = statements["S3ServerAccessLogDelivery"]
    assert server["Principal"] == {"Service": "logging.s3.amazonaws.com"}
    assert server["Condition"]["ArnLike"] == {"aws:SourceArn": [models.outputs["arn"]]}
    assert statements["DenyInsecureTransport"]["Effect"] == "Deny"


def test_a_given_bucket_is_used_and_none_is_built() -> None:
    stack = build(replace(ARGS, model_bucket_name="weights-registry", model_prefix="digits/",
                          model_object_key="digits/7.enc"))
    # No model bucket: only the access-log bucket, which admits no server access logs then.
    assert [b.name for b in of_type(stack, "aws:s3/bucket:Bucket")] == ["fleet-access-logs"]
    assert not of_type(stack, "aws:s3/bucketLogging:BucketLogging")
    log_policy = json.loads(named(stack, "fleet-access-logs-policy").inputs["policy"])
    assert "S3ServerAccessLogDelivery" not in {s["Sid"] for s in log_policy["Statement"]}
    policy = json.loads(named(stack, "fleet-instance-policy").inputs["policy"])
    assert policy["Statement"][0]["Resource"] == "arn:aws:s3:::weights-registry/digits/*"
    assert "--bucket weights-registry --key digits/7.enc " in script(stack)


# -- validation ----------------------------------------------------------------------------------
@pytest.mark.parametrize("changes, message", [
    ({"settings": EnclaveFleetSettings(instance_type="t3.xlarge")}, "t3 instances cannot be Nitro"),
    ({"settings": EnclaveFleetSettings(enclave_memory_mib=1024)}, "at least 2048 MiB"),
    ({"eif_path": "/opt/x.eif --debug-mode"}, "eif_path"),
    ({"encryption_context": {"model": "digits --debug-mode"}}, "encryption_context"),
    ({"agent_unit": "agent; reboot"}, "agent_unit"),
    ({"model_object_key": "elsewhere/digits.enc"}, "under model_prefix"),
    ({"client_cidrs": ("0.0.0.0/0",)}, "client_cidrs '0.0.0.0/0'"),
    ({"subnet_ids": []}, "subnet_ids"),
    ({"artifact_prefix": "models/artifacts/"}, "overlaps model_prefix"),
    ({"artifact_prefix": "artifacts"}, "artifact_prefix 'artifacts'"),
    ({"image_parameter_name": "/aws/service/ami"}, "not under /aws"),
    ({"image_parameter_name": "no-leading-slash"}, "image_parameter_name"),
])
def test_bad_arguments_are_refused_before_anything_is_declared(changes: dict[str, Any],
                                                               message: str) -> None:
    with pytest.raises(ValueError, match="EnclaveInferenceFleet: .*" + message):
        build(replace(ARGS, **changes))


def test_sizing_rules() -> None:
    assert sizing_problems(EnclaveFleetSettings()) == []
    assert sizing_problems(EnclaveFleetSettings(instance_type="c5.9xlarge", enclave_cpu_count=34,
                                                enclave_memory_mib=65536)) == []
    assert [f for f, _ in sizing_problems(EnclaveFleetSettings(
        instance_type="m7a.xlarge", enclave_cpu_count=3))] == []  # no SMT: any count up to 3
    assert [f for f, _ in sizing_problems(EnclaveFleetSettings(
        min_size=3, desired_capacity=2, max_size=4))] == ["capacity"]


# -- wired to the key hierarchy ------------------------------------------------------------------
def _policy(stack: RecordedStack, name: str) -> str:
    policy = named(stack, name).inputs["policy"]
    assert isinstance(policy, str)
    return policy


def test_model_key_policy_passes_the_pack(wired: RecordedStack) -> None:
    resources = [as_rule_input(r) for r in wired.resources if r.custom]
    assert model_key_attestation_required(resources, {}) == []
    for resource in resources:
        if resource.type == "aws:kms/keyPolicy:KeyPolicy":
            assert kms_key_policy_least_privilege(resource, {}) == [], resource.name


def test_inference_key_lets_the_fleets_autoscaling_role_launch_encrypted_volumes(
        wired: RecordedStack) -> None:
    statements = {s["Sid"]: s for s in json.loads(_policy(wired, "keys-inference-policy"))["Statement"]}
    role_arn = named(wired, "fleet-autoscaling-role").outputs["arn"]
    via_ec2 = {"kms:ViaService": "ec2.eu-west-1.amazonaws.com", "kms:CallerAccount": ACCOUNT}
    use = next(s for sid, s in statements.items() if sid.startswith("ThroughEc2"))
    assert use["Principal"] == {"AWS": role_arn} and use["Condition"] == {"StringEquals": via_ec2}
    grant = next(s for sid, s in statements.items() if sid.startswith("GrantThroughEc2"))
    assert grant["Condition"]["Bool"] == {"kms:GrantIsForAWSResource": "true"}
    read = next(s for sid, s in statements.items() if sid.startswith("DecryptThroughS3"))
    assert read["Action"] == ["kms:Decrypt"]
    assert read["Principal"] == {"AWS": named(wired, "fleet-instance-role").outputs["arn"]}


def _decide(policy: str, principal: str, action: str, pcrs: dict[str, str] | None) -> str:
    context = {"kms:CallerAccount": ACCOUNT}
    if pcrs is not None:
        context |= {f"kms:RecipientAttestation:{name}": value for name, value in pcrs.items()}
    return evaluate(policy, Request(principal, action, "arn:aws:kms:eu-west-1:111122223333:key/k",
                                    context)).effect


def test_only_an_attested_enclave_gets_plaintext(wired: RecordedStack) -> None:
    policy = _policy(wired, "keys-model-weights-policy")
    role = named(wired, "fleet-instance-role").outputs["arn"]
    good = {"PCR0": "A1" * 48, "PCR1": "b2" * 48, "PCR2": "c3" * 48}  # case does not matter
    decide: Callable[..., str] = lambda *a: _decide(policy, *a)  # noqa: E731
    assert decide(role, "kms:Decrypt", good) == "allow"
    assert decide(role, "kms:Decrypt", None) == "explicit-deny"  # the parent itself
    # Another enclave, or a debug-mode one: denied to everyone by the per-PCR denies.
    assert decide(role, "kms:Decrypt", good | {"PCR0": "ee" * 48}) == "explicit-deny"
    assert decide(role, "kms:Decrypt", {k: "0" * 96 for k in good}) == "explicit-deny"  # debug mode
    for action in ("kms:GenerateDataKey", "kms:ReEncryptFrom", "kms:ReEncryptTo",
                   "kms:GenerateDataKeyWithoutPlaintext"):
        assert decide(role, action, None) == "explicit-deny", action
    # The account (key administrators through IAM) never gets plaintext outside an enclave.
    assert decide(f"arn:aws:iam::{ACCOUNT}:role/admin", "kms:Decrypt", None) == "explicit-deny"
    assert decide(f"arn:aws:iam::{ACCOUNT}:role/admin", "kms:ReEncryptFrom", None) == "explicit-deny"
    # ...nor inside one: the attested statement names the instance role only.
    assert decide(f"arn:aws:iam::{ACCOUNT}:role/admin", "kms:Decrypt", good) == "implicit-deny"


def test_replicas_carry_the_attestation_statements() -> None:
    stack = build_with_keys(replica_regions=("eu-central-1",))
    primary = json.loads(_policy(stack, "keys-model-weights-policy"))["Statement"]
    replica = json.loads(_policy(stack, "keys-model-weights-eu-central-1-policy"))["Statement"]
    assert replica == primary  # nothing region-specific in these statements
    resources = [as_rule_input(r) for r in stack.resources if r.custom]
    assert model_key_attestation_required(resources, {}) == []


# -- grants on the image parameter and the artifacts ---------------------------------------------
def test_the_pipeline_may_write_the_parameter_and_read_the_artifacts_only() -> None:
    def program() -> None:
        fleet = EnclaveInferenceFleet("fleet", ARGS)
        publisher = aws.iam.Role("publisher", assume_role_policy="{}")
        builder = aws.iam.Role("builder", assume_role_policy="{}")
        fleet.grant_image_publishing(publisher)
        fleet.grant_artifact_read(builder)

    stack = record(program, project="zero-trust-ai", stack="test", config={}, region="eu-west-1")
    publish = named(stack, "fleet-publish-image")
    assert publish.inputs["role"] == named(stack, "publisher").id
    assert json.loads(publish.inputs["policy"])["Statement"] == [{
        "Sid": "PublishTheFleetsImage", "Effect": "Allow", "Action": "ssm:PutParameter",
        "Resource": "arn:aws:ssm:eu-west-1:111122223333:parameter/zero-trust-ai/dev/enclave-parent/ami-id"}]
    assert named(stack, "fleet-image-parameter").outputs["arn"] == json.loads(
        publish.inputs["policy"])["Statement"][0]["Resource"]
    read = named(stack, "fleet-read-artifacts")
    bucket = named(stack, "fleet-models").outputs["bucket"]
    assert read.inputs["role"] == named(stack, "builder").id
    assert json.loads(read.inputs["policy"])["Statement"] == [{
        "Sid": "ReadEnclaveArtifacts", "Effect": "Allow", "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{bucket}/artifacts/*"}]
    # The instances still read models/ only.
    instance = json.loads(named(stack, "fleet-instance-policy").inputs["policy"])["Statement"]
    assert [s["Resource"] for s in instance if s["Action"] == "s3:GetObject"] == [
        f"arn:aws:s3:::{bucket}/models/*"]


# -- image rollout -------------------------------------------------------------------------------
GROUP_ARN = ("arn:aws:autoscaling:eu-west-1:111122223333:autoScalingGroup:0f1e2d3c-0000-4000-8000-"
             "000000000000:autoScalingGroupName/fleet-asg-1a2b3c4")
IMAGE_PREFIX = "arn:aws:imagebuilder:eu-west-1:111122223333:image/zero-trust-ai-dev-enclave-parent/"
LOGS_KEY = "arn:aws:kms:eu-west-1:111122223333:key/logs"
AMI_PARAMETER = "/zero-trust-ai/dev/enclave-parent/ami-id"
AMI_PARAMETER_ARN = f"arn:aws:ssm:eu-west-1:111122223333:parameter{AMI_PARAMETER}"
RECIPE_ARN = ("arn:aws:imagebuilder:eu-west-1:111122223333:image-recipe/"
              "zero-trust-ai-dev-enclave-parent/1.0.12345")
AMI_KEY_ARN = "arn:aws:kms:eu-west-1:111122223333:key/inference"
PIPELINE_ARN = "arn:aws:imagebuilder:eu-west-1:111122223333:image-pipeline/zero-trust-ai-dev-enclave-parent"
INFRASTRUCTURE_ARN = ("arn:aws:imagebuilder:eu-west-1:111122223333:infrastructure-configuration/"
                      "zero-trust-ai-dev-enclave-parent")
DISTRIBUTION_ARN = ("arn:aws:imagebuilder:eu-west-1:111122223333:distribution-configuration/"
                    "zero-trust-ai-dev-enclave-parent")
EXECUTION_ROLE_ARN = "arn:aws:iam::111122223333:role/zero-trust-ai-dev-enclave-parent-imagebuilder-execution"
WORKFLOW_ARNS = ("arn:aws:imagebuilder:eu-west-1:aws:workflow/build/build-image/x.x.x",
                 "arn:aws:imagebuilder:eu-west-1:aws:workflow/test/test-image/x.x.x")
ROLLOUT = ImageRolloutArgs(environment="dev", owner="ml-platform", region="eu-west-1",
                           group_name="fleet-asg-1a2b3c4", group_arn=GROUP_ARN,
                           image_arn_prefix=IMAGE_PREFIX, logs_key_arn=LOGS_KEY,
                           ami_parameter_name=AMI_PARAMETER, ami_parameter_arn=AMI_PARAMETER_ARN,
                           recipe_arn=RECIPE_ARN, ami_key_arn=AMI_KEY_ARN,
                           pipeline_arn=PIPELINE_ARN, infrastructure_configuration_arn=INFRASTRUCTURE_ARN,
                           distribution_configuration_arn=DISTRIBUTION_ARN,
                           build_subnet_id="subnet-0a1b2c3d4e5f60001",
                           build_security_group_ids=["sg-0a1b2c3d4e5f60002", "sg-0a1b2c3d4e5f60003"],
                           execution_role_arn=EXECUTION_ROLE_ARN, workflow_arns=WORKFLOW_ARNS,
                           alarm_actions=ALARMS)


def build_rollout(args: ImageRolloutArgs = ROLLOUT) -> RecordedStack:
    def program() -> None:
        ImageRollout("rollout", args)

    return record(program, project="zero-trust-ai", stack="test", config={}, region=args.region)


@pytest.fixture(scope="module")
def rollout() -> RecordedStack:
    return build_rollout()


def test_rollout_is_a_typed_component_parenting_what_it_declares(rollout: RecordedStack) -> None:
    component = named(rollout, "rollout")
    assert component.type == "zero-trust-ai:inference:ImageRollout" and not component.custom
    assert all(r.name.startswith("rollout") for r in rollout.resources[1:])
    assert {r.name for r in rollout.resources if r.parent == component.urn} >= {
        "rollout-logs", "rollout-role", "rollout-function", "rollout-image-available"}
    assert not rollout.errors


def test_the_rule_matches_available_images_of_the_pipeline_only(rollout: RecordedStack) -> None:
    rule = named(rollout, "rollout-image-available").inputs
    assert json.loads(rule["eventPattern"]) == {
        "source": ["aws.imagebuilder"], "detail-type": ["EC2 Image Builder Image State Change"],
        "resources": [{"prefix": IMAGE_PREFIX}], "detail": {"state": {"status": ["AVAILABLE"]}}}
    assert rule["state"] == "ENABLED" and "eventBusName" not in rule  # the default bus: AWS events
    target = named(rollout, "rollout-target").inputs
    function = named(rollout, "rollout-function")
    assert (target["rule"], target["arn"]) == (named(rollout, "rollout-image-available").outputs["name"],
                                              function.outputs["arn"])
    permission = named(rollout, "rollout-invoke").inputs
    assert permission == permission | {
        "action": "lambda:InvokeFunction", "principal": "events.amazonaws.com",
        "sourceArn": named(rollout, "rollout-image-available").outputs["arn"]}
    assert named(rollout, "rollout-invoke").urn in named(rollout, "rollout-target").dependencies


def test_a_rollout_that_fails_every_retry_leaves_its_record_in_an_encrypted_queue(
        rollout: RecordedStack) -> None:
    queue = named(rollout, "rollout-failures")
    assert queue.inputs["kmsMasterKeyId"] == ROLLOUT.logs_key_arn
    asynchronous = named(rollout, "rollout-async")
    assert asynchronous.inputs["destinationConfig"] == {
        "onFailure": {"destination": queue.outputs["arn"]}}
    assert named(rollout, "rollout-role-failures").urn in asynchronous.dependencies


def test_the_function_refreshes_with_the_fleets_preferences(rollout: RecordedStack) -> None:
    function = named(rollout, "rollout-function")
    inputs = function.inputs
    assert (inputs["handler"], inputs["runtime"]) == (ROLLOUT_HANDLER, "python3.13")
    assert inputs["reservedConcurrentExecutions"] == 1 and "vpcConfig" not in inputs
    assert inputs["environment"]["variables"] == {
        "ZTAI_AUTO_SCALING_GROUP": "fleet-asg-1a2b3c4", "ZTAI_IMAGE_ARN_PREFIX": IMAGE_PREFIX,
        "ZTAI_AMI_ID_PARAMETER": AMI_PARAMETER,
        "ZTAI_IMAGE_RECIPE_ARN": RECIPE_ARN, "ZTAI_AMI_KEY_ARN": AMI_KEY_ARN,
        "ZTAI_MIN_HEALTHY_PERCENTAGE": "100", "ZTAI_MAX_HEALTHY_PERCENTAGE": "200",
        "ZTAI_INSTANCE_WARMUP_SECONDS": "300",
        "ZTAI_IMAGE_PIPELINE_ARN": PIPELINE_ARN,
        "ZTAI_INFRASTRUCTURE_CONFIGURATION_ARN": INFRASTRUCTURE_ARN,
        "ZTAI_DISTRIBUTION_CONFIGURATION_ARN": DISTRIBUTION_ARN,
        "ZTAI_BUILD_SUBNET_ID": "subnet-0a1b2c3d4e5f60001",
        "ZTAI_BUILD_SECURITY_GROUP_IDS": "sg-0a1b2c3d4e5f60002,sg-0a1b2c3d4e5f60003",
        "ZTAI_IMAGE_EXECUTION_ROLE_ARN": EXECUTION_ROLE_ARN,
        "ZTAI_IMAGE_WORKFLOW_ARNS": ",".join(WORKFLOW_ARNS)}
    # The function reads exactly what the component writes (settings_from_environment validates).
    settings = settings_from_environment(inputs["environment"]["variables"])
    assert settings.pipeline_arn == PIPELINE_ARN and settings.workflow_arns == WORKFLOW_ARNS
    assert settings.build_security_group_ids == ("sg-0a1b2c3d4e5f60002", "sg-0a1b2c3d4e5f60003")
    log_group = named(rollout, "rollout-logs")
    assert inputs["loggingConfig"]["logGroup"] == log_group.outputs["name"]
    assert log_group.inputs["name"] == "/aws/lambda/zero-trust-ai-dev-inference-image-rollout"
    assert log_group.inputs["kmsKeyId"] == LOGS_KEY and log_group.inputs["retentionInDays"] == 365
    assert log_group_encrypted(as_rule_input(log_group), {}) == []
    assert {log_group.urn, named(rollout, "rollout-role-policy").urn} <= set(function.dependencies)
    retries = named(rollout, "rollout-async").inputs
    assert retries["maximumRetryAttempts"] == 2


def test_the_role_may_refresh_this_group_only(rollout: RecordedStack) -> None:
    [trust] = json.loads(named(rollout, "rollout-role").inputs["assumeRolePolicy"])["Statement"]
    assert trust["Principal"] == {"Service": "lambda.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}
    statements = {s["Sid"]: s for s in json.loads(
        named(rollout, "rollout-role-policy").inputs["policy"])["Statement"]}
    assert statements["RefreshThisGroup"] == {
        "Sid": "RefreshThisGroup", "Effect": "Allow", "Action": "autoscaling:StartInstanceRefresh",
        "Resource": GROUP_ARN}
    # Auto Scaling's Describe actions take no resource.
    assert statements["SeeRefreshes"]["Action"] == "autoscaling:DescribeInstanceRefreshes"
    log_group = named(rollout, "rollout-logs").outputs["arn"]
    assert statements["WriteOwnLogGroup"]["Resource"] == [log_group, f"{log_group}:log-stream:*"]
    # The AMI checks: that parameter (read, history, restore), the pipeline's images, the AMIs'
    # descriptions (EC2 Describe takes no resource), nothing else.
    assert statements["ReadAmiIdParameter"] == {
        "Sid": "ReadAmiIdParameter", "Effect": "Allow",
        "Action": ["ssm:GetParameter", "ssm:GetParameterHistory"], "Resource": AMI_PARAMETER_ARN}
    assert statements["RestoreAmiIdParameter"] == {
        "Sid": "RestoreAmiIdParameter", "Effect": "Allow", "Action": "ssm:PutParameter",
        "Resource": AMI_PARAMETER_ARN}
    assert statements["ReadPipelineImages"] == {
        "Sid": "ReadPipelineImages", "Effect": "Allow", "Action": "imagebuilder:GetImage",
        "Resource": f"{IMAGE_PREFIX}*"}
    assert statements["DescribeAmis"]["Action"] == ["ec2:DescribeImages", "ec2:DescribeSnapshots"]
    assert set(statements) == {"RefreshThisGroup", "SeeRefreshes", "WriteOwnLogGroup",
                               "ReadAmiIdParameter", "RestoreAmiIdParameter", "ReadPipelineImages",
                               "DescribeAmis"}
    assert not any(s["Action"] == "*" or "Cancel" in str(s["Action"]) for s in statements.values())


def test_a_failed_rollout_raises_an_alarm(rollout: RecordedStack) -> None:
    errors = named(rollout, "rollout-errors-alarm").inputs
    assert (errors["namespace"], errors["metricName"]) == ("AWS/Lambda", "Errors")
    assert errors["dimensions"] == {"FunctionName": named(rollout, "rollout-function").outputs["name"]}
    failed = named(rollout, "rollout-failed-invocations-alarm").inputs
    assert (failed["namespace"], failed["metricName"]) == ("AWS/Events", "FailedInvocations")
    assert failed["dimensions"] == {"RuleName": named(rollout, "rollout-image-available").outputs["name"]}


def test_every_change_of_the_image_parameter_runs_the_watch(rollout: RecordedStack) -> None:
    # The launch template resolves the parameter at every launch, not only during a rollout.
    rule = named(rollout, "rollout-parameter-changed")
    assert json.loads(rule.inputs["eventPattern"]) == {
        "source": ["aws.ssm"], "detail-type": ["Parameter Store Change"],
        "resources": [AMI_PARAMETER_ARN]}
    target = named(rollout, "rollout-parameter-target")
    assert (target.inputs["rule"], target.inputs["arn"]) == (
        rule.outputs["name"], named(rollout, "rollout-function").outputs["arn"])
    permission = named(rollout, "rollout-invoke-on-parameter")
    assert permission.inputs["sourceArn"] == rule.outputs["arn"]
    assert permission.urn in target.dependencies
    failed = named(rollout, "rollout-parameter-failed-invocations-alarm").inputs
    assert failed["dimensions"] == {"RuleName": rule.outputs["name"]}


def test_an_untrusted_image_raises_its_own_alarm(rollout: RecordedStack) -> None:
    metric_filter = named(rollout, "rollout-untrusted-image").inputs
    assert metric_filter["logGroupName"] == named(rollout, "rollout-logs").outputs["name"]
    # The filter counts exactly the decisions the runtime calls untrusted.
    assert set(UNTRUSTED_IMAGE_ACTIONS) == set(UNTRUSTED_ACTIONS)
    for action in UNTRUSTED_ACTIONS:
        assert f'($.action = "{action}")' in metric_filter["pattern"]
    transformation = metric_filter["metricTransformation"]
    alarm = named(rollout, "rollout-untrusted-image-alarm").inputs
    assert (alarm["namespace"], alarm["metricName"]) == (transformation["namespace"],
                                                        transformation["name"])
    assert alarm["threshold"] == 1 and alarm["period"] == 60


@pytest.mark.parametrize("changes, message", [
    ({"max_healthy_percentage": 250}, "max_healthy_percentage 250"),
    ({"min_healthy_percentage": 50, "max_healthy_percentage": 200}, "at most 100"),
    ({"log_retention_days": 42}, "log_retention_days 42"),
])
def test_bad_rollout_arguments_are_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match="ImageRollout: .*" + message):
        build_rollout(replace(ROLLOUT, **changes))


def test_the_shipped_modules_are_all_the_rollout_function_needs(tmp_path: Path) -> None:
    package = tmp_path / "ztai_runtime"
    package.mkdir()
    for module in ROLLOUT_MODULES:
        shutil.copy(RUNTIME_DIR / module, package / module)
    probe = subprocess.run(
        [sys.executable, "-c", "import ztai_runtime.instance_refresh as r, sys; "
         "assert r.__file__.startswith(sys.argv[1]); "
         "assert not [m for m in sys.modules if m.startswith(('pulumi', 'cryptography'))]",
         str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, check=False)
    assert probe.returncode == 0, probe.stderr


# -- the stack: one writer for the image, and a new image reaches the instances -------------------
ARTIFACT_CONFIG = {
    "zero-trust-ai:enclaveEifObjectKey": "artifacts/digits-0123456789abcdef.eif",
    "zero-trust-ai:enclaveEifSha256": "01" * 32,
    "zero-trust-ai:parentAgentObjectKey": "artifacts/parent-agent-fedcba9876543210.tar.gz",
    "zero-trust-ai:parentAgentSha256": "fe" * 32,
}


def record_main(extra: dict[str, str]) -> RecordedStack:
    stack_file = load_stack(ROOT, "dev")

    def program() -> None:
        runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__")

    return record(program, project=stack_file.project, stack="dev", config=stack_file.config | extra,
                  region=stack_file.region or "eu-west-1")


@pytest.fixture(scope="module")
def main_with_artifacts() -> RecordedStack:
    return record_main(ARTIFACT_CONFIG)


def test_the_pipeline_writes_the_parameter_the_template_resolves_and_never_the_template(
        main_with_artifacts: RecordedStack) -> None:
    stack = main_with_artifacts
    parameter = named(stack, "inference-fleet-image-parameter").inputs["name"]
    assert named(stack, "inference-fleet-launch-template").inputs["imageId"] == f"resolve:ssm:{parameter}"
    [distribution] = named(stack, "ami-pipeline-distribution").inputs["distributions"]
    assert distribution["ssmParameterConfigurations"] == [
        {"parameterName": parameter, "dataType": "aws:ec2:image"}]
    assert "launchTemplateConfigurations" not in distribution
    publish = named(stack, "inference-fleet-publish-image").inputs
    assert publish["role"] == named(stack, "ami-pipeline-execution-role").id
    # The rule watches this pipeline's images and refreshes this fleet's group.
    pattern = json.loads(named(stack, "inference-image-rollout-image-available").inputs["eventPattern"])
    recipe = named(stack, "ami-pipeline-recipe").inputs["name"]
    assert pattern["resources"] == [{"prefix": f"arn:aws:imagebuilder:eu-west-1:{ACCOUNT}:image/{recipe}/"}]
    variables = named(stack, "inference-image-rollout-function").inputs["environment"]["variables"]
    assert variables["ZTAI_AUTO_SCALING_GROUP"] == named(stack, "inference-fleet-asg").outputs["name"]
    # The function checks every image record against the pipeline the stack declares.
    pipeline = named(stack, "ami-pipeline-pipeline")
    infrastructure = named(stack, "ami-pipeline-infrastructure")
    assert variables["ZTAI_IMAGE_PIPELINE_ARN"] == pipeline.outputs["arn"]
    assert variables["ZTAI_INFRASTRUCTURE_CONFIGURATION_ARN"] == infrastructure.outputs["arn"]
    assert variables["ZTAI_DISTRIBUTION_CONFIGURATION_ARN"] == pipeline.inputs[
        "distributionConfigurationArn"] == named(stack, "ami-pipeline-distribution").outputs["arn"]
    assert variables["ZTAI_BUILD_SUBNET_ID"] == infrastructure.inputs["subnetId"]
    assert variables["ZTAI_BUILD_SECURITY_GROUP_IDS"] == ",".join(infrastructure.inputs["securityGroupIds"])
    assert variables["ZTAI_IMAGE_EXECUTION_ROLE_ARN"] == pipeline.inputs["executionRole"] == named(
        stack, "ami-pipeline-execution-role").outputs["arn"]
    assert variables["ZTAI_IMAGE_WORKFLOW_ARNS"].split(",") == [
        workflow["workflowArn"] for workflow in pipeline.inputs["workflows"]]
    recipe_arn = named(stack, "ami-pipeline-recipe").outputs["arn"]
    assert settings_from_environment(variables).recipe_arn == recipe_arn
    # First boot: one image is built at deploy from the pipeline's recipe, infrastructure and
    # distribution (which writes the parameter), and the group launches only after it.
    image = named(stack, "ami-pipeline-image")
    for key, source in (("imageRecipeArn", "ami-pipeline-recipe"),
                        ("infrastructureConfigurationArn", "ami-pipeline-infrastructure"),
                        ("distributionConfigurationArn", "ami-pipeline-distribution")):
        assert image.inputs[key] == named(stack, source).outputs["arn"]
    assert image.outputs["arn"].startswith(pattern["resources"][0]["prefix"])
    grants = ("inference-fleet-publish-image", "inference-fleet-read-artifacts",
              # the build encrypts volumes and the AMI with the inference key: its policy first
              "keys-inference-policy")
    assert {named(stack, grant).urn for grant in grants} <= set(image.dependencies)
    group = named(stack, "inference-fleet-asg")
    assert image.urn in group.dependencies
    config = load_stack(ROOT, "dev").config
    assert (group.inputs["minSize"], group.inputs["desiredCapacity"]) == (
        int(config["zero-trust-ai:enclaveFleetMinSize"]),
        int(config["zero-trust-ai:enclaveFleetDesiredCapacity"]))
    log_group_arn = named(stack, "inference-image-rollout-logs").outputs["arn"]
    assert log_group_arn.endswith(":log-group:/aws/lambda/zero-trust-ai-dev-inference-image-rollout")
    for policy_of in ("keys-logs", "keys-logs-policy"):
        assert cloudwatch_logs_may_encrypt(named(stack, policy_of).inputs["policy"], log_group_arn)


def test_pinned_artifacts_are_read_from_the_model_bucket_by_the_build_role_only(
        main_with_artifacts: RecordedStack) -> None:
    stack = main_with_artifacts
    bucket = named(stack, "inference-fleet-models").outputs["bucket"]
    read = named(stack, "inference-fleet-read-artifacts").inputs
    assert read["role"] == named(stack, "ami-pipeline-instance-role").id
    assert json.loads(read["policy"])["Statement"][0]["Resource"] == f"arn:aws:s3:::{bucket}/artifacts/*"
    recipe = named(stack, "ami-pipeline-recipe").inputs
    [artifacts] = [c for c in recipe["components"] if "enclave-artifacts" in c["componentArn"]]
    assert {p["name"]: p["value"] for p in artifacts["parameters"]}["EifS3Uri"] == (
        f"s3://{bucket}/artifacts/digits-0123456789abcdef.eif")
    # The bucket's SSE-KMS layer: the inference key, through S3 only, for the build role.
    role_arn = named(stack, "ami-pipeline-instance-role").outputs["arn"]
    inference = json.loads(named(stack, "keys-inference-policy").inputs["policy"])["Statement"]
    [grant] = [s for s in inference if s.get("Principal") == {"AWS": role_arn}]
    assert grant["Action"] == ["kms:Decrypt"]
    assert grant["Condition"]["StringEquals"]["kms:ViaService"] == "s3.eu-west-1.amazonaws.com"


def test_without_pinned_artifacts_nothing_reads_them() -> None:
    stack = record_main({})
    names = {r.name for r in stack.resources}
    assert "inference-fleet-read-artifacts" not in names and "ami-pipeline-enclave-artifacts" not in names
    assert "inference-fleet-publish-image" in names and "inference-image-rollout-function" in names
    # No image is built at deploy: the group is created empty rather than booting stock AL2023.
    assert "ami-pipeline-image" not in names
    group = named(stack, "inference-fleet-asg")
    assert (group.inputs["minSize"], group.inputs["desiredCapacity"]) == (0, 0)
    assert group.inputs["maxSize"] >= 1
    role_arn = named(stack, "ami-pipeline-instance-role").outputs["arn"]
    inference = json.loads(named(stack, "keys-inference-policy").inputs["policy"])["Statement"]
    assert not [s for s in inference if s.get("Principal") == {"AWS": role_arn}]


def test_the_stack_reserves_function_concurrency_unless_configured_not_to() -> None:
    functions = ("inference-image-rollout-function", "key-rotation-function")
    reserved = record_main({})
    assert [named(reserved, f).inputs.get("reservedConcurrentExecutions") for f in functions] == [1, 1]
    assert not any("reserveFunctionConcurrency" in w for w in reserved.warnings)
    # A low-quota account: both unreserved, and the preview says so.
    unreserved = record_main({"zero-trust-ai:reserveFunctionConcurrency": "false"})
    assert all("reservedConcurrentExecutions" not in named(unreserved, f).inputs for f in functions)
    assert any("reserveFunctionConcurrency is false" in w for w in unreserved.warnings)


def test_the_documented_scp_keeps_the_pipelines_image_builder_resources_to_the_deployer(
        main_with_artifacts: RecordedStack) -> None:
    """The rollout catches a build configuration changed in place only through the image record's
    snapshot of it; the SCP (docs/scp-images-and-sessions.md) stops the change itself."""
    text = (ROOT / "docs" / "scp-images-and-sessions.md").read_text(encoding="utf-8")
    [block] = re.findall(r"```json\n(.*?)\n```", text, re.S)
    policy = json.loads(block)
    assert len(json.dumps(policy, separators=(",", ":"))) <= 5120  # the SCP size limit
    [deny] = [s for s in policy["Statement"] if s["Sid"] == "ImageBuilderResourcesOnlyThroughTheDeployment"]
    assert deny["Effect"] == "Deny"
    assert set(deny["Action"]) == {"imagebuilder:Create*", "imagebuilder:Update*"}
    for action in ("imagebuilder:UpdateInfrastructureConfiguration", "imagebuilder:CreateImage",
                   "imagebuilder:UpdateImagePipeline", "imagebuilder:UpdateDistributionConfiguration",
                   "imagebuilder:CreateImageRecipe"):
        assert any(fnmatch(action, pattern) for pattern in deny["Action"]), action
    stack = main_with_artifacts
    arns = [named(stack, resource).outputs["arn"] for resource in (
        "ami-pipeline-pipeline", "ami-pipeline-infrastructure", "ami-pipeline-distribution",
        "ami-pipeline-recipe", "ami-pipeline-image")]
    for arn in arns:
        assert any(fnmatch(arn, pattern) for pattern in deny["Resource"]), arn
    assert deny["Condition"] == {"ArnNotLike": {
        "aws:PrincipalArn": "arn:aws:iam::*:role/zero-trust-ai-deployer"}}
