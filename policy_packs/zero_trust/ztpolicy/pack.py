"""Turns `Rule`s into `pulumi_policy` policies: exclusions, defaults and reporting live here once."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import (
    Policy,
    PolicyComplianceFramework,
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

# The framework's signal that a rule read a value unknown during a preview (not exported at the
# package's top level).
from pulumi_policy.proxy import UnknownValueError

from ztpolicy.exclusions import (
    EXCLUSIONS_SCHEMA,
    NO_EXCLUSIONS_SCHEMA,
    ExclusionConfigError,
    exclusion_report,
    find_exclusion,
    parse_exclusions,
)
from ztpolicy.rule import FRAMEWORK, Resource, Rule
from ztpolicy.rules import ALL_RULES
from ztpolicy.stack import STACK_SETTINGS, from_engine

PACK_NAME = "zero-trust-ai"
NOT_SUPPRESSIBLE = "exclusion refused: this rule cannot be suppressed"


def _merged_config(rule: Rule, given: Mapping[str, Any] | None) -> dict[str, Any]:
    # The stack's settings last: a policy configuration cannot say which layer a stack is.
    return {**rule.defaults(), **(dict(given) if given else {}), STACK_SETTINGS: from_engine()}


def resource_from_args(args: ResourceValidationArgs) -> Resource:
    return Resource(type=args.resource_type, name=args.name, urn=args.urn, props=args.props,
                    parent=args.opts.parent if args.opts else None,
                    protect=bool(args.opts.protect) if args.opts else False,
                    ignore_changes=tuple(args.opts.ignore_changes or ()) if args.opts else ())


def resource_from_stack(resource: PolicyResource) -> Resource:
    return Resource(
        type=resource.resource_type, name=resource.name, urn=resource.urn, props=resource.props,
        parent=resource.parent.urn if resource.parent is not None else None,
        dependencies=tuple(dep.urn for dep in resource.dependencies),
        property_dependencies={key: tuple(dep.urn for dep in deps)
                               for key, deps in resource.property_dependencies.items()},
        protect=bool(resource.opts.protect) if resource.opts else False,
        ignore_changes=tuple(resource.opts.ignore_changes or ()) if resource.opts else (),
    )


def _config_error(rule: Rule, error: ExclusionConfigError, report: ReportViolation) -> None:
    # Fail closed: a broken exclusion list suppresses nothing and is itself a violation.
    report(f"policy configuration of {rule.name} is invalid: {error}", None)


def _unreadable(rule: Rule, error: Exception) -> str:
    # Fail closed: a rule that cannot read what it was given (a property of a type AWS would never
    # return, as a hand-edited export can hold) reports a violation instead of crashing the pack,
    # which would fail the whole run without naming the rule or the resource. No exclusion applies:
    # nothing was evaluated that an exclusion could be about.
    return (f"{rule.name} could not evaluate this ({type(error).__name__}: {error}); a property "
            "does not have the shape AWS gives it, so the rule fails closed")


def _resource_validator(rule: Rule) -> Any:
    assert rule.resource_check is not None
    check = rule.resource_check

    def validate(args: ResourceValidationArgs, report: ReportViolation) -> None:
        if args.resource_type not in rule.resource_types:
            return
        config = _merged_config(rule, args.get_config())
        resource = resource_from_args(args)
        try:
            messages = check(resource, config)
        except UnknownValueError:
            raise  # a value unknown until deploy: the framework reports the rule as not run yet
        except Exception as error:  # noqa: BLE001 - any other failure of the rule fails the resource
            report(_unreadable(rule, error), None)
            return
        if not messages:
            return
        try:
            exclusion = find_exclusion(parse_exclusions(config), resource.name, resource.urn)
        except ExclusionConfigError as error:
            _config_error(rule, error, report)
            exclusion = None
        # The schema refuses exclusions on a rule that cannot be suppressed; an engine that skips
        # schema validation can still hand them over, and they are then reported, never applied.
        if exclusion is not None and rule.suppressible:
            args.not_applicable(exclusion_report(resource.urn, exclusion, messages))
        for message in messages:
            suffix = f" ({NOT_SUPPRESSIBLE})" if exclusion is not None else ""
            report(message + suffix, None)

    return validate


def _stack_validator(rule: Rule) -> Any:
    assert rule.stack_check is not None
    check = rule.stack_check

    def validate(args: StackValidationArgs, report: ReportViolation) -> None:
        config = _merged_config(rule, args.get_config())
        resources = [resource_from_stack(resource) for resource in args.resources]
        try:
            findings = check(resources, config)
        except UnknownValueError:
            raise  # a value unknown until deploy: the framework reports the rule as not run yet
        except Exception as error:  # noqa: BLE001 - any other failure of the rule fails the stack
            report(_unreadable(rule, error), None)
            return
        if not findings:
            return
        try:
            exclusions = parse_exclusions(config)
        except ExclusionConfigError as error:
            _config_error(rule, error, report)
            exclusions = []
        names = {resource.urn: resource.name for resource in resources}
        suppressed: dict[str, tuple[Any, list[str]]] = {}
        for finding in findings:
            exclusion = find_exclusion(exclusions, names.get(finding.urn, ""), finding.urn)
            if exclusion is not None and rule.suppressible:
                suppressed.setdefault(finding.urn, (exclusion, []))[1].append(finding.message)
                continue
            suffix = f" ({NOT_SUPPRESSIBLE})" if exclusion is not None else ""
            report(finding.message + suffix, finding.urn)
        if suppressed:
            args.not_applicable("\n".join(
                exclusion_report(urn, exclusion, messages)
                for urn, (exclusion, messages) in suppressed.items()))

    return validate


def to_policy(rule: Rule) -> Policy:
    """The `pulumi_policy` policy that runs `rule` with its exclusions and defaults."""
    exclusions = EXCLUSIONS_SCHEMA if rule.suppressible else NO_EXCLUSIONS_SCHEMA
    schema = PolicyConfigSchema(properties={"exclusions": exclusions,
                                            **{k: dict(v) for k, v in rule.config.items()}})
    common: dict[str, Any] = {
        "name": rule.name,
        "description": rule.description,
        "enforcement_level": rule.enforcement_level,
        "config_schema": schema,
        "severity": rule.severity,
        "framework": PolicyComplianceFramework(name=FRAMEWORK, version="1",
                                               reference=rule.control),
        "tags": [f"control:{rule.control}", "suppressible" if rule.suppressible else "not-suppressible"],
        "remediation_steps": rule.remediation,
    }
    if rule.resource_check is not None:
        return ResourceValidationPolicy(validate=_resource_validator(rule), **common)
    return StackValidationPolicy(validate=_stack_validator(rule), **common)


def policies() -> list[Policy]:
    return [to_policy(rule) for rule in ALL_RULES]


def initial_config() -> dict[str, Any]:
    """Defaults the engine reports for each rule (it also applies schema defaults itself)."""
    return {rule.name: rule.defaults() for rule in ALL_RULES if rule.defaults()}
