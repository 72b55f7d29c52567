"""A matching record and a near miss for every shipped Sigma rule (detections/sigma/), shared by the
runtime's tests (the IR evaluator) and the CLI's (pySigma's parse of the same rules).

Records have CloudTrail's shape as the stack writes it (roles `zero-trust-ai-prod-<role>`, keys by
alias `alias/zero-trust-ai/prod/<purpose>`); the placeholders keep their defaults."""

from __future__ import annotations

import uuid
from typing import Any

ACCOUNT = "111122223333"
_P = "zero-trust-ai-prod"
WEIGHTS_ALIAS = f"arn:aws:kms:eu-west-1:{ACCOUNT}:alias/zero-trust-ai/prod/model-weights"
KEY_ARN = f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/0d3f9c1e-6b0a-4e8c-9b7a-2f1d4c5e6a7b"
VAULT = f"{_P}-token-vault"
_counter = iter(range(1_000_000))


def role_arn(role: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:role/{role}"


def assumed(role: str, session: str = "dmitri.ivanov", **extra: Any) -> dict[str, Any]:
    return {"type": "AssumedRole", "principalId": f"AROAEXAMPLE:{session}",
            "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/{role.rsplit('/', 1)[-1]}/{session}",
            "accountId": ACCOUNT, "accessKeyId": "ASIAEXAMPLE",
            "sessionContext": {"attributes": {"creationDate": "2026-12-07T09:00:00Z",
                                              "mfaAuthenticated": "true"},
                               "sessionIssuer": {"type": "Role", "principalId": "AROAEXAMPLE",
                                                 "arn": role_arn(role), "accountId": ACCOUNT,
                                                 "userName": role.rsplit("/", 1)[-1]}},
            **extra}


ENGINEER = assumed(f"{_P}-model-engineer")
DEPLOYER = assumed(f"{_P}-deploy-workload", "GitHubActions")
IAM_USER = {"type": "IAMUser", "principalId": "AIDAEXAMPLE", "arn": f"arn:aws:iam::{ACCOUNT}:user/mallory",
            "accountId": ACCOUNT, "userName": "mallory"}


def ct(service: str, name: str, params: dict[str, Any] | None = None, *,
       identity: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """A CloudTrail record of `name` on `<service>.amazonaws.com` by the model engineer unless told."""
    return {"eventVersion": "1.11", "eventTime": "2026-12-07T10:00:00Z",
            "eventID": str(uuid.UUID(int=next(_counter) + 1)), "eventSource": f"{service}.amazonaws.com",
            "eventName": name, "awsRegion": "eu-west-1", "sourceIPAddress": "203.0.113.7",
            "userAgent": "aws-cli/2.22.26", "userIdentity": identity or ENGINEER,
            "requestParameters": params, "responseElements": None, "readOnly": False,
            "eventType": "AwsApiCall", "managementEvent": True, "recipientAccountId": ACCOUNT, **extra}


def jit(event: str, requester: str, by: str) -> dict[str, Any]:
    return {"event": event, "time": "2026-12-07T10:00:00Z", "request_id": "r-1", "elevation": "key-admin",
            "requester": requester, "by": by, "reason": "rotate", "action": event.split(".", 1)[1]}


def _sg(cidr: str) -> dict[str, Any]:
    return {"groupId": "sg-0abc", "ipPermissions": {"items": [
        {"ipProtocol": "tcp", "fromPort": 22, "toPort": 22,
         "ipRanges": {"items": [{"cidrIp": "10.0.0.0/8"}, {"cidrIp": cidr}]}}]}}


def _table(name: str, table: str, *, identity: dict[str, Any] | None = None) -> dict[str, Any]:
    arn = f"arn:aws:dynamodb:eu-west-1:{ACCOUNT}:table/{table}"
    return ct("dynamodb", name, {"tableName": table, "key": {"pk": "T#email#abc"}}, identity=identity,
              resources=[{"accountId": ACCOUNT, "type": "AWS::DynamoDB::Table", "ARN": arn}],
              managementEvent=False, eventCategory="Data")


def _login(mfa: str, identity: dict[str, Any] = IAM_USER) -> dict[str, Any]:
    return ct("signin", "ConsoleLogin", None, identity=identity, eventType="AwsConsoleSignIn",
              responseElements={"ConsoleLogin": "Success"},
              additionalEventData={"LoginTo": "https://console.aws.amazon.com/", "MFAUsed": mfa})


_RECIPIENT = {"keyEncryptionAlgorithm": "RSAES_OAEP_SHA_256", "attestationDocumentModuleId": "i-0a-enc0"}

# (rule, what the row shows, record, whether the rule must match it)
CASES: list[tuple[str, str, dict[str, Any], bool]] = [
    ("api-or-vpc-link-created-outside-deployer", "VPC link by an engineer",
     ct("apigateway", "CreateVpcLink", {"name": "x"}), True),
    ("api-or-vpc-link-created-outside-deployer", "the same by the deployer",
     ct("apigateway", "CreateVpcLink", {"name": "x"}, identity=DEPLOYER), False),
    ("cloudtrail-narrowed", "event selectors by an engineer",
     ct("cloudtrail", "PutEventSelectors", {"trailName": "zero-trust-ai-prod"}), True),
    ("cloudtrail-narrowed", "the same by the key layer's deployer",
     ct("cloudtrail", "PutEventSelectors", {"trailName": "zero-trust-ai-prod"},
        identity=assumed(f"{_P}-deploy-keys", "GitHubActions")), False),
    ("cloudtrail-stopped-or-deleted", "StopLogging",
     ct("cloudtrail", "StopLogging", {"name": "zero-trust-ai-prod"}), True),
    ("cloudtrail-stopped-or-deleted", "StartLogging",
     ct("cloudtrail", "StartLogging", {"name": "zero-trust-ai-prod"}), False),
    ("cloudtrail-stopped-or-deleted", "an event name in another case (Sigma is case-insensitive)",
     ct("cloudtrail", "stoplogging", {"name": "zero-trust-ai-prod"}), True),
    ("console-login-without-mfa", "IAM user without MFA", _login("No"), True),
    ("console-login-without-mfa", "IAM user with MFA", _login("Yes"), False),
    ("console-login-without-mfa", "federated role sign-in (MFA at the IdP)", _login("No", ENGINEER), False),
    ("dns-query-logging-removed", "query log config deleted",
     ct("route53resolver", "DeleteResolverQueryLogConfig", {"resolverQueryLogConfigId": "rqlc-1"}), True),
    ("dns-query-logging-removed", "query log config created",
     ct("route53resolver", "CreateResolverQueryLogConfig", {"name": "x"}), False),
    ("ec2-run-instances-outside-fleet", "an engineer launches a GPU instance",
     ct("ec2", "RunInstances", {"instanceType": "p4d.24xlarge"}), True),
    ("ec2-run-instances-outside-fleet", "EC2 Auto Scaling launches a parent",
     ct("ec2", "RunInstances", {"instanceType": "m6i.xlarge"}, identity=assumed(
         "aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling", "AutoScaling",
         invokedBy="autoscaling.amazonaws.com")), False),
    ("ec2-serial-console-enabled", "enabled", ct("ec2", "EnableSerialConsoleAccess", {}), True),
    ("ec2-serial-console-enabled", "disabled", ct("ec2", "DisableSerialConsoleAccess", {}), False),
    ("ec2-ssh-key-pushed", "Instance Connect key",
     ct("ec2-instance-connect", "SendSSHPublicKey", {"instanceId": "i-1", "instanceOSUser": "ec2-user"}),
     True),
    ("ec2-ssh-key-pushed", "endpoint listing",
     ct("ec2-instance-connect", "DescribeInstanceConnectEndpoints", {}), False),
    ("ec2-user-data-changed", "user data replaced",
     ct("ec2", "ModifyInstanceAttribute", {"instanceId": "i-1", "userData": "<sensitiveDataRemoved>"}), True),
    ("ec2-user-data-changed", "instance type changed",
     ct("ec2", "ModifyInstanceAttribute", {"instanceId": "i-1", "instanceType": {"value": "m6i.large"}}),
     False),
    ("ec2-user-data-changed", "launch template version by an engineer",
     ct("ec2", "CreateLaunchTemplateVersion", {"launchTemplateId": "lt-1"}), True),
    ("ec2-user-data-changed", "launch template version by the deployer",
     ct("ec2", "CreateLaunchTemplateVersion", {"launchTemplateId": "lt-1"}, identity=DEPLOYER), False),
    ("ec2-user-data-read", "user data read",
     ct("ec2", "DescribeInstanceAttribute", {"instanceId": "i-1", "attribute": "userData"}), True),
    ("ec2-user-data-read", "another attribute read",
     ct("ec2", "DescribeInstanceAttribute", {"instanceId": "i-1", "attribute": "instanceType"}), False),
    ("iam-access-key-created", "access key", ct("iam", "CreateAccessKey", {"userName": "mallory"}), True),
    ("iam-access-key-created", "keys listed", ct("iam", "ListAccessKeys", {"userName": "mallory"}), False),
    ("iam-admin-policy-attached", "AdministratorAccess on a role",
     ct("iam", "AttachRolePolicy", {"roleName": "x",
                                    "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"}),
     True),
    ("iam-admin-policy-attached", "ReadOnlyAccess on a role",
     ct("iam", "AttachRolePolicy", {"roleName": "x", "policyArn": "arn:aws:iam::aws:policy/ReadOnlyAccess"}),
     False),
    ("iam-admin-policy-attached", "inline policy allowing every action",
     ct("iam", "PutUserPolicy", {"userName": "x", "policyName": "p", "policyDocument":
                                 '{"Statement": [{"Effect": "Allow", "Action": ["*"], "Resource": "*"}]}'}),
     True),
    ("iam-admin-policy-attached", "inline policy allowing one service's actions",
     ct("iam", "PutUserPolicy", {"userName": "x", "policyName": "p", "policyDocument":
                                 '{"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}'}),
     False),
    ("iam-login-profile-changed", "password changed",
     ct("iam", "UpdateLoginProfile", {"userName": "mallory"}), True),
    ("iam-login-profile-changed", "password read",
     ct("iam", "GetLoginProfile", {"userName": "mallory"}), False),
    ("iam-role-created-outside-deployer", "role by an engineer",
     ct("iam", "CreateRole", {"roleName": "x"}), True),
    ("iam-role-created-outside-deployer", "role by the deployer",
     ct("iam", "CreateRole", {"roleName": "x"}, identity=DEPLOYER), False),
    ("iam-role-trust-changed", "trust rewritten by an engineer",
     ct("iam", "UpdateAssumeRolePolicy", {"roleName": "x", "policyDocument": "{}"}), True),
    ("iam-role-trust-changed", "trust rewritten by the deployer",
     ct("iam", "UpdateAssumeRolePolicy", {"roleName": "x", "policyDocument": "{}"}, identity=DEPLOYER),
     False),
    ("iam-user-created", "user", ct("iam", "CreateUser", {"userName": "mallory"}), True),
    ("iam-user-created", "user read", ct("iam", "GetUser", {"userName": "mallory"}), False),
    ("image-or-snapshot-shared", "AMI made public",
     ct("ec2", "ModifyImageAttribute", {"imageId": "ami-1", "attributeType": "launchPermission",
                                        "launchPermission": {"add": {"items": [{"group": "all"}]}}}), True),
    ("image-or-snapshot-shared", "AMI sharing removed",
     ct("ec2", "ModifyImageAttribute", {"imageId": "ami-1", "attributeType": "launchPermission",
                                        "launchPermission": {"remove": {"items": [
                                            {"userId": "444455556666"}]}}}),
     False),
    ("image-or-snapshot-shared", "snapshot shared with another account",
     ct("ec2", "ModifySnapshotAttribute", {"snapshotId": "snap-1", "createVolumePermission": {
         "add": {"items": [{"userId": "444455556666"}]}}}), True),
    ("jit-approved-by-requester", "approval by the requester",
     jit("jit.approved", role_arn(f"{_P}-security-responder") + "/hana.sato",
         role_arn(f"{_P}-security-responder") + "/hana.sato"), True),
    ("jit-approved-by-requester", "approval by another person",
     jit("jit.approved", role_arn(f"{_P}-security-responder") + "/hana.sato",
         role_arn(f"{_P}-auditor") + "/farah.haddad"), False),
    ("jit-table-written-outside-functions", "approval forged in the table",
     _table("UpdateItem", f"{_P}-jit"), True),
    ("jit-table-written-outside-functions", "the JIT API function's write",
     _table("UpdateItem", f"{_P}-jit", identity=assumed(f"{_P}-jit-api-role", f"{_P}-jit-api")), False),
    ("kms-key-disabled-or-deletion-scheduled", "deletion scheduled",
     ct("kms", "ScheduleKeyDeletion", {"keyId": KEY_ARN, "pendingWindowInDays": 7},
        resources=[{"ARN": KEY_ARN, "type": "AWS::KMS::Key", "accountId": ACCOUNT}]), True),
    ("kms-key-disabled-or-deletion-scheduled", "deletion cancelled",
     ct("kms", "CancelKeyDeletion", {"keyId": KEY_ARN},
        resources=[{"ARN": KEY_ARN, "type": "AWS::KMS::Key", "accountId": ACCOUNT}]), False),
    ("kms-key-policy-or-alias-changed", "key policy by an engineer",
     ct("kms", "PutKeyPolicy", {"keyId": KEY_ARN, "policyName": "default"}), True),
    ("kms-key-policy-or-alias-changed", "key policy by the key layer's deployer",
     ct("kms", "PutKeyPolicy", {"keyId": KEY_ARN, "policyName": "default"},
        identity=assumed(f"{_P}-deploy-keys", "GitHubActions")), False),
    ("kms-key-policy-or-alias-changed", "alias repointed",
     ct("kms", "UpdateAlias", {"aliasName": "alias/zero-trust-ai/prod/model-weights",
                               "targetKeyId": KEY_ARN}),
     True),
    ("lambda-changed-outside-deployer", "code replaced by an engineer",
     ct("lambda", "UpdateFunctionCode20150331v2", {"functionName": f"{_P}-key-rotation"}), True),
    ("lambda-changed-outside-deployer", "code replaced by the deployer",
     ct("lambda", "UpdateFunctionCode20150331v2", {"functionName": f"{_P}-key-rotation"}, identity=DEPLOYER),
     False),
    ("log-group-or-subscription-deleted", "SIEM subscription deleted",
     ct("logs", "DeleteSubscriptionFilter", {"logGroupName": "/zero-trust-ai/prod/cloudtrail"}), True),
    ("log-group-or-subscription-deleted", "subscription written",
     ct("logs", "PutSubscriptionFilter", {"logGroupName": "/zero-trust-ai/prod/cloudtrail"}), False),
    ("log-group-or-subscription-deleted", "deletion protection switched off",
     ct("logs", "PutLogGroupDeletionProtection",
        {"logGroupIdentifier": "/zero-trust-ai/prod/cloudtrail", "deletionProtectionEnabled": False}), True),
    ("log-group-or-subscription-deleted", "deletion protection switched on",
     ct("logs", "PutLogGroupDeletionProtection",
        {"logGroupIdentifier": "/zero-trust-ai/prod/cloudtrail", "deletionProtectionEnabled": True}), False),
    ("log-group-or-subscription-deleted", "deletion protection switched off by the deployer",
     ct("logs", "PutLogGroupDeletionProtection",
        {"logGroupIdentifier": "/zero-trust-ai/prod/old", "deletionProtectionEnabled": False},
        identity=DEPLOYER), False),
    ("bucket-protection-changed", "bucket policy deleted by an engineer",
     ct("s3", "DeleteBucketPolicy", {"bucketName": f"{_P}-models-9b03f5d"}), True),
    ("bucket-protection-changed", "public access block removed",
     ct("s3", "DeleteBucketPublicAccessBlock", {"bucketName": f"{_P}-models-9b03f5d"}), True),
    ("bucket-protection-changed", "bucket policy written by the deployer",
     ct("s3", "PutBucketPolicy", {"bucketName": f"{_P}-models-9b03f5d"}, identity=DEPLOYER), False),
    ("bucket-protection-changed", "bucket policy read",
     ct("s3", "GetBucketPolicy", {"bucketName": f"{_P}-models-9b03f5d"}), False),
    ("dns-firewall-changed", "fail-open configured by an engineer",
     ct("route53resolver", "UpdateFirewallConfig",
        {"resourceId": "vpc-0abc", "firewallFailOpen": "ENABLED"}), True),
    ("dns-firewall-changed", "rule group disassociated",
     ct("route53resolver", "DisassociateFirewallRuleGroup",
        {"firewallRuleGroupAssociationId": "rslvr-frgassoc-1"}), True),
    ("dns-firewall-changed", "rule group association written by the deployer",
     ct("route53resolver", "UpdateFirewallRuleGroupAssociation",
        {"firewallRuleGroupAssociationId": "rslvr-frgassoc-1"}, identity=DEPLOYER), False),
    ("dns-firewall-changed", "firewall configuration read",
     ct("route53resolver", "GetFirewallConfig", {"resourceId": "vpc-0abc"}), False),
    ("monitoring-disabled", "Config recorder stopped",
     ct("config", "StopConfigurationRecorder", {"configurationRecorderName": "default"}), True),
    ("monitoring-disabled", "Config recorder started",
     ct("config", "StartConfigurationRecorder", {"configurationRecorderName": "default"}), False),
    ("organizations-leave", "left", ct("organizations", "LeaveOrganization", None), True),
    ("organizations-leave", "described", ct("organizations", "DescribeOrganization", None), False),
    ("parent-ami-parameter-overwritten", "parameter written by an engineer",
     ct("ssm", "PutParameter", {"name": "/zero-trust-ai/prod/enclave-parent/ami-id", "overwrite": True}),
     True),
    ("parent-ami-parameter-overwritten", "parameter written by the image pipeline",
     ct("ssm", "PutParameter", {"name": "/zero-trust-ai/prod/enclave-parent/ami-id", "overwrite": True},
        identity=assumed(f"{_P}-enclave-parent-imagebuilder-execution", "ImageBuilder")), False),
    ("parent-ami-parameter-overwritten", "another parameter written",
     ct("ssm", "PutParameter", {"name": "/zero-trust-ai/prod/siem/endpoint", "overwrite": True}), False),
    ("rds-snapshot-shared", "made public",
     ct("rds", "ModifyDBSnapshotAttribute", {"dBSnapshotIdentifier": "s", "attributeName": "restore",
                                             "valuesToAdd": ["all"]}), True),
    ("rds-snapshot-shared", "sharing removed",
     ct("rds", "ModifyDBSnapshotAttribute", {"dBSnapshotIdentifier": "s", "attributeName": "restore",
                                             "valuesToRemove": ["444455556666"]}), False),
    ("roles-anywhere-trust-changed", "trust anchor",
     ct("rolesanywhere", "CreateTrustAnchor", {"name": "x", "enabled": True}), True),
    ("roles-anywhere-trust-changed", "anchors listed", ct("rolesanywhere", "ListTrustAnchors", {}), False),
    ("security-group-open-to-internet", "nested request, 0.0.0.0/0",
     ct("ec2", "AuthorizeSecurityGroupIngress", _sg("0.0.0.0/0")), True),
    ("security-group-open-to-internet", "nested request, private ranges only",
     ct("ec2", "AuthorizeSecurityGroupIngress", _sg("192.168.0.0/16")), False),
    ("security-group-open-to-internet", "flat request, x/0",
     ct("ec2", "AuthorizeSecurityGroupIngress", {"groupId": "sg-1", "cidrIp": "208.236.235.254/0",
                                                 "ipPermissions": {}, "fromPort": 22, "toPort": 22}), True),
    ("security-group-open-to-internet", "flat request, a /10",
     ct("ec2", "AuthorizeSecurityGroupIngress", {"groupId": "sg-1", "cidrIp": "100.64.0.0/10",
                                                 "ipPermissions": {}, "fromPort": 22, "toPort": 22}), False),
    ("security-group-open-to-internet", "nested request, ::/0",
     ct("ec2", "AuthorizeSecurityGroupIngress", {"groupId": "sg-1", "ipPermissions": {"items": [
         {"ipProtocol": "-1", "ipv6Ranges": {"items": [{"cidrIpv6": "::/0"}]}}]}}), True),
    ("security-group-open-to-internet", "rule modified to 0.0.0.0/0",
     ct("ec2", "ModifySecurityGroupRules", {"ModifySecurityGroupRulesRequest": {
         "GroupId": "sg-1", "SecurityGroupRule": {"SecurityGroupRuleId": "sgr-1", "SecurityGroupRule": {
             "IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "CidrIpv4": "0.0.0.0/0"}}}}), True),
    ("ssm-send-command", "command sent",
     ct("ssm", "SendCommand", {"documentName": "AWS-RunShellScript", "instanceIds": ["i-1"]}), True),
    ("ssm-send-command", "commands listed", ct("ssm", "ListCommands", {}), False),
    ("sts-federation-token", "federation token", ct("sts", "GetFederationToken", {"name": "x"}), True),
    ("sts-federation-token", "session token", ct("sts", "GetSessionToken", {}), False),
    ("vault-bulk-read", "vault scanned", _table("Scan", VAULT), True),
    ("vault-bulk-read", "another table scanned", _table("Scan", f"{_P}-jit"), False),
    ("vault-read-outside-allowed-roles", "token items read by an engineer",
     _table("BatchGetItem", VAULT), True),
    ("vault-read-outside-allowed-roles", "lookup items read by the curator (tokenising)",
     _table("BatchGetItem", VAULT, identity=assumed(f"{_P}-data-curator", "anna.schmidt")), False),
    ("vpc-flow-logs-deleted", "deleted", ct("ec2", "DeleteFlowLogs", {"flowLogIds": ["fl-1"]}), True),
    ("vpc-flow-logs-deleted", "created", ct("ec2", "CreateFlowLogs", {"resourceIds": ["vpc-1"]}), False),
    ("weights-key-use-failed", "Decrypt refused",
     ct("kms", "Decrypt", {"keyId": WEIGHTS_ALIAS}, errorCode="AccessDenied", errorMessage="denied"), True),
    ("weights-key-use-failed", "Decrypt granted (attested)",
     ct("kms", "Decrypt", {"keyId": WEIGHTS_ALIAS, "recipient": _RECIPIENT}), False),
    # With the default placeholders every key ARN is the stack's, so the outside key is named by an
    # alias of its own here; a stack's context (its key ARNs) catches an outside key ARN as well.
    ("weights-reencrypted-to-another-key", "re-encrypted under an outside key",
     ct("kms", "ReEncrypt", {"sourceKeyId": WEIGHTS_ALIAS, "destinationKeyId": "alias/exfil"}), True),
    ("weights-reencrypted-to-another-key", "another key re-encrypted",
     ct("kms", "ReEncrypt", {"sourceKeyId": KEY_ARN,
                             "destinationKeyId": "arn:aws:kms:eu-west-1:444455556666:key/mine"}), False),
    ("parent-ami-parameter-overwritten", "parameter written by an engineer through Image Builder",
     ct("ssm", "PutParameter", {"name": "/zero-trust-ai/prod/enclave-parent/ami-id", "overwrite": True},
        identity=assumed(f"{_P}-model-engineer", invokedBy="imagebuilder.amazonaws.com")), True),
    ("weights-key-use-without-attestation", "Decrypt without a recipient",
     ct("kms", "Decrypt", {"keyId": WEIGHTS_ALIAS, "encryptionAlgorithm": "SYMMETRIC_DEFAULT"}), True),
    ("weights-key-use-without-attestation", "Decrypt with the enclave's attestation",
     ct("kms", "Decrypt", {"keyId": WEIGHTS_ALIAS, "recipient": _RECIPIENT}), False),
    ("weights-key-use-without-attestation", "a publisher's data key (encrypting a model)",
     ct("kms", "GenerateDataKey", {"keyId": WEIGHTS_ALIAS, "keySpec": "AES_256"},
        identity=assumed(f"{_P}-model-publisher")), False),
    ("weights-key-use-without-attestation", "an engineer's data key",
     ct("kms", "GenerateDataKey", {"keyId": WEIGHTS_ALIAS, "keySpec": "AES_256"}), True),
]

# The Stratus Red Team techniques the rules flag, and by which rules (the techniques left out are
# the behavioural models' work: volume, novelty, time of day).
STRATUS_FLAGGED: dict[str, set[str]] = {
    "credential-access.ec2-steal-instance-credentials": {"ssm-send-command"},
    "defense-evasion.cloudtrail-delete": {"cloudtrail-stopped-or-deleted"},
    "defense-evasion.cloudtrail-event-selectors": {"cloudtrail-narrowed"},
    "defense-evasion.cloudtrail-stop": {"cloudtrail-stopped-or-deleted"},
    "defense-evasion.dns-delete-logs": {"dns-query-logging-removed"},
    "defense-evasion.organizations-leave": {"organizations-leave"},
    "defense-evasion.vpc-remove-flow-logs": {"vpc-flow-logs-deleted"},
    "discovery.ec2-download-user-data": {"ec2-user-data-read"},
    "execution.ec2-launch-unusual-instances": {"ec2-run-instances-outside-fleet"},
    "execution.ec2-user-data": {"ec2-user-data-changed"},
    "execution.ssm-send-command": {"ssm-send-command"},
    "exfiltration.ec2-security-group-open-port-22-ingress": {"security-group-open-to-internet"},
    "exfiltration.ec2-share-ami": {"image-or-snapshot-shared"},
    "exfiltration.ec2-share-ebs-snapshot": {"image-or-snapshot-shared"},
    "exfiltration.rds-share-snapshot": {"rds-snapshot-shared"},
    "initial-access.console-login-without-mfa": {"console-login-without-mfa"},
    "lateral-movement.ec2-instance-connect": {"ec2-ssh-key-pushed"},
    "lateral-movement.ec2-serial-console-send-ssh-public-key": {"ec2-serial-console-enabled",
                                                                "ec2-ssh-key-pushed"},
    "persistence.iam-backdoor-role": {"iam-role-trust-changed"},
    "persistence.iam-backdoor-user": {"iam-access-key-created"},
    "persistence.iam-create-admin-user": {"iam-admin-policy-attached", "iam-access-key-created",
                                          "iam-user-created"},
    "persistence.iam-create-backdoor-role": {"iam-admin-policy-attached",
                                             "iam-role-created-outside-deployer"},
    "persistence.iam-create-user-login-profile": {"iam-login-profile-changed"},
    "persistence.lambda-backdoor-function": {"lambda-changed-outside-deployer"},
    "persistence.lambda-layer-extension": {"lambda-changed-outside-deployer"},
    "persistence.lambda-overwrite-code": {"lambda-changed-outside-deployer"},
    "persistence.rolesanywhere-create-trust-anchor": {"roles-anywhere-trust-changed"},
    "persistence.sts-federation-token": {"sts-federation-token"},
    "privilege-escalation.iam-update-user-login-profile": {"iam-login-profile-changed"},
}
