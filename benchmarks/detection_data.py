"""Evaluation data for behavioural detection: weeks of benign CloudTrail activity of this
architecture, and real attack records moved into it.

No maintained generator of realistic CloudTrail exists, so this one is written for the stack: its
roles (`zero-trust-ai-<env>-<role>`, components/identity.py), keys (`alias/zero-trust-ai/<env>/
<purpose>`, components/keys.py), functions (key rotation, the inference image rollout, the JIT API
and expiry, the SIEM stream), the CI deployers (components/ci_identity.py) and the JIT elevations
(stacks/jit/prod.yaml). Everything is drawn from one `random.Random(seed)`: the same arguments give
the same records, byte for byte, eventIDs included.

- `benign_activity(start=..., days=..., seed=...)` yields CloudTrail records in event-time order
  (see PERSONAS for who does what, when and from where; weekends are quieter; the rotation
  function runs on the 1st of each month; CI releases on Thursdays; one on-call night with a JIT
  key-admin elevation, `on_call_night`).
- `rehome(records, ...)` moves one attack technique's records (the Stratus Red Team data set, whose
  records come from other accounts and invented regions) into the evaluation account, region and
  time, keeping their order, their spacing and every eventID.
- `mixed(...)` interleaves techniques at chosen times into a benign stream and returns the ground
  truth: each technique's eventIDs.

Time zones are fixed offsets (winter time): daylight saving would shift working hours by one hour
for part of the year and is not what a detector is measured on here.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ACCOUNT = "111122223333"
REGION = "eu-west-1"
ENVIRONMENT = "prod"
EVENT_VERSION = "1.11"
DEFAULT_EVENTS_PER_DAY = 2000

_P = f"zero-trust-ai-{ENVIRONMENT}"
# Bucket names are Pulumi auto-names in the stack (a random suffix after the logical name).
TRAINING_BUCKET = f"{_P}-training-data-4c1e2a7"
MODEL_BUCKET = f"{_P}-models-9b03f5d"
KEY_PURPOSES = ("training-data", "model-weights", "logs", "secrets", "inference", "audit")
ROTATION_FUNCTION = f"{_P}-key-rotation"
ROLLOUT_FUNCTION = f"{_P}-inference-image-rollout"
JIT_TABLE = f"{_P}-jit"
SIEM_STREAM = f"{_P}-workload-siem"
PARENT_ROLE = f"{_P}-enclave-parent"
PARENT_PARAMETER = f"/{_P}/enclave-parent/ami"
# The management segment's interface endpoints (one per service) and the S3 gateway endpoint.
_ENDPOINTS = {"s3": "vpce-0a3f1c5e7b9d20461", "kms": "vpce-0b8e2d4f6a1c30572",
              "ssm": "vpce-0c5a7e9b1d3f40683", "sts": "vpce-0d2c4e6a8b0f50794"}

_BOTO = ("Boto3/1.35.90 md/Botocore#1.35.90 ua/2.0 os/linux#6.8.0 md/arch#x86_64 lang/python#3.11.11 "
         "md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.35.90")
_LAMBDA_UA = ("Boto3/1.35.90 md/Botocore#1.35.90 ua/2.0 os/linux#5.10.230 md/arch#arm64 "
              "lang/python#3.13.1 md/pyimpl#CPython exec-env/AWS_Lambda_python3.13 Botocore/1.35.90")
_CLI_UA = "aws-cli/2.22.26 md/awscrt#0.23.4 ua/2.0 os/macos#24.2.0 md/arch#arm64 lang/python#3.12.6"
_CONSOLE_UA = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
               "Chrome/131.0.0.0 Safari/537.36")
_PULUMI_UA = ("APN/1.0 HashiCorp/1.0 Terraform/1.5.7 (+https://www.terraform.io) "
              "terraform-provider-aws/5.82.2 aws-sdk-go-v2/1.32.7 os/linux lang/go#1.23.4 md/arch#amd64 "
              "pulumi-aws/6.66.2")
_GITHUB_UA = "aws-sdk-nodejs/2.1692.0 linux/v20.18.1 configure-aws-credentials-for-github-actions"
_KMS_READS = frozenset(("DescribeKey", "GetKeyPolicy", "GetKeyRotationStatus", "ListKeyRotations",
                        "ListAliases", "ListResourceTags"))
_ENCLAVE_UA = "aws-nitro-enclaves-sdk-c/0.4.1 aws-c-auth/0.7.31 os/linux md/arch#x86_64"


@dataclass(frozen=True)
class Persona:
    """One group of principals: the role they use, the session names (people, instances or
    functions), where their calls come from, and when they work (local hours, UTC offset)."""

    name: str
    role: str
    sessions: tuple[str, ...]
    utc_offset: int  # hours
    hours: tuple[int, int]  # local working hours [start, end)
    weekend: float  # fraction of a weekday's activity on Saturdays and Sundays
    share: float  # fraction of the day's volume
    ips: tuple[str, ...]  # /24 prefixes ("a.b.c.") the calls come from; "10." ones via endpoints
    user_agent: str
    human: bool = True


PERSONAS: tuple[Persona, ...] = (
    # Berlin office (two /24s) and one home ISP range; the management segment's workspaces.
    Persona("data-curators", f"{_P}-data-curator", ("anna.schmidt", "bruno.keller", "chen.wei"),
            1, (8, 18), 0.04, 0.30, ("198.51.100.", "198.51.101.", "91.64.18.", "10.23.4."), _BOTO),
    # London office; their notebooks run in the management segment.
    Persona("ml-engineers", f"{_P}-model-engineer", ("dmitri.ivanov", "eva.novak"),
            0, (9, 19), 0.06, 0.20, ("203.0.113.", "10.23.6."), _BOTO),
    # The inference fleet's parents: steady, round the clock, only through the endpoints.
    Persona("inference-fleet", PARENT_ROLE, ("i-0a1b2c3d4e5f60718", "i-0b2c3d4e5f6071829",
                                             "i-0c3d4e5f607182930"),
            0, (0, 24), 1.0, 0.30, ("10.22.1.", "10.22.2.", "10.22.3."), _ENCLAVE_UA, human=False),
    # Security: auditors and responders, London hours, console first.
    Persona("security-team", f"{_P}-auditor", ("farah.haddad", "george.obi"),
            0, (9, 17), 0.0, 0.08, ("203.0.113.",), _CONSOLE_UA),
    # The SIEM stream's subscription: CloudWatch Logs puts batches all day.
    Persona("siem-stream", f"{_P}-workload-siem-subscription", ("awslogs-delivery",),
            0, (0, 24), 1.0, 0.07, ("10.23.0.",), "logs.amazonaws.com", human=False),
    # AWS Config's service-linked role describing resources.
    Persona("config-recorder", "AWSServiceRoleForConfig", ("AWSConfig-Describe",),
            0, (0, 24), 1.0, 0.05, ("10.23.0.",), "config.amazonaws.com", human=False),
)


def _stable_id(prefix: str, text: str, length: int = 17) -> str:
    """An AWS-looking id that depends only on `text` (a role's id does not change between runs)."""
    digest = hashlib.sha256(text.encode()).hexdigest().upper()
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    return prefix + "".join(alphabet[int(digest[i:i + 2], 16) % 32] for i in range(0, 2 * length, 2))


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def key_id(account: str, purpose: str) -> str:
    """The key id of one of the stack's keys in `account` (stable, derived from the two)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"kms:{account}:{purpose}"))


class _Gen:
    """The state of one generation: the RNG, the account and region, ARN helpers, the record
    builder. Every random choice goes through `self.rng`, in a fixed order."""

    def __init__(self, seed: int, account: str, region: str) -> None:
        self.rng = random.Random(seed)
        self.account = account
        self.region = region

    # -- identities -----------------------------------------------------------------------------

    def uid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def role_arn(self, role: str) -> str:
        if role.startswith("AWSServiceRole"):
            service = role.removeprefix("AWSServiceRoleFor").lower()
            return f"arn:aws:iam::{self.account}:role/aws-service-role/{service}.amazonaws.com/{role}"
        return f"arn:aws:iam::{self.account}:role/{role}"

    def assumed(self, role: str, session: str, created: datetime, *, mfa: bool,
                source_identity: str | None = None, ec2: bool = False,
                web_identity: bool = False) -> dict[str, Any]:
        role_id = _stable_id("AROA", f"{self.account}/{role}")
        context: dict[str, Any] = {
            "sessionIssuer": {"type": "Role", "principalId": role_id, "arn": self.role_arn(role),
                              "accountId": self.account, "userName": role},
            "attributes": {"creationDate": _iso(created), "mfaAuthenticated": str(mfa).lower()},
        }
        if web_identity:
            context["webIdFederationData"] = {
                "federatedProvider": f"arn:aws:iam::{self.account}:oidc-provider/"
                                     "token.actions.githubusercontent.com",
                "attributes": {}}
        if ec2:
            context["ec2RoleDelivery"] = "2.0"
        if source_identity:
            context["sourceIdentity"] = source_identity
        return {
            "type": "AssumedRole", "principalId": f"{role_id}:{session}",
            "arn": f"arn:aws:sts::{self.account}:assumed-role/{role}/{session}",
            "accountId": self.account,
            "accessKeyId": _stable_id("ASIA", f"{role}/{session}/{created.date()}", 16),
            "sessionContext": context,
        }

    # -- one record -----------------------------------------------------------------------------

    def record(self, moment: datetime, identity: dict[str, Any], source: str, name: str, *,
               read_only: bool, ip: str, agent: str, params: dict[str, Any] | None = None,
               response: dict[str, Any] | None = None, resources: list[dict[str, Any]] | None = None,
               data: bool = False, endpoint: bool = False, extra: dict[str, Any] | None = None,
               event_type: str = "AwsApiCall") -> dict[str, Any]:
        service = source.split(".")[0]
        host = f"{service}.{self.region}.amazonaws.com"
        record: dict[str, Any] = {
            "eventVersion": EVENT_VERSION, "userIdentity": identity, "eventTime": _iso(moment),
            "eventSource": source, "eventName": name, "awsRegion": self.region,
            "sourceIPAddress": ip, "userAgent": agent, "requestParameters": params,
            "responseElements": response, "requestID": self.uid(), "eventID": self.uid(),
            "readOnly": read_only, "eventType": event_type, "managementEvent": not data,
            "recipientAccountId": self.account, "eventCategory": "Data" if data else "Management",
            "tlsDetails": {"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256",
                           "clientProvidedHostHeader": host},
        }
        if resources:
            record["resources"] = resources
        if endpoint and service in _ENDPOINTS:
            record["vpcEndpointId"] = _ENDPOINTS[service]
            record["vpcEndpointAccountId"] = self.account
        if extra:
            record.update(extra)
        return record

    def s3(self, moment: datetime, identity: dict[str, Any], name: str, bucket: str, key: str,
           ip: str, agent: str, size: int) -> dict[str, Any]:
        read = name in ("GetObject", "HeadObject", "ListObjects")
        params: dict[str, Any] = {"bucketName": bucket, "Host": f"{bucket}.s3.{self.region}.amazonaws.com"}
        resources: list[dict[str, Any]] = [
            {"type": "AWS::S3::Bucket", "ARN": f"arn:aws:s3:::{bucket}", "accountId": self.account}]
        if name == "ListObjects":
            params.update({"list-type": "2", "prefix": key})
            extra: dict[str, Any] = {"additionalEventData": {"bytesTransferredIn": 0,
                                                             "bytesTransferredOut": 0}}
        else:
            params["key"] = key
            resources.insert(0, {"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{bucket}/{key}"})
            extra = {"additionalEventData": {
                "SignatureVersion": "SigV4", "AuthenticationMethod": "AuthHeader",
                "bytesTransferredIn": 0 if read else size, "bytesTransferredOut": size if read else 0,
                "x-amz-id-2": self.uid()}}
        response = None if read else {"x-amz-server-side-encryption": "aws:kms",
                                      "x-amz-server-side-encryption-aws-kms-key-id":
                                          self.key_arn("model-weights" if bucket == MODEL_BUCKET
                                                       else "training-data"),
                                      "x-amz-server-side-encryption-bucket-key-enabled": "true"}
        return self.record(moment, identity, "s3.amazonaws.com", name, read_only=read, ip=ip, agent=agent,
                           params=params, response=response, resources=resources, data=True,
                           endpoint=ip.startswith("10."), extra=extra)

    def key_arn(self, purpose: str) -> str:
        return f"arn:aws:kms:{self.region}:{self.account}:key/{key_id(self.account, purpose)}"

    def kms(self, moment: datetime, identity: dict[str, Any], name: str, purpose: str, ip: str,
            agent: str, params: dict[str, Any] | None = None, read_only: bool | None = None,
            **kwargs: Any) -> dict[str, Any]:
        arn = self.key_arn(purpose)
        # Decrypt is read-only in CloudTrail; the management calls are judged by name.
        read = read_only if read_only is not None else name in _KMS_READS
        return self.record(moment, identity, "kms.amazonaws.com", name, read_only=read, ip=ip, agent=agent,
                           params={"keyId": arn, **(params or {})},
                           resources=[{"accountId": self.account, "type": "AWS::KMS::Key", "ARN": arn}],
                           **kwargs)


# -- the personas' days -------------------------------------------------------------------------

_PREFIXES = {"data-curators": ("raw/", "curated/"), "ml-engineers": ("curated/", "outputs/")}


def _hour_weight(persona: Persona, moment: datetime) -> float:
    """How busy `persona` is in the UTC hour starting at `moment` (1 at full working pace)."""
    local = moment + timedelta(hours=persona.utc_offset)
    start, end = persona.hours
    if start <= local.hour < end:
        weight = 1.0
    elif local.hour in (start - 1, end):
        weight = 0.2  # the shoulders: early starts, late finishes
    else:
        weight = 0.01 if persona.human else 1.0
    if local.weekday() >= 5:
        weight *= persona.weekend
    return weight


def _count(rng: random.Random, expected: float) -> int:
    whole = int(expected)
    return whole + (1 if rng.random() < expected - whole else 0)


def _persona_call(gen: _Gen, persona: Persona, moment: datetime, session: str) -> dict[str, Any]:
    rng = gen.rng
    prefix24 = rng.choice(persona.ips)
    ip = prefix24 + str(rng.randint(10, 250))
    created = moment.replace(minute=0, second=0)
    if persona.name == "inference-fleet":
        identity = gen.assumed(persona.role, session, created, mfa=False, ec2=True)
        roll = rng.random()
        enclave = f"{session}-enc0a1b2c3d4e5f6071"
        if roll < 0.55:
            # The enclave's attested Decrypt of a model's data key: KMS returns it only to the
            # enclave whose measurements the key policy pins (`recipient`).
            return gen.kms(moment, identity, "Decrypt", "model-weights", ip, persona.user_agent,
                           params={"encryptionAlgorithm": "SYMMETRIC_DEFAULT",
                                   "encryptionContext": {"ztai:model": "ranker-v7"},
                                   "recipient": {"keyEncryptionAlgorithm": "RSAES_OAEP_SHA_256",
                                                 "attestationDocumentModuleId": enclave}},
                           read_only=True, endpoint=True,
                           extra={"additionalEventData": {"recipient": {
                               "attestationDocumentModuleId": enclave,
                               "attestationDocumentEnclaveImageDigest": "628d0989f8107e4c1d85386ec093bead"}}})
        if roll < 0.85:
            return gen.s3(moment, identity, "GetObject", MODEL_BUCKET, "models/ranker-v7/weights.enc", ip,
                          _BOTO, rng.randint(50_000_000, 60_000_000))
        return gen.record(moment, identity, "ssm.amazonaws.com", "GetParameter", read_only=True, ip=ip,
                          agent=_BOTO, params={"name": PARENT_PARAMETER, "withDecryption": False},
                          endpoint=True)
    if persona.name == "siem-stream":
        identity = gen.assumed(persona.role, session, created, mfa=False)
        return gen.record(moment, identity, "firehose.amazonaws.com", "PutRecordBatch", read_only=False,
                          ip="logs.amazonaws.com", agent="logs.amazonaws.com",
                          params={"deliveryStreamName": SIEM_STREAM},
                          resources=[{"type": "AWS::KinesisFirehose::DeliveryStream",
                                      "accountId": gen.account,
                                      "ARN": f"arn:aws:firehose:{gen.region}:{gen.account}:"
                                             f"deliverystream/{SIEM_STREAM}"}],
                          data=True, extra={"invokedBy": "logs.amazonaws.com"})
    if persona.name == "config-recorder":
        identity = gen.assumed(persona.role, session, created, mfa=False)
        source, name = rng.choice((("ec2.amazonaws.com", "DescribeInstances"),
                                   ("ec2.amazonaws.com", "DescribeSecurityGroups"),
                                   ("s3.amazonaws.com", "GetBucketPolicy"),
                                   ("kms.amazonaws.com", "DescribeKey"),
                                   ("iam.amazonaws.com", "GetRole")))
        return gen.record(moment, identity, source, name, read_only=True, ip="config.amazonaws.com",
                          agent="config.amazonaws.com", extra={"invokedBy": "config.amazonaws.com"})
    identity = gen.assumed(persona.role, session, created, mfa=True, source_identity=session)
    if persona.name == "security-team":
        source, name = rng.choice((("cloudtrail.amazonaws.com", "LookupEvents"),
                                   ("cloudtrail.amazonaws.com", "DescribeTrails"),
                                   ("cloudtrail.amazonaws.com", "GetTrailStatus"),
                                   ("cloudtrail.amazonaws.com", "GetEventSelectors"),
                                   ("logs.amazonaws.com", "FilterLogEvents"),
                                   ("iam.amazonaws.com", "ListRoles"),
                                   ("ec2.amazonaws.com", "DescribeSecurityGroups"),
                                   ("kms.amazonaws.com", "ListAliases")))
        return gen.record(moment, identity, source, name, read_only=True, ip=ip, agent=persona.user_agent,
                          extra={"sessionCredentialFromConsole": "true"})
    # Curators and engineers: S3 on the training-data bucket, reads dominating.
    reading, writing = _PREFIXES[persona.name]
    roll = rng.random()
    if roll < 0.70:
        return gen.s3(moment, identity, "GetObject", TRAINING_BUCKET,
                      f"{reading}shard-{rng.randint(0, 4095):05d}.parquet", ip, persona.user_agent,
                      rng.randint(1_000_000, 130_000_000))
    if roll < 0.85:
        return gen.s3(moment, identity, "ListObjects", TRAINING_BUCKET, reading, ip, persona.user_agent, 0)
    if roll < 0.93 or persona.name == "data-curators":
        return gen.s3(moment, identity, "PutObject", TRAINING_BUCKET,
                      f"{writing}batch-{rng.randint(0, 999):03d}/part-{rng.randint(0, 63):02d}.parquet", ip,
                      persona.user_agent, rng.randint(1_000_000, 60_000_000))
    if roll < 0.96:
        # Publishing a model: a data key under the model's encryption context from the
        # model-weights key (the publisher never decrypts with it), then the upload to models/.
        publisher = gen.assumed(f"{_P}-model-publisher", session, created, mfa=True, source_identity=session)
        model = f"ranker-v{rng.randint(7, 9)}"
        if rng.random() < 0.5:
            return gen.kms(moment, publisher, "GenerateDataKey", "model-weights", ip, persona.user_agent,
                           params={"keySpec": "AES_256", "encryptionContext": {"ztai:model": model}},
                           read_only=False, endpoint=ip.startswith("10."))
        return gen.s3(moment, publisher, "PutObject", MODEL_BUCKET, f"models/{model}/weights.enc", ip,
                      persona.user_agent, rng.randint(50_000_000, 60_000_000))
    source, name = rng.choice((("imagebuilder.amazonaws.com", "GetImagePipeline"),
                               ("imagebuilder.amazonaws.com", "ListImageBuildVersions"),
                               ("ec2.amazonaws.com", "DescribeImages")))
    return gen.record(moment, identity, source, name, read_only=True, ip=ip, agent=persona.user_agent)


def _personas_day(gen: _Gen, day: datetime, per_day: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for persona in PERSONAS:
        # Normalised so that a weekday's expected total is `per_day` (weekends come out lower).
        full = sum(_hour_weight(persona, datetime(2026, 1, 5, h, tzinfo=UTC)) for h in range(24))
        for hour in range(24):
            moment = day + timedelta(hours=hour)
            expected = per_day * persona.share * _hour_weight(persona, moment) / full
            n = _count(gen.rng, expected)
            if not n:
                continue
            session = gen.rng.choice(persona.sessions)
            if persona.name == "security-team" and hour == 9 - persona.utc_offset:
                out.append(_console_login(gen, persona, moment + timedelta(minutes=gen.rng.randint(0, 20)),
                                          session))
            for _ in range(n):
                out.append(_persona_call(gen, persona, moment + timedelta(seconds=gen.rng.randint(0, 3599)),
                                         session))
    return out


def _console_login(gen: _Gen, persona: Persona, moment: datetime, session: str) -> dict[str, Any]:
    """A federated console sign-in with MFA (the IdP asserted it; the role requires it)."""
    identity = gen.assumed(persona.role, session, moment, mfa=True, source_identity=session)
    record = gen.record(moment, identity, "signin.amazonaws.com", "ConsoleLogin", read_only=False,
                        ip=persona.ips[0] + str(gen.rng.randint(10, 250)), agent=_CONSOLE_UA,
                        response={"ConsoleLogin": "Success"}, event_type="AwsConsoleSignIn",
                        extra={"additionalEventData": {"LoginTo": "https://console.aws.amazon.com/console/home",
                                                       "MobileVersion": "No", "MFAUsed": "Yes"}})
    record["tlsDetails"]["clientProvidedHostHeader"] = "signin.aws.amazon.com"
    return record


# -- scheduled automation -----------------------------------------------------------------------

def _rotation(gen: _Gen, day: datetime) -> list[dict[str, Any]]:
    """The key rotation function, 03:00 UTC on the 1st: each symmetric key rotated on demand, its
    rotations listed, and the re-encryption of the stored data keys under the new material."""
    role = f"{ROTATION_FUNCTION}-role"
    moment = day + timedelta(hours=3, seconds=gen.rng.randint(0, 30))
    identity = gen.assumed(role, ROTATION_FUNCTION, moment, mfa=False)
    ip = f"3.250.{gen.rng.randint(0, 255)}.{gen.rng.randint(1, 254)}"
    out = []
    for purpose in KEY_PURPOSES:
        for name in ("DescribeKey", "RotateKeyOnDemand", "ListKeyRotations"):
            moment += timedelta(seconds=gen.rng.randint(1, 3))
            out.append(gen.kms(moment, identity, name, purpose, ip, _LAMBDA_UA))
    for _ in range(4):
        moment += timedelta(seconds=gen.rng.randint(1, 5))
        out.append(gen.kms(moment, identity, "ReEncrypt", "model-weights", ip, _LAMBDA_UA, read_only=False,
                           params={"destinationKeyId": gen.key_arn("model-weights"),
                                   "sourceEncryptionAlgorithm": "SYMMETRIC_DEFAULT"}))
    return out


def _release(gen: _Gen, day: datetime) -> list[dict[str, Any]]:
    """A Pulumi release from CI (Thursdays, 14:00 UTC): the web identity exchange, then the
    deployer reading the stack (most calls) and changing a few resources."""
    moment = day + timedelta(hours=14, minutes=gen.rng.randint(0, 40))
    ip = f"20.{gen.rng.randint(26, 29)}.{gen.rng.randint(0, 255)}.{gen.rng.randint(1, 254)}"
    role = f"{_P}-deploy-workload"
    out = [gen.record(moment, {"type": "WebIdentityUser",
                               "principalId": "arn:aws:iam::" + gen.account +
                               ":oidc-provider/token.actions.githubusercontent.com:sts.amazonaws.com:"
                               "repo:example-org/zero-trust-ai:environment:prod",
                               "userName": "repo:example-org/zero-trust-ai:environment:prod",
                               "identityProvider": "arn:aws:iam::" + gen.account +
                               ":oidc-provider/token.actions.githubusercontent.com"},
                      "sts.amazonaws.com", "AssumeRoleWithWebIdentity", read_only=True, ip=ip,
                      agent=_GITHUB_UA,
                      params={"roleArn": gen.role_arn(role), "roleSessionName": "GitHubActions",
                              "durationSeconds": 3600},
                      resources=[{"accountId": gen.account, "type": "AWS::IAM::Role",
                                  "ARN": gen.role_arn(role)}])]
    identity = gen.assumed(role, "GitHubActions", moment, mfa=False, web_identity=True)
    reads = (("ec2.amazonaws.com", "DescribeVpcs"), ("ec2.amazonaws.com", "DescribeSubnets"),
             ("ec2.amazonaws.com", "DescribeSecurityGroups"),
             ("ec2.amazonaws.com", "DescribeLaunchTemplates"),
             ("lambda.amazonaws.com", "GetFunction"), ("iam.amazonaws.com", "GetRole"),
             ("iam.amazonaws.com", "GetRolePolicy"), ("s3.amazonaws.com", "GetBucketPolicy"),
             ("autoscaling.amazonaws.com", "DescribeAutoScalingGroups"),
             ("logs.amazonaws.com", "DescribeLogGroups"),
             ("apigateway.amazonaws.com", "GetApis"), ("imagebuilder.amazonaws.com", "GetImageRecipe"))
    writes = (("lambda.amazonaws.com", "UpdateFunctionCode20150331v2"),
              ("lambda.amazonaws.com", "UpdateFunctionConfiguration20150331v2"),
              ("ec2.amazonaws.com", "CreateLaunchTemplateVersion"), ("ec2.amazonaws.com", "CreateTags"),
              ("logs.amazonaws.com", "PutRetentionPolicy"),
              ("imagebuilder.amazonaws.com", "UpdateImagePipeline"))
    for _ in range(gen.rng.randint(180, 260)):
        moment += timedelta(seconds=gen.rng.randint(0, 3))
        source, name = gen.rng.choice(writes) if gen.rng.random() < 0.08 else gen.rng.choice(reads)
        out.append(gen.record(moment, identity, source, name, read_only=name.startswith(("Get", "Describe")),
                              ip=ip, agent=_PULUMI_UA))
    return out


def _rollout(gen: _Gen, day: datetime) -> list[dict[str, Any]]:
    """The Image Builder pipeline's weekly run (Tuesdays) and the instance refresh that follows."""
    # The pipeline's build (Image Builder's service-linked role, on the schedule): a build
    # instance, the image, the parameter the fleet's launch template resolves.
    built = day + timedelta(hours=4, minutes=gen.rng.randint(0, 10))
    builder = gen.assumed("AWSServiceRoleForImageBuilder", "AWSImageBuilder", built, mfa=False)
    out: list[dict[str, Any]] = []
    for minutes, source, name in ((0, "ec2.amazonaws.com", "RunInstances"),
                                  (35, "ec2.amazonaws.com", "CreateImage"),
                                  (52, "ec2.amazonaws.com", "TerminateInstances"),
                                  (58, "ssm.amazonaws.com", "PutParameter")):
        params = ({"name": PARENT_PARAMETER, "overwrite": True, "type": "String"}
                  if name == "PutParameter" else None)
        out.append(gen.record(built + timedelta(minutes=minutes), builder, source, name, read_only=False,
                              ip="imagebuilder.amazonaws.com", agent="imagebuilder.amazonaws.com",
                              params=params, extra={"invokedBy": "imagebuilder.amazonaws.com"}))
    moment = day + timedelta(hours=6, minutes=gen.rng.randint(0, 20))
    role = f"{ROLLOUT_FUNCTION}-role"
    identity = gen.assumed(role, ROLLOUT_FUNCTION, moment, mfa=False)
    ip = f"3.251.{gen.rng.randint(0, 255)}.{gen.rng.randint(1, 254)}"
    out += [gen.record(moment, identity, "ssm.amazonaws.com", "GetParameter", read_only=True, ip=ip,
                       agent=_LAMBDA_UA, params={"name": PARENT_PARAMETER}),
            gen.record(moment + timedelta(seconds=2), identity, "autoscaling.amazonaws.com",
                      "StartInstanceRefresh", read_only=False, ip=ip, agent=_LAMBDA_UA,
                      params={"autoScalingGroupName": f"{_P}-enclave-parents",
                              "strategy": "Rolling", "preferences": {"minHealthyPercentage": 66}},
                      response={"instanceRefreshId": gen.uid()})]
    for minute in range(5, 60, 5):
        out.append(gen.record(moment + timedelta(minutes=minute), identity, "autoscaling.amazonaws.com",
                              "DescribeInstanceRefreshes", read_only=True, ip=ip, agent=_LAMBDA_UA,
                              params={"autoScalingGroupName": f"{_P}-enclave-parents"}))
    return out


def _jit(gen: _Gen, moment: datetime, requester: str, requester_role: str, approvers: Sequence[str],
         elevation: str, minutes: int) -> tuple[list[dict[str, Any]], datetime]:
    """One JIT elevation: the API function records the request and each approval, schedules the
    expiry; the requester assumes the elevation role; the expiry function ends it."""
    api = gen.assumed(f"{JIT_TABLE}-api-role", f"{JIT_TABLE}-api", moment, mfa=False)
    ip = f"3.252.{gen.rng.randint(0, 255)}.{gen.rng.randint(1, 254)}"
    request_id = gen.uid()
    table: dict[str, Any] = {"tableName": JIT_TABLE, "key": {"id": request_id}}
    out = [gen.record(moment, api, "dynamodb.amazonaws.com", "PutItem", read_only=False, ip=ip,
                      agent=_LAMBDA_UA, params={"tableName": JIT_TABLE}, data=True)]
    for approver in approvers:
        moment += timedelta(minutes=gen.rng.randint(2, 9))
        out.append(gen.record(moment, api, "dynamodb.amazonaws.com", "UpdateItem", read_only=False, ip=ip,
                              agent=_LAMBDA_UA, params={**table, "approver": approver}, data=True))
    out.append(gen.record(moment, api, "scheduler.amazonaws.com", "CreateSchedule", read_only=False, ip=ip,
                          agent=_LAMBDA_UA, params={"name": f"ztai-jit-{request_id}",
                                                    "groupName": "default"}))
    moment += timedelta(minutes=1)
    role = f"{_P}-jit-{elevation}"
    out.append(gen.record(moment, gen.assumed(requester_role, requester, moment, mfa=True,
                                              source_identity=requester),
                          "sts.amazonaws.com", "AssumeRole", read_only=True, ip="10.23.4.17", agent=_CLI_UA,
                          params={"roleArn": gen.role_arn(role), "roleSessionName": requester,
                                  "sourceIdentity": requester, "durationSeconds": minutes * 60},
                          resources=[{"accountId": gen.account, "type": "AWS::IAM::Role",
                                      "ARN": gen.role_arn(role)}], endpoint=True))
    expiry = moment + timedelta(minutes=minutes)
    end = gen.assumed(f"{JIT_TABLE}-expiry-role", f"{JIT_TABLE}-expiry", expiry, mfa=False)
    out.append(gen.record(expiry, end, "dynamodb.amazonaws.com", "UpdateItem", read_only=False, ip=ip,
                          agent=_LAMBDA_UA, params=table, data=True))
    out.append(gen.record(expiry, end, "scheduler.amazonaws.com", "DeleteSchedule", read_only=False, ip=ip,
                          agent=_LAMBDA_UA, params={"name": f"ztai-jit-{request_id}"}))
    return out, moment


def _on_call(gen: _Gen, day: datetime) -> list[dict[str, Any]]:
    """The on-call engineer's night: paged at 02:00 local (UTC+0), signs in, looks around the
    fleet, opens a logged shell on a parent, and takes the key-admin elevation, approved by two
    others, to read the weights key's policy."""
    person = "hana.sato"
    moment = day + timedelta(hours=2, minutes=gen.rng.randint(0, 10))
    responder = next(p for p in PERSONAS if p.name == "security-team")
    oncall = Persona("on-call", f"{_P}-security-responder", (person,), 0, (0, 24), 1.0, 0.0,
                     ("81.2.69.",), _CONSOLE_UA)
    out = [_console_login(gen, oncall, moment, person)]
    identity = gen.assumed(oncall.role, person, moment, mfa=True, source_identity=person)
    for source, name in (("autoscaling.amazonaws.com", "DescribeAutoScalingGroups"),
                         ("ec2.amazonaws.com", "DescribeInstances"),
                         ("logs.amazonaws.com", "FilterLogEvents"), ("logs.amazonaws.com", "FilterLogEvents"),
                         ("ec2.amazonaws.com", "DescribeInstanceStatus")):
        moment += timedelta(seconds=gen.rng.randint(20, 90))
        out.append(gen.record(moment, identity, source, name, read_only=True, ip="81.2.69.142",
                              agent=_CONSOLE_UA, extra={"sessionCredentialFromConsole": "true"}))
    moment += timedelta(minutes=3)
    out.append(gen.record(moment, identity, "ssm.amazonaws.com", "StartSession", read_only=False,
                          ip="81.2.69.142", agent=_CONSOLE_UA, params={"target": PERSONAS[2].sessions[0]},
                          response={"sessionId": f"{person}-{gen.rng.getrandbits(64):016x}"}))
    jit, moment = _jit(gen, moment + timedelta(minutes=10), person, oncall.role, responder.sessions,
                       "key-admin", 30)
    out += jit
    admin = gen.assumed(f"{_P}-jit-key-admin", person, moment, mfa=True, source_identity=person)
    for name in ("DescribeKey", "GetKeyPolicy", "ListAliases"):
        moment += timedelta(seconds=gen.rng.randint(10, 60))
        out.append(gen.kms(moment, admin, name, "model-weights", "10.23.4.17", _CLI_UA, endpoint=True))
    return out


# -- the public generator -----------------------------------------------------------------------

def on_call_night(start: datetime, days: int, seed: int) -> date | None:
    """The UTC day of the on-call night in a window (a weekday after the first week, so that a
    detector has a baseline first), or None when the window is shorter than eight days."""
    candidates = [(start + timedelta(days=d)).date() for d in range(7, days)
                  if (start + timedelta(days=d)).weekday() < 5]
    return random.Random(f"on-call/{seed}").choice(candidates) if candidates else None


def _midnight(start: datetime) -> datetime:
    if start.tzinfo is None:
        raise ValueError(f"start must be timezone-aware (UTC), got {start.isoformat()}")
    return start.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def benign_activity(*, start: datetime, days: int, seed: int, account: str = ACCOUNT, region: str = REGION,
                    events_per_day: int = DEFAULT_EVENTS_PER_DAY) -> Iterator[dict[str, Any]]:
    """CloudTrail records of `days` days of this architecture's ordinary use from the UTC day of
    `start`, in event-time order (ties in generation order). About `events_per_day` records on a
    weekday from the personas (PERSONAS); weekends quieter; plus the scheduled automation: key
    rotation on the 1st of each month, the image rollout on Tuesdays, a CI release on Thursdays,
    a curator's JIT training-data-write elevation on Wednesdays, the on-call night
    (`on_call_night`)."""
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    if events_per_day < 0:
        raise ValueError(f"events_per_day must be 0 or more, got {events_per_day}")
    first = _midnight(start)
    night = on_call_night(first, days, seed)
    gen = _Gen(seed, account, region)
    for offset in range(days):
        day = first + timedelta(days=offset)
        records = _personas_day(gen, day, events_per_day)
        if day.day == 1:
            records += _rotation(gen, day)
        if day.weekday() == 1:
            records += _rollout(gen, day)
        if day.weekday() == 2:
            curator = gen.rng.choice(PERSONAS[0].sessions)
            approver = gen.rng.choice([s for s in PERSONAS[0].sessions if s != curator])
            records += _jit(gen, day + timedelta(hours=10, minutes=gen.rng.randint(0, 59)), curator,
                            PERSONAS[0].role, [approver], "training-data-write", 120)[0]
        if day.weekday() == 3:
            records += _release(gen, day)
        if day.date() == night:
            records += _on_call(gen, day)
        records.sort(key=lambda r: r["eventTime"])  # stable: ties keep generation order
        yield from records


# -- attack records moved in --------------------------------------------------------------------

def _parse(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def _replace(value: Any, old: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        for before, after in old.items():
            value = value.replace(before, after)
        return value
    if isinstance(value, list):
        return [_replace(item, old) for item in value]
    if isinstance(value, dict):
        return {key: _replace(item, old) for key, item in value.items()}
    return value


def rehome(records: Sequence[Mapping[str, Any]], *, account: str, region: str, start: datetime,
           seed: int) -> list[dict[str, Any]]:
    """One technique's records moved into `account` and `region` and into time, as new dicts:

    - every account id the records name (`recipientAccountId`, the identities' `accountId`) is
      replaced by `account` wherever it appears (ARNs, principals, parameters);
    - every region they name (`awsRegion`, invented ones such as "eu-west-2r") by `region`;
    - times shifted by one offset so that the earliest `eventTime` falls at `start` plus a jitter
      of 0-59 s drawn from `seed` (sessions' `creationDate` shifted alike); order, spacing and
      every `eventID` are kept (the eventID is restored after the rewrite in any case).
    Records without an `eventTime` or `eventID` are refused (ValueError).

    What is kept as recorded, and gives the records away without any model: the user agent
    (`stratus-red-team_<uuid>`) and the actor, mostly an IAM user with a long-term AKIA key, which
    this architecture never uses. An evaluation should say so rather than credit a model for it."""
    if not records:
        return []
    for index, record in enumerate(records):
        if not isinstance(record.get("eventTime"), str) or not isinstance(record.get("eventID"), str):
            raise ValueError(f"record {index} has no eventTime or eventID string; rehome needs both")
    accounts: set[str] = set()
    regions: set[str] = set()
    for record in records:
        for holder in (record, record.get("userIdentity") or {}):
            for key in ("recipientAccountId", "accountId"):
                if isinstance(holder.get(key), str) and holder[key].isdigit():
                    accounts.add(holder[key])
        if isinstance(record.get("awsRegion"), str):
            regions.add(record["awsRegion"])
    # Longest first, so that no name is rewritten inside a longer one.
    old = {name: account for name in sorted(accounts, key=len, reverse=True)}
    old.update({name: region for name in sorted(regions, key=len, reverse=True) if name != region})
    earliest = min(_parse(record["eventTime"]) for record in records)
    _midnight(start)  # refuses a naive start
    jitter = timedelta(seconds=random.Random(f"rehome/{seed}").randint(0, 59))
    shift = start.astimezone(UTC) + jitter - earliest
    out = []
    for record in records:
        moved: dict[str, Any] = _replace(json.loads(json.dumps(record)), old)
        moved["eventID"] = record["eventID"]
        moved["eventTime"] = _iso(_parse(record["eventTime"]) + shift)
        attributes = ((moved.get("userIdentity") or {}).get("sessionContext") or {}).get("attributes") or {}
        if isinstance(attributes.get("creationDate"), str):
            with contextlib.suppress(ValueError):  # another time format: left as it is
                attributes["creationDate"] = _iso(_parse(attributes["creationDate"]) + shift)
        out.append(moved)
    return out


def load_stratus(folder: Path) -> dict[str, list[dict[str, Any]]]:
    """The Stratus Red Team data set's records by technique (the file name without `aws.` and
    `.json`, e.g. "defense-evasion.cloudtrail-stop"), in file order. FileNotFoundError naming the
    folder when it holds no `aws.*.json` file."""
    files = sorted(folder.glob("aws.*.json"))
    if not files:
        raise FileNotFoundError(f"no Stratus Red Team records (aws.*.json) in {folder}")
    return {path.name.removeprefix("aws.").removesuffix(".json"): json.loads(path.read_text(encoding="utf-8"))
            for path in files}


def mixed(benign: Iterable[Mapping[str, Any]], techniques: Mapping[str, Sequence[Mapping[str, Any]]],
          at: Mapping[str, datetime], *, account: str = ACCOUNT, region: str = REGION,
          seed: int = 0) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    """The benign records with each technique's records re-homed (`rehome`) to start at `at[name]`,
    merged in event-time order (benign first on equal times; a technique's own order kept), and the
    ground truth {technique: [its eventIDs, in its order]}. Every technique needs a time in `at`
    (ValueError naming the missing ones); an eventID seen twice is refused (ValueError)."""
    missing = sorted(set(techniques) - set(at))
    if missing:
        raise ValueError(f"no start time in `at` for: {', '.join(missing)}")
    stream: list[tuple[str, int, dict[str, Any]]] = [
        (r["eventTime"], 0, dict(r)) for r in benign]
    truth: dict[str, list[str]] = {}
    for index, (name, records) in enumerate(sorted(techniques.items())):
        moved = rehome(records, account=account, region=region, start=at[name], seed=seed * 1000 + index)
        truth[name] = [r["eventID"] for r in moved]
        stream.extend((r["eventTime"], 1, r) for r in moved)
    # Within one technique, sort stability keeps the dataset's order for equal seconds; records of
    # a technique whose file order is not time order are placed by their times.
    stream.sort(key=lambda item: (item[0], item[1]))
    seen: set[str] = set()
    for _, _, record in stream:
        event_id = record.get("eventID")
        if isinstance(event_id, str):
            if event_id in seen:
                raise ValueError(f"eventID {event_id} appears twice; the ground truth would be ambiguous")
            seen.add(event_id)
    return [record for _, _, record in stream], truth


def assumed_identity(role: str, session: str, created: datetime, *, account: str = ACCOUNT,
                     mfa: bool = True, source_identity: str | None = None) -> dict[str, Any]:
    """The `userIdentity` of an assumed-role session of `role` in `account`, as the generator
    writes its personas' (for an evaluation that puts a record in a persona's hands)."""
    return _Gen(0, account, REGION).assumed(role, session, created, mfa=mfa, source_identity=source_identity)
