"""Session Manager sessions are encrypted and recorded in an encrypted log group (controls:
immutable infrastructure, audit logging).

Operators reach instances only through Session Manager, so its preferences decide whether what
they do there is on record: a Session document of sessionType Standard_Stream (the regional
`SSM-SessionManagerRunShell` preferences, or any custom shell document) must

- stream its sessions to a CloudWatch log group (`inputs.cloudWatchLogGroupName`) that the agent
  checks is encrypted (`cloudWatchEncryptionEnabled` true; the agent then refuses to start a
  session into an unencrypted group), and stream as it happens (`cloudWatchStreamingEnabled` not
  false: logs uploaded at the end of a session are lost when the session is killed);
- encrypt session data with a KMS key (`kmsKeyId`);
- if it also writes to S3 (`s3BucketName`), require an encrypted bucket (`s3EncryptionEnabled`).

A Session document of sessionType Port (port forwarding) is refused outright: it opens a tunnel
to the instance or through it, which the session log does not record.

Schema: Systems Manager user guide, "Session document schema". The pack reads JSON content (what
SessionManagerPreferences writes); YAML content cannot be checked here and is reported. Unknown
content (a preview, before the log group or key exists) counts as set by this update.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pulumi_policy import Severity

from ztpolicy.graph import UNKNOWN, known
from ztpolicy.rule import Resource, Rule

DOCUMENT = "aws:ssm/document:Document"


def _enabled(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


def _disabled(value: Any) -> bool:
    return value is False or (isinstance(value, str) and value.lower() == "false")


def session_manager_logging_encrypted(resource: Resource, _config: Mapping[str, Any]) -> list[str]:
    kind = known(resource, "documentType")
    if kind is UNKNOWN or kind != "Session":
        return []
    name = f"session document {resource.name}"
    if known(resource, "documentFormat") == "YAML":
        return [f"{name} is YAML, which this pack cannot check: write it as JSON "
                "(document_format=\"JSON\")"]
    content = known(resource, "content")
    if content is UNKNOWN:
        return []
    try:
        document = json.loads(content) if isinstance(content, str) else None
    except ValueError:
        document = None
    if not isinstance(document, Mapping):
        return [f"{name}: its content is not a JSON object"]
    session_type = document.get("sessionType")
    if session_type == "Port":
        return [f"{name} is a port-forwarding document (sessionType Port): a tunnel to or through "
                "the instance that no session log records; operators get logged shells only"]
    if session_type != "Standard_Stream":
        return []
    inputs = document.get("inputs")
    inputs = inputs if isinstance(inputs, Mapping) else {}
    messages = []
    if not inputs.get("cloudWatchLogGroupName"):
        messages.append(f"{name} sends sessions to no CloudWatch log group: set "
                        "inputs.cloudWatchLogGroupName (an encrypted group)")
    if not _enabled(inputs.get("cloudWatchEncryptionEnabled")):
        messages.append(f"{name} does not require an encrypted log group: set "
                        "inputs.cloudWatchEncryptionEnabled=true")
    if _disabled(inputs.get("cloudWatchStreamingEnabled")):
        messages.append(f"{name} uploads session logs only when a session ends: set "
                        "inputs.cloudWatchStreamingEnabled=true so a killed session is on record")
    if not inputs.get("kmsKeyId"):
        messages.append(f"{name} does not encrypt session data: set inputs.kmsKeyId to a KMS key")
    if inputs.get("s3BucketName") and not _enabled(inputs.get("s3EncryptionEnabled")):
        messages.append(f"{name} writes sessions to S3 without requiring an encrypted bucket: set "
                        "inputs.s3EncryptionEnabled=true")
    return messages


RULE = Rule(
    name="session-manager-logging-encrypted",
    description="Session Manager shell documents must encrypt session data with KMS and stream "
                "sessions to an encrypted CloudWatch log group; no port-forwarding documents.",
    control="Session Manager",
    severity=Severity.HIGH,
    remediation="Declare the preferences with SessionManagerPreferences (components/"
                "session_manager.py): kmsKeyId, cloudWatchLogGroupName of a CMK-encrypted group, "
                "cloudWatchEncryptionEnabled and cloudWatchStreamingEnabled true. Do not declare "
                "Port session documents.",
    resource_check=session_manager_logging_encrypted,
    resource_types=frozenset({DOCUMENT}),
)
