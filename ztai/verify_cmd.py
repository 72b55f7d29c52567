"""`ztai verify --stack NAME`: what is deployed, judged by the policy pack and compared with the state.

    ztai verify --stack NAME [--region R] [--state FILE] [--json] [--require-trail]
                [--policy-config PATH] [--policy-pack DIR] [--project-dir DIR]

Reads through boto3 (read-only calls, ztai_runtime/deployed.py) the environment's keys (policy,
rotation, state), VPCs, endpoint policies, flow logs and trails, and in prod whether the alarm
topics have confirmed subscriptions (ztai/alarm_subscriptions.py); runs the policy pack over them as
`ztai policy analyze` runs it over an export (ztai/drift.py builds the resources); with `--state`
(a `pulumi stack export` file) reports every difference from the state. Exit 0 clean, 1 a
mandatory violation, a finding or drift, 2 bad input (unknown stack, unreadable state file, no
credentials or Region, access denied).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ztai.alarm_subscriptions import (
    CHECKED_ENVIRONMENTS,
    TopicSubscriptions,
    configured_endpoints,
    read_alarm_topics,
    subscription_findings,
)
from ztai.errors import EXIT_OK, EXIT_VIOLATION, UsageError
from ztai.project import find_project, use_project
from ztai_runtime.deployed import Deployment, alias_prefix, audit_trail_name

if TYPE_CHECKING:  # the analyzer loads grpc and pulumi: only when a verify runs
    from ztai.policy.analyzer import PolicyResult

ENVIRONMENTS = ("dev", "staging", "prod")  # components/stack_config.py ENVIRONMENTS
# Stack key `layer`: the layers that deploy keys or the workload. A bootstrap stack (CI identity,
# state backend) or the organisation's (guardrails) has neither to verify.
VERIFIED_LAYERS = ("combined", "keys", "workload")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
# The rules that judge what verify reads by itself: keys, aliases, VPCs, endpoints and flow logs.
# Without --state the other rules would judge those resources without the rest of the stack (the
# two-person rule without the JIT API function and the elevation roles it admits, the monthly
# rotation rule without the schedule, the DNS rule without the firewall), so they are not judged.
STANDALONE_RULES = frozenset({
    "kms-key-rotation-enabled", "kms-key-deletion-window", "kms-key-policy-least-privilege",
    "kms-no-lockout-bypass", "model-key-attestation-required", "model-key-alias-pinned",
    "vpc-endpoint-policy-present", "vpc-endpoint-policy-restrictive", "vpc-flow-logs-enabled",
})


def _service_grantee(principal: str) -> bool:
    """A grantee an AWS service's own grant names (for a table, a volume, an image): its service
    principal (DynamoDB), a service-linked role (Auto Scaling, Image Builder) or EC2's
    infrastructure session for an instance's volumes. Not checked against AWS: a service that
    names another grantee shows as a finding to look at, not as a pass."""
    return (principal.endswith(".amazonaws.com") or ":role/aws-service-role/" in principal
            or ":assumed-role/aws:ec2-infrastructure/" in principal)


@dataclass(frozen=True)
class Finding:
    """A status the pack does not see (it judges configuration, not whether a key is enabled or a
    trail is logging now). `blocking` findings fail the run (exit 1); the others are reported."""

    kind: str
    resource: str
    message: str
    blocking: bool = True

    def as_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "resource": self.resource, "message": self.message,
                "blocking": self.blocking}


def register(commands: Any) -> None:  # argparse's subparsers action has no public type
    verify = commands.add_parser(
        "verify", help="check what is deployed against the policy pack and the stack's state",
        description="Read what is deployed for the stack's environment through the AWS APIs "
                    "(read-only: key policies, rotation and state; VPC endpoint policies; flow "
                    "logs; trails), run the policy pack over it as `ztai policy analyze` does, and "
                    "with --state report every difference from the stack's state (drift). Uses "
                    "the standard AWS credential chain (AWS_PROFILE, environment, SSO, instance "
                    "role); the IAM permissions it needs are in docs/drift.md.",
        epilog="for this command: 0 clean; 1 a mandatory violation, a finding (a key not enabled, "
               "a flow log not recording, a trail stopped) or drift; 2 an unknown stack, an "
               "unusable state file, no credentials or Region, or access denied")
    verify.add_argument("--stack", required=True, metavar="NAME",
                        help="stack name: its environment and Region come from stacks/Pulumi.NAME.yaml")
    verify.add_argument("--region", metavar="R",
                        help="AWS Region to read (default: the stack's aws:region)")
    verify.add_argument("--state", type=Path, metavar="FILE",
                        help="the stack's state, as `pulumi stack export --file FILE` writes it: "
                             "differences from it are reported as drift (without it, drift is "
                             "not compared)")
    verify.add_argument("--json", action="store_true",
                        help="one JSON document on stdout (findings, drift, violations, summary) "
                             "instead of the text report")
    verify.add_argument("--require-trail", action="store_true",
                        help="fail (exit 1) when no CloudTrail trail is seen in the Region; without "
                             "it the absence of a trail is reported but does not fail the run")
    verify.add_argument("--policy-config", type=Path, metavar="PATH",
                        help="policy configuration JSON, as `pulumi preview --policy-pack-config` "
                             "takes it")
    verify.add_argument("--policy-pack", type=Path, metavar="DIR",
                        help="policy pack directory (default: PROJECT/policy_packs/zero_trust)")
    verify.add_argument("--project-dir", type=Path, metavar="DIR",
                        help="directory holding Pulumi.yaml (default: the nearest one at or above "
                             "the current directory)")
    verify.set_defaults(handler=run)


# -- inputs ---------------------------------------------------------------------------------------
def _stack_settings(args: argparse.Namespace, project_dir: Path) -> tuple[str, str, str, dict[str, str]]:
    """(project, environment, Region, config) of the stack, or UsageError."""
    from ztai.stackfile import StackFileError, load_stack
    try:
        stack_file = load_stack(project_dir, args.stack)
    except StackFileError as error:
        raise UsageError(str(error)) from None
    environment = stack_file.config.get(f"{stack_file.project}:environment")
    if environment not in ENVIRONMENTS:
        raise UsageError(f"stack {args.stack}: {stack_file.project}:environment is "
                         f"{json.dumps(environment)}; it must be one of {', '.join(ENVIRONMENTS)} "
                         "(it names the keys' aliases and the VPCs' tags verify reads)")
    layer = stack_file.config.get(f"{stack_file.project}:layer", "combined")
    if layer not in VERIFIED_LAYERS:
        raise UsageError(f"stack {args.stack} is of layer {layer!r}: verify checks the keys and the "
                         f"workload, so stacks of layer {', '.join(VERIFIED_LAYERS)}")
    region = args.region or stack_file.region
    if not region:
        raise UsageError(f"stack {args.stack} sets no aws:region; pass --region R")
    if not _REGION.match(region):
        raise UsageError(f"--region {region!r} is not an AWS Region name (e.g. eu-west-1)")
    return stack_file.project, environment, region, stack_file.config


def _load_state(path: Path, stack: str, project: str) -> list[Any]:
    from ztai.export import ExportFileError, analyzed_resources, load_export
    try:
        document = load_export(path)
        state_stack, state_project, resources = analyzed_resources(document)
    except ExportFileError as error:
        raise UsageError(f"--state {path}: {error}") from None
    if not resources:
        raise UsageError(f"--state {path} holds no resources; give the export of the deployed "
                         f"stack (`pulumi stack export --stack {stack} --file FILE`)")
    if (state_stack, state_project) != (stack, project):
        raise UsageError(f"--state {path} is the state of stack {state_stack!r} of project "
                         f"{state_project!r}, not of stack {stack!r} of {project!r}; export the "
                         f"right one (`pulumi stack export --stack {stack} --file FILE`)")
    return resources


def clients(region: str) -> dict[str, Any]:
    """The boto3 clients verify reads with (replaced in tests only by moto's, through boto3)."""
    import boto3
    session = boto3.session.Session(region_name=region)
    return {name: session.client(name) for name in ("kms", "ec2", "cloudtrail", "sns")}


def _read(environment: str, region: str) -> tuple[Deployment, list[TopicSubscriptions]]:
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

    from ztai_runtime.deployed import read_deployment
    try:
        readers = clients(region)
        deployment = read_deployment(environment, region, kms=readers["kms"], ec2=readers["ec2"],
                                     cloudtrail=readers["cloudtrail"])
        topics = (read_alarm_topics(readers["sns"], environment)
                  if environment in CHECKED_ENVIRONMENTS else [])
        return deployment, topics
    except NoCredentialsError:
        raise UsageError("no AWS credentials found: sign in (aws sso login, AWS_PROFILE, or the "
                         "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY variables) with a role that has "
                         "the read-only permissions listed in docs/drift.md") from None
    except NoRegionError:
        raise UsageError("no AWS Region: pass --region R or set aws:region in the stack") from None
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        operation = error.operation_name
        if code in ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation"):
            raise UsageError(f"access denied to {operation} in {region}: the role needs the "
                             "read-only permissions listed in docs/drift.md") from None
        if code in ("ExpiredToken", "ExpiredTokenException", "UnrecognizedClientException",
                    "InvalidClientTokenId", "AuthFailure"):
            raise UsageError(f"the AWS credentials were refused ({code}) by {operation}: sign in "
                             "again") from None
        raise UsageError(f"{operation} failed in {region}: {code}: "
                         f"{error.response.get('Error', {}).get('Message', '')}") from None
    except BotoCoreError as error:
        raise UsageError(f"cannot reach AWS in {region}: {error}") from None


# -- findings the pack does not make --------------------------------------------------------------
def status_findings(deployment: Deployment, *, require_trail: bool) -> list[Finding]:
    """What could not be read (blocking), keys not enabled, flow logs not recording, and the
    trails: none seen is reported (a blocking finding only with --require-trail, as the stack
    deploys no trail of its own yet); a trail that stopped logging always blocks; so does having
    trails of which none logs every Region with log file validation."""
    from ztai.drift import recording
    findings: list[Finding] = []
    # What could not be read was not checked. An insider may deny the verifying role
    # kms:GetKeyPolicy in the very policy they changed: that must fail the run, not pass it.
    findings += [Finding("unreadable", what.split(":", 1)[0], f"could not read {what}: it was not "
                         "checked (the verifying role needs the permissions in docs/drift.md, and "
                         "no key policy may deny them to it)") for what in deployment.unreadable]
    for key in deployment.keys:
        if key.state != "Enabled":
            findings.append(Finding("key-state", key.alias, f"key {key.key_id} is {key.state}"
                                    + (f" (deleted in {key.pending_deletion_days} days)"
                                       if key.pending_deletion_days else "")
                                    + ": the stack's keys must be Enabled"))
        for grant_id, grantee, operations in key.grants:
            if not _service_grantee(grantee):
                findings.append(Finding(
                    "key-grant", key.alias,
                    f"grant {grant_id} on key {key.key_id} lets {grantee} {', '.join(operations)}: the "
                    "stack makes no grant; AWS services make them for their own resources, to a "
                    "service principal or service-linked role (revoke it: aws kms revoke-grant)"))
    for log in deployment.flow_logs:
        if not recording(log):
            findings.append(Finding("flow-log-status", log.flow_log_id,
                                    f"flow log of {log.resource_id} is {log.status or 'in no status'}"
                                    f", delivery {log.delivery_status or 'unknown'}: it records "
                                    "nothing"))
    if not deployment.keys:
        findings.append(Finding("no-keys", alias_prefix(deployment.environment),
                                f"no alias {alias_prefix(deployment.environment)}* in "
                                f"{deployment.region}: nothing of the stack's key hierarchy is "
                                "deployed here (wrong Region or account?)"))
    if not deployment.vpcs:
        findings.append(Finding("no-vpcs", f"environment={deployment.environment}",
                                f"no VPC tagged project=zero-trust-ai, environment="
                                f"{deployment.environment} in {deployment.region}: the network is "
                                "not deployed here (wrong Region or account, or another layer's stack)",
                                blocking=False))
    if not deployment.trails:
        findings.append(Finding("no-trail", deployment.region,
                                f"no CloudTrail trail is seen in {deployment.region}: nothing "
                                "records who changed a key policy or stopped a flow log; the key "
                                "layer deploys the audit trail (docs/audit-trail.md)",
                                blocking=require_trail))
        return findings
    for trail in deployment.trails:
        if trail.is_logging is False:
            findings.append(Finding("trail-stopped", trail.arn, f"trail {trail.name} is not logging "
                                    "(StopLogging, or never started)"))
        for what, error in trail.delivery_errors:
            findings.append(Finding("trail-delivery-error", trail.arn,
                                    f"trail {trail.name} fails to deliver {what}: {error} (a disabled "
                                    "or re-policied key, or a changed bucket policy, stops delivery)"))
    audit = audit_trail_name(deployment.environment)
    if not any(trail.name == audit or trail.arn.endswith(f":trail/{audit}") for trail in deployment.trails):
        findings.append(Finding("no-audit-trail", deployment.region,
                                f"the stack's audit trail {audit} is not seen in {deployment.region} "
                                "(the key layer deploys it: docs/audit-trail.md)", blocking=require_trail))
    complete = [trail for trail in deployment.trails
                if trail.is_logging and trail.multi_region and trail.log_file_validation]
    if not complete:
        gaps = "; ".join(f"{trail.name}: " + ", ".join(
            what for what, missing in (("not logging", not trail.is_logging),
                                       ("one Region only", not trail.multi_region),
                                       ("no log file validation", not trail.log_file_validation))
            if missing) for trail in deployment.trails)
        findings.append(Finding("trail-incomplete", deployment.region,
                                "no trail logs every Region with log file validation (" + gaps + ")"))
    return findings


# -- the command ----------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> int:
    from ztai import cli
    project_dir = use_project(args.project_dir or find_project(Path.cwd()))
    project, environment, region, config = _stack_settings(args, project_dir)
    state_resources = _load_state(args.state, args.stack, project) if args.state else None
    user_config = cli._policy_config(args.policy_config)
    pack_dir = cli._pack_dir(args.policy_pack, [project_dir / cli.DEFAULT_PACK])

    deployment, alarm_topics = _read(environment, region)

    from ztai.drift import StateView, analyzed_view, compare
    from ztai.policy.analyzer import PolicyPackProcess, analyze, pack_environment
    from ztai.policy.config import PolicyConfigError

    state = (StateView.of(state_resources, region, config.get("aws:region", region))
             if state_resources is not None else None)
    drift = compare(state, deployment) if state is not None else []
    findings = status_findings(deployment, require_trail=args.require_trail)
    findings += [Finding(f.kind, f.resource, f.message, f.blocking)
                 for f in subscription_findings(
                     alarm_topics, environment, region,
                     configured_endpoints(config.get(f"{project}:alarmSubscriptions", [])))]
    view = analyzed_view(deployment, stack=args.stack, project=project, state=state)
    with PolicyPackProcess(pack_dir, env=pack_environment(project, args.stack, config, False)) as pack:
        try:
            result = analyze(pack, view, user_config=user_config, project=project, stack=args.stack,
                             stack_config=config, dry_run=False)
        except PolicyConfigError as error:
            raise UsageError(f"policy config: {error}") from None
    warnings: list[str] = []
    not_judged: list[str] = []
    if state is None:
        result, not_judged = standalone(result)
        warnings.append("drift was not compared: pass --state FILE (`pulumi stack export`) to "
                        "compare what is deployed with the stack's state and to judge it with "
                        f"every rule; without it {len(not_judged)} rules that need the rest of the "
                        "stack were not judged")
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    failed = bool(result.mandatory_violations or drift or any(f.blocking for f in findings))
    if args.json:
        cli._emit(_json_report(args.stack, deployment, result, drift, findings, warnings,
                               not_judged, compared=state is not None, failed=failed))
    else:
        cli._emit(_text_report(args.stack, deployment, result, drift, findings, not_judged,
                               compared=state is not None, pack_label=f"local: {pack_dir}",
                               failed=failed))
    return EXIT_VIOLATION if failed else EXIT_OK


def standalone(result: PolicyResult) -> tuple[PolicyResult, list[str]]:
    """The result of STANDALONE_RULES alone, and the names of the rules left out."""
    from ztai.policy.analyzer import PolicyResult

    def judged(name: str) -> bool:
        return name in STANDALONE_RULES
    left_out = sorted(policy.name for policy in result.policies if not judged(policy.name))
    return PolicyResult(
        pack_name=result.pack_name, pack_version=result.pack_version,
        policies=[policy for policy in result.policies if judged(policy.name)],
        violations=[violation for violation in result.violations if judged(violation.policy)],
        exclusions=[exclusion for exclusion in result.exclusions if judged(exclusion.policy)],
        config={name: value for name, value in result.config.items() if judged(name)}), left_out


def _text_report(stack: str, deployment: Deployment, result: Any, drift: list[Any],
                 findings: list[Finding], not_judged: list[str], *, compared: bool,
                 pack_label: str, failed: bool) -> str:
    from ztai.report import render_policies
    lines = [f"Verifying stack {stack} (environment {deployment.environment}) in {deployment.region}:",
             f"    read {len(deployment.keys)} key(s), {len(deployment.vpcs)} VPC(s), "
             f"{len(deployment.endpoints)} VPC endpoint(s), {len(deployment.flow_logs)} flow "
             f"log(s), {len(deployment.trails)} trail(s)", ""]
    lines.append("Status:")
    if not findings:
        lines.append("    every key enabled, every flow log recording, a trail logging")
    for finding in findings:
        mark = "FAILED" if finding.blocking else "noted"
        lines.append(f"    - [{mark}] {finding.kind} {finding.resource}: {finding.message}")
    lines += ["", "Drift:"]
    if not compared:
        lines.append("    not compared (no --state)")
    elif not drift:
        lines.append("    none: what is deployed is what the state holds")
    for item in drift:
        lines.append(f"    - {item.kind} {item.resource} {item.change}"
                     + (f" ({item.urn})" if item.urn else ""))
        lines += [f"        {detail}" for detail in item.details]
    lines += ["", *render_policies(result, pack_label)]
    if not_judged:
        lines.append(f"    {len(not_judged)} more policies not judged: they need resources verify does "
                     "not read; pass --state to judge them (--json lists them)")
    lines += ["",
              f"Result: {'FAILED' if failed else 'PASSED'}", ""]
    return "\n".join(lines)


def _json_report(stack: str, deployment: Deployment, result: Any, drift: list[Any],
                 findings: list[Finding], warnings: list[str], not_judged: list[str], *,
                 compared: bool, failed: bool) -> str:
    policies = {policy.name: policy for policy in result.policies}
    document = {
        "mode": "verify", "stack": stack, "environment": deployment.environment,
        "region": deployment.region,
        "read": {"keys": [key.alias for key in deployment.keys],
                 "vpcs": [vpc.vpc_id for vpc in deployment.vpcs],
                 "endpoints": [endpoint.endpoint_id for endpoint in deployment.endpoints],
                 "flowLogs": [log.flow_log_id for log in deployment.flow_logs],
                 "trails": [trail.arn for trail in deployment.trails]},
        "findings": [finding.as_json() for finding in findings],
        "driftCompared": compared,
        "drift": [item.as_json() for item in drift],
        "violations": [{"policy": v.policy, "level": v.level, "severity": v.severity,
                        "control": policies[v.policy].control if v.policy in policies else "",
                        "urn": v.urn, "message": v.message} for v in result.violations],
        "policyPack": {"name": result.pack_name, "version": result.pack_version,
                       "policiesJudged": [policy.name for policy in result.policies],
                       "policiesNotJudged": not_judged},
        "summary": {"mandatoryViolations": len(result.mandatory_violations),
                    "advisoryViolations": len(result.violations) - len(result.mandatory_violations),
                    "blockingFindings": sum(1 for f in findings if f.blocking),
                    "drift": len(drift), "passed": not failed},
        "warnings": warnings,
    }
    return json.dumps(document, indent=2) + "\n"
