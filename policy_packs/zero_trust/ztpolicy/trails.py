"""What the CloudTrail rules share: the trail's type, and what its advanced event selectors log.

A trail's `advancedEventSelectors` (CloudTrail User Guide, "Logging data events"; API reference,
AdvancedEventSelector and AdvancedFieldSelector): the selectors of a trail are alternatives (an
event is logged when one of them matches it); within a selector every field selector must match
(AND); the values of one operator are alternatives (OR). A data-event selector names
`eventCategory` Equals `Data`, a `resources.type`, and optionally `resources.ARN` with Equals,
StartsWith, EndsWith or their negations. A selector with no `resources.ARN` logs every resource of
its type. A trail has either advanced or basic (`eventSelectors`) selectors, never both
(CloudFormation User Guide, "AWS::CloudTrail::Trail AdvancedEventSelector", which also lists the
fields: `eventCategory`, `eventSource` and `readOnly` for management events; `eventCategory`,
`resources.type`, `readOnly`, `eventName` and `resources.ARN` for data events).

How a selector is read here, always on the side of logging less (a rule may wrongly say a target
is not covered, never wrongly that it is):

- a field given twice in one selector: both must match (AND), as two fields do;
- several operators in one field selector: all must match (AND);
- a `readOnly`, `eventName`, `eventSource` field, or any field but `eventCategory`,
  `resources.type` and `resources.ARN`, narrows the selector to part of the events: it does not
  count as covering anything;
- `resources.ARN` against a target: Equals, StartsWith and EndsWith must admit it; NotEquals,
  NotStartsWith and NotEndsWith must not exclude any of it. For the objects of a bucket (every
  ARN starting with `<bucket ARN>/`), Equals and EndsWith name only some objects, so they cover
  none; a NotStartsWith prefix that does not overlap `<bucket ARN>/` leaves the bucket covered.

A value not known yet (a preview) makes the answer None: the rule decides when it is known.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ztpolicy.graph import UNKNOWN, known, known_field, known_items
from ztpolicy.rule import Resource

TRAIL = "aws:cloudtrail/trail:Trail"
STACK = "pulumi:pulumi:Stack"
# The operators of an advanced field selector, as the Pulumi provider spells them.
POSITIVE = ("equals", "startsWiths", "endsWiths")
NEGATIVE = ("notEquals", "notStartsWiths", "notEndsWiths")
OPERATORS = (*POSITIVE, *NEGATIVE)
# The only fields a selector may name and still log every event of its category and type.
UNNARROWING = frozenset({"eventCategory", "resources.type", "resources.ARN"})


@dataclass(frozen=True)
class Target:
    """What must be logged, as a set of resource ARNs.

    exact: one resource's ARN (a table, a function).
    under: every ARN starting with this prefix (`<bucket ARN>/`: every object of a bucket).
    all_but: every ARN of the type but those starting with one of these prefixes (a key layer's
        account-wide selector, which may leave out its own archive buckets).
    all_but_exact: with all_but, ARNs that may also be left out one by one (NotEquals only): a
        NotStartsWith on one of them would leave out every ARN that extends it as well.
    unknown: the ARN (or the prefixes) are not known yet (a preview of new resources): only what
        holds whatever they are decides; the rest is None.
    """

    exact: str | None = None
    under: str | None = None
    all_but: tuple[str, ...] | None = None
    all_but_exact: tuple[str, ...] = ()
    unknown: bool = False


def _operator_holds(operator: str, values: list[str], target: Target) -> bool | None:
    """Does one operator with `values` let every ARN of `target` through? None when that depends
    on an ARN not known yet."""
    if target.unknown:
        if target.under is not None and (operator in ("equals", "endsWiths")
                                         or (operator == "notEndsWiths" and values)):
            return False  # names some objects only, or leaves some out, whatever the bucket
        if target.all_but is not None and operator not in ("notStartsWiths", "notEquals"):
            return False
        return None
    if target.exact is not None:
        arn = target.exact
        matches = {"equals": arn in values,
                   "startsWiths": any(arn.startswith(v) for v in values),
                   "endsWiths": any(arn.endswith(v) for v in values)}
        if operator in matches:
            return matches[operator]
        return not matches[operator[3].lower() + operator[4:]]
    if target.under is not None:
        prefix = target.under
        if operator == "startsWiths":
            return any(prefix.startswith(v) for v in values)
        if operator == "notStartsWiths":
            # No object of the bucket starts with v when neither prefix extends the other.
            return not any(prefix.startswith(v) or v.startswith(prefix) for v in values)
        if operator == "notEquals":
            return not any(v.startswith(prefix) for v in values)
        # Equals and EndsWith name some objects only; NotEndsWith leaves some out.
        return operator == "notEndsWiths" and not values
    excluded = target.all_but or ()
    if operator in ("notStartsWiths", "notEquals"):
        return all(any(v.startswith(prefix) for prefix in excluded)
                   or (operator == "notEquals" and v in target.all_but_exact) for v in values)
    return False


def _condition_holds(condition: Any, target: Target) -> bool | None:
    """Does a field selector admit every ARN (or value) of `target`? None when not known."""
    found, unknown = False, False
    for operator in OPERATORS:
        raw = known_field(condition, operator)
        if raw is UNKNOWN:
            return None
        if raw is None:
            continue
        values = known_items(raw)
        if any(v is UNKNOWN for v in values):
            unknown = True
            continue
        found = True
        holds = _operator_holds(operator, [str(v) for v in values], target)
        if holds is False:
            return False
        unknown = unknown or holds is None
    if unknown:
        return None
    return found  # a field selector with no operator matches nothing CloudTrail would accept


def selector_logs(selector: Any, category: str, resource_type: str | None,
                  target: Target | None) -> bool | None:
    """Does one advanced selector log every event of `category` (`Data`, `Management`) on every
    resource of `target` (of `resource_type`)? None when part of it is not known yet."""
    if selector is UNKNOWN:
        return None
    conditions = known_items(known_field(selector, "fieldSelectors"))
    if not conditions or any(c is UNKNOWN or known_field(c, "field") is UNKNOWN for c in conditions):
        return None if any(c is UNKNOWN for c in conditions) else False
    fields = [known_field(c, "field") for c in conditions]
    if not set(fields) <= UNNARROWING or "eventCategory" not in fields:
        return False
    if resource_type is None and set(fields) != {"eventCategory"}:
        return False
    unknown = False
    for condition, name in zip(conditions, fields, strict=True):
        if name == "eventCategory":
            holds = _condition_holds(condition, Target(exact=category))
        elif name == "resources.type":
            holds = _condition_holds(condition, Target(exact=resource_type or ""))
        else:
            holds = _condition_holds(condition, target) if target is not None else False
        if holds is False:
            return False
        unknown = unknown or holds is None
    if resource_type is not None and "resources.type" not in fields:
        return False  # a data selector must name its type (CloudTrail requires it)
    return None if unknown else True


def trail_logs(trail: Resource, resource_type: str, target: Target) -> bool | None:
    """Does one of `trail`'s advanced selectors log every data event on `target`? None when that
    is not known yet."""
    selectors = known(trail, "advancedEventSelectors")
    if selectors is UNKNOWN:
        return None
    answers = [selector_logs(s, "Data", resource_type, target) for s in known_items(selectors)]
    if any(answers):
        return True
    return None if None in answers else False


def logs_every_management_event(trail: Resource) -> bool | None:
    """Does the trail log every management event, read and write, of every source (KMS
    included)? Advanced selectors: one whose only field is `eventCategory` Equals `Management`.
    Basic (`eventSelectors`), when no advanced one is set: one with `readWriteType` All (the
    default), `includeManagementEvents` true (the default) and no
    `excludeManagementEventSources`. A trail with neither logs every management event (CloudTrail's
    default). None when not known yet."""
    advanced = known(trail, "advancedEventSelectors")
    if advanced is UNKNOWN:
        return None
    selectors = known_items(advanced)
    if selectors:
        answers = [_unnarrowed_management(s) for s in selectors]
        if any(answers):
            return True
        return None if None in answers else False
    basic = known(trail, "eventSelectors")
    if basic is UNKNOWN:
        return None
    selectors = known_items(basic)
    if not selectors:
        return True
    unknown = False
    for selector in selectors:
        values = [known_field(selector, f) for f in ("readWriteType", "includeManagementEvents",
                                                     "excludeManagementEventSources")]
        if UNKNOWN in values or selector is UNKNOWN:
            unknown = True
            continue
        read_write, included, excluded = values
        if read_write in (None, "All") and included in (None, True) and not known_items(excluded):
            return True
    return None if unknown else False


def _unnarrowed_management(selector: Any) -> bool | None:
    if selector is UNKNOWN:
        return None
    conditions = known_items(known_field(selector, "fieldSelectors"))
    if any(c is UNKNOWN for c in conditions):
        return None
    if not conditions or any(known_field(c, "field") != "eventCategory" for c in conditions):
        return False
    for condition in conditions:
        operators = {op: known_field(condition, op) for op in OPERATORS}
        if UNKNOWN in operators.values():
            return None
        given = {op: known_items(v) for op, v in operators.items() if v is not None}
        if set(given) != {"equals"} or UNKNOWN in given["equals"]:
            return None if UNKNOWN in given.get("equals", []) else False
        if "Management" not in [str(v) for v in given["equals"]]:
            return False
    return True


def trails(resources: Sequence[Resource]) -> list[Resource]:
    return [r for r in resources if r.type == TRAIL]


def stack_anchor(resources: Sequence[Resource]) -> str:
    """The URN a finding about the whole stack is reported on."""
    return next((r.urn for r in resources if r.type == STACK), "")


def tagged(resource: Resource, key: str, value: str) -> bool:
    """Does the resource carry the tag (in `tags` or, once deployed, `tagsAll`)?"""
    for prop in ("tags", "tagsAll"):
        tags = known(resource, prop)
        if isinstance(tags, Mapping) and tags.get(key) == value:
            return True
    return False
