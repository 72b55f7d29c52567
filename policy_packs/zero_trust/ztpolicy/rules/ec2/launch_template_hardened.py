"""Launch templates start hardened, immutable instances (control: immutable infrastructure).

Every launch template, not only the enclave fleet's: any instance can hold credentials worth
stealing. A template passes when

- the instance metadata service needs IMDSv2 session tokens (`httpTokens: required`) with a
  response hop limit of exactly 1, so a container or a forwarded request on the host cannot
  fetch the role's credentials; or IMDS is off (`httpEndpoint: disabled`). An unset hop limit is
  a violation: the AMI's default applies (2 for Amazon Linux 2023);
- it names no key pair: operators come in through SSM Session Manager, which is logged;
- it declares its volumes, and every EBS volume is encrypted with a customer managed key
  (`encrypted: "true"` and a `kmsKeyId` that is not `alias/aws/ebs`). Without a mapping, the
  root volume is whatever the AMI's snapshot is;
- a template for enclaves (tagged `ztai:workload` = `enclave-*`, or whose user data runs
  `nitro-cli`) enables them (`enclaveOptions.enabled`).

No public address is `instance-no-public-ip`'s check; user data without enclave debug flags is
`enclave-user-data-no-debug`'s.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from pulumi_policy import Severity
from pulumi_policy.proxy import UnknownValueError

from ztpolicy.graph import UNKNOWN, as_list, known
from ztpolicy.rule import Resource, Rule
from ztpolicy.rules.ec2.enclave_user_data_no_debug import UserDataError, user_data_script

LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
WORKLOAD_TAG = "ztai:workload"
AWS_MANAGED_EBS_KEY = "alias/aws/ebs"
_NITRO_CLI = re.compile(r"\bnitro-cli\b")


def _true(value: Any) -> bool:
    # Launch templates carry EBS flags as strings ("true"), the EC2 API's tri-state.
    return value is True or (isinstance(value, str) and value.lower() == "true")


def _metadata_problems(name: str, options: Any) -> list[str]:
    if not isinstance(options, Mapping):
        return [f"launch template {name} sets no metadataOptions: IMDSv1 stays available and the "
                "AMI's hop limit applies; require tokens with hop limit 1"]
    if str(options.get("httpEndpoint", "enabled")).lower() == "disabled":
        return []
    problems = []
    if str(options.get("httpTokens", "")).lower() != "required":
        problems.append(f"launch template {name} allows IMDSv1 (httpTokens "
                        f"{options.get('httpTokens', 'unset')!s}); set httpTokens to required")
    hops = options.get("httpPutResponseHopLimit")
    if hops != 1:
        problems.append(f"launch template {name} has IMDS hop limit {hops if hops is not None else 'unset'}; "
                        "set 1 so only the host itself reaches the role's credentials")
    return problems


def _is_aws_managed_ebs_key(key: Any) -> bool:
    """`alias/aws/ebs`, bare or as an alias ARN (`arn:<partition>:kms:<region>:<account>:alias/aws/ebs`)."""
    if key is UNKNOWN:
        return False
    text = str(key).strip().lower()
    return text == AWS_MANAGED_EBS_KEY or (text.startswith("arn:")
                                           and text.endswith(f":{AWS_MANAGED_EBS_KEY}"))


def _volume_problems(name: str, mappings: list[Any]) -> list[str]:
    volumes = [m for m in mappings if isinstance(m, Mapping) and isinstance(m.get("ebs"), Mapping)]
    if not volumes:
        return [f"launch template {name} declares no EBS volume: the root volume is encrypted only "
                "if the AMI's snapshot is; map the root device with encrypted \"true\" and a CMK"]
    problems = []
    for mapping in volumes:
        ebs, device = mapping["ebs"], mapping.get("deviceName", "?")
        try:
            key = ebs.get("kmsKeyId")
        except UnknownValueError:
            key = UNKNOWN  # a key of this update, not created yet: a customer managed key
        if not _true(ebs.get("encrypted")):
            problems.append(f"launch template {name} volume {device} is not encrypted")
        elif key is None or key == "" or _is_aws_managed_ebs_key(key):
            problems.append(f"launch template {name} volume {device} is encrypted with the AWS "
                            "managed EBS key, whose policy nobody controls; name a customer managed key")
    return problems


def _is_enclave_template(resource: Resource) -> bool:
    workload = str(resource.tags().get(WORKLOAD_TAG, ""))
    if workload.startswith("enclave"):
        return True
    try:
        script = user_data_script(resource)
    except UserDataError:
        return False  # enclave-user-data-no-debug reports user data it cannot read
    return script is not None and _NITRO_CLI.search(script) is not None


def _enclave_problems(resource: Resource) -> list[str]:
    if not _is_enclave_template(resource):
        return []
    enclave = known(resource, "enclaveOptions")
    if enclave is UNKNOWN or (isinstance(enclave, Mapping) and enclave.get("enabled") is True):
        return []
    return [f"launch template {resource.name} is for enclaves but does not enable them "
            "(enclaveOptions.enabled)"]


def _checked(check: Callable[[], list[str]]) -> list[str]:
    """One part of the check; a value a real preview does not know yet skips only that part
    (it is checked again when known) instead of the whole policy."""
    try:
        return check()
    except UnknownValueError:
        return []


def launch_template_hardened(resource: Resource, _config: Mapping[str, Any]) -> list[str]:
    name = resource.name
    problems: list[str] = []
    options = known(resource, "metadataOptions")
    if options is not UNKNOWN:
        problems += _checked(lambda: _metadata_problems(name, options))
    if known(resource, "keyName") not in (None, "", UNKNOWN):
        problems.append(f"launch template {name} names key pair {resource.get('keyName')}: "
                        "remove it; operators use SSM Session Manager")
    mappings = known(resource, "blockDeviceMappings")
    if mappings is not UNKNOWN:
        problems += _checked(lambda: _volume_problems(name, as_list(mappings)))
    return problems + _checked(lambda: _enclave_problems(resource))


RULE = Rule(
    name="launch-template-hardened",
    description="Launch templates must require IMDSv2 with hop limit 1, name no key pair, encrypt "
                "every EBS volume with a customer managed key, and enable enclaves where they run.",
    control="enclave-only decryption",
    severity=Severity.HIGH,
    remediation="Set metadata_options(http_tokens='required', http_put_response_hop_limit=1), drop "
                "key_name, map the root device with encrypted='true' and kms_key_id=<CMK>, and "
                "enclave_options(enabled=True) for enclave parents (EnclaveInferenceFleet does all).",
    resource_check=launch_template_hardened,
    resource_types=frozenset({LAUNCH_TEMPLATE}),
)
