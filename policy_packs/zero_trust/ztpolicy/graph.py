"""Helpers shared by rules: how resources refer to each other, and CIDR questions."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from typing import Any

from pulumi_policy.proxy import UnknownValueError

from ztpolicy.rule import Resource

# Marks a value not known yet (a real preview); `known` returns it instead of raising.
UNKNOWN = object()

VPC = "aws:ec2/vpc:Vpc"
SUBNET = "aws:ec2/subnet:Subnet"
ROUTE_TABLE = "aws:ec2/routeTable:RouteTable"

_EPHEMERAL_LOW = 1024
_TCP_UDP = {"tcp", "udp", "6", "17"}


def refers_to(resource: Resource, prop: str, target: Resource) -> bool:
    """Does `resource.<prop>` point at `target`?

    Property dependencies carry the link in a real preview, where ids are still unknown: when
    they exist for `prop` they decide alone, and the (possibly unknown) value is never read,
    since reading an unknown makes the engine skip the whole policy. The id comparison covers
    state without them (hand-written exports), whose outputs hold the real ids.
    """
    if prop in resource.property_dependencies:
        return target.urn in resource.property_dependencies[prop]
    value = resource.get(prop)
    target_id = target.get("id")
    return isinstance(value, str) and bool(value) and value == target_id


def known(resource: Resource, prop: str, default: Any = None) -> Any:
    """`resource.<prop>`, or UNKNOWN when a real preview does not know it yet. Stack rules use
    this so one unknown value skips one resource, not the whole policy."""
    try:
        return resource.get(prop, default)
    except UnknownValueError:
        return UNKNOWN


def referenced(resource: Resource, prop: str, candidates: Iterable[Resource]) -> Resource | None:
    return next((c for c in candidates if refers_to(resource, prop, c)), None)


def of_type(resources: Sequence[Resource], *types: str) -> list[Resource]:
    return [resource for resource in resources if resource.type in types]


def is_open_cidr(value: Any) -> bool:
    """True for a CIDR that matches every address of its family (0.0.0.0/0, ::/0, 0.0.0.0/00…)."""
    if not isinstance(value, str):
        return False
    try:
        return ipaddress.ip_network(value.strip(), strict=False).prefixlen == 0
    except ValueError:
        return False


def is_ephemeral_return(protocol: Any, from_port: Any, to_port: Any) -> bool:
    """A stateless ACL rule that admits only TCP/UDP return traffic on ephemeral ports."""
    try:
        low, high = int(from_port), int(to_port)
    except (TypeError, ValueError):
        return False
    return str(protocol).lower() in _TCP_UDP and _EPHEMERAL_LOW <= low <= high <= 65535


def as_list(value: Any) -> list[Any]:
    """A property as a list: the analyzer wraps lists in a read-only Sequence proxy."""
    if value is None:
        return []
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return list(value)
    return [value]
