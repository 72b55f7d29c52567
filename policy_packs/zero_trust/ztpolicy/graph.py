"""Helpers shared by rules: how resources refer to each other, and CIDR questions."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pulumi_policy.proxy import UnknownValueError

from ztpolicy.rule import Resource

# Marks a value not known yet (a real preview); `known` returns it instead of raising.
UNKNOWN = object()

VPC = "aws:ec2/vpc:Vpc"
SUBNET = "aws:ec2/subnet:Subnet"
ROUTE_TABLE = "aws:ec2/routeTable:RouteTable"

_TCP_UDP = {"tcp", "udp", "6", "17"}


def refers_to(resource: Resource, prop: str, target: Resource) -> bool:
    """Does `resource.<prop>` point at `target`?

    Property dependencies carry the link in a real preview, where ids are still unknown: when
    `prop` was computed from other resources they decide alone. Otherwise the value is a literal
    (an id pasted in, a lookup, a stack reference; the engine then records an empty dependency
    list) and is compared with the target's id, as in exports whose outputs hold real ids.
    Unknown values are never read raw: that would make the engine skip the whole policy.
    """
    dependencies = resource.property_dependencies.get(prop, ())
    if dependencies:
        return target.urn in dependencies
    value, target_id = known(resource, prop), known(target, "id")
    return isinstance(value, str) and bool(value) and value == target_id


def names_by_value(resource: Resource, prop: str, target: Resource, *target_props: str) -> bool | None:
    """Does the known value of `resource.<prop>` equal the target's id (or one of `target_props`,
    e.g. a bucket's `bucket` name)? None when the value or every identifier of the target is
    unknown. Unlike `refers_to`, for callers that must follow the value the cloud holds, not the
    dependency the program recorded (which hand-edited state keeps)."""
    value = known(resource, prop)
    names = [name for name in (known(target, "id"), *(known(target, p) for p in target_props))
             if isinstance(name, str) and name]
    if not isinstance(value, str) or not value or not names:
        return None
    return value in names


def refers_to_by_value(resource: Resource, prop: str, target: Resource, *target_props: str) -> bool:
    """`names_by_value` when it can tell, else the property dependency (a preview of new
    resources, where the value is not known yet)."""
    answer = names_by_value(resource, prop, target, *target_props)
    if answer is not None:
        return answer
    return target.urn in resource.property_dependencies.get(prop, ())


def key_id_of(value: Any) -> Any:
    """A KMS key reference as its key id: `arn:<partition>:kms:<region>:<account>:key/<id>` ->
    `<id>`; anything else (an id, an alias, UNKNOWN) unchanged."""
    if isinstance(value, str) and value.startswith("arn:") and ":key/" in value:
        return value.rsplit(":key/", 1)[1]
    return value


def key_references(key: Resource) -> tuple[set[str], set[str]]:
    """The known ways to name `key`: its key id (from `id`, `keyId` or its ARN) and its ARN."""
    ids = {key_id_of(value) for value in (known(key, "id"), known(key, "keyId"), known(key, "arn"))
           if isinstance(value, str) and value}
    arns = {value for value in (known(key, "arn"),) if isinstance(value, str) and value.startswith("arn:")}
    return {str(i) for i in ids}, arns


def names_key(value: Any, key: Resource) -> bool | None:
    """Does the literal `value` (a key id or key ARN) name `key`? None when either is not known.

    An ARN is compared with the key's ARN when that is known (a multi-Region replica shares its
    primary's key id, not its ARN), else by key id."""
    if not isinstance(value, str) or not value:
        return None
    ids, arns = key_references(key)
    if value.startswith("arn:") and arns:
        return value in arns
    return key_id_of(value) in ids if ids else None


def refers_to_key(resource: Resource, prop: str, key: Resource, *also: str,
                  among: Sequence[Resource] = ()) -> bool:
    """Does `resource.<prop>` (a KMS key, which KMS accepts as the key id or the key ARN) name `key`?

    The value decides whenever it and the key's id or ARN are known (an export, an update of
    existing resources): a dependency only records which resource the program computed the value
    from, so state edited by hand, or a target moved outside Pulumi and refreshed, keeps the old
    dependency while the value names another key. `also` are further properties holding the same
    reference (an alias's output `targetKeyArn`): a known one that names the key links it too.
    Only when no value can be compared does the property dependency link them, as in a preview
    where the key is still being created. `among` are the stack's keys: a bare key id is the same
    for a multi-Region primary and its replicas, so when the key the dependency names has that id
    too, that one is meant.
    """
    values = [known(resource, name) for name in (prop, *also)]
    answers = [names_key(value, key) for value in values]
    dependencies = resource.property_dependencies.get(prop, ())
    if any(answers):
        # A bare key id is the same for a multi-Region primary and its replicas (KMS resolves it
        # in the caller's Region): when only ids matched, the dependency picks which copy.
        by_arn = any(answer and isinstance(value, str) and value.startswith("arn:")
                     for answer, value in zip(answers, values, strict=True))
        if by_arn or key.urn in dependencies:
            return True
        return not any(other.urn in dependencies and names_key(value, other)
                       for other in among for value in values)
    if any(answer is not None for answer in answers):
        return False
    return key.urn in dependencies


def known(resource: Resource, prop: str, default: Any = None) -> Any:
    """`resource.<prop>`, or UNKNOWN when a real preview does not know it yet. Stack rules use
    this so one unknown value skips one resource, not the whole policy."""
    try:
        return resource.get(prop, default)
    except UnknownValueError:
        return UNKNOWN


def sets_a_key(resource: Resource, prop: str) -> bool:
    """Does `resource.<prop>` name a KMS key? A value unknown in a preview is the ARN of a key
    created in the same update, so it counts as set."""
    key = known(resource, prop)
    return key is UNKNOWN or (isinstance(key, str) and bool(key.strip()))


def known_field(mapping: Any, key: str) -> Any:
    """`mapping[key]` of a nested property (a block such as `accessLogSettings`): UNKNOWN when the
    block or the value is not known yet in a preview, None when the block is not a mapping."""
    if mapping is UNKNOWN:
        return UNKNOWN
    try:
        return mapping.get(key) if isinstance(mapping, Mapping) else None
    except UnknownValueError:
        return UNKNOWN


def referenced(resource: Resource, prop: str, candidates: Iterable[Resource]) -> Resource | None:
    return next((c for c in candidates if refers_to(resource, prop, c)), None)


def of_type(resources: Sequence[Resource], *types: str) -> list[Resource]:
    return [resource for resource in resources if resource.type in types]


_PRIVATE_V4 = tuple(ipaddress.IPv4Network(block) for block in
                    ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10"))
_PRIVATE_V6 = ipaddress.IPv6Network("fc00::/7")
# A public block this wide (or wider) admits a large share of the internet: 0.0.0.0/0, and also
# the 0.0.0.0/1 + 128.0.0.0/1 pair that dodges a check for "/0" only.
_BROAD_V4, _BROAD_V6 = 8, 16
# Where operating systems draw ephemeral ports from: 1024 (NAT gateways, old Linux), 32768
# (Linux), 49152 (Windows, IANA). An ACL range from one of these to 65535 is a return path;
# a narrower high range (3389, 5432, 8080...) is a service port.
_EPHEMERAL_STARTS = {1024, 32768, 49152}


def is_private_cidr(value: Any) -> bool:
    """True for a CIDR inside RFC 1918, carrier-grade NAT (100.64/10) or IPv6 ULA space."""
    try:
        network = ipaddress.ip_network(str(value).strip(), strict=False)
    except ValueError:
        return False
    if isinstance(network, ipaddress.IPv4Network):
        return any(network.subnet_of(block) for block in _PRIVATE_V4)
    return network.subnet_of(_PRIVATE_V6)


def is_open_cidr(value: Any) -> bool:
    """True for a public CIDR so wide it amounts to "anyone": /0 and anything up to /8 (/16 v6)."""
    if not isinstance(value, str):
        return False
    try:
        network = ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        return False
    broad = _BROAD_V4 if isinstance(network, ipaddress.IPv4Network) else _BROAD_V6
    return network.prefixlen <= broad and not is_private_cidr(value)


def is_ephemeral_return(protocol: Any, from_port: Any, to_port: Any) -> bool:
    """A stateless ACL rule that admits only TCP/UDP return traffic on an ephemeral range."""
    try:
        low, high = int(from_port), int(to_port)
    except (TypeError, ValueError):
        return False
    return str(protocol).lower() in _TCP_UDP and low in _EPHEMERAL_STARTS and high == 65535


class PolicyDocumentError(ValueError):
    """An IAM-style policy document that cannot be read."""


def allow_statements(document: Any, label: str) -> list[tuple[int, Mapping[str, Any]]]:
    """The Allow statements of a policy document (JSON text or parsed), with their positions.

    Raises PolicyDocumentError naming `label` when the document is not a JSON object.
    """
    try:
        parsed = json.loads(document) if isinstance(document, str) else document
    except json.JSONDecodeError as error:
        raise PolicyDocumentError(f"{label} is not valid JSON ({error.msg})") from None
    if not isinstance(parsed, Mapping):
        raise PolicyDocumentError(f"{label} is not a JSON object")
    return [(index, statement) for index, statement in enumerate(as_list(parsed.get("Statement")))
            if isinstance(statement, Mapping) and statement.get("Effect") == "Allow"]


def known_items(value: Any) -> list[Any]:
    """A list property's elements, each UNKNOWN where a preview does not know it yet (reading it
    through the analyzer's proxy would raise, and one unknown element would hide the known ones);
    no elements when the whole list is unknown."""
    if value is UNKNOWN:
        return []
    if not (isinstance(value, Sequence) and not isinstance(value, (str, bytes))):
        return as_list(value)
    items = []
    for index in range(len(value)):
        try:
            items.append(value[index])
        except UnknownValueError:
            items.append(UNKNOWN)
    return items


def as_list(value: Any) -> list[Any]:
    """A property as a list: the analyzer wraps lists in a read-only Sequence proxy."""
    if value is None:
        return []
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return list(value)
    return [value]
