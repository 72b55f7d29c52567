"""The path from the API gateway to the enclave fleet is encrypted and carries what the enclave
re-checks (controls: secure API gateway, encryption and key management).

- an HTTP API integration over a VPC link (`aws:apigatewayv2/integration:Integration`,
  `connectionType` VPC_LINK) must verify the backend's TLS certificate
  (`tlsConfig.serverNameToVerify`): without it the request, bearer token and prompt included,
  crosses the VPC in clear to a TCP listener; and it must map the client certificate's issuer
  DN and the route key into the headers the enclave verifies
  (`overwrite:header.x-ztai-client-cert-issuer` = `$context.identity.clientCert.issuerDN`,
  `overwrite:header.x-ztai-route` = `$context.routeKey`; `overwrite:` so a caller cannot send
  its own value first), or the enclave refuses every request;
- a load balancer listener or target group on the path to the enclave fleet must use protocol
  TLS: a TCP listener or target group carries the same request in clear between the VPC link, the
  load balancer and the parent. The path is found by structure, not by tags (tags are whatever
  their writer chose: a copy of the listener with its tags removed is still on the path):
  - listeners: every listener an integration over a VPC link reaches (`integrationUri`), every
    listener tagged `ztai:workload` = `enclave-inference`, and every listener on a load balancer
    (`loadBalancerArn`) that one of those is on;
  - target groups: every target group those listeners (and their listener rules) forward to,
    every one tagged as above, and every one an Auto Scaling group of the fleet registers
    (`targetGroupArns`, or an `aws:autoscaling/attachment:Attachment`); the fleet's groups are
    those tagged as above, those launching a template with Nitro Enclaves enabled, and those
    registering one of the path's target groups.
  A link counts when the property was computed from the other resource (its URN in the
  property's dependencies: a preview) or when the property holds the other resource's ARN or id
  (an export, or a value pasted in).

It cannot see a second API someone creates outside the stack on the same VPC link: the enclave
refuses such a relay's requests unless the relay holds a valid token for a client, whose CA name
it can then write (enclave_images/enclave/auth.py; the SCP in docs/scp-images-and-sessions.md
keeps integrations and client secrets with the deploying role). Not suppressible.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pulumi_policy import Severity
from pulumi_policy.proxy import UnknownValueError

from ztpolicy.graph import UNKNOWN, known, known_field, of_type
from ztpolicy.rule import Finding, Resource, Rule

INTEGRATION = "aws:apigatewayv2/integration:Integration"
LOAD_BALANCER = "aws:lb/loadBalancer:LoadBalancer"
LISTENER = "aws:lb/listener:Listener"
LISTENER_RULE = "aws:lb/listenerRule:ListenerRule"
TARGET_GROUP = "aws:lb/targetGroup:TargetGroup"
AUTOSCALING_GROUP = "aws:autoscaling/group:Group"
AUTOSCALING_ATTACHMENT = "aws:autoscaling/attachment:Attachment"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
WORKLOAD_TAG, ENCLAVE_WORKLOAD = "ztai:workload", "enclave-inference"
# What the enclave reads (enclave_images/enclave/auth.py CERT_ISSUER_HEADER, ROUTE_HEADER).
REQUIRED_MAPPINGS = {
    "overwrite:header.x-ztai-client-cert-issuer": "$context.identity.clientCert.issuerDN",
    "overwrite:header.x-ztai-route": "$context.routeKey",
}


def _integration_problems(resource: Resource) -> list[str]:
    connection = known(resource, "connectionType")
    if connection is UNKNOWN or str(connection or "").upper() != "VPC_LINK":
        return []
    problems = []
    server_name = known_field(known(resource, "tlsConfig"), "serverNameToVerify")
    if server_name is not UNKNOWN and not server_name:
        problems.append(f"integration {resource.name} reaches its VPC link backend without TLS "
                        "(no tlsConfig.serverNameToVerify): tokens and prompts cross the VPC in clear")
    parameters = known(resource, "requestParameters")
    if parameters is not UNKNOWN:
        mapped = parameters if isinstance(parameters, Mapping) else {}
        for key, value in REQUIRED_MAPPINGS.items():
            given = known_field(mapped, key)
            if given is not UNKNOWN and given != value:
                problems.append(f"integration {resource.name} does not map {key} to {value} "
                                f"(has {given!r}): the enclave cannot check the caller's certificate "
                                "binding and route")
    return problems


def _tagged(resource: Resource) -> bool:
    """Tagged as the enclave fleet's: a map (`tags`, `tagsAll`) or Auto Scaling's list of
    `{key, value}`."""
    for prop in ("tags", "tagsAll"):
        value = known(resource, prop)
        if known_field(value, WORKLOAD_TAG) == ENCLAVE_WORKLOAD:
            return True
        for entry in _items(value):
            if known_field(entry, "key") == WORKLOAD_TAG and known_field(entry, "value") == ENCLAVE_WORKLOAD:
                return True
    return False


def _items(value: Any) -> list[Any]:
    """A list's known elements (an unknown one is skipped); none for anything else."""
    if value is UNKNOWN or not isinstance(value, Sequence) or isinstance(value, (str, bytes)):
        return []
    items = []
    for index in range(len(value)):
        try:
            items.append(value[index])
        except UnknownValueError:
            continue
    return items


def _strings(value: Any) -> Iterator[str]:
    """Every known string inside a property, however nested (an action's `targetGroupArn`, a
    `forward.targetGroups[].arn`, a list of ARNs)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for key in list(value.keys()):
            try:
                nested = value[key]
            except UnknownValueError:
                continue
            yield from _strings(nested)
    else:
        for item in _items(value):
            yield from _strings(item)


def _points_at(resource: Resource, prop: str, target: Resource) -> bool:
    """Does `resource.<prop>` (anywhere inside it) name `target`: its URN among the property's
    dependencies, or its ARN or id written in the value."""
    if target.urn in resource.property_dependencies.get(prop, ()):
        return True
    names = {name for name in (known(target, "arn"), known(target, "id"))
             if isinstance(name, str) and name}
    return bool(names) and any(text in names for text in _strings(known(resource, prop)))


def _enclave_launch_templates(resources: Sequence[Resource]) -> list[Resource]:
    return [template for template in of_type(resources, LAUNCH_TEMPLATE)
            if known_field(known(template, "enclaveOptions"), "enabled") is True]


def _inference_path(resources: Sequence[Resource]) -> tuple[list[Resource], list[Resource]]:
    """The listeners and target groups between the VPC link and the enclave fleet."""
    balancers, listeners = of_type(resources, LOAD_BALANCER), of_type(resources, LISTENER)
    target_groups, groups = of_type(resources, TARGET_GROUP), of_type(resources, AUTOSCALING_GROUP)
    listener_rules = of_type(resources, LISTENER_RULE)
    attachments = of_type(resources, AUTOSCALING_ATTACHMENT)
    templates = _enclave_launch_templates(resources)
    vpc_link_integrations = [integration for integration in of_type(resources, INTEGRATION)
                             if str(known(integration, "connectionType") or "").upper() == "VPC_LINK"]

    on_path: set[str] = set()
    for resource in (*balancers, *listeners, *target_groups, *groups):
        if _tagged(resource):
            on_path.add(resource.urn)
    for listener in listeners:
        if any(_points_at(integration, "integrationUri", listener) for integration in vpc_link_integrations):
            on_path.add(listener.urn)
    for group in groups:
        if any(_points_at(group, prop, template) for template in templates
               for prop in ("launchTemplate", "mixedInstancesPolicy")):
            on_path.add(group.urn)

    def linked(source: Resource, props: tuple[str, ...], target: Resource) -> bool:
        return any(_points_at(source, prop, target) for prop in props)

    # Follow the links both ways until nothing new joins: a listener brings its load balancer,
    # the load balancer all its listeners, a listener (and its rules) its target groups, a target
    # group the Auto Scaling groups registering it, such a group all its target groups.
    while True:
        before = len(on_path)
        for listener in listeners:
            for balancer in balancers:
                if linked(listener, ("loadBalancerArn",), balancer) and (
                        listener.urn in on_path or balancer.urn in on_path):
                    on_path.update((listener.urn, balancer.urn))
            if listener.urn not in on_path:
                continue
            rules = [rule for rule in listener_rules if linked(rule, ("listenerArn",), listener)]
            for target_group in target_groups:
                if linked(listener, ("defaultActions",), target_group) or any(
                        linked(rule, ("actions",), target_group) for rule in rules):
                    on_path.add(target_group.urn)
        for target_group in target_groups:
            registering = [group for group in groups if linked(group, ("targetGroupArns",), target_group)]
            registering += [group for attachment in attachments
                            if linked(attachment, ("lbTargetGroupArn",), target_group)
                            for group in groups if linked(attachment, ("autoscalingGroupName",), group)]
            for group in registering:
                if group.urn in on_path or target_group.urn in on_path:
                    on_path.update((group.urn, target_group.urn))
        if len(on_path) == before:
            break
    return ([listener for listener in listeners if listener.urn in on_path],
            [target_group for target_group in target_groups if target_group.urn in on_path])


def inference_path_tls_bound(resources: Sequence[Resource], _config: Mapping[str, Any]) -> list[Finding]:
    findings = [Finding(integration.urn, problem) for integration in of_type(resources, INTEGRATION)
                for problem in _integration_problems(integration)]
    listeners, target_groups = _inference_path(resources)
    for kind, members in (("listener", listeners), ("target group", target_groups)):
        for resource in members:
            protocol = known(resource, "protocol")
            if protocol is UNKNOWN or str(protocol or "").upper() == "TLS":
                continue
            findings.append(Finding(resource.urn, (
                f"enclave fleet {kind} {resource.name} uses protocol {protocol or 'unset'}: the "
                "request, bearer token and prompt included, crosses the VPC in clear; use TLS")))
    return findings


RULE = Rule(
    name="inference-path-tls-bound",
    description="The gateway-to-enclave path must be TLS and carry the headers the enclave verifies.",
    control="secure API gateway",
    severity=Severity.HIGH,
    remediation="Give EnclaveInferenceFleet a listener certificate (certificate_domain_name with "
                "hosted_zone_id or certificate_arn) and SecureApiGateway its backend_server_name; "
                "keep the integration's ENCLAVE_AUTH_HEADERS mappings.",
    stack_check=inference_path_tls_bound,
    suppressible=False,
)
