"""A first real `pulumi up` creates every resource that uses a KMS key only once the key admits it.

The mock monitor accepts any order, so the order is read from what the engine would be given:
each resource's recorded dependencies (the engine creates a resource only after everything it
depends on). For every resource that makes a service call KMS the moment it is created, the
statement that admits that call must be either in the policy its key is created with (the key's
own `policy` input: the resource depends on the key through its ARN), or in a sealed
`aws.kms.KeyPolicy` the resource depends on, directly or through other resources. The statements
are evaluated as KMS would (tests/support/key_policy.py), with the request each service makes:

- CloudWatch Logs, creating a log group with `kmsKeyId` (as logs.<region>.amazonaws.com, under the
  group's ARN as encryption context);
- DynamoDB, creating a table encrypted under a customer managed key, as the deploying role (a key
  administrator): DescribeKey, CreateGrant for an AWS resource, and data keys under the table's
  context (AWS KMS Developer Guide, "How Amazon DynamoDB uses AWS KMS");
- S3, storing an SSE-KMS object as the deploying role (the truststore upload), under the bucket's
  ARN as context (S3 Bucket Keys);
- EC2, launching encrypted volumes for an Auto Scaling group (its service-linked role) and for the
  deploy-time image build (the pipeline's execution role);
- EventBridge Scheduler, creating a schedule with `kmsKeyArn` as the deploying role: the payload
  encrypted (and read back) under the schedule's ARN as context (Scheduler User Guide,
  "Encryption at rest");
- EC2 Image Builder, creating a component with `kmsKeyId` as the deploying role, through Image
  Builder, under the component's ARN as `aws:imagebuilder:arn` context.

A sealed key policy names roles of the stack, and KMS refuses a principal that does not exist:
each KeyPolicy must also depend on every role it names.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support.key_policy import Request, cloudwatch_logs_may_encrypt, evaluate
from tests.support.stacks import COMBINED, record_split, record_stack
from ztai.preview.recorder import RecordedResource, RecordedStack

ARTIFACT_CONFIG = {
    "zero-trust-ai:enclaveEifObjectKey": "artifacts/digits-0123456789abcdef.eif",
    "zero-trust-ai:enclaveEifSha256": "01" * 32,
    "zero-trust-ai:parentAgentObjectKey": "artifacts/parent-agent-fedcba9876543210.tar.gz",
    "zero-trust-ai:parentAgentSha256": "fe" * 32,
}
KEY = "aws:kms/key:Key"
KEY_POLICY = "aws:kms/keyPolicy:KeyPolicy"


@dataclass(frozen=True)
class _Use:
    """One KMS request a resource's creation makes, and whom it is for."""

    resource: RecordedResource
    key_arn: str
    requests: tuple[Request, ...]
    what: str


class Graph:
    def __init__(self, stack: RecordedStack) -> None:
        self.stack = stack
        self.by_urn = {r.urn: r for r in stack.resources}
        self.keys = {r.outputs["arn"]: r for r in stack.resources if r.type == KEY}
        key_ids = {key.outputs["keyId"]: arn for arn, key in self.keys.items()}
        self.policies: dict[str, list[RecordedResource]] = {}
        for resource in stack.resources:
            if resource.type == KEY_POLICY:
                self.policies.setdefault(key_ids[resource.inputs["keyId"]], []).append(resource)
        self._closure: dict[str, set[str]] = {}

    def depends_on(self, resource: RecordedResource) -> set[str]:
        """Every URN created before `resource`: its dependencies, and theirs."""
        if resource.urn not in self._closure:
            self._closure[resource.urn] = set()  # cycles would hang a real deploy; none expected
            direct = set(resource.dependencies) | {
                urn for urns in resource.property_dependencies.values() for urn in urns}
            closure = set(direct)
            for urn in direct:
                if urn in self.by_urn:
                    closure |= self.depends_on(self.by_urn[urn])
            self._closure[resource.urn] = closure
        return self._closure[resource.urn]

    def admitted(self, use: _Use) -> str | None:
        """Where the statements admitting `use` are, if it is created after them; else None."""
        key = self.keys.get(use.key_arn)
        if key is None:
            return None
        before = self.depends_on(use.resource)
        if key.urn in before and all(evaluate(key.inputs["policy"], r).effect == "allow"
                                     for r in use.requests):
            return "creation policy"
        for policy in self.policies.get(use.key_arn, []):
            if policy.urn in before and all(evaluate(policy.inputs["policy"], r).effect == "allow"
                                            for r in use.requests):
                return policy.name
        return None


def _via(service: str, region: str, account: str, **extra: str) -> dict[str, str]:
    return {"kms:ViaService": f"{service}.{region}.amazonaws.com", "kms:CallerAccount": account, **extra}


def uses(stack: RecordedStack, administrators: Iterable[str], region: str, account: str) -> list[_Use]:
    """The KMS requests each resource's creation makes (see the module docstring)."""
    by_name = {r.name: r for r in stack.resources}
    found: list[_Use] = []
    for resource in stack.resources:
        inputs = resource.inputs
        if resource.type == "aws:cloudwatch/logGroup:LogGroup" and inputs.get("kmsKeyId"):
            arn = f"arn:aws:logs:{region}:{account}:log-group:{inputs['name']}"
            found.append(_Use(resource, inputs["kmsKeyId"], tuple(
                Request(f"logs.{region}.amazonaws.com", action, "*",
                        {"kms:EncryptionContext:aws:logs:arn": arn})
                for action in ("kms:Encrypt", "kms:GenerateDataKey", "kms:Decrypt", "kms:DescribeKey")),
                f"CloudWatch Logs for {inputs['name']}"))
        elif resource.type == "aws:dynamodb/table:Table" and (
                sse := inputs.get("serverSideEncryption") or {}).get("kmsKeyArn"):
            table = inputs["name"]
            context = {"kms:EncryptionContext:aws:dynamodb:tableName": table,
                       "kms:EncryptionContext:aws:dynamodb:subscriberId": account}
            for admin in administrators:
                found.append(_Use(resource, sse["kmsKeyArn"], (
                    Request(admin, "kms:DescribeKey", "*", _via("dynamodb", region, account)),
                    Request(admin, "kms:CreateGrant", "*", _via(
                        "dynamodb", region, account, **{"kms:GrantIsForAWSResource": "true"})),
                    *(Request(admin, action, "*", _via("dynamodb", region, account, **context))
                      for action in ("kms:GenerateDataKey", "kms:Decrypt", "kms:Encrypt"))),
                    f"DynamoDB creating {table} as {admin}"))
        elif resource.type == "aws:s3/bucketObjectv2:BucketObjectv2" and inputs.get("kmsKeyId"):
            bucket = next(r for r in stack.resources if r.type == "aws:s3/bucket:Bucket"
                          and r.outputs.get("bucket") == inputs["bucket"])
            for admin in administrators:
                found.append(_Use(resource, inputs["kmsKeyId"], tuple(
                    Request(admin, action, "*", _via("s3", region, account, **{
                        "kms:EncryptionContext:aws:s3:arn": bucket.outputs["arn"]}))
                    for action in ("kms:GenerateDataKey", "kms:Decrypt")),
                    f"S3 storing {inputs['key']} as {admin}"))
        elif resource.type == "aws:autoscaling/group:Group" and (
                inputs.get("desiredCapacity") or inputs.get("minSize")):
            template = next(r for r in stack.resources if r.type == "aws:ec2/launchTemplate:LaunchTemplate"
                            and r.outputs.get("id") == inputs["launchTemplate"]["id"])
            for mapping in template.inputs.get("blockDeviceMappings", []):
                found.append(_Use(resource, mapping["ebs"]["kmsKeyId"], _ec2_launch(
                    inputs["serviceLinkedRoleArn"], region, account),
                    "Auto Scaling launching encrypted volumes"))
        elif resource.type == "aws:scheduler/schedule:Schedule" and inputs.get("kmsKeyArn"):
            group = inputs.get("groupName") or "default"
            arn = f"arn:aws:scheduler:{region}:{account}:schedule/{group}/{inputs['name']}"
            for admin in administrators:
                found.append(_Use(resource, inputs["kmsKeyArn"], tuple(
                    Request(admin, action, "*", _via("scheduler", region, account, **{
                        "kms:EncryptionContext:aws:scheduler:schedule-arn": arn}))
                    for action in ("kms:Encrypt", "kms:GenerateDataKey", "kms:Decrypt")),
                    f"Scheduler creating {inputs['name']} as {admin}"))
        elif resource.type == "aws:imagebuilder/component:Component" and inputs.get("kmsKeyId"):
            arn = (f"arn:aws:imagebuilder:{region}:{account}:component/{inputs['name']}/"
                   f"{inputs['version']}/1")
            for admin in administrators:
                found.append(_Use(resource, inputs["kmsKeyId"], tuple(
                    Request(admin, action, "*", _via("imagebuilder", region, account, **{
                        "kms:EncryptionContext:aws:imagebuilder:arn": arn}))
                    for action in ("kms:Encrypt", "kms:GenerateDataKey", "kms:Decrypt")),
                    f"ImageBuilder creating {inputs['name']} as {admin}"))
        elif resource.type == "aws:imagebuilder/image:Image":
            recipe = next(r for r in stack.resources if r.type == "aws:imagebuilder/imageRecipe:ImageRecipe"
                          and r.outputs.get("arn") == inputs["imageRecipeArn"])
            infrastructure = next(
                r for r in stack.resources
                if r.type == "aws:imagebuilder/infrastructureConfiguration:InfrastructureConfiguration"
                and r.outputs.get("arn") == inputs["infrastructureConfigurationArn"])
            execution_role = inputs.get("executionRole")
            assert execution_role, "the deploy-time build names its execution role"
            del infrastructure  # the build instance's profile uses no key at launch
            for mapping in recipe.inputs.get("blockDeviceMappings", []):
                found.append(_Use(resource, mapping["ebs"]["kmsKeyId"], _ec2_launch(
                    _role_arn(by_name, execution_role, account), region, account),
                    "Image Builder launching encrypted build volumes"))
    return found


def _role_arn(by_name: Mapping[str, RecordedResource], role: str, account: str) -> str:
    if role.startswith("arn:"):
        return role
    return f"arn:aws:iam::{account}:role/{role}"


def _ec2_launch(role_arn: str, region: str, account: str) -> tuple[Request, ...]:
    """What launching an encrypted EBS volume asks of its key as `role_arn`, through EC2."""
    return (Request(role_arn, "kms:CreateGrant", "*", _via(
                "ec2", region, account, **{"kms:GrantIsForAWSResource": "true"})),
            *(Request(role_arn, action, "*", _via("ec2", region, account))
              for action in ("kms:GenerateDataKeyWithoutPlaintext", "kms:Decrypt", "kms:DescribeKey")))


def ordering_problems(stack: RecordedStack) -> list[str]:
    region = stack.config.get("aws:region", "eu-west-1")
    account = "111122223333"
    administrators = json.loads(stack.config.get("zero-trust-ai:keyAdministratorRoleArns") or "[]")
    graph = Graph(stack)
    problems = []
    for use in uses(stack, administrators, region, account):
        if graph.admitted(use) is None:
            problems.append(f"{use.resource.name}: {use.what} is not admitted by its key before it "
                            "is created")
    # A key policy waits for every role of the stack it names.
    roles = {r.outputs["arn"]: r for r in stack.resources
             if r.type in ("aws:iam/role:Role", "aws:iam/serviceLinkedRole:ServiceLinkedRole")}
    for policies in graph.policies.values():
        for policy in policies:
            named = {principal for statement in json.loads(policy.inputs["policy"])["Statement"]
                     for principal in _aws_principals(statement.get("Principal"))}
            for arn in sorted(named & set(roles)):
                if roles[arn].urn not in graph.depends_on(policy):
                    problems.append(f"{policy.name} names {arn} but may be written before it exists")
    return problems


def _aws_principals(principal: Any) -> list[str]:
    if isinstance(principal, Mapping):
        value = principal.get("AWS", [])
        return [value] if isinstance(value, str) else list(value)
    return []


@pytest.fixture(scope="module", params=["dev", "prod-combined", "dev-with-artifacts"])
def stack(request: pytest.FixtureRequest) -> RecordedStack:
    name: str = request.param
    if name == "dev-with-artifacts":
        return record_stack("dev", ARTIFACT_CONFIG)
    if name == "prod-combined":  # prod as one stack; the split is checked below
        return record_stack("prod", COMBINED)
    return record_stack(name)


# -- a split environment: two stacks, deployed one after the other (docs/deploying.md) -------------
DEPLOYER = "arn:aws:iam::111122223333:role/zero-trust-ai-prod-deploy-workload"


def _split_problems(workload: RecordedStack, keys: RecordedStack, *, sealed: bool) -> list[str]:
    """Each creation in the workload that uses a key, admitted by the key layer as deployed
    before it: the keys' creation policies (a first deployment), or those and the sealed ones.
    The stacks are deployed one after the other, so no dependency between them is needed."""
    graph = Graph(keys)
    problems = []
    found = uses(workload, [DEPLOYER], "eu-west-1", "111122223333")
    for use in found:
        key = graph.keys.get(use.key_arn)
        if key is None:
            problems.append(f"{use.resource.name}: {use.what} names a key the key layer does not hold")
            continue
        policies = [key.inputs["policy"], *(p.inputs["policy"] for p in graph.policies.get(use.key_arn, [])
                                            if sealed)]
        if not any(all(evaluate(policy, r).effect == "allow" for r in use.requests) for policy in policies):
            problems.append(f"{use.resource.name}: {use.what} is not admitted by the key layer")
    return problems


def test_a_split_first_deployment_needs_no_grant_of_the_key_layer() -> None:
    # Steps 1 and 2: the key layer without grants, then the workload as shipped (no artifacts).
    split = record_split("prod")
    found = uses(split.workload, [DEPLOYER], "eu-west-1", "111122223333")
    kinds = {use.what.split(" ")[0] for use in found}
    assert {"CloudWatch", "DynamoDB", "S3", "Scheduler", "ImageBuilder"} <= kinds, kinds
    assert _split_problems(split.workload, split.first_keys, sealed=False) == []


def test_a_split_deployment_with_the_image_needs_the_sealed_key_layer() -> None:
    # Steps 4 and 5: the key layer sealed with the grants of a workload that builds the image.
    split = record_split("prod", ARTIFACT_CONFIG)
    kinds = {use.what.split(" ")[0] for use in uses(split.workload, [DEPLOYER], "eu-west-1", "111122223333")}
    assert {"Auto", "Image"} <= kinds, kinds
    assert _split_problems(split.workload, split.sealed_keys, sealed=True) == []
    # Before the key layer holds the grants, the image build and the launches would be refused.
    refused = _split_problems(split.workload, split.first_keys, sealed=False)
    assert {p.split(":")[0] for p in refused} == {"inference-fleet-asg", "ami-pipeline-image"}, refused


def test_no_resource_uses_a_key_before_the_key_admits_it(stack: RecordedStack) -> None:
    region = stack.config.get("aws:region", "eu-west-1")
    administrators = json.loads(stack.config["zero-trust-ai:keyAdministratorRoleArns"])
    found = uses(stack, administrators, region, "111122223333")
    kinds = {use.what.split(" ")[0] for use in found}
    # The check has something to check: log groups, the vault table and the truststore always.
    assert {"CloudWatch", "DynamoDB", "S3", "Scheduler", "ImageBuilder"} <= kinds, kinds
    if stack.config.get("zero-trust-ai:enclaveEifObjectKey"):
        assert {"Auto", "Image"} <= kinds, kinds
    assert ordering_problems(stack) == []


def test_log_groups_and_the_vault_table_need_no_sealed_policy(stack: RecordedStack) -> None:
    # They are admitted by the policy their key is created with, so they race nothing, on the
    # first deploy or on a later one that adds a log group.
    graph = Graph(stack)
    region = stack.config.get("aws:region", "eu-west-1")
    administrators = json.loads(stack.config["zero-trust-ai:keyAdministratorRoleArns"])
    for use in uses(stack, administrators, region, "111122223333"):
        if use.what.startswith(("CloudWatch", "DynamoDB", "Scheduler", "ImageBuilder")):
            assert graph.admitted(use) == "creation policy", use.what
            log_group = use.resource.inputs.get("name", "")
            if use.what.startswith("CloudWatch"):
                for policy in graph.policies[use.key_arn]:
                    assert cloudwatch_logs_may_encrypt(
                        policy.inputs["policy"],
                        f"arn:aws:logs:{region}:111122223333:log-group:{log_group}")


def _without_statement(stack: RecordedStack, resource_name: str, sid_prefix: str) -> RecordedStack:
    doctored = copy.deepcopy(stack)
    [resource] = [r for r in doctored.resources if r.name == resource_name]
    policy = json.loads(resource.inputs["policy"])
    policy["Statement"] = [s for s in policy["Statement"] if not s["Sid"].startswith(sid_prefix)]
    resource.inputs["policy"] = json.dumps(policy)
    return doctored


def test_the_check_catches_a_log_group_its_key_does_not_admit_at_creation() -> None:
    stack = record_stack("dev")
    # What the stack did before: the CloudWatch Logs statement only in the sealed policy, which
    # no log group waits for.
    doctored = _without_statement(stack, "keys-logs", "CloudWatchLogs")
    problems = ordering_problems(doctored)
    log_groups = [r.name for r in stack.resources if r.type == "aws:cloudwatch/logGroup:LogGroup"
                  and r.inputs.get("kmsKeyId") == next(
                      k.outputs["arn"] for k in stack.resources if k.name == "keys-logs")]
    assert log_groups
    assert {p.split(":")[0] for p in problems} == set(log_groups), problems


def test_the_check_catches_a_table_whose_creator_is_not_admitted() -> None:
    stack = record_stack("dev")
    # The old creation statement: CreateGrant only, and only in the sealed policy.
    doctored = _without_statement(stack, "keys-secrets", "CreateDynamodbTables")
    problems = ordering_problems(doctored)
    assert [p for p in problems if p.startswith("token-vault-table: DynamoDB creating")], problems


def test_the_check_catches_a_launch_that_does_not_wait_for_the_key_policy() -> None:
    stack = record_stack("dev", ARTIFACT_CONFIG)
    doctored = copy.deepcopy(stack)
    [group] = [r for r in doctored.resources if r.name == "inference-fleet-asg"]
    policy_urns = {r.urn for r in doctored.resources if r.type == KEY_POLICY}
    image_urns = {r.urn for r in doctored.resources if r.type == "aws:imagebuilder/image:Image"}
    group.dependencies = [u for u in group.dependencies if u not in policy_urns | image_urns]
    group.property_dependencies = {k: [u for u in v if u not in policy_urns | image_urns]
                                   for k, v in group.property_dependencies.items()}
    problems = ordering_problems(doctored)
    assert [p for p in problems if p.startswith("inference-fleet-asg: Auto Scaling")], problems


@pytest.mark.parametrize("sid_prefix, kind", [("CreateSchedules", "Scheduler creating"),
                                               ("CreateImageBuilderComponents", "ImageBuilder creating")])
def test_the_check_catches_a_schedule_or_component_whose_creator_is_not_admitted(
        sid_prefix: str, kind: str) -> None:
    stack = record_stack("dev")
    # What the stack would do with the deployer's statement only in the sealed policy (or
    # nowhere): Scheduler or Image Builder refuses the creation.
    doctored = _without_statement(stack, "keys-logs", sid_prefix)
    problems = ordering_problems(doctored)
    assert [p for p in problems if kind in p], problems
    assert all(kind in p for p in problems), problems
