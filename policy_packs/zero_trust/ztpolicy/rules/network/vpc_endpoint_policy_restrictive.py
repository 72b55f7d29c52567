"""VPC endpoint policies keep the endpoint inside the data perimeter (control: network segmentation).

A resource rule, so it runs again with known values before each step of `pulumi up`, not only
once after the update as stack rules do. Every Allow statement must be one of:

- pinned to our principals: a named principal, or a wildcard principal with a positive
  (`StringEquals`, `ArnEquals`, ... without `IfExists`) condition on aws:PrincipalOrgID /
  PrincipalAccount / PrincipalArn / PrincipalOrgPaths whose values carry no wildcard; and, on
  every service but those whose actions have no resources (ssmmessages, ec2messages), also
  pinned to our resources (aws:ResourceOrgID / ResourceAccount / ResourceOrgPaths) unless it
  names the resources explicitly in an account the statement's principal condition (or
  trustedAccountIds) names, or AWS's: a principal condition alone lets our principals send to an
  SQS queue, SNS topic, Kinesis stream, secret or function of another account, and an S3 ARN
  names no account at all (a bucket name can be anyone's), so buckets always need the condition;
- AWS services acting on our behalf (`Bool aws:PrincipalIsAWSService true`);
- federated sessions (`sts:AssumeRoleWith*` only, under `"Principal": "*"` as AWS documents for
  these unsigned calls; a `{"Federated": ...}` principal is refused) into our roles (resource
  condition);
- read-only (`Get*`/`List*`/`Describe*`) on explicitly named resources, e.g. AWS-owned buckets.

On the data services (s3, logs, ecr, and ssm's parameter actions) an account or organisation
condition is not enough: the statement must name its resources (`arn:aws:s3:::<bucket>`,
`...:log-group:<name>`, `...:parameter/<path>`, `...:repository/<name>`), not `*` or a bare
wildcard (`arn:aws:s3:::*`, `log-group:*`, `parameter/*`). Otherwise any resource of the account,
another environment's included, is reachable: data staged there is read from outside the segment.
A separate `VpcEndpointPolicy` is read as the service its actions name (all `s3:` -> s3...).

With `trustedAccountIds` / `trustedOrganizationIds` configured, condition values and named
principals must also be within them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from fnmatch import fnmatchcase
from typing import Any

from pulumi_policy import Severity

from ztpolicy.graph import PolicyDocumentError, allow_statements, as_list
from ztpolicy.rule import Resource, Rule

ENDPOINT = "aws:ec2/vpcEndpoint:VpcEndpoint"
ENDPOINT_POLICY = "aws:ec2/vpcEndpointPolicy:VpcEndpointPolicy"
POLICY_TYPES = {"Gateway", "Interface"}
# Services whose actions name no resource type, so there is no other account's resource to
# reach and aws:ResourceAccount has nothing to test: Session Manager's and Run Command's channels
# ("Resource types" empty for every action: Service Authorization Reference,
# list_amazonsessionmanagermessagegatewayservice.html and list_amazonmessagedeliveryservice.html).
# Every other service needs a resource perimeter.
SERVICES_WITHOUT_RESOURCES = frozenset({"ssmmessages", "ec2messages"})
PRINCIPAL_KEYS = {"aws:principalorgid", "aws:principalaccount", "aws:principalarn",
                  "aws:principalorgpaths"}
RESOURCE_KEYS = {"aws:resourceorgid", "aws:resourceaccount", "aws:resourceorgpaths"}
_POSITIVE = {"stringequals", "stringequalsignorecase", "stringlike", "arnequals", "arnlike"}
_READ_ONLY = re.compile(r"^[a-z0-9-]+:(Get|List|Describe)[A-Za-z]*\*?$")
_FEDERATED_ACTIONS = {"sts:assumerolewithwebidentity", "sts:assumerolewithsaml"}
_ACCOUNT = re.compile(r"^\d{12}$")
# Services where data can be written into a resource and read back from outside, so each Allow
# statement must name the resources (service -> the actions that need it, as patterns; None: all
# actions but the listed account-level ones).
_DATA_SERVICES: dict[str, tuple[str, ...]] = {
    "s3": (), "logs": (), "ecr.api": ("ecr:getauthorizationtoken",),
    "ecr.dkr": ("ecr:getauthorizationtoken",),
}
SSM_PARAMETER_ACTIONS = ("ssm:getparameter", "ssm:getparameters", "ssm:getparametersbypath",
                         "ssm:getparameterhistory", "ssm:putparameter", "ssm:deleteparameter",
                         "ssm:deleteparameters", "ssm:labelparameterversion",
                         "ssm:unlabelparameterversion")
_PREFIX_SERVICE = {"s3": "s3", "logs": "logs", "ecr": "ecr.api", "ssm": "ssm", "kms": "kms",
                   "sts": "sts", "ssmmessages": "ssmmessages", "ec2messages": "ec2messages"}


def _arn_parts(resource: Any) -> list[str] | None:
    """`arn:partition:service:region:account:rest` split in six, or None for anything else."""
    parts = resource.split(":", 5) if isinstance(resource, str) else []
    return parts if len(parts) == 6 and parts[0] == "arn" else None


def _names_resources(statement: Mapping[str, Any]) -> bool:
    """Every Resource names a resource: an S3 bucket without wildcards, or another service's
    resource whose name has a literal before any wildcard (`log-group:/a/b*`, not `log-group:*`),
    in a named account; or an AWS-owned resource (no account, e.g. SSM's public documents)."""
    resources = as_list(statement.get("Resource"))
    if not resources:
        return False
    for resource in resources:
        if (parts := _arn_parts(resource)) is None:
            return False
        service, account, rest = parts[2], parts[4], parts[5]
        if service == "s3":
            if any(w in rest.split("/", 1)[0] for w in "*?") or not rest.split("/", 1)[0]:
                return False
            continue
        if not account:
            continue  # AWS-owned (SSM documents and public parameters)
        if any(w in account for w in "*?"):
            return False
        name = re.split(r"[:/]", rest, maxsplit=1)[1] if re.search(r"[:/]", rest) else ""
        literal = re.split(r"[*?]", name, maxsplit=1)[0]
        if not literal.strip("/:"):
            return False
    return True


def _needs_named_resources(service: str | None, actions: Sequence[str]) -> bool:
    """Do these action patterns reach data-bearing resources of `service`?"""
    lowered = [action.lower() for action in actions] or ["*"]
    if service == "ssm":
        return any(fnmatchcase(candidate, pattern)
                   for pattern in lowered for candidate in SSM_PARAMETER_ACTIONS)
    if service not in _DATA_SERVICES:
        return False
    exempt = _DATA_SERVICES[service]
    return any(pattern not in exempt for pattern in lowered)


def _service_of_actions(document_statements: Sequence[Mapping[str, Any]]) -> str | None:
    """The service a separate VpcEndpointPolicy serves, read from its Allow actions' prefix
    (`s3:*` -> s3); None when they are mixed or include `*` (then the strictest reading)."""
    prefixes = {str(action).split(":", 1)[0].lower() if ":" in str(action) else "*"
                for statement in document_statements for action in as_list(statement.get("Action"))}
    if len(prefixes) == 1:
        return _PREFIX_SERVICE.get(prefixes.pop())
    return None


def _service(endpoint: Resource) -> str | None:
    name = endpoint.get("serviceName")
    if not isinstance(name, str) or not name.startswith("com.amazonaws."):
        return None
    return name.split(".", 3)[-1] if name.count(".") >= 3 else None


def _account_of(value: str) -> str | None:
    if _ACCOUNT.match(value):
        return value
    parts = value.split(":")
    return parts[4] if value.startswith("arn:") and len(parts) > 4 else None


class _Checker:
    def __init__(self, config: Mapping[str, Any]) -> None:
        self.accounts = set(as_list(config.get("trustedAccountIds")))
        self.organizations = set(as_list(config.get("trustedOrganizationIds")))

    def _value_ok(self, key: str, value: Any) -> bool:
        if not isinstance(value, str) or not value or value.strip("*?") == "":
            return False
        if key in ("aws:principalaccount", "aws:resourceaccount"):
            return "*" not in value and "?" not in value and (
                not self.accounts or value in self.accounts)
        if key in ("aws:principalorgid", "aws:resourceorgid"):
            return "*" not in value and "?" not in value and (
                not self.organizations or value in self.organizations)
        if key in ("aws:principalorgpaths", "aws:resourceorgpaths"):
            org = value.split("/", 1)[0]
            return "*" not in org and (not self.organizations or org in self.organizations)
        account = _account_of(value)  # aws:PrincipalArn
        return account is not None and "*" not in account and "?" not in account and (
            not self.accounts or account in self.accounts)

    def pinned(self, statement: Mapping[str, Any], keys: set[str]) -> bool:
        """True when a positive condition on one of `keys` holds only acceptable values."""
        condition = statement.get("Condition")
        if not isinstance(condition, Mapping):
            return False
        for operator, block in condition.items():
            base = str(operator).lower().removeprefix("forallvalues:").removeprefix("foranyvalue:")
            if base not in _POSITIVE or not isinstance(block, Mapping):
                continue
            for key, values in block.items():
                if key.lower() in keys and as_list(values) and all(
                        self._value_ok(key.lower(), value) for value in as_list(values)):
                    return True
        return False

    def our_accounts(self, statement: Mapping[str, Any]) -> set[str]:
        """Accounts the statement itself says are ours (its positive aws:PrincipalAccount values
        and named principals' accounts), with the trusted ones."""
        found = set(self.accounts)
        condition = statement.get("Condition")
        for operator, block in (condition.items() if isinstance(condition, Mapping) else ()):
            base = str(operator).lower().removeprefix("forallvalues:").removeprefix("foranyvalue:")
            if base in _POSITIVE and isinstance(block, Mapping):
                found |= {value for key, values in block.items() if key.lower() == "aws:principalaccount"
                          for value in as_list(values) if isinstance(value, str) and _ACCOUNT.match(value)}
        principal = statement.get("Principal")
        if isinstance(principal, Mapping):
            found |= {account for values in principal.values() for value in as_list(values)
                      if isinstance(value, str) and (account := _account_of(value))
                      and _ACCOUNT.match(account)}
        return found

    def named_principal_problem(self, principal: Any) -> str | None:
        """None if `principal` names only acceptable principals; 'wildcard' if it is anyone."""
        if principal == "*":
            return "wildcard"
        if not isinstance(principal, Mapping):
            return "an unreadable Principal"
        values = [v for vs in principal.values() for v in as_list(vs)]
        if any(v == "*" for v in values):
            return "wildcard"
        if self.accounts:
            foreign = sorted({a for v in values if isinstance(v, str)
                              if (a := _account_of(v)) and a not in self.accounts})
            if foreign:
                return f"principals of untrusted account(s) {', '.join(foreign)}"
        return None


def _is_service_statement(statement: Mapping[str, Any]) -> bool:
    condition = statement.get("Condition")
    if not isinstance(condition, Mapping):
        return False
    return any(str(op).lower() == "bool" and isinstance(block, Mapping) and any(
        k.lower() == "aws:principalisawsservice" and str(v).lower() == "true"
        for k, v in block.items()) for op, block in condition.items())


def _foreign_resources(statement: Mapping[str, Any], accounts: set[str]) -> list[str]:
    """Named resources the ARN does not show to be ours: another account's (one neither the
    statement's principal condition nor trustedAccountIds names), and S3 buckets, whose ARN has no
    account (a name anyone can hold). ARNs without an account elsewhere, or account `aws`, are
    AWS-owned (SSM documents, public parameters, managed components)."""
    foreign = []
    for resource in as_list(statement.get("Resource")):
        parts = str(resource).split(":", 5)
        service, account = parts[2], parts[4]
        if service == "s3" or (account not in ("", "aws") and account not in accounts):
            foreign.append(str(resource))
    return foreign


def _explicit_resources(statement: Mapping[str, Any]) -> bool:
    """Every Resource is an ARN naming its account (or none, for AWS-owned) and its resource
    without wildcards in the account or the first path element (bucket, document/...)."""
    resources = as_list(statement.get("Resource"))
    if not resources:
        return False
    for resource in resources:
        if (parts := _arn_parts(resource)) is None:
            return False
        account, name = parts[4], parts[5].split("/", 1)[0]
        if any(wildcard in account + name for wildcard in "*?"):
            return False
    return True


def statement_problems(statement: Mapping[str, Any], label: str, needs_resource_perimeter: bool,
                       checker: _Checker, service: str | None = None) -> list[str]:
    sid = statement.get("Sid") or "(no Sid)"
    where = f"{label} statement {sid}"
    for negated in ("NotPrincipal", "NotAction", "NotResource"):
        if negated in statement:
            return [f"{where} allows with {negated}, which admits everything not listed"]
    actions = [str(a) for a in as_list(statement.get("Action"))]
    principal = statement.get("Principal")
    if _is_service_statement(statement):
        return []
    if isinstance(principal, Mapping) and set(principal) == {"Federated"}:
        return [f"{where} names a Federated principal: web-identity and SAML calls through an "
                'endpoint carry no principal; AWS documents "Principal": "*" with sts:AssumeRoleWith* '
                "only and an aws:ResourceOrgID / aws:ResourceAccount condition"]
    if actions and all(a.lower() in _FEDERATED_ACTIONS for a in actions) and checker.pinned(
            statement, RESOURCE_KEYS) and checker.named_principal_problem(principal) == "wildcard":
        return []  # federated sessions into our roles
    if actions and all(_READ_ONLY.match(a) for a in actions) and _explicit_resources(statement):
        return []  # read-only on named resources (e.g. AWS-owned package buckets)
    problem = checker.named_principal_problem(principal)
    if problem == "wildcard":
        if not checker.pinned(statement, PRINCIPAL_KEYS):
            return [f"{where} allows any principal without a positive aws:PrincipalOrgID / "
                    "aws:PrincipalAccount / aws:PrincipalArn condition on our own values"]
    elif problem is not None:
        return [f"{where} allows {problem}"]
    if needs_resource_perimeter and not checker.pinned(statement, RESOURCE_KEYS):
        if not _explicit_resources(statement):
            return [f"{where} lets our principals reach any account's resources: add an "
                    "aws:ResourceOrgID or aws:ResourceAccount condition (exfiltration path)"]
        if foreign := _foreign_resources(statement, checker.our_accounts(statement)):
            return [f"{where} names resources not shown to be ours ({', '.join(foreign)}): a "
                    "bucket's name or another account's ARN can be anyone's; add an "
                    "aws:ResourceOrgID or aws:ResourceAccount condition (exfiltration path)"]
    if _needs_named_resources(service, actions) and not _names_resources(statement):
        return [f"{where} admits every {service} resource of the account "
                f"(Resource {statement.get('Resource')!r}): name this stack's resources by ARN, "
                "or data can be staged in another environment's resources and read from outside"]
    return []


def policy_problems(document: Any, label: str, service: str | None,
                    config: Mapping[str, Any]) -> list[str]:
    """Why an endpoint policy document does not keep the endpoint inside the perimeter."""
    try:
        statements = allow_statements(document, f"{label} endpoint policy")
    except PolicyDocumentError as error:
        return [str(error)]
    if service is None:
        service = _service_of_actions([statement for _, statement in statements])
    # An unknown service (a separate VpcEndpointPolicy with mixed actions) gets the strict reading.
    needs_resource_perimeter = service not in SERVICES_WITHOUT_RESOURCES
    checker = _Checker(config)
    problems = []
    for _, statement in statements:
        problems += statement_problems(statement, f"{label} endpoint policy",
                                       needs_resource_perimeter, checker, service)
    return problems


def vpc_endpoint_policy_restrictive(resource: Resource, config: Mapping[str, Any]) -> list[str]:
    if resource.type == ENDPOINT:
        if resource.get("vpcEndpointType", "Gateway") not in POLICY_TYPES:
            return []
        document = resource.get("policy")
        if not document:
            return []  # vpc-endpoint-policy-present decides whether a policy is attached
        return policy_problems(document, f"endpoint {resource.name}", _service(resource), config)
    document = resource.get("policy")
    return policy_problems(document, resource.name, None, config) if document else [
        f"{resource.name} attaches an empty endpoint policy"]


RULE = Rule(
    name="vpc-endpoint-policy-restrictive",
    description="VPC endpoint policies must admit only our principals, and (on every service "
                "with resources) only our resources.",
    control="data perimeter",
    severity=Severity.HIGH,
    remediation="Pin every Allow statement with StringEquals aws:PrincipalOrgID (or "
                "aws:PrincipalAccount) and, on every service but ssmmessages/ec2messages, "
                "aws:ResourceOrgID (or aws:ResourceAccount) or named resources; on s3, logs, "
                "ecr and SSM parameters also name this "
                "stack's resources by ARN (SegmentedNetwork.restrict_endpoints); name AWS-owned "
                "resources explicitly and read-only; federation under \"Principal\": \"*\".",
    resource_check=vpc_endpoint_policy_restrictive,
    resource_types=frozenset({ENDPOINT, ENDPOINT_POLICY}),
    config={
        "trustedAccountIds": {"type": "array", "items": {"type": "string", "pattern": "^[0-9]{12}$"},
                              "default": [],
                              "description": "If set, the only accounts policies may admit."},
        "trustedOrganizationIds": {"type": "array", "items": {"type": "string"}, "default": [],
                                   "description": "If set, the only organisations policies may admit."},
    },
)
