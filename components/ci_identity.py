"""CI deploys, humans read: the CI system's identity in an account (the bootstrap layer).

What it builds, one per environment and account (docs/ci-identity.md):

- an IAM OIDC identity provider for the CI system's tokens: GitHub Actions by default
  (`https://token.actions.githubusercontent.com`, audience `sts.amazonaws.com`), GitLab or any
  OIDC issuer by configuration, or an existing provider of the account (`ciIdentityProviderArn`;
  IAM keeps one provider per issuer URL). No thumbprint is set: for GitHub, GitLab and other
  issuers whose certificates chain to a CA IAM trusts, IAM validates the issuer's certificate
  against its own library of trusted CAs and ignores any thumbprint; for other issuers IAM
  retrieves the thumbprint itself when none is given (IAM User Guide, "Create an OpenID Connect
  (OIDC) identity provider in IAM"; the provider's `thumbprint_lists` documentation);
- three roles, each trusted only through that provider, for one audience (`<issuer>:aud`) and the
  exact token subjects (`<issuer>:sub`, StringEquals, no wildcard) of one repository:
  - `zero-trust-ai-<env>-ci-preview`: pull requests and the deploy branch. It reads the Pulumi
    state (through S3, with the state key) and the few AWS facts the program looks up; it can
    write nothing, use no other KMS key (the secrets-provider key above all: denied in its own
    policy and in the key's), read no secret (Secrets Manager, SSM parameters);
  - `zero-trust-ai-<env>-deploy-workload`: only jobs of the protected environment `<env>`. It
    deploys the workload layer and holds an explicit Deny of kms:PutKeyPolicy (and of creating,
    disabling, deleting, replicating or re-aliasing keys);
  - `zero-trust-ai-<env>-deploy-keys`: only jobs of the protected environment `<env>-keys`. The
    key layer's deployer: the only role here that may write a key policy.
  Every role has a session of an hour at most and the boundary below, and carries the tags
  `ztai:access=ci` and `ztai:role=<role>` the policy pack reads;
- the permissions boundary `zero-trust-ai-<env>-ci-boundary` of the three roles: they cannot
  change the CI roles, their boundary or the identity provider, create IAM users or access keys,
  stop CloudTrail, write a key policy (the key deployer excepted), or reconfigure the state
  bucket and delete its history;
- the state backend (components/state_backend.py), whose bucket and keys only these roles reach.

People do not deploy: in prod they read, with the auditor role of components/identity.py.

The roles are named, not generated: a workflow names the role it assumes, and the key layer's key
policies name the key deployer. Their ARNs are built from the names, so the bucket and key
policies can name the roles without waiting for them.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components.aws_facts import partition_for_region
from components.config_values import (
    StackKey,
    as_int,
    as_string,
    as_string_list,
    full,
    show,
    show_number,
)
from components.role_policies import WORKLOAD_POLICY_PATTERN

CI_PROVIDERS = ("github", "gitlab", "oidc")
GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
GITLAB_ISSUER = "https://gitlab.com"
# The audience AWS's own credential action asks GitHub for, and the one GitLab's docs use for AWS.
DEFAULT_AUDIENCE = "sts.amazonaws.com"
DEFAULT_BRANCH = "main"
OBJECT_LOCK_MODES = ("compliance", "governance")
# S3 Object Lock retention in days: at most 100 years (S3 API Reference, DefaultRetention).
MAX_OBJECT_LOCK_DAYS = 36500
# The shortest session IAM allows, and its default: a leaked CI credential dies within the hour.
MAX_SESSION_SECONDS = 3600

ACCESS_TAG, ROLE_TAG = "ztai:access", "ztai:role"
ROLE_GRANT_TAG = "ztai:grant"  # components.identity.GRANT_TAG: what an elevation grants
CI_ACCESS = "ci"
PREVIEW, DEPLOY_WORKLOAD, DEPLOY_KEYS = "ci-preview", "deploy-workload", "deploy-keys"
CI_ROLES = (PREVIEW, DEPLOY_WORKLOAD, DEPLOY_KEYS)

# GitHub: an owner (user or organisation) and a repository name, as GitHub spells them.
_GITHUB_REPOSITORY = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$")
# GitLab: a project path, group/[subgroups/]project.
_GITLAB_REPOSITORY = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_.-]*(?:/[A-Za-z0-9_.][A-Za-z0-9_.-]*)+$")
# A branch or environment name: no wildcard, no `:` (the subject's separator), no spaces.
_REF_NAME = re.compile(r"^[A-Za-z0-9._/-]{1,200}$")
_ISSUER = re.compile(r"^https://[A-Za-z0-9.-]+(?::\d{1,5})?(?:/[A-Za-z0-9._~-]+)*$")
_AUDIENCE = re.compile(r"^[\x21-\x7e]{1,255}$")
_OIDC_PROVIDER_ARN = re.compile(r"^arn:aws(-cn|-us-gov)?:iam::\d{12}:oidc-provider/[A-Za-z0-9./:_-]+$")
# S3 bucket naming rules (S3 User Guide, "General purpose bucket naming rules").
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


# -- stack keys ------------------------------------------------------------------------------------
def _parse_provider(key: str, value: Any) -> str:
    text = as_string(key, value)
    if text not in CI_PROVIDERS:
        raise ValueError(f"{full(key)} = {show(value)}: allowed values are {', '.join(CI_PROVIDERS)}")
    return text


def _optional(key: str, value: Any) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return as_string(key, value)


def _parse_issuer(key: str, value: Any) -> str | None:
    text = _optional(key, value)
    if text is not None and not _ISSUER.match(text):
        raise ValueError(f"{full(key)} = {show(value)}: the issuer's https URL, the token's `iss` "
                         "claim exactly, without query or trailing slash, e.g. https://gitlab.example.com")
    return text


def _parse_audience(key: str, value: Any) -> str:
    text = as_string(key, value)
    if not _AUDIENCE.match(text) or "*" in text or "?" in text:
        raise ValueError(f"{full(key)} = {show(value)}: one audience (the token's `aud`), printable "
                         "characters without spaces or wildcards, e.g. sts.amazonaws.com")
    return text


def _parse_repository(key: str, value: Any) -> str | None:
    text = _optional(key, value)
    if text is not None and not _GITLAB_REPOSITORY.match(text):
        raise ValueError(f"{full(key)} = {show(value)}: the repository as owner/name (GitHub) or "
                         "group/project (GitLab), without wildcards, e.g. example-org/zero-trust-ai")
    return text


def _parse_ref_name(key: str, value: Any) -> str | None:
    text = _optional(key, value)
    if text is not None and (not _REF_NAME.match(text) or text.startswith(("/", "-"))
                             or ".." in text):
        raise ValueError(f"{full(key)} = {show(value)}: a branch or environment name of letters, "
                         "digits and . _ / -, without wildcards or `:`, e.g. main")
    return text


def _parse_branch(key: str, value: Any) -> str:
    text = _parse_ref_name(key, value)
    if text is None:
        raise ValueError(f"{full(key)} = {show(value)}: expected a branch name, e.g. main")
    return text


def _parse_subject(key: str, value: Any) -> str | None:
    text = _optional(key, value)
    if text is not None and ("*" in text or "?" in text or any(c.isspace() for c in text)):
        raise ValueError(f"{full(key)} = {show(value)}: one exact token subject (`sub`), without "
                         "wildcards or spaces: a pattern would admit every workflow it matches")
    return text


def _parse_provider_arn(key: str, value: Any) -> str | None:
    text = _optional(key, value)
    if text is not None and not _OIDC_PROVIDER_ARN.match(text):
        raise ValueError(f"{full(key)} = {show(value)}: an IAM OIDC provider ARN, e.g. "
                         "arn:aws:iam::111122223333:oidc-provider/token.actions.githubusercontent.com")
    return text


def _parse_bucket_name(key: str, value: Any) -> str | None:
    text = _optional(key, value)
    if text is not None and (not _BUCKET_NAME.match(text) or ".." in text or text.startswith("xn--")
                             or re.fullmatch(r"\d+\.\d+\.\d+\.\d+", text)):
        raise ValueError(f"{full(key)} = {show(value)}: an S3 bucket name: 3-63 lower-case letters, "
                         "digits, . and -, starting and ending with a letter or digit")
    return text


def _parse_lock_days(key: str, value: Any) -> int:
    days = as_int(key, value)
    if not 0 <= days <= MAX_OBJECT_LOCK_DAYS:
        raise ValueError(f"{full(key)} = {show_number(value)}: 0 (no Object Lock) to "
                         f"{MAX_OBJECT_LOCK_DAYS} days")
    return days


def _parse_lock_mode(key: str, value: Any) -> str:
    text = as_string(key, value).lower()
    if text not in OBJECT_LOCK_MODES:
        raise ValueError(f"{full(key)} = {show(value)}: allowed values are "
                         f"{', '.join(OBJECT_LOCK_MODES)}")
    return text


# Declared here, merged into KEYS (components/stack_config.py) after the other keys, so that
# Pulumi.yaml's `config:` block ends with them. All optional for the other layers; the bootstrap
# layer requires ciRepository (`ci_settings`).
CI_KEYS: dict[str, StackKey] = {
    "ciProvider": StackKey("Bootstrap layer: the CI system whose OIDC tokens the CI roles trust: "
                           "github (GitHub Actions), gitlab, or oidc (any issuer; give the three "
                           "ci*Subject keys).", False, _parse_provider, "github",
                           allowed=CI_PROVIDERS),
    "ciIssuerUrl": StackKey("Bootstrap layer: the token issuer's URL (`iss`); default "
                            f"{GITHUB_ISSUER} (github), {GITLAB_ISSUER} (gitlab); required "
                            "with oidc.", False, _parse_issuer, ""),
    "ciAudience": StackKey("Bootstrap layer: the audience (`aud`) the CI tokens must carry.",
                           False, _parse_audience, DEFAULT_AUDIENCE),
    "ciIdentityProviderArn": StackKey(
        "Bootstrap layer: an IAM OIDC provider of the account for the issuer, to use instead of "
        "creating one (IAM keeps one per issuer URL); default: the stack creates it.",
        False, _parse_provider_arn, ""),
    "ciRepository": StackKey("Bootstrap layer (required there): the repository whose workflows "
                             "may assume the CI roles, owner/name (GitHub) or group/project "
                             "(GitLab).", False, _parse_repository, ""),
    "ciBranch": StackKey("Bootstrap layer: the deploy branch; the preview role admits it and pull "
                         "requests (gitlab: this branch only).", False, _parse_branch,
                         DEFAULT_BRANCH),
    "ciDeployEnvironment": StackKey(
        "Bootstrap layer: the protected CI environment whose jobs may assume the workload "
        "deployer (github); default: the stack's environment.", False, _parse_ref_name, ""),
    "ciKeysEnvironment": StackKey(
        "Bootstrap layer: the protected CI environment whose jobs may assume the key layer's "
        "deployer (github); default: <environment>-keys.", False, _parse_ref_name, ""),
    "ciKeysBranch": StackKey(
        "Bootstrap layer, gitlab: the protected branch whose pipelines may assume the key "
        "layer's deployer (GitLab tokens name no environment); default: <ciBranch>-keys.",
        False, _parse_ref_name, ""),
    "ciPreviewSubject": StackKey("Bootstrap layer, oidc: the exact token subject of the preview "
                                 "role.", False, _parse_subject, ""),
    "ciWorkloadSubject": StackKey("Bootstrap layer, oidc: the exact token subject of the workload "
                                  "deployer.", False, _parse_subject, ""),
    "ciKeysSubject": StackKey("Bootstrap layer, oidc: the exact token subject of the key layer's "
                              "deployer.", False, _parse_subject, ""),
    "stateBucketName": StackKey("Bootstrap layer: the Pulumi state bucket's name; default: "
                                "generated (exported as stateBackendUrl).", False,
                                _parse_bucket_name, ""),
    "stateObjectLockDays": StackKey(
        "Bootstrap layer: S3 Object Lock default retention of the state bucket's object versions, "
        "in days; 0: no Object Lock (it can only be turned on by replacing the bucket).",
        False, _parse_lock_days, 0, type="integer"),
    "stateObjectLockMode": StackKey(
        "Bootstrap layer: Object Lock mode: compliance (nobody, the account root included, can "
        "shorten it) or governance (s3:BypassGovernanceRetention can).", False, _parse_lock_mode,
        "compliance", allowed=OBJECT_LOCK_MODES),
}


@dataclass(frozen=True)
class CiSubjects:
    """The exact token subjects each role admits."""

    preview: tuple[str, ...]
    workload: str
    keys: str


@dataclass(frozen=True)
class CiSettings:
    """The bootstrap layer's settings (docs/ci-identity.md)."""

    repository: str
    environment: str
    provider: str = "github"
    issuer_url: str = GITHUB_ISSUER
    audience: str = DEFAULT_AUDIENCE
    branch: str = DEFAULT_BRANCH
    deploy_environment: str = ""  # "": the stack's environment
    keys_environment: str = ""  # "": <environment>-keys
    keys_branch: str = ""  # gitlab; "": <branch>-keys
    identity_provider_arn: str | None = None  # None: created by the stack
    oidc_subjects: CiSubjects | None = None  # oidc only
    state_bucket_name: str | None = None
    object_lock_days: int = 0
    object_lock_mode: str = "compliance"

    @property
    def issuer_host(self) -> str:
        """The issuer as IAM names it in condition keys (`<host>:sub`): the URL without https://."""
        return self.issuer_url.removeprefix("https://")

    @property
    def subjects(self) -> CiSubjects:
        return subjects_for(self)


def subjects_for(settings: CiSettings) -> CiSubjects:
    """The token subjects of each role, in the issuer's subject format.

    GitHub (GitHub Docs, "About security hardening with OpenID Connect", subject claims): a job
    that names an environment has `repo:<owner>/<name>:environment:<environment>`, whatever its
    branch. Every role trusts one protected environment only: the preview role
    `<environment>-preview`, whose deployment rules let only approved commits in (the merge queue
    and the main branch, docs/ci.md), never a pull request's own job
    (`repo:<owner>/<name>:pull_request`), which runs the pull request's code: a cloud preview runs
    the program, and with it whatever the pull request changed. GitLab (GitLab Docs, "OpenID Connect (OIDC)
    Authentication Using ID Tokens"): `project_path:<group>/<project>:ref_type:branch:ref:<branch>`;
    its tokens name no environment, so the deployers are told apart by protected branch.
    """
    repo, env = settings.repository, settings.environment
    deploy_env = settings.deploy_environment or env
    keys_env = settings.keys_environment or f"{env}-keys"
    if settings.provider == "github":
        return CiSubjects(preview=(f"repo:{repo}:environment:{env}-preview",),
                          workload=f"repo:{repo}:environment:{deploy_env}",
                          keys=f"repo:{repo}:environment:{keys_env}")
    if settings.provider == "gitlab":
        def branch(name: str) -> str:
            return f"project_path:{repo}:ref_type:branch:ref:{name}"
        return CiSubjects(preview=(branch(settings.branch),), workload=branch(settings.branch),
                          keys=branch(settings.keys_branch or f"{settings.branch}-keys"))
    if settings.oidc_subjects is None:
        raise ValueError("ciProvider oidc needs its three subjects")
    return settings.oidc_subjects


class CiSettingsError(ValueError):
    """The bootstrap layer's settings are invalid; `problems` lists each one."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


_OIDC_SUBJECT_KEYS = ("ciPreviewSubject", "ciWorkloadSubject", "ciKeysSubject")


def ci_settings(values: Mapping[str, Any], environment: str,
                given: Collection[str]) -> tuple[CiSettings | None, list[str]]:
    """The bootstrap layer's settings from the parsed stack keys (`values`: bare key -> value as
    each key's parser returned it, None for a key unset or refused; `given`: the bare keys the
    stack sets), and the problems that span several keys. Each problem names the key, the value
    and what is allowed; a value its parser refused is reported by the parser, not again here."""
    problems: list[str] = []
    provider = values.get("ciProvider") or "github"
    repository = values.get("ciRepository")
    if repository is None and "ciRepository" not in given:
        problems.append(f"{full('ciRepository')}: missing; the bootstrap layer needs the repository "
                        "whose workflows may deploy, e.g. example-org/zero-trust-ai")
    elif isinstance(repository, str) and provider == "github" and not _GITHUB_REPOSITORY.match(repository):
        problems.append(f"{full('ciRepository')} = {show(repository)}: GitHub repositories are "
                        "owner/name, e.g. example-org/zero-trust-ai")
    issuer = values.get("ciIssuerUrl")
    if provider == "oidc" and issuer is None:
        problems.append(f"{full('ciIssuerUrl')}: missing; ciProvider oidc needs the issuer's URL")
    issuer = issuer or (GITHUB_ISSUER if provider == "github" else GITLAB_ISSUER)
    given_subjects = {key: values.get(key) for key in _OIDC_SUBJECT_KEYS}
    oidc_subjects = None
    if provider == "oidc":
        missing = [full(key) for key, value in given_subjects.items() if value is None]
        if missing:
            problems.append(f"{', '.join(missing)}: missing; ciProvider oidc needs the exact token "
                            "subject of each role")
        else:
            oidc_subjects = CiSubjects(preview=(str(given_subjects["ciPreviewSubject"]),),
                                       workload=str(given_subjects["ciWorkloadSubject"]),
                                       keys=str(given_subjects["ciKeysSubject"]))
            if len({*oidc_subjects.preview, oidc_subjects.workload, oidc_subjects.keys}) < 3:
                problems.append(f"{', '.join(map(full, _OIDC_SUBJECT_KEYS))}: three different "
                                "subjects, one per role (a shared subject would let the preview "
                                "or workload job assume the key deployer)")
    else:
        problems += [f"{full(key)}: only with ciProvider oidc (github and gitlab subjects are "
                     "built from ciRepository and the branch or environment)"
                     for key, value in given_subjects.items() if value is not None]
    if provider != "github":
        problems += [f"{full(key)}: only with ciProvider github (other issuers' tokens name no "
                     "environment)" for key in ("ciDeployEnvironment", "ciKeysEnvironment")
                     if values.get(key) is not None]
    if provider != "gitlab" and values.get("ciKeysBranch") is not None:
        problems.append(f"{full('ciKeysBranch')}: only with ciProvider gitlab")
    branch = values.get("ciBranch") or DEFAULT_BRANCH
    deploy_env = values.get("ciDeployEnvironment") or environment
    keys_env = values.get("ciKeysEnvironment") or f"{environment}-keys"
    if provider == "github" and deploy_env == keys_env:
        problems.append(f"{full('ciDeployEnvironment')}, {full('ciKeysEnvironment')} = "
                        f"{show(deploy_env)}: the two deployers need two protected environments "
                        "(the key deployer's with its own reviewers)")
    if provider == "gitlab" and (values.get("ciKeysBranch") or f"{branch}-keys") == branch:
        problems.append(f"{full('ciKeysBranch')} = {show(branch)}: the key deployer needs its own "
                        "protected branch, not the deploy branch")
    if not values.get("keyAdministratorRoleArns"):
        problems.append(f"{full('keyAdministratorRoleArns')}: missing; the bootstrap layer's keys "
                        "(state and secrets provider) need named administrators, one of them the "
                        "role that deploys the bootstrap stack")
    if problems or not isinstance(repository, str):
        return None, problems
    return CiSettings(
        repository=repository, environment=environment, provider=provider, issuer_url=issuer,
        audience=values.get("ciAudience") or DEFAULT_AUDIENCE, branch=branch,
        deploy_environment=deploy_env, keys_environment=keys_env,
        keys_branch=values.get("ciKeysBranch") or f"{branch}-keys",
        identity_provider_arn=values.get("ciIdentityProviderArn"), oidc_subjects=oidc_subjects,
        state_bucket_name=values.get("stateBucketName"),
        object_lock_days=values.get("stateObjectLockDays") or 0,
        object_lock_mode=values.get("stateObjectLockMode") or "compliance"), []


def parse_ci_settings(raw: Mapping[str, Any], environment: str) -> CiSettings:
    """The bootstrap layer's settings from raw stack config (`<project>:<key>` -> value as Pulumi
    passes it); raises CiSettingsError listing every problem (each key's parser, then the checks
    across keys). `keyAdministratorRoleArns` is read as a JSON list of ARNs."""
    problems: list[str] = []
    values: dict[str, Any] = {}
    for key, spec in CI_KEYS.items():
        value = raw.get(full(key), spec.default)
        try:
            values[key] = spec.parse(key, value) if value is not None else None
        except ValueError as error:
            problems.append(str(error))
            values[key] = None
    admins = raw.get(full("keyAdministratorRoleArns"))
    try:
        values["keyAdministratorRoleArns"] = as_string_list("keyAdministratorRoleArns", admins) \
            if admins is not None else []
    except ValueError as error:
        problems.append(str(error))
    given = {key for key in CI_KEYS if full(key) in raw}
    settings, cross = ci_settings(values, environment, given)
    problems += cross
    if problems or settings is None:
        raise CiSettingsError(problems)
    return settings


# -- names and ARNs ------------------------------------------------------------------------------
def role_name(environment: str, role: str) -> str:
    return f"zero-trust-ai-{environment}-{role}"


def boundary_name(environment: str) -> str:
    return f"zero-trust-ai-{environment}-ci-boundary"


def role_arn(partition: str, account: str, environment: str, role: str) -> str:
    return f"arn:{partition}:iam::{account}:role/{role_name(environment, role)}"


# -- policies (pure: JSON text, tested with the IAM policy evaluator) ----------------------------
def _statement(sid: str, effect: str, actions: Sequence[str] | str, resource: Any = "*",
               condition: Mapping[str, Any] | None = None, *, not_resource: Any = None) -> dict[str, Any]:
    statement: dict[str, Any] = {"Sid": sid, "Effect": effect,
                                 "Action": actions if isinstance(actions, str) else sorted(actions)}
    if not_resource is not None:
        statement["NotResource"] = not_resource
    else:
        statement["Resource"] = resource
    if condition:
        statement["Condition"] = dict(condition)
    return statement


def _document(statements: Sequence[Mapping[str, Any]]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)}, sort_keys=True)


def trust_policy(*, provider_arn: str, issuer_host: str, audience: str, subjects: Sequence[str]) -> str:
    """Only tokens of the provider, for `audience`, with one of `subjects` exactly (StringEquals:
    StringLike with a pattern would admit every repository, branch or fork it matches). No
    sts:TagSession: a token cannot set the `ztai:` tags the boundary and the pack read."""
    if not subjects or any("*" in s or "?" in s for s in subjects):
        raise ValueError("trust_policy: exact subjects, without wildcards")
    # No Resource: IAM refuses a trust policy statement that has one.
    return _document([{
        "Sid": "CiWorkflowOfOneRepository", "Effect": "Allow",
        "Principal": {"Federated": provider_arn}, "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {f"{issuer_host}:aud": audience,
                                       f"{issuer_host}:sub": sorted(subjects)}}}])


# Everything that uses a key's material: what the preview role may do with no key but the state
# key, and with that one only through S3.
KEY_USE_ACTIONS = (
    "kms:Decrypt", "kms:Encrypt", "kms:ReEncryptFrom", "kms:ReEncryptTo", "kms:GenerateDataKey",
    "kms:GenerateDataKeyWithoutPlaintext", "kms:GenerateDataKeyPair",
    "kms:GenerateDataKeyPairWithoutPlaintext", "kms:CreateGrant", "kms:GenerateMac",
    "kms:Sign", "kms:DeriveSharedSecret",
)
# Secrets a preview must never read: Secrets Manager values and SSM parameters (a SecureString's
# decryption also needs kms:Decrypt, denied above; the program reads no parameter).
SECRET_READ_ACTIONS = (
    "secretsmanager:GetSecretValue", "secretsmanager:BatchGetSecretValue", "ssm:GetParameter",
    "ssm:GetParameters", "ssm:GetParametersByPath", "ssm:GetParameterHistory",
)
# Writes to any bucket: the preview role changes nothing, the state least of all.
S3_WRITE_ACTIONS = (
    "s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion", "s3:PutObjectAcl",
    "s3:PutObjectRetention", "s3:PutObjectLegalHold", "s3:BypassGovernanceRetention",
    "s3:ReplicateObject", "s3:ReplicateDelete", "s3:RestoreObject",
)
# What the program looks up from AWS in a preview (data sources): the caller's identity needs no
# permission; the zones and Regions do.
PROGRAM_LOOKUP_ACTIONS = ("ec2:DescribeAvailabilityZones", "ec2:DescribeRegions")
# What the drift check (`ztai verify`, docs/drift.md) reads as the preview role in the scheduled
# job: configuration and status, no data. The key-level reads work only on keys whose policy
# names the role (keyInspectorRoleArns).
DRIFT_READ_ACTIONS = ("kms:ListAliases", "kms:DescribeKey", "kms:GetKeyPolicy",
                      "kms:GetKeyRotationStatus", "kms:ListGrants", "kms:ListKeyRotations",
                      "kms:ListResourceTags",
                      "ec2:DescribeVpcs", "ec2:DescribeVpcEndpoints", "ec2:DescribeFlowLogs",
                      "cloudtrail:DescribeTrails", "cloudtrail:GetTrailStatus",
                      # In prod: whether someone confirmed a subscription to the critical topic.
                      "sns:ListTopics", "sns:ListSubscriptionsByTopic", "sns:GetSubscriptionAttributes")
STATE_READ_OBJECT_ACTIONS = ("s3:GetObject", "s3:GetObjectVersion")
STATE_READ_BUCKET_ACTIONS = ("s3:ListBucket", "s3:GetBucketLocation", "s3:GetBucketVersioning")
# The Pulumi S3 backend writes and deletes the state, its backups, history and lock files.
STATE_WRITE_OBJECT_ACTIONS = ("s3:PutObject", "s3:DeleteObject")
# What writes or re-points a key policy, or destroys a key: only the key deployer (and the
# key-admin elevations and break-glass, which are not CI roles).
# (`kms:Disable*`: DisableKey and DisableKeyRotation; `kms:*Alias`: Create, Update and DeleteAlias.)
KEY_POLICY_ACTIONS = (
    "kms:PutKeyPolicy", "kms:CreateKey", "kms:ReplicateKey", "kms:UpdatePrimaryRegion",
    "kms:ScheduleKeyDeletion", "kms:Disable*", "kms:*Alias",
)
# What the key deployer does to keys; never deleting or disabling one (break-glass does that).
KEY_LAYER_ACTIONS = (
    "kms:CreateKey", "kms:PutKeyPolicy", "kms:GetKeyPolicy", "kms:DescribeKey", "kms:ListAliases",
    "kms:ListKeys", "kms:ListKeyPolicies", "kms:ListResourceTags", "kms:CreateAlias",
    "kms:UpdateAlias", "kms:DeleteAlias", "kms:TagResource", "kms:UntagResource",
    "kms:EnableKeyRotation", "kms:GetKeyRotationStatus", "kms:ListKeyRotations",
    "kms:UpdateKeyDescription", "kms:ReplicateKey", "kms:CancelKeyDeletion",
)
# The services the workload layer declares resources of. Service-wide, because a deployer must
# create, update and delete what the program declares; IAM, KMS and STS are listed by action.
WORKLOAD_SERVICES = (
    "acm", "apigateway", "autoscaling", "cloudwatch", "cognito-idp", "dynamodb", "ec2",
    "elasticloadbalancing", "events", "imagebuilder", "lambda", "logs", "route53",
    "route53resolver", "s3", "scheduler", "sns", "sqs", "ssm", "wafv2",
)
WORKLOAD_IAM_ACTIONS = (
    "iam:CreateRole", "iam:DeleteRole", "iam:GetRole", "iam:UpdateRole", "iam:UpdateAssumeRolePolicy",
    "iam:PutRolePolicy", "iam:GetRolePolicy", "iam:DeleteRolePolicy", "iam:AttachRolePolicy",
    "iam:DetachRolePolicy", "iam:ListRolePolicies", "iam:ListAttachedRolePolicies", "iam:TagRole",
    "iam:UntagRole", "iam:PutRolePermissionsBoundary", "iam:PassRole", "iam:CreatePolicy",
    "iam:DeletePolicy", "iam:GetPolicy", "iam:GetPolicyVersion", "iam:CreatePolicyVersion",
    "iam:DeletePolicyVersion", "iam:ListPolicyVersions", "iam:TagPolicy", "iam:CreateInstanceProfile",
    "iam:DeleteInstanceProfile", "iam:GetInstanceProfile", "iam:AddRoleToInstanceProfile",
    "iam:RemoveRoleFromInstanceProfile", "iam:ListInstanceProfilesForRole",
    "iam:CreateServiceLinkedRole",
)
WORKLOAD_KMS_READ_ACTIONS = ("kms:DescribeKey", "kms:GetKeyPolicy", "kms:ListAliases",
                             "kms:ListResourceTags")
# The identity part of an environment (__main__.compose_identity), which a split deployment's key
# layer declares because the key policies name its roles: the human roles, the JIT elevations
# (zero-trust-ai-<env>-jit-<name>) and the JIT's own roles (zero-trust-ai-<env>-jit-<fn>-role),
# the JIT functions, table, logs and failure queues, the human boundary and the break-glass
# watches. Only the key deployer changes them: whoever changes a role's trust or tags, or the
# JIT's code or table, holds what the keys grant those roles (the JIT API writes two-person key
# policies). The workload's deployer may still write inline policies on the human and elevation
# roles (the grants of its own resources: a bucket prefix, sessions), within the human boundary.
IDENTITY_ROLE_CHANGES = (
    "iam:CreateRole", "iam:DeleteRole", "iam:UpdateRole*", "iam:UpdateAssumeRolePolicy",
    "iam:*RolePermissionsBoundary", "iam:TagRole", "iam:UntagRole",
)
# Attaching and detaching: only the workload's own managed policies (components/role_policies.py),
# told apart by iam:PolicyARN (IAM User Guide, "IAM condition context keys": iam:PolicyARN on
# AttachRolePolicy and DetachRolePolicy).
ATTACHMENT_CHANGES = ("iam:AttachRolePolicy", "iam:DetachRolePolicy")
IDENTITY_ROLE_WRITES = (
    "iam:CreateRole", "iam:DeleteRole", "iam:UpdateRole", "iam:UpdateRoleDescription",
    "iam:UpdateAssumeRolePolicy", "iam:PutRolePermissionsBoundary", "iam:DeleteRolePermissionsBoundary",
    "iam:TagRole", "iam:UntagRole",
)
# On the JIT's own roles, their permissions and who may hand them to a service too: a function
# created with the JIT API's role would write key policies with no approval.
JIT_ROLE_CHANGES = ("iam:PutRolePolicy", "iam:DeleteRolePolicy", "iam:PassRole")
# The roles whose inline policies the workload's deployer may not write either: those it grants
# nothing (the auditor's reads, the key administrator's inspection, break-glass), and the
# elevations that administer keys or stand for break-glass (tag ztai:grant, set by the key layer,
# which the deployer may not change): more permissions there would ride on two people's approval
# of something else.
PRIVILEGED_HUMAN_ROLES = ("auditor", "key-administrator", "break-glass")
PRIVILEGED_GRANTS = ("key-admin", "break-glass")
INLINE_POLICY_CHANGES = ("iam:PutRolePolicy", "iam:DeleteRolePolicy")
# What records or watches the elevations: their logs, failure queues and break-glass rules.
IDENTITY_RECORD_CHANGES = (
    "logs:DeleteLogGroup", "logs:DeleteLogStream", "logs:PutRetentionPolicy",
    "logs:DeleteRetentionPolicy", "logs:AssociateKmsKey", "logs:DisassociateKmsKey",
    "logs:PutSubscriptionFilter", "logs:DeleteSubscriptionFilter", "logs:TagResource",
    "logs:UntagResource", "sqs:*", "events:DeleteRule", "events:DisableRule", "events:PutRule",
    "events:PutTargets", "events:RemoveTargets", "events:TagResource", "events:UntagResource",
    "cloudwatch:DeleteAlarms", "cloudwatch:PutMetricAlarm", "cloudwatch:DisableAlarmActions",
    "cloudwatch:SetAlarmState",
)
# The key layer's SIEM functions, `<stream>-<name>`: the OCSF transform (components/siem_stream.py)
# and the detection function (components/detection.py).
SIEM_FUNCTIONS = ("transform", "detect")
# The JIT functions' own alarms, queues and log groups are named after the functions.
JIT_NAME = "zero-trust-ai-{environment}-jit"


@dataclass(frozen=True)
class IdentityPart:
    """ARNs (patterns) of an environment's identity part, `*` for every environment."""

    roles: tuple[str, ...]  # the human roles, the elevations and the JIT's roles
    jit_roles: tuple[str, ...]  # the JIT's own roles
    privileged_roles: tuple[str, ...]  # PRIVILEGED_HUMAN_ROLES
    elevations: str  # every elevation role (and the JIT's: the pattern cannot tell them apart)
    functions: tuple[str, ...]
    table: tuple[str, ...]
    boundary: str
    records: tuple[str, ...]
    # The key layer's SIEM stream (components/siem_stream.py), which carries the trail's copy out:
    # whoever could change its transform, roles, buckets or logs could drop or forge the trail's
    # events before the SIEM sees them.
    siem: tuple[str, ...] = ()


def identity_part(partition: str, account: str, environment: str = "*") -> IdentityPart:
    # Imported here: components.identity reads components.stack_config, which reads this module.
    from components.identity import ROLES as HUMAN_ROLES

    iam, jit = f"arn:{partition}:iam::{account}", JIT_NAME.format(environment=environment)
    siem = f"zero-trust-ai-{environment}-keys-siem"
    return IdentityPart(
        # The audit trail's delivery role too (components/audit.py): whoever could retrust it
        # could write the trail's CloudWatch copy as CloudTrail does.
        roles=(*(f"{iam}:role/zero-trust-ai-{environment}-{role}" for role in HUMAN_ROLES),
               f"{iam}:role/{jit}-*", f"{iam}:role/zero-trust-ai-{environment}-trail-delivery",
               f"{iam}:role/{siem}-*"),
        jit_roles=(f"{iam}:role/{jit}-*-role",),
        privileged_roles=tuple(f"{iam}:role/zero-trust-ai-{environment}-{role}"
                               for role in PRIVILEGED_HUMAN_ROLES),
        elevations=f"{iam}:role/{jit}-*",
        functions=(f"arn:{partition}:lambda:*:{account}:function:{jit}-*",),
        table=(f"arn:{partition}:dynamodb:*:{account}:table/{jit}",
               f"arn:{partition}:dynamodb:*:{account}:table/{jit}/*"),
        boundary=f"{iam}:policy/zero-trust-ai-{environment}-human-boundary",
        records=(f"arn:{partition}:logs:*:{account}:log-group:/aws/lambda/{jit}-*",
                 f"arn:{partition}:sqs:*:{account}:{jit}-*",
                 f"arn:{partition}:events:*:{account}:rule/zero-trust-ai-{environment}-*-used",
                 f"arn:{partition}:cloudwatch:*:{account}:alarm:{jit}-*",
                 # The audit trail's CloudWatch Logs copy (components/audit.py), and the alarm
                 # topics (components/alarm_topics.py): the key layer's.
                 f"arn:{partition}:logs:*:{account}:log-group:/zero-trust-ai/{environment}/cloudtrail*",
                 f"arn:{partition}:sns:*:{account}:zero-trust-ai-{environment}-alarms-*",
                 # The trails (the audit trail among them): the provider makes it with CreateTrail,
                 # then PutEventSelectors and PutInsightSelectors, which only the key deployer may call.
                 f"arn:{partition}:cloudtrail:*:{account}:trail/*"),
        # Its detection stream (components/detection.py) is named under it, but for the findings
        # bus, which the key layer owns: whoever could delete or re-policy the bus, rewrite the
        # function or its state (the `-d-` bucket) would blind detection or forge findings.
        siem=(f"arn:{partition}:firehose:*:{account}:deliverystream/{siem}",
              f"arn:{partition}:events:*:{account}:event-bus/zero-trust-ai-{environment}-detections",
              f"arn:{partition}:lambda:*:{account}:function:{siem}-*",
              f"arn:{partition}:s3:::{siem}-*", f"arn:{partition}:sqs:*:{account}:{siem}-*",
              f"arn:{partition}:cloudwatch:*:{account}:alarm:{siem}-*",
              f"arn:{partition}:logs:*:{account}:log-group:/aws/lambda/{siem}-*",
              f"arn:{partition}:logs:*:{account}:log-group:/zero-trust-ai/{environment}/siem/{siem}*",
              f"{iam}:role/{siem}-*"),
    )


# Changes to the CI identity itself, refused to the CI roles by their boundary.
# Written with wildcards where they name only changes (`iam:PutRole*`: PutRolePolicy and
# PutRolePermissionsBoundary; `iam:DeleteRole*`: DeleteRole, DeleteRolePolicy and
# DeleteRolePermissionsBoundary; `iam:UpdateRole*`: UpdateRole and UpdateRoleDescription): the
# boundary is a managed policy, 6,144 characters at most (IAM User Guide, "IAM and AWS STS quotas").
CI_IDENTITY_CHANGES = (
    "iam:UpdateAssumeRolePolicy", "iam:PutRole*", "iam:DeleteRole*", "iam:AttachRolePolicy",
    "iam:DetachRolePolicy", "iam:UpdateRole*", "iam:TagRole", "iam:UntagRole",
)
BOUNDARY_POLICY_CHANGES = ("iam:CreatePolicyVersion", "iam:DeletePolicy", "iam:DeletePolicyVersion",
                           "iam:SetDefaultPolicyVersion")
OIDC_PROVIDER_CHANGES = (
    "iam:CreateOpenIDConnectProvider", "iam:DeleteOpenIDConnectProvider",
    "iam:UpdateOpenIDConnectProvider*", "iam:*ClientID*OpenIDConnectProvider",
    "iam:TagOpenIDConnectProvider", "iam:UntagOpenIDConnectProvider",
)
LONG_LIVED_CREDENTIALS = ("iam:CreateUser", "iam:CreateAccessKey", "iam:CreateLoginProfile",
                          "iam:UpdateLoginProfile")
# What would silence a trail: no CI role may. (Changing the audit trail is the key deployer's
# alone: it is among the identity part's records, IdentityPart.records.)
TRAIL_STOPS = ("cloudtrail:StopLogging", "cloudtrail:DeleteTrail")
# The state bucket's own configuration and history, which no CI role changes.
STATE_BUCKET_CHANGES = (
    "s3:DeleteBucket*", "s3:PutBucket*", "s3:PutLifecycleConfiguration", "s3:PutEncryptionConfiguration",
    "s3:PutReplicationConfiguration",
)
STATE_HISTORY_CHANGES = ("s3:DeleteObjectVersion", "s3:BypassGovernanceRetention",
                         "s3:PutObjectRetention", "s3:PutObjectLegalHold")


@dataclass(frozen=True)
class StateResources:
    """ARNs of the state backend the CI roles' policies name."""

    bucket_arn: str
    state_key_arn: str
    secrets_key_arn: str
    region: str

    @property
    def s3_service(self) -> str:
        return f"s3.{self.region}.amazonaws.com"


def _state_read(state: StateResources) -> list[dict[str, Any]]:
    return [_statement("ReadState", "Allow", STATE_READ_OBJECT_ACTIONS, f"{state.bucket_arn}/*"),
            _statement("ListState", "Allow", STATE_READ_BUCKET_ACTIONS, state.bucket_arn)]


def preview_policy(state: StateResources) -> str:
    """The preview role: read the state and the program's lookups; no other key, no secret, no
    write. The state key only through S3 (reading the state objects), never directly."""
    return _document([
        *_state_read(state),
        _statement("ProgramLookups", "Allow", PROGRAM_LOOKUP_ACTIONS),
        _statement("DriftCheckReads", "Allow", DRIFT_READ_ACTIONS),
        _statement("NoKeyButTheStateKey", "Deny", KEY_USE_ACTIONS, not_resource=state.state_key_arn),
        _statement("StateKeyOnlyThroughS3", "Deny", KEY_USE_ACTIONS, state.state_key_arn,
                   {"StringNotEquals": {"kms:ViaService": state.s3_service}}),
        _statement("NoSecretsProviderKey", "Deny", KEY_USE_ACTIONS, state.secrets_key_arn),
        _statement("NoSecrets", "Deny", SECRET_READ_ACTIONS),
        _statement("NoWrites", "Deny", S3_WRITE_ACTIONS),
    ])


def _deployer_state(state: StateResources) -> list[dict[str, Any]]:
    return [*_state_read(state),
            _statement("WriteState", "Allow", STATE_WRITE_OBJECT_ACTIONS, f"{state.bucket_arn}/*")]


def workload_deployer_policy(state: StateResources, *, partition: str, account: str,
                             environment: str) -> str:
    """The workload deployer: the state, the workload's services, the stack's IAM roles and
    policies, reading keys; an explicit Deny of writing key policies and of making, disabling,
    deleting, replicating or re-aliasing keys (the key layer's job); and every role it makes
    carries the CI roles' boundary, so that no role it makes can do what it may not."""
    iam = f"arn:{partition}:iam::{account}"
    boundary = f"{iam}:policy/{boundary_name(environment)}"
    return _document([
        # iam:PermissionsBoundary is the boundary a CreateRole or PutRolePermissionsBoundary sets
        # (IAM User Guide, "Permissions boundaries for IAM entities", delegating example): without
        # this, a role of its own with its own policy would do what the boundary denies it.
        _statement("RolesItMakesCarryTheBoundary", "Deny",
                   ["iam:CreateRole", "iam:PutRolePermissionsBoundary"], f"{iam}:role/*",
                   {"StringNotEquals": {"iam:PermissionsBoundary": boundary}}),
        _statement("RolesKeepTheBoundary", "Deny", "iam:DeleteRolePermissionsBoundary", f"{iam}:role/*"),
        *_deployer_state(state),
        # Not the key layer's state: its outputs are the key ARNs the workload trusts, and its
        # inputs what the next key-layer deployment diffs against (the Pulumi S3 backend's files
        # of a stack: stacks/<project>/<stack>.json and its history, backups and lock).
        _statement("NotTheKeyLayersState", "Deny", [*STATE_WRITE_OBJECT_ACTIONS, "s3:PutObjectAcl"], [
            f"{state.bucket_arn}/.pulumi/stacks/*-keys.json*",
            *(f"{state.bucket_arn}/.pulumi/{folder}/*-keys/*"
              for folder in ("history", "backups", "locks"))]),
        _statement("DeployWorkloadServices", "Allow", [f"{service}:*" for service in WORKLOAD_SERVICES]),
        # Its own SIEM stream only (components/siem_stream.py), never the key layer's.
        _statement("WorkloadSiemStream", "Allow", "firehose:*",
                   f"arn:{partition}:firehose:*:{account}:deliverystream/zero-trust-ai-{environment}-workload-siem"),
        _statement("StackRolesAndPolicies", "Allow", WORKLOAD_IAM_ACTIONS,
                   [f"{iam}:role/*", f"{iam}:policy/*", f"{iam}:instance-profile/*"]),
        _statement("ReadKeys", "Allow", WORKLOAD_KMS_READ_ACTIONS),
        # EC2, Auto Scaling and Lambda make KMS grants for the resources they encrypt.
        _statement("GrantsForAwsResources", "Allow", "kms:CreateGrant", "*",
                   {"Bool": {"kms:GrantIsForAWSResource": "true"}}),
        _statement("NoKeyPolicies", "Deny", KEY_POLICY_ACTIONS),
    ])


def keys_deployer_policy(state: StateResources, *, partition: str, account: str, environment: str) -> str:
    """The key layer's deployer: the state, the program's lookups and the key hierarchy's
    actions, kms:PutKeyPolicy among them, never deleting or disabling a key; and the identity
    part the key layer declares (the human and JIT roles, the JIT functions and table)."""
    part = identity_part(partition, account, environment)
    siem = f"zero-trust-ai-{environment}-keys-siem"
    return _document([
        *_deployer_state(state),
        _statement("ProgramLookups", "Allow", PROGRAM_LOOKUP_ACTIONS),
        _statement("KeyLayer", "Allow", KEY_LAYER_ACTIONS),
        # The audit trail (components/audit.py): the trail, its archive and access-log buckets (not
        # their objects) and its delivery role, by their fixed names.
        _statement("AuditTrail", "Allow", "cloudtrail:*",
                   f"arn:{partition}:cloudtrail:*:{account}:trail/*"),
        # `?` matches one character, never the `/` of an object: the buckets, not what they hold.
        _statement("AuditArchive", "Allow", "s3:*", [
            f"arn:{partition}:s3:::zero-trust-ai-{environment}-audit-{'?' * 12}",
            f"arn:{partition}:s3:::zero-trust-ai-{environment}-audit-access-{'?' * 12}"]),
        # The key layer's SIEM stream (components/siem_stream.py: `zero-trust-ai-<env>-keys-siem`),
        # its transform function, and its detection function (components/detection.py: `-detect`):
        # each one's failure queue and alarms, buckets, roles and log groups, by name. (The
        # detection function's subscriptions are on the JIT's log groups and the trail's copy,
        # IdentityRecords; CloudWatch Logs checks the function's own permission, not the caller.)
        _statement("SiemStream", "Allow", ["firehose:*", "lambda:*", "sqs:*", "cloudwatch:*", "logs:*"], [
            f"arn:{partition}:firehose:*:{account}:deliverystream/{siem}",
            *(arn for function in SIEM_FUNCTIONS for arn in (
                f"arn:{partition}:lambda:*:{account}:function:{siem}-{function}",
                f"arn:{partition}:sqs:*:{account}:{siem}-{function}-failures",
                f"arn:{partition}:cloudwatch:*:{account}:alarm:{siem}-{function}-*",
                f"arn:{partition}:logs:*:{account}:log-group:/aws/lambda/{siem}-{function}*")),
            f"arn:{partition}:logs:*:{account}:log-group:/zero-trust-ai/{environment}/siem/{siem}*"]),
        # The stream's archive and its access logs; the detection state and its access logs.
        _statement("SiemBuckets", "Allow", "s3:*", [
            f"arn:{partition}:s3:::{siem}-{infix}{'?' * 12}" for infix in ("", "a-", "d-", "l-")]),
        # The findings bus (components/detection.py `detections_bus_name`): created, tagged,
        # described and, with the stack, deleted here; its rules are the playbooks'.
        _statement("DetectionsBus", "Allow", "events:*",
                   f"arn:{partition}:events:*:{account}:event-bus/zero-trust-ai-{environment}-detections"),
        _statement("SiemRoles", "Allow", [*IDENTITY_ROLE_WRITES, *JIT_ROLE_CHANGES, "iam:GetRole",
                                          "iam:GetRolePolicy", "iam:ListRolePolicies",
                                          "iam:ListAttachedRolePolicies", "iam:ListInstanceProfilesForRole"],
                   f"arn:{partition}:iam::{account}:role/{siem}-*"),
        _statement("AuditDelivery", "Allow", [*IDENTITY_ROLE_WRITES, *JIT_ROLE_CHANGES, "iam:GetRole",
                                              "iam:GetRolePolicy", "iam:ListRolePolicies",
                                              "iam:ListAttachedRolePolicies",
                                              "iam:ListInstanceProfilesForRole"],
                   f"arn:{partition}:iam::{account}:role/zero-trust-ai-{environment}-trail-delivery",
                   {"StringEqualsIfExists": {"iam:PassedToService": "cloudtrail.amazonaws.com"}}),
        # Allowed by exact names (the denies elsewhere use wildcards to stay short): a wildcard
        # Allow reaching an IAM write is what iam-no-wildcard-action refuses.
        _statement("IdentityRoles", "Allow", [*IDENTITY_ROLE_WRITES, *JIT_ROLE_CHANGES, *ATTACHMENT_CHANGES,
                                              "iam:GetRole",
                                              "iam:GetRolePolicy", "iam:ListRolePolicies",
                                              "iam:ListAttachedRolePolicies",
                                              "iam:ListInstanceProfilesForRole"], list(part.roles)),
        _statement("HumanBoundary", "Allow", [*BOUNDARY_POLICY_CHANGES, "iam:CreatePolicy", "iam:GetPolicy",
                                              "iam:GetPolicyVersion", "iam:ListPolicyVersions",
                                              "iam:TagPolicy"], part.boundary),
        _statement("JitFunctions", "Allow", "lambda:*", list(part.functions)),
        _statement("JitTable", "Allow", "dynamodb:*", list(part.table)),
        _statement("IdentityRecords", "Allow", ["logs:*", "sqs:*", "events:*", "cloudwatch:*", "sns:*"],
                   list(part.records)),
        _statement("DescribeLogGroups", "Allow", ["logs:DescribeLogGroups", "cloudwatch:DescribeAlarms"]),
        _statement("NoKeyDestruction", "Deny", ["kms:ScheduleKeyDeletion", "kms:DisableKey",
                                                "kms:DisableKeyRotation"]),
    ])


def boundary_policy(state: StateResources, *, partition: str, account: str, environment: str) -> str:
    """The CI roles' permissions boundary (see the module docstring). An Allow of everything as
    the ceiling: each role's own policy says what it may do; the Denies bind all three, whatever
    a later grant adds."""
    iam = f"arn:{partition}:iam::{account}"
    keys_deployer = role_arn(partition, account, environment, DEPLOY_KEYS)
    not_keys_deployer = {"ArnNotEquals": {"aws:PrincipalArn": keys_deployer}}
    # Any partition and account in the boundary's own patterns: it binds this account's roles,
    # and a name-matched Deny on another account's resource costs nothing (a managed policy holds
    # 6,144 characters, and the identity part's patterns are most of them).
    part = identity_part("*", "*")
    return _document([
        _statement("Ceiling", "Allow", "*"),
        # No change to a CI role, nor a role of a CI or deployer name, in any environment (the CI
        # roles are named so): the guardrails exempt deployers by name, so a deployer that made
        # one (unbounded, trusting itself) could change the other deployer's trust through it,
        # the keys deployer's included.
        _statement("NoRolesOfTheCiNames", "Deny", ("iam:CreateRole", *CI_IDENTITY_CHANGES),
                   [f"{iam}:role/zero-trust-ai-*-ci-*", f"{iam}:role/zero-trust-ai-*-deploy-*"]),
        _statement("NoChangesToTheBoundary", "Deny", BOUNDARY_POLICY_CHANGES,
                   f"{iam}:policy/{boundary_name(environment)}"),
        _statement("NoChangesToTheIdentityProvider", "Deny", OIDC_PROVIDER_CHANGES),
        _statement("NoLongLivedCredentials", "Deny", LONG_LIVED_CREDENTIALS),
        _statement("NoTrailStops", "Deny", TRAIL_STOPS),
        _statement("KeyPoliciesOnlyByTheKeyDeployer", "Deny", KEY_POLICY_ACTIONS, "*", not_keys_deployer),
        # The identity part (IdentityPart): the key layer's, every environment's. Its roles'
        # trust, tags and boundary; the policies attached to them (the workload's own managed
        # policies only, components/role_policies.py).
        _statement("IdentityRolesOnlyByTheKeyDeployer", "Deny", IDENTITY_ROLE_CHANGES,
                   list(part.roles), not_keys_deployer),
        # (A person's role takes any policy: the workload writes their inline ones anyway.)
        _statement("ElevationsOnlyWorkloadPoliciesAttached", "Deny", ATTACHMENT_CHANGES,
                   part.elevations, {**not_keys_deployer, "ArnNotLike": {
                       "iam:PolicyARN": f"arn:{partition}:iam::{account}:policy/{WORKLOAD_POLICY_PATTERN}"}}),
        # Everything else of it, in one statement (a boundary is a managed policy: 6,144
        # characters): an elevation's inline policies are the JIT's (its window ends sessions at
        # expiry and revocation); no JIT role is handed to a service (a function run as the JIT
        # API's role writes key policies); the JIT functions (invoked other than through the URL,
        # one takes a request context the caller wrote), table, records and the human boundary.
        _statement("IdentityPartOnlyByTheKeyDeployer", "Deny", [
            *INLINE_POLICY_CHANGES, "iam:PassRole", *BOUNDARY_POLICY_CHANGES, "lambda:*", "dynamodb:*",
            "logs:*", "sqs:*", "events:*", "cloudwatch:*", "sns:*", "cloudtrail:*", "firehose:*", "s3:*"],
            [part.elevations, *part.functions, *part.table, part.boundary, *part.records, *part.siem],
            not_keys_deployer),
        # Nothing of the workload is granted to these: the auditor, the key administrator,
        # break-glass, the JIT's own roles, and (by the tag only the key deployer sets; IAM User
        # Guide, "Controlling access to and for IAM users and roles using tags") the elevations
        # that administer keys or stand for break-glass.
        _statement("PrivilegedRolesOnlyByTheKeyDeployer", "Deny", "iam:*RolePolicy",
                   [*part.privileged_roles, *part.jit_roles], not_keys_deployer),
        _statement("PrivilegedElevationsOnlyByTheKeyDeployer", "Deny", ATTACHMENT_CHANGES,
                   part.elevations, {**not_keys_deployer, "StringEquals": {
                       f"aws:ResourceTag/{ROLE_GRANT_TAG}": list(PRIVILEGED_GRANTS)}}),
        _statement("NoStateBucketChanges", "Deny", STATE_BUCKET_CHANGES, state.bucket_arn),
        _statement("NoStateHistoryChanges", "Deny", STATE_HISTORY_CHANGES, f"{state.bucket_arn}/*"),
        _statement("NoStateKeyChanges", "Deny", KEY_POLICY_ACTIONS,
                   [state.state_key_arn, state.secrets_key_arn]),
    ])


def permissions_policy(role: str, state: StateResources, *, partition: str, account: str,
                       environment: str) -> str:
    """The identity policy of one CI role."""
    if role == PREVIEW:
        return preview_policy(state)
    if role == DEPLOY_WORKLOAD:
        return workload_deployer_policy(state, partition=partition, account=account,
                                        environment=environment)
    if role == DEPLOY_KEYS:
        return keys_deployer_policy(state, partition=partition, account=account, environment=environment)
    raise ValueError(f"unknown CI role {role!r}; one of {', '.join(CI_ROLES)}")


def _permissions_of(role: str, partition: str, environment: str, values: list[Any]) -> str:
    return permissions_policy(role, values[0], partition=partition, account=values[1],
                              environment=environment)


def _trust_of(provider_arn: str, *, settings: CiSettings, subjects: Sequence[str]) -> str:
    return trust_policy(provider_arn=provider_arn, issuer_host=settings.issuer_host,
                        audience=settings.audience, subjects=subjects)


# -- the component -------------------------------------------------------------------------------
@dataclass(frozen=True)
class CiIdentityArgs:
    """settings: the parsed bootstrap settings (`ci_settings`).
    region: the stack's Region (the state key is used only through S3 there).
    key_administrator_role_arns: administrators of the state and secrets-provider keys (named
        roles; one must be the role that deploys this stack: KMS refuses a policy that locks its
        writer out).
    protect: keep the bucket, keys, provider and roles from `pulumi destroy` (default True).
    """

    settings: CiSettings
    region: str
    key_administrator_role_arns: tuple[str, ...]
    protect: bool = True


class CiIdentity(pulumi.ComponentResource):
    """The CI system's identity and the Pulumi state backend of one environment (module docstring)."""

    def __init__(self, name: str, args: CiIdentityArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("zero-trust-ai:ci_identity:CiIdentity", name, None, opts)
        # Imported here: the state backend imports this module's names and ARNs.
        from components.state_backend import StateBackend, StateBackendArgs

        settings = args.settings
        if not args.key_administrator_role_arns:
            raise ValueError("CiIdentity: key_administrator_role_arns must name the roles that "
                             "administer the state and secrets-provider keys")
        env = settings.environment
        account = aws.get_caller_identity_output(opts=pulumi.InvokeOptions(parent=self)).account_id
        partition = partition_for_region(args.region)

        if settings.identity_provider_arn:
            provider_arn: pulumi.Output[str] = pulumi.Output.from_input(settings.identity_provider_arn)
            self.provider: aws.iam.OpenIdConnectProvider | None = None
        else:
            self.provider = aws.iam.OpenIdConnectProvider(
                f"{name}-oidc-provider", url=settings.issuer_url,
                client_id_lists=[settings.audience],
                tags={ACCESS_TAG: CI_ACCESS},
                opts=pulumi.ResourceOptions(parent=self, protect=args.protect))
            provider_arn = self.provider.arn

        self.state = StateBackend(f"{name}-state", StateBackendArgs(
            environment=env, region=args.region,
            administrator_role_arns=args.key_administrator_role_arns,
            bucket_name=settings.state_bucket_name, object_lock_days=settings.object_lock_days,
            object_lock_mode=settings.object_lock_mode, protect=args.protect),
            opts=pulumi.ResourceOptions(parent=self))

        state = pulumi.Output.all(self.state.bucket.arn, self.state.state_key.arn,
                                  self.state.secrets_key.arn).apply(
            lambda arns: StateResources(arns[0], arns[1], arns[2], args.region))
        self.boundary = aws.iam.Policy(
            f"{name}-boundary", name=boundary_name(env),
            description="Permissions boundary of the CI roles (components/ci_identity.py)",
            policy=pulumi.Output.all(state, account).apply(
                lambda v: boundary_policy(v[0], partition=partition, account=v[1], environment=env)),
            opts=pulumi.ResourceOptions(parent=self))

        subjects = settings.subjects
        role_subjects = {PREVIEW: subjects.preview, DEPLOY_WORKLOAD: (subjects.workload,),
                         DEPLOY_KEYS: (subjects.keys,)}
        self.roles: dict[str, aws.iam.Role] = {}
        for role in CI_ROLES:
            trust = provider_arn.apply(functools.partial(
                _trust_of, settings=settings, subjects=role_subjects[role]))
            self.roles[role] = aws.iam.Role(
                f"{name}-{role}", name=role_name(env, role), assume_role_policy=trust,
                max_session_duration=MAX_SESSION_SECONDS, permissions_boundary=self.boundary.arn,
                description=f"CI {role} of zero-trust-ai {env} (components/ci_identity.py)",
                tags={ACCESS_TAG: CI_ACCESS, ROLE_TAG: role},
                opts=pulumi.ResourceOptions(parent=self, protect=args.protect))
            aws.iam.RolePolicy(
                f"{name}-{role}-permissions", role=self.roles[role].id,
                policy=pulumi.Output.all(state, account).apply(functools.partial(
                    _permissions_of, role, partition, env)),
                opts=pulumi.ResourceOptions(parent=self.roles[role]))
        self.key_policies = self.state.grant_ci_roles(list(self.roles.values()))

        self.state_backend_url = self.state.bucket.bucket.apply(lambda bucket: f"s3://{bucket}")
        # By key id, not alias: whoever could move an alias would choose the key new secrets are
        # encrypted under.
        self.secrets_provider = self.state.secrets_key.key_id.apply(
            lambda key_id: f"awskms://{key_id}?region={args.region}")
        self.register_outputs({
            "stateBackendUrl": self.state_backend_url,
            "secretsProvider": self.secrets_provider,
            **{f"{role}RoleArn": r.arn for role, r in self.roles.items()},
        })


def workload_boundary_transformation(partition: str, environment: str) -> pulumi.ResourceTransformation:
    """A transformation giving every role a workload stack declares the CI roles' boundary, which
    its deployer must set on any role it makes (`workload_deployer_policy`). Roles read by name (the
    key layer's, `Role.get`) are left as they are."""
    account = aws.get_caller_identity_output().account_id
    boundary = account.apply(lambda account_id: f"arn:{partition}:iam::{account_id}:policy/"
                                                f"{boundary_name(environment)}")

    def transformation(args: pulumi.ResourceTransformationArgs) -> pulumi.ResourceTransformationResult | None:
        if args.type_ != "aws:iam/role:Role" or args.opts.id is not None \
                or args.props.get("permissions_boundary") is not None:
            return None
        return pulumi.ResourceTransformationResult(props={**args.props, "permissions_boundary": boundary},
                                                   opts=args.opts)

    return transformation
