"""What a rule is: metadata plus one pure check function.

Rules never talk to the analyzer protocol; `ztpolicy.pack` turns them into `pulumi_policy`
policies. That keeps every check callable from a test with plain dictionaries.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pulumi_policy import EnforcementLevel, Severity

FRAMEWORK = "zero-trust-ai control map"


@dataclass(frozen=True)
class Resource:
    """A resource as a rule sees it: Pulumi type token, logical name, URN and properties.

    `property_dependencies` maps a property (e.g. `vpcId`) to the URNs it was computed from: the
    link between resources that is known even in a real `pulumi preview`, where ids are not.
    """

    type: str
    name: str
    urn: str
    props: Mapping[str, Any]
    parent: str | None = None
    dependencies: tuple[str, ...] = ()
    property_dependencies: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # Resource options the engine passes along: `protect`, and the properties the engine leaves
    # as they are in the cloud (`ignoreChanges`), i.e. drift it will never correct.
    protect: bool = False
    ignore_changes: tuple[str, ...] = ()

    def get(self, key: str, default: Any = None) -> Any:
        return self.props.get(key, default)

    def tags(self) -> Mapping[str, Any]:
        tags = self.props.get("tags")
        return tags if isinstance(tags, Mapping) else {}


@dataclass(frozen=True)
class Finding:
    """One violation a stack rule found, attributed to the resource it concerns."""

    urn: str
    message: str


ResourceCheck = Callable[[Resource, Mapping[str, Any]], list[str]]
StackCheck = Callable[[Sequence[Resource], Mapping[str, Any]], list[Finding]]


@dataclass(frozen=True)
class Rule:
    """A policy rule with the metadata reports and the control map need.

    name: stable id, also the key of the rule's policy configuration.
    control: the control of the README's control map the rule enforces, e.g. "segmented network".
    resource_types: types a resource rule looks at (stack rules see every resource).
    suppressible: False means exclusions in the policy config are refused for this rule.
    config: extra JSON-schema properties of the rule's configuration, with defaults.
    """

    name: str
    description: str
    control: str
    severity: Severity
    remediation: str
    resource_check: ResourceCheck | None = None
    stack_check: StackCheck | None = None
    resource_types: frozenset[str] = frozenset()
    suppressible: bool = True
    enforcement_level: EnforcementLevel = EnforcementLevel.MANDATORY
    config: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.resource_check is None) == (self.stack_check is None):
            raise ValueError(f"rule {self.name} needs exactly one of resource_check or stack_check")
        if self.resource_check is not None and not self.resource_types:
            raise ValueError(f"resource rule {self.name} must name the resource types it checks")

    def defaults(self) -> dict[str, Any]:
        """The rule's configuration with every default filled in."""
        return {key: schema["default"] for key, schema in self.config.items() if "default" in schema}
