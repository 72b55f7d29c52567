"""Every REST API stage is behind an AWS WAF web ACL that rate-limits and runs AWS managed rules
(control: secure API gateway).

A REST API stage (`aws:apigateway/stage:Stage`) must be the `resourceArn` of an
`aws:wafv2/webAclAssociation:WebAclAssociation` whose web ACL (`aws:wafv2/webAcl:WebAcl`, by
`webAclArn`) is declared in the stack and has

- `scope` `REGIONAL` (a CLOUDFRONT web ACL cannot be associated with a stage);
- a rule whose statement is a `rateBasedStatement`: a per-client request limit;
- a rule whose statement is a `managedRuleGroupStatement` with `vendorName` `AWS` (e.g.
  AWSManagedRulesCommonRuleSet): maintained signatures of known attacks.

A rule counts wherever it is declared: in the web ACL's `rules`, in its raw `ruleJson` (AWS API
field names, `RateBasedStatement`...), or as an `aws:wafv2/webAclRule:WebAclRule` or (managed
groups) `aws:wafv2/webAclRuleGroupAssociation:WebAclRuleGroupAssociation` with that `webAclArn`.
A rate-based rule inside a custom rule group (`ruleGroupReferenceStatement`) does not count:
the rule group can change without the web ACL; declare the rate-based rule in the web ACL.

HTTP API stages (`aws:apigatewayv2/stage:Stage`) are not checked: AWS WAF cannot be associated
with an HTTP API at all (an AWS limitation). Our own gateway (components/api_gateway.py
SecureApiGateway) is an HTTP API and compensates as its docstring says (mTLS, scoped JWTs,
throttling); this rule guards forks that choose a REST API.

Links and previews: a link (association -> stage by `resourceArn`, association or rule -> web ACL
by `webAclArn`) is made as `graph.refers_to` makes it: by property dependencies when the property
was computed from other resources (a real preview, where every ARN is unknown, links this way),
otherwise by comparing the literal value with the target's `arn`. When a preview cannot make a
link either way (a value unknown without recorded dependencies, or a literal ARN of the right kind
while the target's own ARN is not known yet), the stage is not reported: it is checked again when
the values are known. Likewise a scope or a rule whose content is unknown is not reported, and
prevents the report of what it might provide. A web ACL that is not declared in this stack (a
literal ARN, e.g. one Firewall Manager owns) cannot be checked and is reported: exclude the stage,
with the reason, when that web ACL is reviewed elsewhere.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import Severity
from pulumi_policy.proxy import UnknownValueError

from ztpolicy.graph import UNKNOWN, known, known_field, of_type
from ztpolicy.rule import Finding, Resource, Rule

STAGE_REST = "aws:apigateway/stage:Stage"
WEB_ACL = "aws:wafv2/webAcl:WebAcl"
WEB_ACL_ASSOCIATION = "aws:wafv2/webAclAssociation:WebAclAssociation"
WEB_ACL_RULE = "aws:wafv2/webAclRule:WebAclRule"
RULE_GROUP_ASSOCIATION = "aws:wafv2/webAclRuleGroupAssociation:WebAclRuleGroupAssociation"
_STAGE_ARN = re.compile(r"^arn:aws[\w-]*:apigateway:[^:]*::/restapis/[^/]+/stages/[^/]+$")
_WEB_ACL_ARN = re.compile(r"^arn:aws[\w-]*:wafv2:[^:]*:[^:]*:(regional|global)/webacl/")
# Statement field names: Pulumi's camelCase, and the AWS API's PascalCase used by `ruleJson`.
_PULUMI_NAMES = ("rateBasedStatement", "managedRuleGroupStatement", "vendorName")
_AWS_NAMES = ("RateBasedStatement", "ManagedRuleGroupStatement", "VendorName")

# What one rule provides: (rate-based, AWS managed group), each True, False or None (unknown).
Provides = tuple[bool | None, bool | None]




def _items(value: Any) -> list[Any]:
    """A list property's elements, UNKNOWN for each one a preview does not know."""
    if value is UNKNOWN:
        return [UNKNOWN]
    if not isinstance(value, Sequence) or isinstance(value, (str, bytes)):
        return []
    items = []
    for index in range(len(value)):
        try:
            items.append(value[index])
        except UnknownValueError:
            items.append(UNKNOWN)
    return items


def _links(resource: Resource, prop: str, target: Resource, shape: re.Pattern[str]) -> bool | None:
    """Does `resource.<prop>` name `target`'s ARN? None when a preview cannot tell yet."""
    dependencies = resource.property_dependencies.get(prop, ())
    if dependencies:
        return target.urn in dependencies
    value, arn = known(resource, prop), known(target, "arn")
    if value is UNKNOWN:
        return None
    if not isinstance(value, str) or not value:
        return False
    if arn is UNKNOWN:
        return None if shape.match(value) else False
    return bool(value == arn)


def _provides(statement: Any, names: tuple[str, str, str]) -> Provides:
    rate_name, managed_name, vendor_name = names
    rate, managed = known_field(statement, rate_name), known_field(statement, managed_name)
    vendor = known_field(managed, vendor_name)
    return (None if rate is UNKNOWN else isinstance(rate, Mapping),
            None if vendor is UNKNOWN else vendor == "AWS")


def _rules_of(acl: Resource, resources: Sequence[Resource]) -> list[Provides]:
    provided = [_provides(known_field(rule, "statement"), _PULUMI_NAMES)
                for rule in _items(known(acl, "rules"))]
    rule_json = known(acl, "ruleJson")
    if rule_json is UNKNOWN:
        provided.append((None, None))
    elif isinstance(rule_json, str) and rule_json:
        try:
            parsed = json.loads(rule_json)
        except json.JSONDecodeError:
            parsed = []  # the provider refuses it; nothing it says counts
        provided += [_provides(rule.get("Statement"), _AWS_NAMES)
                     for rule in (parsed if isinstance(parsed, list) else []) if isinstance(rule, Mapping)]
    for rule in of_type(resources, WEB_ACL_RULE):
        link = _links(rule, "webAclArn", acl, _WEB_ACL_ARN)
        if link is None:
            provided.append((None, None))
        elif link:
            provided.append(_provides(known(rule, "statement"), _PULUMI_NAMES))
    for group in of_type(resources, RULE_GROUP_ASSOCIATION):
        link = _links(group, "webAclArn", acl, _WEB_ACL_ARN)
        if link is None:
            provided.append((False, None))
        elif link:
            vendor = known_field(known(group, "managedRuleGroup"), "vendorName")
            provided.append((False, None if vendor is UNKNOWN else vendor == "AWS"))
    return provided


def _missing(provided: list[Provides], index: int) -> bool:
    """No rule provides it, and no unknown rule might."""
    return not any(p[index] is True or p[index] is None for p in provided)


def _web_acl_problems(stage: Resource, association: Resource, acls: Sequence[Resource],
                      resources: Sequence[Resource]) -> list[str]:
    links = [(acl, _links(association, "webAclArn", acl, _WEB_ACL_ARN)) for acl in acls]
    linked = [acl for acl, link in links if link]
    if not linked:
        if known(association, "webAclArn") is UNKNOWN or any(link is None for _, link in links):
            return []
        return [f"REST API stage {stage.name}: the web ACL of {association.name} is not declared in "
                "this stack, so its scope and rules cannot be checked; declare it here, or exclude "
                "the stage with the reason it is reviewed elsewhere"]
    problems = []
    for acl in linked:
        label = f"REST API stage {stage.name}: web ACL {acl.name}"
        scope = known(acl, "scope")
        if scope is not UNKNOWN and scope != "REGIONAL":
            problems.append(f"{label} has scope {scope!r}: a stage takes a REGIONAL web ACL only")
        provided = _rules_of(acl, resources)
        if _missing(provided, 0):
            problems.append(f"{label} has no rate-based rule (statement.rateBasedStatement): one "
                            "client can flood the stage up to the account's API Gateway quota")
        if _missing(provided, 1):
            problems.append(f"{label} runs no AWS managed rule group (statement."
                            "managedRuleGroupStatement with vendorName 'AWS'): known exploit "
                            "patterns reach the API uninspected")
    return problems


def api_rest_stage_waf(resources: Sequence[Resource], _config: Mapping[str, Any]) -> list[Finding]:
    acls = of_type(resources, WEB_ACL)
    associations = of_type(resources, WEB_ACL_ASSOCIATION)
    findings = []
    for stage in of_type(resources, STAGE_REST):
        links = [(association, _links(association, "resourceArn", stage, _STAGE_ARN))
                 for association in associations]
        linked = [association for association, link in links if link]
        if not linked:
            if not any(link is None for _, link in links):
                findings.append(Finding(stage.urn, f"REST API stage {stage.name} has no AWS WAF web "
                                        "ACL (no wafv2.WebAclAssociation names its arn): requests "
                                        "reach it without rate limiting or managed-rule inspection"))
            continue
        # A stage takes one web ACL: whichever association wins, its web ACL must do the job.
        for association in linked:
            findings += [Finding(stage.urn, problem)
                         for problem in _web_acl_problems(stage, association, acls, resources)]
    return findings


RULE = Rule(
    name="api-rest-stage-waf",
    description="REST API stages must be associated with a REGIONAL AWS WAF web ACL that has a "
                "rate-based rule and an AWS managed rule group.",
    control="secure API gateway",
    severity=Severity.HIGH,
    remediation="Declare an aws.wafv2.WebAcl(scope='REGIONAL') with a rule whose statement is a "
                "rate_based_statement and one whose statement is a managed_rule_group_statement "
                "(vendor_name='AWS', e.g. AWSManagedRulesCommonRuleSet), and an "
                "aws.wafv2.WebAclAssociation(resource_arn=<stage>.arn, web_acl_arn=<acl>.arn) for "
                "every REST API stage; or serve the API through SecureApiGateway "
                "(components/api_gateway.py), an HTTP API with mTLS and scoped JWTs.",
    stack_check=api_rest_stage_waf,
)
