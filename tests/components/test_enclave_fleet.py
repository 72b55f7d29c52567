"""EnclaveInferenceFleet under Pulumi's mock monitor: the launch template, the group, the load
balancer, the security groups, the role and the bucket it declares; and, wired to a KeyHierarchy
as `__main__.py` wires it, the key policies the pack and an IAM-style evaluator accept."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from components.enclave_fleet import (
    SSM_AGENT_ACTIONS,
    EnclaveFleetSettings,
    EnclaveInferenceFleet,
    EnclaveInferenceFleetArgs,
    sizing_problems,
)
from components.keys import EnclaveMeasurements, KeyHierarchy, KeyHierarchyArgs
from tests.support.key_policy import Request, evaluate
from ztai.preview.recorder import RecordedResource, RecordedStack, record
from ztpolicy.rule import Resource
from ztpolicy.rules.enclave_user_data_no_debug import debug_flags, enclave_user_data_no_debug
from ztpolicy.rules.instance_no_public_ip import instance_no_public_ip
from ztpolicy.rules.kms_key_policy_least_privilege import kms_key_policy_least_privilege
from ztpolicy.rules.launch_template_hardened import launch_template_hardened
from ztpolicy.rules.model_key_attestation_required import model_key_attestation_required
from ztpolicy.rules.no_unrestricted_ingress import no_unrestricted_ingress

MEASUREMENTS = EnclaveMeasurements(pcr0="a1" * 48, pcr1="b2" * 48, pcr2="c3" * 48)
ARGS = EnclaveInferenceFleetArgs(
    environment="dev", owner="ml-platform", region="eu-west-1",
    vpc_id="vpc-0inference", vpc_cidr="10.12.0.0/16",
    subnet_ids=["subnet-0private0", "subnet-0private1"],
    storage_key_arn="arn:aws:kms:eu-west-1:111122223333:key/inference",
    model_key_arn="arn:aws:kms:eu-west-1:111122223333:key/model-weights",
    measurements=MEASUREMENTS,
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
        keys = KeyHierarchy("keys", KeyHierarchyArgs(environment="dev", owner="ml-platform",
                                                     region="eu-west-1",
                                                     replica_regions=replica_regions))
        fleet = EnclaveInferenceFleet("fleet", replace(
            ARGS, storage_key_arn=keys.key_arn("inference"),
            model_key_arn=keys.key_arn("model-weights"), measurements=measurements))
        keys.grant_decrypt_with_attestation("model-weights", fleet.instance_role, measurements)
        keys.grant_use_through_service("inference", fleet.autoscaling_role, "ec2")
        keys.grant_decrypt_through_service("inference", fleet.instance_role, "s3")
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


def test_parent_image_defaults_to_al2023_of_the_instance_architecture(fleet: RecordedStack) -> None:
    assert named(fleet, "fleet-launch-template").inputs["imageId"] == (
        "resolve:ssm:/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64")
    graviton = build(replace(ARGS, settings=EnclaveFleetSettings(instance_type="m7g.large",
                                                                 enclave_cpu_count=1)))
    assert named(graviton, "fleet-launch-template").inputs["imageId"].endswith("default-arm64")
    pinned = build(replace(ARGS, image_id="ami-0123456789abcdef0"))
    assert named(pinned, "fleet-launch-template").inputs["imageId"] == "ami-0123456789abcdef0"


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
            + " --context model=digits --enclave vsock:16:5005 --listen 0.0.0.0:8080\n") in text
    assert "AWS_REGION=eu-west-1\n" in text
    assert text.endswith("systemctl enable --now ztai-parent-agent.service\n")


def test_signed_eif_measurements_include_pcr8() -> None:
    signed = build(replace(ARGS, measurements=replace(MEASUREMENTS, pcr8="d4" * 48)))
    assert '"PCR8": "' + "d4" * 48 + '"' in script(signed)


# -- group, load balancer, network ---------------------------------------------------------------
def test_group_spans_the_private_subnets_and_refreshes_on_template_change(fleet: RecordedStack) -> None:
    group = named(fleet, "fleet-asg").inputs
    template = named(fleet, "fleet-launch-template")
    assert group["vpcZoneIdentifiers"] == ARGS.subnet_ids
    assert group["launchTemplate"] == {"id": template.id, "version": "1"}  # latest, not $Latest
    assert (group["minSize"], group["desiredCapacity"], group["maxSize"]) == (2, 2, 4)
    assert group["healthCheckType"] == "ELB"
    assert group["targetGroupArns"] == [named(fleet, "fleet-agents").outputs["arn"]]
    assert group["instanceRefresh"] == {"strategy": "Rolling", "preferences": {
        "minHealthyPercentage": 100, "maxHealthyPercentage": 200, "instanceWarmup": "300",
        "autoRollback": True}}
    role = named(fleet, "fleet-autoscaling-role")
    assert role.inputs["awsServiceName"] == "autoscaling.amazonaws.com"
    assert group["serviceLinkedRoleArn"] == role.outputs["arn"]
    assert role.outputs["arn"].endswith("/AWSServiceRoleForAutoScaling_ztai-dev-fleet")


def test_internal_load_balancer_forwards_to_the_agents(fleet: RecordedStack) -> None:
    balancer = named(fleet, "fleet-nlb").inputs
    assert (balancer["internal"], balancer["loadBalancerType"]) == (True, "network")
    assert balancer["subnets"] == ARGS.subnet_ids
    assert balancer["securityGroups"] == [named(fleet, "fleet-nlb-sg").id]
    target = named(fleet, "fleet-agents").inputs
    assert (target["protocol"], target["port"], target["targetType"]) == ("TCP", 8080, "instance")
    assert target["healthCheck"]["path"] == "/health" and target["healthCheck"]["protocol"] == "HTTP"
    listener = named(fleet, "fleet-listener").inputs
    assert (listener["protocol"], listener["port"]) == ("TCP", 8080)
    assert "certificateArn" not in listener
    tls = named(build(replace(ARGS, certificate_arn="arn:aws:acm:eu-west-1:111122223333:certificate/x")),
                "fleet-listener").inputs
    assert (tls["protocol"], tls["port"], tls["sslPolicy"]) == (
        "TLS", 443, "ELBSecurityPolicy-TLS13-1-2-2021-06")


def test_security_groups_admit_only_the_load_balancer_path(fleet: RecordedStack) -> None:
    lb_group, instance_group = named(fleet, "fleet-nlb-sg"), named(fleet, "fleet-instance-sg")
    assert "ingress" not in lb_group.inputs and "egress" not in instance_group.inputs
    ingress = of_type(fleet, "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    egress = of_type(fleet, "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule")
    rules = {r.name: r.inputs for r in ingress + egress}
    assert rules["fleet-nlb-in-0"] | {"tags": None} == {
        "securityGroupId": lb_group.id, "ipProtocol": "tcp", "fromPort": 8080, "toPort": 8080,
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
    assert [r.inputs["cidrIpv4"] for r in of_type(
        clients, "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
        if r.name.startswith("fleet-nlb-in")] == ["10.13.0.0/16", "10.14.0.0/24"]


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


def test_a_given_bucket_is_used_and_none_is_built() -> None:
    stack = build(replace(ARGS, model_bucket_name="weights-registry", model_prefix="digits/",
                          model_object_key="digits/7.enc"))
    assert not of_type(stack, "aws:s3/bucket:Bucket")
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
    assert decide(role, "kms:Decrypt", good | {"PCR0": "ee" * 48}) == "implicit-deny"
    assert decide(role, "kms:Decrypt", {k: "0" * 96 for k in good}) == "implicit-deny"  # debug mode
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
