"""What `ztai verify` hands the policy pack, and how the deployment differs from the stack's state.

The view the pack judges is shaped like a `pulumi stack export` read by `ztai policy analyze`: one
resource per deployed key (`aws:kms/key:Key` with its current `policy`, rotation and tags), alias,
VPC, VPC endpoint (`aws:ec2/vpcEndpoint:VpcEndpoint` with its current `policy`) and active flow log
(`aws:ec2/flowLog:FlowLog`). A deployed key has exactly one policy, so it is carried on the key;
no `aws:kms/keyPolicy:KeyPolicy` is made up for it.

With the stack's state, the view is the state with those resources replaced by what is deployed:
a resource the state names keeps its URN and its other properties (the deletion window, which KMS
does not report for a key not pending deletion), one the state holds but AWS no longer has leaves
the view (a deleted flow log then fails vpc-flow-logs-enabled), and one AWS has but the state does
not joins it. The rules that read links between resources (the two-person rule reads the JIT API
function and the elevation roles) then see the whole stack, as in a preview.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ztai.export import SECRET_SIG, SECRET_VALUE
from ztai.policy.analyzer import AnalyzedResource
from ztai_runtime.deployed import (
    DeployedEndpoint,
    DeployedFlowLog,
    DeployedKey,
    DeployedVpc,
    Deployment,
)

KEY = "aws:kms/key:Key"
KEY_POLICY = "aws:kms/keyPolicy:KeyPolicy"
ALIAS = "aws:kms/alias:Alias"
VPC = "aws:ec2/vpc:Vpc"
ENDPOINT = "aws:ec2/vpcEndpoint:VpcEndpoint"
ENDPOINT_POLICY = "aws:ec2/vpcEndpointPolicy:VpcEndpointPolicy"
FLOW_LOG = "aws:ec2/flowLog:FlowLog"
STACK = "pulumi:pulumi:Stack"
# EC2 documents ACTIVE as the one FlowLogStatus; a flow log in any other status, or whose delivery
# FAILED, records nothing, so it does not count as the VPC's flow log.
ACTIVE = "ACTIVE"
# Statement elements whose value may be one string or a list meaning the same (IAM policy grammar).
_SET_VALUED = ("Action", "NotAction", "Resource", "NotResource")


@dataclass(frozen=True)
class Drift:
    """One difference between the state and what is deployed."""

    kind: str  # key, key-policy, key-rotation, alias, vpc, endpoint, endpoint-policy, flow-log
    resource: str  # what AWS calls it: an alias name, an endpoint or flow log id
    change: str  # changed, added (deployed, not in the state), removed (in the state, not deployed)
    urn: str = ""
    details: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "resource": self.resource, "change": self.change,
                "urn": self.urn or None, "details": list(self.details)}


# -- policies as data ------------------------------------------------------------------------------
def _unsecret(value: Any) -> Any:
    if isinstance(value, Mapping) and value.get(SECRET_SIG) == SECRET_VALUE:
        return value.get("value")
    return value


def _set(value: Any) -> Any:
    """One string or a list of them, as IAM reads both: a sorted list without repeats."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return sorted(set(value))
    return value


def _normal_statement(statement: Any) -> Any:
    if not isinstance(statement, Mapping):
        return statement
    normal = dict(statement)
    for name in _SET_VALUED:
        if name in normal:
            normal[name] = _set(normal[name])
    for name in ("Principal", "NotPrincipal"):
        value = normal.get(name)
        if isinstance(value, Mapping):
            normal[name] = {kind: _set(ids) for kind, ids in value.items()}
    condition = normal.get("Condition")
    if isinstance(condition, Mapping):
        normal["Condition"] = {operator: ({key: _set(values) for key, values in block.items()}
                                          if isinstance(block, Mapping) else block)
                               for operator, block in condition.items()}
    return normal


def normal_policy(document: Any) -> Any:
    """A policy as data compared as IAM reads it: JSON text parsed, one string the same as a list
    of it, lists of values and statements in any order, `Statement` as a list. Not JSON: the text itself."""
    document = _unsecret(document)
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except ValueError:
            return document
    if not isinstance(document, Mapping):
        return document
    normal = dict(document)
    statements = normal.get("Statement")
    statements = [statements] if isinstance(statements, Mapping) else statements
    if isinstance(statements, list):
        # IAM reads the statements as a set: their order means nothing.
        normal["Statement"] = sorted((_normal_statement(statement) for statement in statements),
                                     key=_canonical)
    return normal


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _by_sid(statements: Any) -> dict[str, Any]:
    """Statement label -> statement; a statement without a Sid is labelled by its content."""
    labelled: dict[str, Any] = {}
    for index, statement in enumerate(statements if isinstance(statements, list) else []):
        sid = statement.get("Sid") if isinstance(statement, Mapping) else None
        label = f"Sid {sid}" if isinstance(sid, str) and sid else f"statement {_canonical(statement)}"
        if label in labelled:  # a repeated Sid: KMS refuses it, a hand-written policy may not
            label = f"{label} (#{index})"
        labelled[label] = statement
    return labelled


def policy_differences(expected: Any, actual: Any) -> list[str]:
    """What differs between two policies, statement by statement (by Sid); [] when IAM would read
    them alike."""
    want, have = normal_policy(expected), normal_policy(actual)
    if _canonical(want) == _canonical(have):
        return []
    if not isinstance(want, Mapping) or not isinstance(have, Mapping):
        return ["the policy is " + ("missing" if have is None else "not a JSON object" if not
                                    isinstance(have, Mapping) else "not what the state holds")]
    differences = []
    for name in sorted(set(want) | set(have)):
        if name != "Statement" and _canonical(want.get(name)) != _canonical(have.get(name)):
            differences.append(f"{name}: {json.dumps(want.get(name))} in the state, "
                               f"{json.dumps(have.get(name))} deployed")
    wanted, found = _by_sid(want.get("Statement")), _by_sid(have.get("Statement"))
    differences += [f"added {label}: {_canonical(found[label])}" for label in found if label not in wanted]
    differences += [f"removed {label}" for label in wanted if label not in found]
    for label in wanted:
        if label in found and _canonical(wanted[label]) != _canonical(found[label]):
            parts = sorted(set(wanted[label]) | set(found[label]))
            changed = [part for part in parts
                       if _canonical(wanted[label].get(part)) != _canonical(found[label].get(part))]
            differences.append(f"changed {label} ({', '.join(changed)}): now "
                               f"{_canonical(found[label])}")
    return differences or ["the policies differ in a way no statement shows"]


# -- the state ------------------------------------------------------------------------------------
def _text(resource: AnalyzedResource, name: str) -> str:
    value = _unsecret(resource.properties.get(name))
    return value if isinstance(value, str) else ""


def _key_id(value: str) -> str:
    return value.rsplit(":key/", 1)[1] if value.startswith("arn:") and ":key/" in value else value


def _log_group(destination: str) -> str:
    """A CloudWatch Logs destination as its log group name (the ARN, with or without `:*`, or the
    name itself)."""
    if ":log-group:" in destination:
        return destination.split(":log-group:", 1)[1].removesuffix(":*")
    return destination


@dataclass
class StateView:
    """The resources of a stack's state that `ztai verify` compares, indexed by AWS id."""

    resources: list[AnalyzedResource]
    keys: dict[str, AnalyzedResource] = field(default_factory=dict)
    key_policies: dict[str, list[AnalyzedResource]] = field(default_factory=dict)
    aliases: dict[str, AnalyzedResource] = field(default_factory=dict)
    vpcs: dict[str, AnalyzedResource] = field(default_factory=dict)
    endpoints: dict[str, AnalyzedResource] = field(default_factory=dict)
    endpoint_policies: dict[str, list[AnalyzedResource]] = field(default_factory=dict)
    flow_logs: dict[str, AnalyzedResource] = field(default_factory=dict)

    @classmethod
    def of(cls, resources: Sequence[AnalyzedResource], region: str, default_region: str) -> StateView:
        """Index the resources deployed in `region` (those with a `region` property of another
        Region, e.g. key replicas' aliases, are outside what one run reads)."""
        view = cls(resources=list(resources))
        for resource in resources:
            where = _text(resource, "region") or default_region
            if where != region or not resource.custom:
                continue
            if resource.type == KEY:
                view.keys[_text(resource, "keyId") or _text(resource, "id")] = resource
            elif resource.type == KEY_POLICY:
                view.key_policies.setdefault(_key_id(_text(resource, "keyId")), []).append(resource)
            elif resource.type == ALIAS:
                view.aliases[_text(resource, "name")] = resource
            elif resource.type == VPC:
                view.vpcs[_text(resource, "id")] = resource
            elif resource.type == ENDPOINT:
                view.endpoints[_text(resource, "id")] = resource
            elif resource.type == ENDPOINT_POLICY:
                view.endpoint_policies.setdefault(_text(resource, "vpcEndpointId"), []).append(resource)
            elif resource.type == FLOW_LOG:
                view.flow_logs[_text(resource, "id")] = resource
        return view

    def key_policy(self, key_id: str) -> Any:
        """The policy the state says the key has: its KeyPolicy's (the last, as KMS keeps the last
        write), else the key's own."""
        policies = self.key_policies.get(key_id)
        if policies:
            return policies[-1].properties.get("policy")
        key = self.keys.get(key_id)
        return key.properties.get("policy") if key is not None else None

    def endpoint_policy(self, endpoint_id: str) -> Any:
        policies = self.endpoint_policies.get(endpoint_id)
        if policies:
            return policies[-1].properties.get("policy")
        endpoint = self.endpoints.get(endpoint_id)
        return endpoint.properties.get("policy") if endpoint is not None else None


# -- drift ----------------------------------------------------------------------------------------
def _key_drift(state: StateView, deployment: Deployment) -> list[Drift]:
    drift: list[Drift] = []
    deployed = {key.key_id: key for key in deployment.keys}
    for key in deployment.keys:
        alias = state.aliases.get(key.alias)
        expected_target = _key_id(_text(alias, "targetKeyId")) if alias is not None else ""
        if alias is not None and expected_target and expected_target != key.key_id:
            drift.append(Drift("alias", key.alias, "changed", alias.urn, (
                f"names key {key.key_id}; the state has it name {expected_target}",)))
        if key.key_id not in state.keys:
            if state.keys:  # a stack whose state holds no keys is another layer's
                drift.append(Drift("key", key.alias, "added", "", (
                    f"key {key.key_id} is named by an alias of the stack but is not in the state",)))
            continue
        state_key = state.keys[key.key_id]
        differences = policy_differences(state.key_policy(key.key_id), key.policy)
        if differences:
            holder = (state.key_policies.get(key.key_id) or [state_key])[-1]
            drift.append(Drift("key-policy", key.alias, "changed", holder.urn, tuple(differences)))
        rotation = []
        if key.rotation_enabled is not None:
            recorded = state_key.properties.get("enableKeyRotation") is True
            if recorded is not key.rotation_enabled:
                rotation.append(f"automatic rotation is {'on' if key.rotation_enabled else 'off'}; "
                                f"the state has it {'on' if recorded else 'off'}")
            period = state_key.properties.get("rotationPeriodInDays")
            if key.rotation_enabled and key.rotation_period_days is not None and period \
                    and period != key.rotation_period_days:
                rotation.append(f"rotates every {key.rotation_period_days} days; the state has {period}")
        if rotation:
            drift.append(Drift("key-rotation", key.alias, "changed", state_key.urn, tuple(rotation)))
    named = {key.alias for key in deployment.keys}
    for key_id, state_key in state.keys.items():
        if key_id not in deployed:
            drift.append(Drift("key", f"key {key_id}", "removed", state_key.urn, (
                "in the state, but no alias of the environment names it (deleted, or its alias "
                "moved or removed)",)))
    for name, alias in state.aliases.items():
        if name.startswith(f"alias/zero-trust-ai/{deployment.environment}/") and name not in named:
            drift.append(Drift("alias", name, "removed", alias.urn, ("in the state, not deployed",)))
    return drift


def _vpc_drift(state: StateView, deployment: Deployment) -> list[Drift]:
    """VPCs are found by their tags: one the state holds but not found was deleted or re-tagged
    (which also hides its endpoints and flow logs from this check)."""
    found = {vpc.vpc_id for vpc in deployment.vpcs}
    drift = [Drift("vpc", vpc_id, "removed", resource.urn, (
        "in the state, but no VPC with this id is tagged project=zero-trust-ai, environment="
        f"{deployment.environment} (deleted, or its tags changed)",))
        for vpc_id, resource in state.vpcs.items() if vpc_id not in found]
    if state.vpcs:
        drift += [Drift("vpc", vpc.vpc_id, "added", "", ("tagged as the environment's, not in the state",))
                  for vpc in deployment.vpcs if vpc.vpc_id not in state.vpcs]
    return drift


def _endpoint_drift(state: StateView, deployment: Deployment) -> list[Drift]:
    drift: list[Drift] = []
    deployed = {endpoint.endpoint_id: endpoint for endpoint in deployment.endpoints}
    for endpoint in deployment.endpoints:
        if endpoint.endpoint_id not in state.endpoints:
            drift.append(Drift("endpoint", endpoint.endpoint_id, "added", "", (
                f"{endpoint.service_name} in {endpoint.vpc_id} is not in the state",)))
            continue
        differences = policy_differences(state.endpoint_policy(endpoint.endpoint_id), endpoint.policy)
        if differences:
            holder = (state.endpoint_policies.get(endpoint.endpoint_id)
                      or [state.endpoints[endpoint.endpoint_id]])[-1]
            drift.append(Drift("endpoint-policy", endpoint.endpoint_id, "changed", holder.urn,
                               tuple(differences)))
    for endpoint_id, resource in state.endpoints.items():
        if endpoint_id not in deployed:
            drift.append(Drift("endpoint", endpoint_id, "removed", resource.urn,
                               ("in the state, not deployed",)))
    return drift


def _flow_log_drift(state: StateView, deployment: Deployment) -> list[Drift]:
    drift: list[Drift] = []
    deployed = {log.flow_log_id: log for log in deployment.flow_logs}
    for log in deployment.flow_logs:
        resource = state.flow_logs.get(log.flow_log_id)
        if resource is None:
            drift.append(Drift("flow-log", log.flow_log_id, "added", "", (
                f"a flow log of {log.resource_id} ({log.traffic_type}) is not in the state",)))
            continue
        details = []
        for name, have in (("vpcId", log.resource_id), ("trafficType", log.traffic_type),
                           ("logDestinationType", log.destination_type)):
            want = _text(resource, name)
            if want and have and want != have:
                details.append(f"{name} is {have}; the state has {want}")
        want_destination = _log_group(_text(resource, "logDestination"))
        if want_destination and log.destination and want_destination != _log_group(log.destination):
            details.append(f"logs to {log.destination}; the state has {_text(resource, 'logDestination')}")
        if details:
            drift.append(Drift("flow-log", log.flow_log_id, "changed", resource.urn, tuple(details)))
    for flow_log_id, resource in state.flow_logs.items():
        if flow_log_id not in deployed:
            drift.append(Drift("flow-log", flow_log_id, "removed", resource.urn, (
                f"the flow log of {_text(resource, 'vpcId')} is in the state, not deployed",)))
    return drift


def compare(state: StateView, deployment: Deployment) -> list[Drift]:
    """Every difference between the state and the deployment: keys (policy, rotation, alias
    targets), VPCs (existence), endpoints (existence, policy), flow logs (existence, traffic,
    destination)."""
    return [*_key_drift(state, deployment), *_vpc_drift(state, deployment),
            *_endpoint_drift(state, deployment), *_flow_log_drift(state, deployment)]


# -- the view the pack judges ---------------------------------------------------------------------
def _urn(stack: str, project: str, resource_type: str, name: str) -> str:
    return f"urn:pulumi:{stack}::{project}::{resource_type}::{name}"


def _key_properties(key: DeployedKey) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "id": key.key_id, "keyId": key.key_id, "arn": key.arn, "policy": key.policy or "",
        "customerMasterKeySpec": key.key_spec, "keyUsage": key.key_usage,
        "multiRegion": key.multi_region, "isEnabled": key.state == "Enabled",
        "enableKeyRotation": bool(key.rotation_enabled), "tags": dict(key.tags),
        "tagsAll": dict(key.tags)}
    if key.rotation_period_days is not None:
        properties["rotationPeriodInDays"] = key.rotation_period_days
    if key.pending_deletion_days is not None:
        properties["deletionWindowInDays"] = key.pending_deletion_days
    return properties


def _alias_properties(key: DeployedKey) -> dict[str, Any]:
    account_region = key.arn.split(":key/", 1)[0]
    return {"id": key.alias, "name": key.alias, "targetKeyId": key.key_id, "targetKeyArn": key.arn,
            "arn": f"{account_region}:{key.alias}"}


def _vpc_properties(vpc: DeployedVpc) -> dict[str, Any]:
    return {"id": vpc.vpc_id, "cidrBlock": vpc.cidr, "tags": dict(vpc.tags), "tagsAll": dict(vpc.tags)}


def _endpoint_properties(endpoint: DeployedEndpoint) -> dict[str, Any]:
    return {"id": endpoint.endpoint_id, "vpcId": endpoint.vpc_id, "serviceName": endpoint.service_name,
            "vpcEndpointType": endpoint.endpoint_type, "state": endpoint.state,
            "policy": endpoint.policy or "", "tags": dict(endpoint.tags), "tagsAll": dict(endpoint.tags)}


def _flow_log_properties(log: DeployedFlowLog) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "id": log.flow_log_id, "vpcId": log.resource_id, "trafficType": log.traffic_type,
        "logDestinationType": log.destination_type, "logDestination": log.destination,
        "tags": dict(log.tags), "tagsAll": dict(log.tags)}
    if log.max_aggregation_interval is not None:
        properties["maxAggregationInterval"] = log.max_aggregation_interval
    return properties


def recording(log: DeployedFlowLog) -> bool:
    return log.status == ACTIVE and log.delivery_status != "FAILED"


def _deployed_items(deployment: Deployment) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(type, AWS id, resource name, properties) of everything deployed, in the pack's property
    names. A key is named by its alias, which says what it is for."""
    items: list[tuple[str, str, str, dict[str, Any]]] = []
    for key in deployment.keys:
        items.append((KEY, key.key_id, key.alias, _key_properties(key)))
        items.append((ALIAS, key.alias, key.alias, _alias_properties(key)))
    items += [(VPC, vpc.vpc_id, vpc.vpc_id, _vpc_properties(vpc)) for vpc in deployment.vpcs]
    items += [(ENDPOINT, endpoint.endpoint_id, endpoint.endpoint_id, _endpoint_properties(endpoint))
              for endpoint in deployment.endpoints]
    items += [(FLOW_LOG, log.flow_log_id, log.flow_log_id, _flow_log_properties(log))
              for log in deployment.flow_logs if recording(log)]
    return items


def analyzed_view(deployment: Deployment, *, stack: str, project: str,
                  state: StateView | None) -> list[AnalyzedResource]:
    """The resources the pack judges (see the module docstring)."""
    items = _deployed_items(deployment)
    root = _urn(stack, project, STACK, f"{project}-{stack}")
    if state is None:
        alone = [AnalyzedResource(urn=root, type=STACK, name=f"{project}-{stack}", properties={},
                                  custom=False)]
        alone += [AnalyzedResource(urn=_urn(stack, project, kind, name), type=kind, name=name,
                                   properties=properties, parent=root)
                  for kind, _, name, properties in items]
        return alone

    by_id = {(kind, aws_id): properties for kind, aws_id, _, properties in items}
    indexes = {KEY: state.keys, ALIAS: state.aliases, VPC: state.vpcs, ENDPOINT: state.endpoints,
               FLOW_LOG: state.flow_logs}
    replaced = {resource.urn: (kind, aws_id) for kind, index in indexes.items()
                for aws_id, resource in index.items()}
    deployed_keys = {key.key_id: key for key in deployment.keys}
    deployed_endpoints = {endpoint.endpoint_id: endpoint for endpoint in deployment.endpoints}
    key_policy_of = {policy.urn: key_id for key_id, policies in state.key_policies.items()
                     for policy in policies}
    endpoint_policy_of = {policy.urn: endpoint_id
                          for endpoint_id, policies in state.endpoint_policies.items()
                          for policy in policies}
    view: list[AnalyzedResource] = []
    for resource in state.resources:
        if resource.urn in replaced:
            properties = by_id.get(replaced[resource.urn])
            if properties is None:
                continue  # in the state, not deployed (reported as drift)
            # The state's other properties stay: what KMS or EC2 does not report (a key's deletion
            # window) is taken as the state has it.
            merged = {**resource.properties, **properties}
            view.append(replace(resource, properties=merged, stack_properties=None))
        elif resource.urn in key_policy_of:
            key = deployed_keys.get(key_policy_of[resource.urn])
            if key is not None:
                view.append(replace(resource, properties={**resource.properties, "policy": key.policy or ""},
                                    stack_properties=None))
        elif resource.urn in endpoint_policy_of:
            endpoint = deployed_endpoints.get(endpoint_policy_of[resource.urn])
            if endpoint is not None:
                view.append(replace(resource, properties={**resource.properties,
                                                          "policy": endpoint.policy or ""},
                                    stack_properties=None))
        else:
            view.append(resource)
    known = set(replaced.values())
    root = next((resource.urn for resource in state.resources if resource.type == STACK), root)
    view += [AnalyzedResource(urn=_urn(stack, project, kind, name), type=kind, name=name,
                              properties=properties, parent=root)
             for kind, aws_id, name, properties in items if (kind, aws_id) not in known]
    return view
