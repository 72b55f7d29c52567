"""A CI system's role admits the workflows of one repository, on a named branch or protected
environment, and nothing else (control: CI deploys, humans read).

A role that trusts a CI system's OIDC provider is assumed by whatever workflow can get a token
from that issuer: every repository of every user of GitHub or GitLab.com, unless the trust says
otherwise. So every Allow of its trust that admits such a provider must carry

- `StringEquals` on `<issuer>:aud` with exact values (the audience the CI asks for);
- `StringEquals` on `<issuer>:sub` with exact values: no `StringLike`, no `...IfExists`, no
  `ForAnyValue:`, no `*` or `?` (`repo:example-org/*` admits every repository of the
  organisation, `repo:example-org/app:*` every branch, pull request and environment of it);
- for GitHub Actions (`token.actions.githubusercontent.com`) and GitLab.com (`gitlab.com`),
  subjects that each name the repository and a branch, environment, tag or pull request after
  it (`repo:<owner>/<name>:environment:prod`), all of one repository.

Which roles: those tagged `ztai:access=ci` (case and spaces ignored, so a look-alike tag does
not escape; components/ci_identity.py tags its roles so), whose every trust Allow must admit only
OIDC providers, pinned so; and, whatever their tags, roles whose trust admits the provider of a
known CI issuer (the two above and the rule setting `ciIssuerHosts`). A CI role's pinned trust is
not people's (ztpolicy.iam.people_trust): the human-role rules leave it to this one. A policy
not known yet (a real preview) is checked when it is. Not suppressible: a CI role that any
repository's workflow can assume hands the deploy to anyone with a GitHub account.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import Severity

from ztpolicy.graph import UNKNOWN, as_list, known
from ztpolicy.iam import (
    CI,
    CI_ISSUER_SUBJECTS,
    ROLE,
    DocumentError,
    access_tag,
    ci_trust_problems,
    loosely,
    oidc_provider_host,
    parse,
    statements,
)
from ztpolicy.rule import Resource, Rule


def ci_oidc_trust_pinned(resource: Resource, config: Mapping[str, Any]) -> list[str]:
    label = f"role {resource.name} trust policy"
    try:
        document = parse(known(resource, "assumeRolePolicy"), label)
    except DocumentError:
        return []  # iam-role-trust-restricted names the problem
    if document is UNKNOWN or not isinstance(document, Mapping):
        return []
    ci_hosts = {*CI_ISSUER_SUBJECTS, *(str(h).lower() for h in as_list(config.get("ciIssuerHosts")))}
    tagged = loosely(access_tag(resource)) == CI
    problems: list[str] = []
    for sid, statement in statements(document):
        if statement.get("Effect") != "Allow":
            continue
        where = f"{label} statement {sid}"
        principal = statement.get("Principal")
        entries = principal if isinstance(principal, Mapping) else {}
        federated = [str(p) for p in as_list(entries.get("Federated"))]
        others = sorted(str(kind) for kind in entries if kind != "Federated")
        if tagged and (not federated or others or "NotPrincipal" in statement):
            problems.append(f"{where} admits {', '.join(others) or 'a principal'} besides the CI "
                            "system's OIDC provider: a CI role is assumed only with the CI's tokens")
        for provider in federated:
            host = oidc_provider_host(provider)
            if host is None:
                if tagged:
                    problems.append(f"{where} admits {provider}, not an OIDC provider")
                continue
            if not tagged and host.lower() not in ci_hosts:
                continue  # people's OIDC provider: the human-role rules judge it
            problems += [f"{where}: {problem}" for problem in ci_trust_problems(statement, host)]
    return problems


RULE = Rule(
    name="ci-oidc-trust-pinned",
    description="A CI role's trust pins its OIDC tokens' audience and exact subject to one "
                "repository and a branch or protected environment (no wildcards).",
    control="CI deploys, humans read",
    severity=Severity.CRITICAL,
    remediation="Build CI roles with CiIdentity (components/ci_identity.py), which pins "
                "<issuer>:aud and <issuer>:sub with StringEquals to the configured ciRepository "
                "and its branch or protected environments.",
    resource_check=ci_oidc_trust_pinned,
    resource_types=frozenset({ROLE}),
    suppressible=False,
    config={
        "ciIssuerHosts": {"type": "array", "items": {"type": "string"}, "default": [],
                          "description": "Further CI issuers (an IAM OIDC provider's host, e.g. "
                                         "gitlab.example.com) whose roles this rule holds, "
                                         "besides GitHub Actions and GitLab.com."},
    },
)
