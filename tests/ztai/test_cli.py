"""`python -m ztai` end to end, as an operator or CI runs it: preview, JSON, export → analyze,
and every kind of bad input ending in a clear message and exit status 2."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT


def ztai(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ztai", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300, env=None)


@pytest.fixture(scope="module")
def dev_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    path = tmp_path_factory.mktemp("export") / "dev.json"
    return ztai("preview", "--stack", "dev", "--json", "--export", str(path)), path


@pytest.mark.parametrize("stack, zones", [("dev", 2), ("prod", 3)])
def test_preview_prints_the_tree_and_passes_the_policies(stack: str, zones: int) -> None:
    run = ztai("preview", "--stack", stack)
    assert run.returncode == 0, run.stderr
    out = run.stdout
    layer = "workload" if stack == "prod" else "combined"
    assert f"Previewing update ({stack}, {layer} layer)" in out
    assert "pulumi:pulumi:Stack" in out and f"zero-trust-ai-{stack}" in out
    assert "─ zero-trust-ai:network:SegmentedNetwork" in out  # a child of the stack (├─ or └─)
    for segment in ("data", "training", "inference", "management"):
        assert "aws:ec2:Vpc" in out and f"network-{segment}-vpc" in out
        assert f"network-{segment}-private-{zones - 1}" in out
        assert f"network-{segment}-private-{zones}" not in out
    assert "zero-trust-ai@v0.1.0" in out and "PASSED" in out
    assert "0 mandatory and 0 advisory violation(s)" in out
    assert ("[protect]" in out) == (stack == "prod")
    if stack == "prod":  # split: its key layer is previewed and checked after it, with its grants
        workload, keys = out.split("Previewing update (prod-keys, keys layer)")
        assert workload.count("PASSED") == keys.count("PASSED") == 1
        assert "aws:kms:KeyPolicy" in keys and "aws:kms:KeyPolicy" not in workload
        assert "aws:ec2:Vpc" not in keys
    # The shipped placeholders are named on every preview, as warnings.
    assert ("warning: placeholder still in the stack configuration: zero-trust-ai:apiDomainName = "
            f"api.{'dev.' if stack == 'dev' else ''}example.com") in run.stderr
    # Both shipped stacks name the same account and Region: their networks add up.
    other = "prod" if stack == "dev" else "dev"
    assert (f"warning: stacks '{stack}' and '{other}' both target account 111122223333 in eu-west-1: "
            "together they need 8 VPCs, 5 Elastic IP addresses, 2 internet gateways; over the default "
            "quotas: 8 VPCs (default quota 5)") in run.stderr


def test_json_report(dev_export: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    run, _ = dev_export
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert (report["mode"], report["stack"], report["project"]) == ("preview", "dev", "zero-trust-ai")
    assert report["summary"] == {"resources": len(report["resources"]), "mandatoryViolations": 0,
                                 "advisoryViolations": 0, "exclusions": 0,
                                 "policiesChecked": len(report["policyPack"]["policies"]),
                                 "disabledPolicies": [], "passed": True}
    # The warnings printed on stderr are in the document too.
    assert report["warnings"] and all(f"warning: {w}" in run.stderr for w in report["warnings"])
    vpcs = [r for r in report["resources"] if r["type"] == "aws:ec2/vpc:Vpc"]
    assert len(vpcs) == 4 and all(r["urn"].startswith("urn:pulumi:dev::zero-trust-ai::") for r in vpcs)
    assert {p["name"] for p in report["policyPack"]["policies"]} >= {
        "subnet-no-public-ip", "vpc-flow-logs-enabled", "egress-free-segment-no-internet-path"}
    assert set(report["outputs"]["vpcIds"]) == {"data", "training", "inference", "management"}
    # The key hierarchy's logs key encrypts the flow logs (the network's own key is not built).
    by_name = {r["name"]: r for r in report["resources"]}
    assert "network-flow-logs-key" not in by_name
    assert by_name["network-data-flow-logs"]["inputs"]["kmsKeyId"] == report["outputs"]["keyArns"]["logs"]


def test_export_is_a_stack_export_document(dev_export: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    _, path = dev_export
    document = json.loads(path.read_text())
    assert document["version"] == 3
    manifest = document["deployment"]["manifest"]
    assert manifest["version"].startswith("v3.") and len(manifest["magic"]) == 64
    resources = document["deployment"]["resources"]
    stack, provider = resources[0], resources[1]
    assert stack["type"] == "pulumi:pulumi:Stack" and "parent" not in stack
    assert provider["type"] == "pulumi:providers:aws" and provider["inputs"]["region"] == "eu-west-1"
    [vpc] = [r for r in resources if r["urn"].endswith("::network-data-vpc")]
    assert vpc["custom"] and vpc["id"].startswith("vpc-")
    assert vpc["provider"] == f"{provider['urn']}::{provider['id']}"
    assert vpc["outputs"]["arn"] == f"arn:aws:ec2:eu-west-1:111122223333:vpc/{vpc['id']}"
    [flow_log] = [r for r in resources if r["urn"].endswith("::network-data-flow-log")]
    assert flow_log["propertyDependencies"]["vpcId"] == [vpc["urn"]]
    assert vpc["urn"] in flow_log["dependencies"]
    keys = [r for r in resources if r["type"] == "aws:kms/key:Key"]
    assert keys and not any(r.get("protect") for r in keys)  # dev protects nothing


def test_export_analyze_round_trip_passes(dev_export: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    _, path = dev_export
    run = ztai("policy", "analyze", "--file", str(path))
    assert run.returncode == 0, run.stdout + run.stderr
    assert "PASSED" in run.stdout


def _tampered(path: Path, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    document = json.loads(path.read_text())
    resources: list[dict[str, Any]] = document["deployment"]["resources"]
    [vpc] = [r for r in resources if r["urn"].endswith("::network-data-vpc")]
    [group] = [r for r in resources if r["urn"].endswith("::network-data-endpoints-sg")]
    urns = {
        "subnet": vpc["urn"].replace("::network-data-vpc", "$aws:ec2/subnet:Subnet::rogue-public"),
        "group": group["urn"],
    }
    resources.append({"urn": urns["subnet"], "custom": True, "type": "aws:ec2/subnet:Subnet",
                      "id": "subnet-0rogue", "parent": vpc["urn"],
                      "inputs": {"vpcId": vpc["id"], "cidrBlock": "10.10.200.0/24",
                                 "mapPublicIpOnLaunch": True},
                      "outputs": {"vpcId": vpc["id"], "cidrBlock": "10.10.200.0/24",
                                  "mapPublicIpOnLaunch": True, "id": "subnet-0rogue"}})
    for key in ("inputs", "outputs"):
        group[key]["ingress"].append({"protocol": "tcp", "fromPort": 22, "toPort": 22,
                                      "cidrBlocks": ["0.0.0.0/0"]})
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(document))
    return tampered, urns


def test_public_subnet_and_open_group_are_rejected_by_urn(
        dev_export: tuple[subprocess.CompletedProcess[str], Path], tmp_path: Path) -> None:
    tampered, urns = _tampered(dev_export[1], tmp_path)
    run = ztai("policy", "analyze", "--file", str(tampered))
    assert run.returncode == 1
    assert urns["subnet"] in run.stdout and urns["group"] in run.stdout
    assert "FAILED" in run.stdout and "subnet-no-public-ip" in run.stdout

    report = json.loads(ztai("policy", "analyze", "--file", str(tampered), "--json").stdout)
    assert {(v["policy"], v["urn"]) for v in report["violations"]} == {
        ("subnet-no-public-ip", urns["subnet"]), ("no-unrestricted-ingress", urns["group"])}
    assert report["summary"]["passed"] is False


def test_an_untagged_plaintext_copy_of_the_fleet_listener_is_rejected(
        dev_export: tuple[subprocess.CompletedProcess[str], Path], tmp_path: Path) -> None:
    # inference-path-tls-bound finds the fleet's listeners by structure: a TCP copy of the
    # listener on the fleet's load balancer, tags and certificate removed, forwarding to an
    # untagged TCP target group, as deployed resources (outputs, links as ARNs only).
    document = json.loads(dev_export[1].read_text())
    resources: list[dict[str, Any]] = document["deployment"]["resources"]
    [listener] = [r for r in resources if r["urn"].endswith("::inference-fleet-listener")]
    copy_urn = listener["urn"].replace("::inference-fleet-listener", "::plain-copy")
    group_urn = listener["urn"].replace("aws:lb/listener:Listener::inference-fleet-listener",
                                        "aws:lb/targetGroup:TargetGroup::plain-agents")
    group_arn = "arn:aws:elasticloadbalancing:eu-west-1:111122223333:targetgroup/plain-agents/1"
    copy = {"loadBalancerArn": listener["outputs"]["loadBalancerArn"], "protocol": "TCP", "port": 80,
            "defaultActions": [{"type": "forward", "targetGroupArn": group_arn}],
            "arn": "arn:aws:lb:eu-west-1:111122223333:listener/plain-copy", "id": "plain-copy"}
    group = {"protocol": "TCP", "port": 8080, "targetType": "instance", "arn": group_arn, "id": group_arn}
    for urn, token, outputs in ((copy_urn, "aws:lb/listener:Listener", copy),
                                (group_urn, "aws:lb/targetGroup:TargetGroup", group)):
        resources.append({"urn": urn, "custom": True, "type": token, "id": outputs["id"],
                          "parent": listener["parent"], "inputs": {}, "outputs": outputs})
    tampered = tmp_path / "plain-copy.json"
    tampered.write_text(json.dumps(document))
    report = json.loads(ztai("policy", "analyze", "--file", str(tampered), "--json").stdout)
    assert {(v["policy"], v["urn"]) for v in report["violations"]} == {
        ("inference-path-tls-bound", copy_urn), ("inference-path-tls-bound", group_urn)}


def test_exclusions_appear_in_the_report(dev_export: tuple[subprocess.CompletedProcess[str], Path],
                                         tmp_path: Path) -> None:
    tampered, urns = _tampered(dev_export[1], tmp_path)
    config = tmp_path / "policy.json"
    reason = "rogue subnet kept for the SEC-9 exfiltration drill"
    config.write_text(json.dumps({"subnet-no-public-ip": {"exclusions": [
        {"resource": "rogue-*", "reason": reason}]}}))
    run = ztai("policy", "analyze", "--file", str(tampered), "--policy-config", str(config), "--json")
    assert run.returncode == 1  # the open security group is still mandatory
    report = json.loads(run.stdout)
    assert report["exclusions"] == [{
        "policy": "subnet-no-public-ip", "urn": urns["subnet"], "pattern": "rogue-*",
        "reason": reason, "suppressed": [
            "subnet rogue-public sets mapPublicIpOnLaunch: every instance launched in it gets a "
            "public IPv4 address"]}]
    text = ztai("policy", "analyze", "--file", str(tampered), "--policy-config", str(config)).stdout
    assert "Exclusions (1)" in text and reason in text


def _project_copy(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    shutil.copytree(ROOT, project, ignore=shutil.ignore_patterns(
        ".venv", "venv", ".git", "__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache"))
    return project


def test_bad_cidr_in_a_stack_file_is_refused_showing_the_value(tmp_path: Path) -> None:
    project = _project_copy(tmp_path)
    stack_file = project / "stacks" / "Pulumi.dev.yaml"
    stack_file.write_text(stack_file.read_text().replace("10.10.0.0/16", "10.10.0.0/33"))
    run = ztai("preview", "--stack", "dev", cwd=project)
    assert run.returncode == 2
    assert "zero-trust-ai:dataCidr = '10.10.0.0/33'" in run.stderr
    assert "Traceback" not in run.stderr and run.stdout == ""


def test_bad_yaml_and_unknown_key_are_refused(tmp_path: Path) -> None:
    project = _project_copy(tmp_path)
    stacks = project / "stacks"
    (stacks / "Pulumi.broken.yaml").write_text("config:\n  aws:region: [eu-west-1\n")
    run = ztai("preview", "--stack", "broken", cwd=project)
    assert run.returncode == 2 and "is not valid YAML at line" in run.stderr
    (stacks / "Pulumi.typo.yaml").write_text(
        (stacks / "Pulumi.dev.yaml").read_text() + "  zero-trust-ai:flowLogRetention: 30\n")
    run = ztai("preview", "--stack", "typo", cwd=project)
    assert run.returncode == 2
    assert "zero-trust-ai:flowLogRetention: unknown key (did you mean" in run.stderr
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize("args, message", [
    (["preview", "--stack", "qa"], "stack 'qa' has no configuration file"),
    (["preview", "--stack", "../etc"], "stack name '../etc' is not valid"),
    (["preview", "--stack", "dev", "--policy-config", "missing.json"], "cannot read policy config"),
    (["policy", "analyze", "--file", "missing.json"], "cannot read stack export missing.json"),
    (["policy", "analyze", "--file", "Pulumi.yaml"], "is not JSON"),
    (["preview"], "the following arguments are required: --stack"),
])
def test_usage_errors_exit_2(args: list[str], message: str) -> None:
    run = ztai(*args)
    assert run.returncode == 2
    assert message in run.stderr
    assert "Traceback" not in run.stderr


def test_analyze_reads_the_config_of_the_stack_the_export_is_of(prod_export: Path,
                                                                 tmp_path: Path) -> None:
    # Without it the workload is checked as a combined stack: its buckets' and stream's keys are no
    # stack's, its alarms notify topics of no stack (the key layer's), and the human roles it reads
    # have their boundary in no stack.
    run = ztai("policy", "analyze", "--file", str(prod_export), "--json")
    assert run.returncode == 1
    assert {v["policy"] for v in json.loads(run.stdout)["violations"]} == {
        "s3-bucket-encrypted-with-cmk", "iam-human-role-conditions", "cloudwatch-alarm-has-action",
        "firehose-encrypted-with-cmk"}
    # With it, the workload's export passes alone: its buckets use the keys its reference read.
    run = ztai("policy", "analyze", "--file", str(prod_export), "--stack", "prod")
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr
    run = ztai("policy", "analyze", "--file", str(prod_export), "--stack", "prod-keys")
    assert run.returncode == 2
    assert "--stack prod-keys: the stack export" in run.stderr and "is stack prod's" in run.stderr
    # A stack without a stack file: the export renamed to stack qa.
    renamed = tmp_path / "qa.json"
    renamed.write_text(prod_export.read_text().replace("urn:pulumi:prod::", "urn:pulumi:qa::"))
    run = ztai("policy", "analyze", "--file", str(renamed), "--stack", "qa")
    assert run.returncode == 2
    assert "--stack qa: stack 'qa' has no configuration file" in run.stderr
    assert "Traceback" not in run.stderr


def test_bad_policy_config_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "policy.json"
    config.write_text(json.dumps({"subnet-no-public-ip": {"exclusions": [{"resource": "x"}]}}))
    run = ztai("preview", "--stack", "dev", "--policy-config", str(config))
    assert run.returncode == 2
    assert "policy config: subnet-no-public-ip" in run.stderr and "'reason'" in run.stderr


def test_wrong_export_version_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"version": 1, "deployment": {"resources": []}}))
    run = ztai("policy", "analyze", "--file", str(path))
    assert run.returncode == 2 and "deployment version 1 is not supported" in run.stderr


def test_real_exports_with_secrets_are_analysed(
        dev_export: tuple[subprocess.CompletedProcess[str], Path], tmp_path: Path) -> None:
    # `pulumi stack export` writes secrets as ciphertext; the analyzer must not choke on them.
    document = json.loads(dev_export[1].read_text())
    [group] = [r for r in document["deployment"]["resources"]
               if r["urn"].endswith("::network-data-flow-logs")]
    group["outputs"]["kmsKeyId"] = {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270",
                                    "ciphertext": "v1:AAAA:BBBB"}
    path = tmp_path / "with-secret.json"
    path.write_text(json.dumps(document))
    run = ztai("policy", "analyze", "--file", str(path))
    assert run.returncode == 0, run.stdout + run.stderr
    assert "PASSED" in run.stdout


def test_unwritable_export_and_missing_pack_exit_2(tmp_path: Path) -> None:
    run = ztai("preview", "--stack", "dev", "--export", str(tmp_path / "missing" / "x.json"))
    assert run.returncode == 2 and "cannot write" in run.stderr and "Traceback" not in run.stderr
    run = ztai("policy", "analyze", "--file", "Pulumi.yaml", "--policy-pack", str(tmp_path))
    assert run.returncode == 2
    run = ztai("preview", "--stack", "dev", "--policy-pack", str(tmp_path))
    assert run.returncode == 2 and "is not a policy pack" in run.stderr


def test_preview_with_unknowns_like_a_first_real_preview() -> None:
    # Ids and computed outputs unknown, as the engine sends them before anything exists: the
    # policies must still run (linking through property dependencies) and pass.
    run = ztai("preview", "--stack", "prod", "--unknowns", "--json")
    assert run.returncode == 0, run.stderr
    # A split environment: the workload's first preview (its key layer already deployed, so the
    # key ARNs are known), then the key layer's (the workload deployed: its roles are known).
    workload, keys = json.loads(run.stdout)["stacks"]
    assert (workload["stack"], keys["stack"]) == ("prod", "prod-keys")
    for report in (workload, keys):
        assert report["summary"]["passed"] is True and report["summary"]["mandatoryViolations"] == 0
    # The endpoint policies that name this stack's resources wait for the bucket's name and the
    # parameter's ARN: the resource rule says it will check them during `pulumi up` (advisory).
    # Nothing else is deferred.
    deferred = {(v["policy"], v["level"], v["urn"].rsplit("$", 1)[-1].split("::")[0])
                for v in workload["violations"]}
    assert deferred == {("vpc-endpoint-policy-restrictive", "advisory",
                         "aws:ec2/vpcEndpointPolicy:VpcEndpointPolicy")}
    assert all("can't run policy" in v["message"] for v in workload["violations"])
    assert keys["violations"] == []
    report = workload
    [flow_log] = [r for r in report["resources"] if r["name"] == "network-data-flow-log"]
    assert flow_log["inputs"]["vpcId"] == "04da6b54-80e4-46f7-96ec-b56ff0331ba9"  # the unknown marker


# -- the inference API in the prod stack ------------------------------------------------------------
@pytest.fixture(scope="module")
def prod_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("export") / "prod.json"
    run = ztai("preview", "--stack", "prod", "--json", "--export", str(path))
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr
    return path


def _resources(path: Path) -> list[dict[str, Any]]:
    resources: list[dict[str, Any]] = json.loads(path.read_text())["deployment"]["resources"]
    return resources


def _one(resources: list[dict[str, Any]], type_token: str) -> dict[str, Any]:
    [resource] = [r for r in resources if r["type"] == type_token]
    return resource


def test_prod_preview_shows_the_locked_down_gateway(prod_export: Path) -> None:
    resources = _resources(prod_export)
    api = _one(resources, "aws:apigatewayv2/api:Api")
    assert api["inputs"]["disableExecuteApiEndpoint"] is True
    domain = _one(resources, "aws:apigatewayv2/domainName:DomainName")
    mtls = domain["inputs"]["mutualTlsAuthentication"]
    bundle = _one(resources, "aws:s3/bucketObjectv2:BucketObjectv2")
    assert mtls["truststoreVersion"] == bundle["outputs"]["versionId"]
    assert mtls["truststoreUri"].endswith("/truststore/truststore.pem")
    assert domain["inputs"]["domainNameConfiguration"]["securityPolicy"] == "TLS_1_2"
    routes = [r for r in resources if r["type"] == "aws:apigatewayv2/route:Route"]
    assert {r["inputs"]["routeKey"]: r["inputs"]["authorizationScopes"] for r in routes} == {
        "POST /v1/infer": ["https://api.example.com/invoke"],
        "POST /partners/example-partner/v1/infer": ["https://api.example.com/partner-example-partner"]}
    assert all(r["inputs"]["authorizationType"] == "JWT" for r in routes)
    stage = _one(resources, "aws:apigatewayv2/stage:Stage")
    assert stage["inputs"]["defaultRouteSettings"]["throttlingRateLimit"] == 100
    assert [s["routeKey"] for s in stage["inputs"]["routeSettings"]] == [
        "POST /partners/example-partner/v1/infer"]
    assert stage["inputs"]["accessLogSettings"]["destinationArn"].startswith("arn:aws:logs:")
    # The partner's own OAuth client holds its one scope; the first-party client another.
    clients = {r["inputs"]["name"]: r["inputs"] for r in resources
               if r["type"] == "aws:cognito/userPoolClient:UserPoolClient"}
    assert {name: c["allowedOauthScopes"] for name, c in clients.items()} == {
        "inference": ["https://api.example.com/invoke"],
        "partner-example-partner": ["https://api.example.com/partner-example-partner"]}
    assert all(c["allowedOauthFlows"] == ["client_credentials"] for c in clients.values())
    # The fleet's load balancer admits the gateway's VPC link and no CIDR.
    link_group = next(r for r in resources if r["urn"].endswith("::api-vpc-link-sg"))
    lb_ingress = [r["inputs"] for r in resources if r["urn"].split("::")[-1].startswith(
        "inference-fleet-nlb-in")]
    assert lb_ingress and all(i.get("referencedSecurityGroupId") == link_group["id"]
                              and "cidrIpv4" not in i for i in lb_ingress)
    authorizer = _one(resources, "aws:apigatewayv2/authorizer:Authorizer")
    assert sorted(authorizer["inputs"]["jwtConfiguration"]["audiences"]) == sorted(
        r["id"] for r in resources if r["type"] == "aws:cognito/userPoolClient:UserPoolClient")


def test_the_deploying_role_may_publish_the_truststore_and_nothing_more(
        dev_export: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    resources = _resources(dev_export[1])
    bundle = _one(resources, "aws:s3/bucketObjectv2:BucketObjectv2")
    bucket = next(r for r in resources if r["urn"] == bundle["parent"])
    # The bucket's name is known in advance, so the key admits the upload from its creation (a
    # split deployment's workload uploads before the key layer holds its grants).
    assert bucket["outputs"]["bucket"] == "zero-trust-ai-dev-truststore-111122223333-eu-west-1"
    policies = {r["urn"].rsplit("::", 1)[1]: r for r in resources
                if r["type"] in ("aws:kms/keyPolicy:KeyPolicy", "aws:kms/key:Key")}
    holders = {name: [st for st in json.loads(p["inputs"]["policy"])["Statement"]
                      if st.get("Sid", "").startswith("AdministratorsPublishThroughS3")]
               for name, p in policies.items()}
    assert [name for name, statements in holders.items() if statements] == [
        "keys-inference", "keys-inference-policy"]
    assert holders["keys-inference"] == holders["keys-inference-policy"]
    assert policies["keys-inference"]["urn"] in bundle["dependencies"]
    [statement] = holders["keys-inference-policy"]
    assert sorted(statement["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey"]
    equals = statement["Condition"]["StringEquals"]
    assert equals["kms:EncryptionContext:aws:s3:arn"] == bucket["outputs"]["arn"]
    assert equals["kms:ViaService"] == "s3.eu-west-1.amazonaws.com"


def test_analyze_rejects_an_export_with_the_default_endpoint_re_enabled(
        dev_export: tuple[subprocess.CompletedProcess[str], Path], tmp_path: Path) -> None:
    prod_export = dev_export[1]  # a combined stack's export: the keys are in it
    document = json.loads(prod_export.read_text())
    api = _one(document["deployment"]["resources"], "aws:apigatewayv2/api:Api")
    for key in ("inputs", "outputs"):
        api[key]["disableExecuteApiEndpoint"] = False
    tampered = tmp_path / "default-endpoint.json"
    tampered.write_text(json.dumps(document))
    run = ztai("policy", "analyze", "--file", str(tampered), "--json")
    assert run.returncode == 1, run.stdout + run.stderr
    report = json.loads(run.stdout)
    assert {(v["policy"], v["urn"]) for v in report["violations"]} == {
        ("api-default-endpoint-disabled", api["urn"])}
    # The untouched export passes, so the violation is the edit's.
    assert ztai("policy", "analyze", "--file", str(prod_export)).returncode == 0


# -- egress-free segments: the three doctored exports the last review passed ---------------------
def _add(resources: list[dict[str, Any]], parent: dict[str, Any], token: str, name: str,
         resource_id: str, props: dict[str, Any]) -> str:
    urn: str = parent["urn"].rsplit("::", 1)[0] + f"${token}::{name}"
    resources.append({"urn": urn, "custom": True, "type": token, "id": resource_id,
                      "parent": parent["urn"], "inputs": dict(props),
                      "outputs": {**props, "id": resource_id}})
    return urn


def test_analyze_rejects_the_ways_out_the_last_review_found(
        dev_export: tuple[subprocess.CompletedProcess[str], Path], tmp_path: Path) -> None:
    document = json.loads(dev_export[1].read_text())
    resources: list[dict[str, Any]] = document["deployment"]["resources"]
    [vpc] = [r for r in resources if r["urn"].endswith("::network-data-vpc")]
    [table] = [r for r in resources if r["urn"].endswith("::network-data-private-rt")]
    policy = json.dumps({"Statement": [{
        "Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*",
        "Condition": {"StringEquals": {"aws:PrincipalAccount": "111122223333"}}}]})
    doctored = {
        # An interface endpoint to someone's endpoint service: AWS ignores its policy.
        _add(resources, vpc, "aws:ec2/vpcEndpoint:VpcEndpoint", "partner-link", "vpce-0partner",
             {"vpcId": vpc["id"], "vpcEndpointType": "Interface", "policy": policy,
              "serviceName": "com.amazonaws.vpce.eu-west-1.vpce-svc-0123456789abcdef0"}),
        # A peering connection accepted here, and a route to a private CIDR through it.
        _add(resources, vpc, "aws:ec2/vpcPeeringConnectionAccepter:VpcPeeringConnectionAccepter",
             "accept-peer", "pcx-0peer", {"vpcPeeringConnectionId": "pcx-0peer", "autoAccept": True,
                                          "vpcId": vpc["id"], "peerVpcId": "vpc-0foreign"}),
        _add(resources, table, "aws:ec2/route:Route", "to-peer", "r-0peer",
             {"routeTableId": table["id"], "destinationCidrBlock": "10.50.0.0/16",
              "vpcPeeringConnectionId": "pcx-0peer"}),
        # A VPC Lattice service network reaching into the VPC.
        _add(resources, vpc, "aws:vpclattice/serviceNetworkVpcAssociation:ServiceNetworkVpcAssociation",
             "lattice", "snva-0abc", {"vpcIdentifier": vpc["id"], "serviceNetworkIdentifier": "sn-0abc"}),
    }
    tampered = tmp_path / "ways-out.json"
    tampered.write_text(json.dumps(document))
    run = ztai("policy", "analyze", "--file", str(tampered), "--json")
    assert run.returncode == 1, run.stdout + run.stderr
    report = json.loads(run.stdout)
    assert {v["urn"] for v in report["violations"]
            if v["policy"] == "egress-free-segment-no-internet-path"} == doctored


# -- egress-free segments: the second review's doctored exports ---------------------------------
def test_analyze_rejects_service_endpoints_dns_forwarding_and_a_public_allow_list(
        dev_export: tuple[subprocess.CompletedProcess[str], Path], tmp_path: Path) -> None:
    document = json.loads(dev_export[1].read_text())
    resources: list[dict[str, Any]] = document["deployment"]["resources"]
    by_name = {r["urn"].rsplit("::", 1)[1]: r for r in resources}
    kms, vpc = by_name["network-inference-kms"], by_name["network-data-vpc"]
    # 1. A copy of the kms endpoint to SQS, its policy pinned to our principals only.
    sqs_policy = json.dumps({"Statement": [{
        "Effect": "Allow", "Principal": "*", "Action": "sqs:*", "Resource": "*",
        "Condition": {"StringEquals": {"aws:PrincipalAccount": "111122223333"}}}]})
    sqs = _add(resources, by_name["network-inference-vpc"], "aws:ec2/vpcEndpoint:VpcEndpoint",
               "network-inference-sqs", "vpce-0sqs",
               {**kms["outputs"], "serviceName": "com.amazonaws.eu-west-1.sqs", "policy": sqs_policy})
    # 2. Forwarding x.eu-west-1.amazonaws.com (which the firewall allows) to a name server outside.
    _add(resources, vpc, "aws:route53/resolverEndpoint:ResolverEndpoint", "outbound", "rslvr-out-0x",
         {"direction": "OUTBOUND", "securityGroupIds": ["sg-0x"],
          "ipAddresses": [{"subnetId": "subnet-0x"}, {"subnetId": "subnet-0y"}]})
    _add(resources, vpc, "aws:route53/resolverRule:ResolverRule", "forward-x", "rslvr-rr-0x",
         {"ruleType": "FORWARD", "domainName": "x.eu-west-1.amazonaws.com",
          "resolverEndpointId": "rslvr-out-0x", "targetIps": [{"ip": "203.0.113.53", "port": 53}]})
    association = _add(resources, vpc, "aws:route53/resolverRuleAssociation:ResolverRuleAssociation",
                       "forward-x-data", "rslvr-rrassoc-0x",
                       {"resolverRuleId": "rslvr-rr-0x", "vpcId": vpc["id"]})
    # 3. Every .com, .net and .io name on the allow list.
    for key in ("inputs", "outputs"):
        by_name["network-dns-allowed"][key]["domains"] += ["*.com", "*.net", "*.io"]
    tampered = tmp_path / "ways-out-2.json"
    tampered.write_text(json.dumps(document))
    run = ztai("policy", "analyze", "--file", str(tampered), "--json")
    assert run.returncode == 1, run.stdout + run.stderr
    found = {(v["policy"], v["urn"]) for v in json.loads(run.stdout)["violations"]}
    assert found == {
        ("egress-free-segment-no-internet-path", sqs),
        ("vpc-endpoint-policy-restrictive", sqs),
        ("egress-free-segment-no-internet-path", association),
        ("egress-free-segment-dns-firewall", by_name["network-dns-allow-aws"]["urn"]),
    }
