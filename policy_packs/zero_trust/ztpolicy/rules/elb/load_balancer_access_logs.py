"""Load balancers write access logs to S3 (control: audit logging).

A Network Load Balancer writes entries only for its TLS listeners (Elastic Load Balancing guide,
"Access logs for your Network Load Balancer"); logs are still required on one with TCP listeners
only, so that they start the day a listener becomes TLS rather than when someone remembers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import Severity

from ztpolicy.graph import UNKNOWN, known, known_field
from ztpolicy.rule import Resource, Rule

LOAD_BALANCERS = frozenset({"aws:lb/loadBalancer:LoadBalancer", "aws:alb/loadBalancer:LoadBalancer"})


def load_balancer_access_logs(resource: Resource, _config: Mapping[str, Any]) -> list[str]:
    if known(resource, "loadBalancerType") == "gateway":
        return []  # Gateway Load Balancers have no access logs
    logs = known(resource, "accessLogs")
    if logs is UNKNOWN:
        return []
    enabled, bucket = known_field(logs, "enabled"), known_field(logs, "bucket")
    if enabled is False or enabled is None or not (bucket is UNKNOWN or (isinstance(bucket, str) and bucket)):
        return [f"load balancer {resource.name} writes no access logs: set access_logs with a bucket "
                "and enabled=True (who connected, when, with which TLS parameters)"]
    return []


RULE = Rule(
    name="load-balancer-access-logs",
    description="Application and Network Load Balancers must write access logs to S3.",
    control="logs that last",
    severity=Severity.MEDIUM,
    remediation="Pass access_logs=aws.lb.LoadBalancerAccessLogsArgs(bucket=..., prefix=..., "
                "enabled=True) with a bucket whose policy admits delivery.logs.amazonaws.com for this "
                "account (components.buckets.access_log_bucket); EnclaveInferenceFleet does this.",
    resource_check=load_balancer_access_logs,
    resource_types=LOAD_BALANCERS,
)
