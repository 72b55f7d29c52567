"""zero-trust-ai stack program: composition only.

Load the stack configuration, build the components, wire grants, seal the key policies, export.
Validation lives in `components.stack_config`, resources in `components/`.
"""

from collections.abc import Mapping, Sequence
from dataclasses import replace

import pulumi
import pulumi_aws as aws

from components.alarm_topics import AlarmActions, AlarmTopics, AlarmTopicsArgs, alarm_actions_by_name
from components.alarms import notify_on_rule
from components.ami_pipeline import ImmutableAmiPipeline, ImmutableAmiPipelineArgs, component_names
from components.api_gateway import (
    FIRST_PARTY,
    ApiRoute,
    SecureApiGateway,
    SecureApiGatewayArgs,
    truststore_bucket_name,
)
from components.api_identity import ApiClient, CognitoApiIdentity, CognitoApiIdentityArgs, scope_string
from components.audit import AuditTrail, AuditTrailArgs
from components.audit import trail_name as audit_trail_name
from components.aws_facts import enclave_parent_type, partition_for_region
from components.ci_identity import CiIdentity, CiIdentityArgs, workload_boundary_transformation
from components.detection import (
    DetectionStream,
    DetectionStreamArgs,
    shipped_allow_list,
    stack_context,
)
from components.enclave_fleet import (
    EnclaveInferenceFleet,
    EnclaveInferenceFleetArgs,
    ImageRollout,
    ImageRolloutArgs,
)
from components.guardrails import OrganizationGuardrails, OrganizationGuardrailsArgs
from components.identity import AccessRoles, AccessRolesArgs
from components.jit import JustInTimeAccess, JustInTimeAccessArgs
from components.jit_catalogue import jit_table_name
from components.key_grants import ledger_output
from components.key_grants import replay as replay_grants
from components.key_layer import (
    IdentityReference,
    IdentityReferenceArgs,
    KeyLayerReference,
    KeyLayerReferenceArgs,
)
from components.key_rotation import MonthlyKeyRotation, MonthlyKeyRotationArgs, rotation_schedule_name
from components.keys import PURPOSES as KEY_PURPOSES
from components.keys import SYMMETRIC_PURPOSES, KeyHierarchy, KeyHierarchyArgs, log_group_prefixes_for
from components.network import SegmentedNetwork, SegmentedNetworkArgs
from components.role_policies import workload_policy_name
from components.session_manager import SessionManagerPreferences, SessionManagerPreferencesArgs
from components.siem_stream import SiemStream, SiemStreamArgs, account_streams, stream_name
from components.stack_config import (
    BootstrapConfig,
    KeyLayerConfig,
    OrganizationConfig,
    StackConfig,
    load_stack_config,
)
from components.tags import register_standard_tags
from components.token_vault import TokenVault, TokenVaultArgs, vault_table_name
from components.training_data import TrainingDataBucket, TrainingDataBucketArgs


def key_hierarchy(config: StackConfig | KeyLayerConfig, deployers: Sequence[str] = ()) -> KeyHierarchy:
    """The keys, as a combined stack or the key layer declares them (docs/keys.md)."""
    environment = config.environment
    return KeyHierarchy(
        "keys",
        KeyHierarchyArgs(
            environment=environment,
            owner=config.owner,
            region=config.region,
            administrator_role_arns=config.key_administrator_role_arns,
            break_glass_role_arn=config.break_glass_role_arn,
            replica_regions=config.key_replica_regions,
            # Creating the vault and JIT tables makes DynamoDB use the secrets key as the deploying
            # role: the key is created admitting that, for these tables only.
            dynamodb_tables={"secrets": [vault_table_name(environment)]},
            # The JIT table is the identity part's (compose_identity), which the key layer's own
            # deployer creates in a split deployment: admitted to the administrators.
            administrator_tables={"secrets": [jit_table_name(environment)]},
            # Creating the rotation schedule and the Image Builder components with the logs key makes
            # Scheduler and Image Builder use it as the deploying role: admitted from the key's
            # creation, for those names only. The logs key, not the inference key: the component
            # documents are in git and the schedule holds aliases, and no administrator use is ever
            # admitted on the key of the fleet's volumes, AMIs and model bucket.
            schedules={"logs": [rotation_schedule_name(environment)]},
            image_builder_components={"logs": list(component_names(environment))},
            # Pulumi uploads the API's mutual-TLS truststore, and API Gateway reads it, with the
            # deploying role's credentials (which may otherwise never use a key): the inference key
            # admits that through S3, for the truststore bucket's objects only, from its creation.
            s3_buckets={"inference": [truststore_bucket_name(environment, config.region)]},
            # Firehose creates a grant on the logs key for the SIEM streams, as their deployer: the key
            # admits that from its creation, through Firehose only (a split deployment's key layer
            # admits its own stream and the workload's).
            firehose_streams={"logs": [stream_name(environment, layer) for layer in
                                       (("keys", "workload") if config.layer == "keys" else ("combined",))]},
            # Only an approved key-admin elevation (two approvers) may rewrite these keys' policies,
            # move their aliases, disable or delete them; the deployer writes the first policy.
            two_person_purposes=config.two_person_keys,
            # In a split deployment, the workload's deployer creates what uses the keys at creation.
            deployer_role_arns=deployers,
            # The drift check reads every key's policy without being able to change or use it.
            inspector_role_arns=config.key_inspector_role_arns,
            # The audit key admits the audit trail (compose_audit) from its creation, and nothing
            # else ever uses it: the trail waits for no grant, in either layer.
            audit_trail_name=audit_trail_name(environment),
            # The alarm topics are encrypted with the logs key: CloudWatch and EventBridge publish
            # to them (these topics only) from the key's creation.
            alarm_topics=True,
            protect=config.is_prod,
        ),
    )


def alarm_topics(config: StackConfig | KeyLayerConfig, keys: KeyHierarchy) -> AlarmTopics:
    """Where every alarm goes (docs/alarms.md): one topic per severity, with the keys (a split
    deployment's workload names them by ARN), subscribed from alarmSubscriptions."""
    topics = AlarmTopics("alarms", AlarmTopicsArgs(
        environment=config.environment, region=config.region, key_arn=keys.key_arn("logs"),
        subscriptions=config.alarm_subscriptions, protect=config.is_prod))
    pulumi.export("alarmTopicArns", {severity: topic.arn for severity, topic in topics.topics.items()})
    return topics


def compose_identity(config: StackConfig | KeyLayerConfig, keys: KeyHierarchy,
                     source_vpce_ids: Sequence[pulumi.Input[str]],
                     alarms: AlarmActions) -> tuple[AccessRoles, JustInTimeAccess]:
    """The identity part: the human roles and just-in-time elevation, with the key grants only
    the keys' owner makes to them. In a split deployment the key layer declares it, because the key
    policies name these roles (the key-admin elevation, the JIT API that writes two-person
    policies, the people granted data keys): whoever controls a role's trust, tags or code holds
    what the keys grant it. The workload grants them its own resources by their known names
    (IdentityReference)."""
    # The human roles (docs/identity.md): one per job, trusted only from the configured identity
    # provider, usable only with MFA, a compliant device, from the management segment's endpoints (or
    # the corporate ranges) and in the stack's Regions. Each is granted by the owners of what it
    # uses; none is a key administrator of the key policies (keyAdministratorRoleArns stays the
    # deployer's), and break-glass gets kms:* on the keys only if breakGlassRoleArn names it.
    people = AccessRoles(
        "access",
        AccessRolesArgs(
            environment=config.environment,
            owner=config.owner,
            region=config.region,
            settings=config.human_access,
            log_group_prefixes=log_group_prefixes_for(config.environment),
            source_vpce_ids=source_vpce_ids,
            extra_regions=config.key_replica_regions,
        ),
    )
    publisher, responder = people["model-publisher"], people["security-responder"]
    # Model publisher: data keys for the published models only (the weights' encryption context);
    # never kms:Decrypt on the weights key.
    if config.human_access.published_models:
        keys.grant_generate_data_key("model-weights", publisher,
                                     encryption_context={"model": list(config.human_access.published_models)})
    # Security responder: encrypts the session logs of the shells it opens.
    keys.grant_generate_data_key("logs", responder)

    # --- Just-in-time elevation -------------------------------------------------------------------
    # One role per catalogue entry, admitting nobody until a request is approved by someone else; the
    # grant carries its own expiry and revocation refuses sessions already issued (docs/jit.md). The
    # requests table is encrypted with the secrets key, admitted at creation (dynamodb_tables).
    jit = JustInTimeAccess(
        "jit",
        JustInTimeAccessArgs(
            environment=config.environment,
            region=config.region,
            elevations=config.jit_elevations,
            table_key_arn=keys.key_arn("secrets"),
            logs_key_arn=keys.key_arn("logs"),
            protect=config.is_prod,
            reserve_concurrency=config.reserve_function_concurrency,
            permissions_boundary=people.boundary.arn,
            # The keys of the key-admin elevations: the API writes their approved policies.
            key_arns={e.key: keys.key_arn(e.key) for e in config.jit_elevations if e.grant == "key-admin"},
            alarm_actions=alarms,
        ),
    )
    keys.grant_cloudwatch_logs(jit.log_group_prefix)
    for jit_function in (jit.api, jit.expiry):
        keys.grant_use_through_service("secrets", jit_function.role, "dynamodb")
        keys.grant_use_through_service("logs", jit_function.role, "sqs")  # failure records
    # A key-admin elevation administers its key (disable, schedule deletion, alias) and the JIT API
    # writes the key policy two other people approved by its SHA-256; on a two-person key nobody
    # else may (the deployer included, after the first deploy: docs/runbooks/key-administration.md).
    # The elevations' grants on the workload's resources are the workload's (compose_workload).
    for elevation in config.jit_elevations:
        if elevation.grant == "key-admin":
            keys.grant_key_administration(elevation.key, jit.roles[elevation.name],
                                          policy_writer=jit.api.role)
        if elevation.grant == "break-glass":  # two approvers; what the break-glass role holds, watched
            watch = people.grant_break_glass(jit.roles[elevation.name], elevation.name)
            notify_on_rule(f"{watch.pulumi_resource_name}-notify", rule=watch, actions=alarms,
                           severity="critical")
    # Every AssumeRole of break-glass reaches the critical topic.
    notify_on_rule("access-break-glass-used-notify", rule=people.break_glass_alarm, actions=alarms,
                   severity="critical")
    # Every person's role may call the JIT API (to request, or to approve as the catalogue allows).
    for person in people.roles.values():
        jit.grant_requests(person)
    return people, jit


def compose_audit(config: StackConfig | KeyLayerConfig, keys: KeyHierarchy,
                  people: AccessRoles, alarms: AlarmActions) -> AuditTrail:
    """The audit trail (docs/audit-trail.md), beside the key it writes with: in a split deployment
    the key layer's, so the workload's deployer can neither narrow, move nor stop it (the CI
    roles' boundary and the guardrails name it). Every management event, KMS included, every
    data event on S3 objects, DynamoDB tables and Lambda functions of the account, into an Object
    Lock archive and a CloudWatch Logs copy, both under the two-person audit key."""
    trail = AuditTrail("audit", AuditTrailArgs(
        environment=config.environment, region=config.region,
        audit_key_arn=keys.key_arn("audit"), key=[keys.keys["audit"]],
        retention_days=config.audit_retention_days,
        # Who deploys this layer: the only principals who may change the archive's configuration.
        deployer_role_arns=config.key_administrator_role_arns,
        # A change to the trail, its archive, key or copy, or to the stream that carries the copy
        # out (siem_stream), pages whoever is on critical.
        alarms=alarms, siem_stream_name=stream_name(config.environment, config.layer),
        # The account's SIEM streams' own buckets and transforms are not logged: their events
        # would come back to the stream through this trail's copy, in a loop.
        siem_streams=account_streams(config.environment, config.layer),
        protect=config.is_prod))
    # Auditors and responders read the archive (and `ztai trail verify` it); nobody else.
    for reader in ("auditor", "security-responder"):
        trail.grant_read(people[reader], reader)
        keys.grant_trail_read(people[reader])
    trail.finish()
    pulumi.export("auditTrail", {"trailArn": trail.trail_arn, "bucket": trail.bucket.bucket,
                                 "logGroup": trail.log_group.name})
    return trail


def export_identity(people: AccessRoles, jit: JustInTimeAccess) -> None:
    pulumi.export("jit", {"table": jit.table.name, "apiUrl": jit.function_url.function_url,
                          "roles": {name: role.arn for name, role in jit.roles.items()}})
    pulumi.export("humanRoleArns", people.role_arns)
    # What a workload reads by name (IdentityReference): it checks the key layer declares each.
    pulumi.export("elevationRoleArns", {name: role.arn for name, role in jit.roles.items()})


def compose_key_layer(config: KeyLayerConfig) -> None:
    """The key layer of a split deployment: the keys, and their policies written from the
    workload's reviewed grants file. Before the workload's first deploy there is none, and the
    keys keep their creation policies, which let no role of the workload use them (docs/deploying.md)."""
    keys = key_hierarchy(config, config.workload_deployer_role_arns)
    topics = alarm_topics(config, keys)
    # The roles the key policies name, and the JIT that writes the two-person policies, are this
    # layer's: the workload's deployer can change neither who assumes them nor the JIT's code.
    people, jit = compose_identity(config, keys, config.human_source_vpce_ids, topics.actions)
    trail = compose_audit(config, keys, people, topics.actions)
    # The key layer's own log groups to the SIEM (docs/siem-stream.md): the JIT's and the trail's copy.
    siem_stream(config, keys, [jit.api.log_group, jit.expiry.log_group, trail.log_group], topics.actions)
    if config.workload_grants:
        try:
            replay_grants(keys, config.workload_grants, config.enclave_measurements)
            keys.seal()
        except ValueError as error:  # a grant the keys refuse: the file's, not the program's fault
            raise pulumi.RunError(f"zero-trust-ai:workloadGrantsFile: {error}") from None
    else:
        pulumi.log.warn("no workloadGrantsFile yet: the keys keep their creation policies; deploy the "
                        "workload stack, save its keyGrants output as the grants file, and deploy "
                        "this stack again (docs/deploying.md)")
    pulumi.export("keyArns", keys.key_arns())
    pulumi.export("keyAliases", {purpose: keys.alias_name(purpose) for purpose in KEY_PURPOSES})
    pulumi.export("sealedGrants", len(config.workload_grants))
    export_identity(people, jit)


def siem_stream(config: StackConfig | KeyLayerConfig, keys: KeyHierarchy | KeyLayerReference,
                log_groups: Sequence[aws.cloudwatch.LogGroup], alarms: AlarmActions) -> SiemStream:
    """This layer's stream of every log group it declares to the SIEM (docs/siem-stream.md), with
    the logs key's grants its roles need."""
    # The detection engine on the same log groups (docs/detection-stream.md); its OCSF findings reach
    # the SIEM through its own log group, which the stream subscribes and it does not (a loop). The
    # findings bus is the key layer's in a split deployment (the workload's function puts on it).
    detection = DetectionStream("detect", DetectionStreamArgs(
        environment=config.environment, layer=config.layer, region=config.region,
        logs_key_arn=keys.key_arn("logs"), alarm_actions=alarms, log_groups=log_groups,
        create_bus=config.layer != "workload", protect=config.is_prod,
        allow_list=shipped_allow_list(),
        context=stack_context(config.environment, keys.key_arns())))
    detection.grant_keys(keys)
    pulumi.export("detection", {"function": detection.function_name, "bus": detection.bus_name,
                                "stateBucket": detection.bucket.bucket.bucket})
    stream = SiemStream("siem", SiemStreamArgs(
        environment=config.environment, layer=config.layer, region=config.region,
        logs_key_arn=keys.key_arn("logs"), settings=config.siem,
        log_groups=[*log_groups, detection.log_group], alarm_actions=alarms, protect=config.is_prod))
    keys.grant_cloudwatch_logs(stream.error_log_group_name)
    keys.grant_cloudwatch_logs(stream.transform_log_group_name)
    stream.grant_keys(keys)
    pulumi.export("siemStream", {"name": stream.stream_name, "arn": stream.stream.arn,
                                 "bucket": stream.bucket.bucket.bucket})
    return stream


def compose_bootstrap(config: BootstrapConfig) -> None:
    """One account's CI identity and Pulumi state backend (docs/ci-identity.md): the roles CI
    previews and deploys with, each trusting only its repository, branch or protected environment,
    and the state bucket and secrets key only they reach."""
    ci = CiIdentity("ci", CiIdentityArgs(settings=config.ci, region=config.region,
                                         key_administrator_role_arns=config.key_administrator_role_arns,
                                         protect=True))
    pulumi.export("stateBackendUrl", ci.state_backend_url)
    pulumi.export("secretsProvider", ci.secrets_provider)
    pulumi.export("ciRoleArns", {role: arn.arn for role, arn in ci.roles.items()})


def compose_organization(config: OrganizationConfig) -> None:
    """The organisation's guardrails (docs/guardrails.md): SCPs and RCPs that hold above every
    account below the targets, their administrators included."""
    guardrails = OrganizationGuardrails(
        "guardrails", OrganizationGuardrailsArgs(settings=config.guardrails))
    pulumi.export("guardrailPolicyIds", {name: policy.id for name, policy in guardrails.policies.items()})


def compose_workload(config: StackConfig) -> None:
    """A combined stack (the keys too) or a split deployment's workload layer."""
    if config.layer == "workload":
        # Every role this stack makes carries the CI roles' boundary: its deployer may make no
        # other, so that no role of its own does what the boundary denies it (the identity part,
        # key policies, the trail).
        pulumi.runtime.register_stack_transformation(workload_boundary_transformation(
            partition_for_region(config.region), config.environment))
        # The keys are the key layer's stack: their ARNs come from it, and every grant below is
        # recorded for it (exported as keyGrants, replayed there from its reviewed grants file).
        keys: KeyHierarchy | KeyLayerReference = KeyLayerReference(
            "keys", KeyLayerReferenceArgs(environment=config.environment,
                                          key_layer_stack=str(config.key_layer_stack)))
        # The alarm topics are the key layer's, named by their fixed ARNs in this account.
        alarms = alarm_actions_by_name(config.region, config.environment,
                                       aws.get_caller_identity_output().account_id)
    else:
        keys = key_hierarchy(config)
        alarms = alarm_topics(config, keys).actions

    network = SegmentedNetwork(
        "network",
        SegmentedNetworkArgs(
            segments=config.segments,
            environment=config.environment,
            owner=config.owner,
            region=config.region,
            az_count=config.az_count,
            flow_log_retention_days=config.flow_log_retention_days,
            flow_log_key_arn=keys.key_arn("logs"),
            organization_id=config.organization_id,
            protect=config.is_prod,
        ),
    )
    keys.grant_cloudwatch_logs(network.log_group_prefix)
    keys.grant_cloudwatch_logs(network.query_log_group_prefix)

    # Monthly on-demand rotation of the symmetric keys (the HMAC key cannot be rotated on demand),
    # from the management segment's private subnets through its KMS endpoint. Successors are left to
    # the pipeline (create_successors stays False: True would give the function's role
    # kms:PutKeyPolicy on every symmetric key, model-weights included).
    management = network.segments["management"]
    rotation = MonthlyKeyRotation(
        "key-rotation",
        MonthlyKeyRotationArgs(
            environment=config.environment,
            owner=config.owner,
            region=config.region,
            key_aliases=[keys.alias_name(purpose) for purpose in SYMMETRIC_PURPOSES],
            key_arns=[keys.key_arn(purpose) for purpose in SYMMETRIC_PURPOSES],
            logs_key_arn=keys.key_arn("logs"),
            dead_letter_key_arn=keys.key_arn("logs"),
            subnet_ids=[subnet.id for subnet in management.private_subnets],
            vpc_id=management.vpc.id,
            vpc_cidr=management.vpc.cidr_block,
            protect=config.is_prod,
            reserve_concurrency=config.reserve_function_concurrency,
            schedule_key_arn=keys.key_arn("logs"),
            alarm_actions=alarms,
        ),
    )
    keys.grant_key_rotation(rotation.role, create_successors=rotation.create_successors)
    keys.grant_cloudwatch_logs(rotation.log_group_prefix)
    # SQS needs GenerateDataKey and Decrypt from whoever sends to an encrypted queue: the scheduler
    # role gets the logs key's use through SQS only.
    keys.grant_use_through_service("logs", rotation.scheduler_role, "sqs")
    # Lambda sends the record of a run that failed every retry to the function's failure queue
    # (logs key) with the function's own role: the same use of the key, through SQS only.
    keys.grant_use_through_service("logs", rotation.role, "sqs")
    # The scheduler role reads the schedule's payload (logs key) when it invokes the function: this
    # schedule's only.
    keys.grant_schedule_decrypt("logs", rotation.scheduler_role, rotation.schedule_name)

    # The token vault (tokenization), encrypted with the secrets key. The data curator tokenizes (below);
    # no role detokenizes: grant with token_vault.grant_detokenize(role, keys=keys) here, above the seal.
    token_vault = TokenVault(
        "token-vault",
        TokenVaultArgs(
            environment=config.environment,
            owner=config.owner,
            kms_key_arn=keys.key_arn("secrets"),
            deletion_protection=config.is_prod,
            protect=config.is_prod,
        ),
    )


    # The inference fleet (enclave-only decryption): enclave parents in the inference segment's
    # private subnets behind an internal load balancer. Volumes and the model-object bucket use the
    # inference key; the model-weights key gives its role plaintext only inside an enclave with the
    # pinned measurements, and nobody (break-glass included) plaintext outside such an enclave.
    inference = network.segments["inference"]
    fleet = EnclaveInferenceFleet(
        "inference-fleet",
        EnclaveInferenceFleetArgs(
            environment=config.environment,
            owner=config.owner,
            region=config.region,
            vpc_id=inference.vpc.id,
            vpc_cidr=inference.vpc.cidr_block,
            subnet_ids=[subnet.id for subnet in inference.private_subnets],
            storage_key_arn=keys.key_arn("inference"),
            model_key_arn=keys.key_arn("model-weights"),
            measurements=config.enclave_measurements,
            settings=config.enclave_fleet,
            client_cidrs=config.enclave_client_cidrs,
            # Unless CIDRs are configured, only the API gateway's VPC link reaches the listener:
            # nothing else in the VPC gets past the gateway's mTLS, scopes, throttling and logs.
            clients_by_security_group_only=True,
            # TLS from the gateway's VPC link to the listener (the gateway verifies this name) and on
            # to the agents. With the API's zone: a public certificate for inference.<API domain>
            # requested there; otherwise the API's own publicly trusted certificate (the ownership
            # proof when the API's is imported or private: API Gateway verifies against public CAs).
            certificate_domain_name=(f"inference.{config.api.domain_name}" if config.api.hosted_zone_id
                                     else config.api.domain_name),
            hosted_zone_id=config.api.hosted_zone_id,
            certificate_arn=(None if config.api.hosted_zone_id else
                             config.api.ownership_verification_certificate_arn or config.api.certificate_arn),
            data_classification=next(s.data_classification for s in config.segments
                                     if s.name == "inference"),
            protect=config.is_prod,
            # Without pinned artifacts no image is built at deploy: the group is created empty.
            image_built_at_deploy=config.enclave_artifacts is not None,
            # One JSON event per inference request, written by the parent agent to its own log
            # group under the logs key (docs/inference-events.md).
            logs_key_arn=keys.key_arn("logs"),
        ),
    )
    keys.grant_cloudwatch_logs(fleet.inference_log_group_name)
    keys.grant_decrypt_with_attestation("model-weights", fleet.instance_role, config.enclave_measurements)
    # Auto Scaling launches the encrypted volumes through EC2 with the fleet's own service-linked role;
    # the instances read the bucket's SSE-KMS layer through S3 only.
    keys.grant_use_through_service("inference", fleet.autoscaling_role, "ec2")
    keys.grant_decrypt_through_service("inference", fleet.instance_role, "s3")

    # The immutable AMI pipeline: Image Builder bakes the enclave parent image weekly in the
    # management segment, encrypts it with the inference key (the one the fleet's volumes use, so
    # launching needs no second key) and writes its id into the fleet's image parameter, which the
    # launch template resolves at each launch (Image Builder never writes the template). With the
    # artifacts pinned in the stack, the image carries the EIF and the parent agent, read from the
    # model bucket's artifact prefix. The allocator reserve and the architecture follow the fleet's.
    parent_type = enclave_parent_type(config.enclave_fleet.instance_type)
    ami_pipeline = ImmutableAmiPipeline(
        "ami-pipeline",
        ImmutableAmiPipelineArgs(
            environment=config.environment,
            owner=config.owner,
            region=config.region,
            vpc_id=management.vpc.id,
            vpc_cidr=management.vpc.cidr_block,
            subnet_id=management.private_subnets[0].id,
            ami_key_arn=keys.key_arn("inference"),
            logs_key_arn=keys.key_arn("logs"),
            ami_id_parameter_name=fleet.image_parameter.name,
            enclave_artifacts=config.enclave_artifacts,
            artifacts_bucket_name=fleet.model_bucket_name if config.enclave_artifacts else None,
            enclave_memory_mib=config.enclave_fleet.enclave_memory_mib,
            enclave_cpu_count=config.enclave_fleet.enclave_cpu_count,
            architecture=parent_type.architecture,
            enclave_threads_per_core=parent_type.threads_per_core,
            organization_id=config.organization_id,
            protect=config.is_prod,
            component_key_arn=keys.key_arn("logs"),
        ),
    )
    # Image Builder launches the encrypted build volumes and creates and copies the AMI through EC2
    # as the pipeline's execution role: use of the inference key through EC2 only, no direct Decrypt.
    keys.grant_use_through_service("inference", ami_pipeline.execution_role, "ec2")
    # Image Builder's service-linked role copies and encrypts the distributed AMI under the same key.
    # Its ARN resolves only after the pipeline's Image Builder resources exist (Image Builder creates
    # the role with the first of them), so the key policy naming it is written after them.
    keys.grant_use_through_service("inference", ami_pipeline.service_linked_role_arn, "ec2")
    keys.grant_cloudwatch_logs(ami_pipeline.log_group_prefix)
    # The build instance reads its component documents (logs key) through Image Builder only.
    keys.grant_component_decrypt("logs", ami_pipeline.instance_role)
    # The fleet owns the image parameter and the bucket: it lets the pipeline write the one and read
    # the artifact prefix of the other (whose SSE-KMS layer is the inference key, through S3 only).
    publish_image = fleet.grant_image_publishing(ami_pipeline.execution_role)
    if config.enclave_artifacts is not None:
        read_artifacts = fleet.grant_artifact_read(ami_pipeline.instance_role)
        keys.grant_decrypt_through_service("inference", ami_pipeline.instance_role, "s3")

    # A new image reaches the instances: when Image Builder reports one of the pipeline's images
    # AVAILABLE (its id already in the parameter), a function starts an instance refresh of the group,
    # only for an AMI the pipeline produced (owner, Image Builder record of this recipe, inference
    # key). The same function watches the parameter and puts back the pipeline's last AMI when anyone
    # else writes it, because the launch template resolves it at every launch.
    rollout = ImageRollout(
        "inference-image-rollout",
        ImageRolloutArgs(
            environment=config.environment,
            owner=config.owner,
            region=config.region,
            group_name=fleet.group.name,
            group_arn=fleet.group.arn,
            image_arn_prefix=ami_pipeline.image_arn_prefix,
            logs_key_arn=keys.key_arn("logs"),
            ami_parameter_name=fleet.image_parameter.name,
            ami_parameter_arn=fleet.image_parameter.arn,
            recipe_arn=ami_pipeline.recipe.arn,
            ami_key_arn=keys.key_arn("inference"),
            # An image counts only if its record shows it was built by this pipeline as declared.
            pipeline_arn=ami_pipeline.pipeline.arn,
            infrastructure_configuration_arn=ami_pipeline.infrastructure_configuration.arn,
            distribution_configuration_arn=ami_pipeline.distribution_configuration.arn,
            build_subnet_id=ami_pipeline.build_subnet_id,
            build_security_group_ids=[ami_pipeline.security_group.id],
            execution_role_arn=ami_pipeline.execution_role.arn,
            workflow_arns=ami_pipeline.workflow_arns,
            protect=config.is_prod,
            reserve_concurrency=config.reserve_function_concurrency,
            alarm_actions=alarms,
        ),
    )
    keys.grant_cloudwatch_logs(rollout.log_group_prefix)
    keys.grant_use_through_service("logs", rollout.role, "sqs")  # its failure queue, as above

    # Session Manager: the only way onto the parents and the build instances. Every shell
    # is encrypted with the logs key (the hierarchy has no purpose of its own for session data) and
    # streamed to a log group encrypted with it; idle and maximum durations are capped. Only roles
    # granted here may start sessions, and only shells on instances tagged as the fleet's parents or
    # the pipeline's build instances; the security responder is granted below.
    sessions = SessionManagerPreferences(
        "session-manager",
        SessionManagerPreferencesArgs(
            environment=config.environment,
            owner=config.owner,
            region=config.region,
            session_key_arn=keys.key_arn("logs"),
            logs_key_arn=keys.key_arn("logs"),
            session_targets={"ztai:workload": ("enclave-inference",), "ztai:image": ("enclave-parent",)},
            protect=config.is_prod,
        ),
    )
    keys.grant_cloudwatch_logs(sessions.log_group_prefix)
    # The SSM agent on each instance decrypts the session's data key and streams the session.
    for instance_role in (fleet.instance_role, ami_pipeline.instance_role):
        sessions.grant_session_logging(instance_role)
        keys.grant_session_decrypt("logs", instance_role)

    # The inference API (gateway, partners): the only door to the fleet. Mutual TLS on the custom domain
    # (first-party and partner CAs in a pinned truststore version), a JWT with the route's scope on
    # every route, the default endpoint off, and a VPC link from the inference segment to the fleet's
    # internal load balancer. Tokens come from the stack's own Cognito pool (one client-credentials
    # app client per caller, each with one scope) unless an external issuer is configured.
    api = config.api
    api_identifier = f"https://{api.domain_name}"
    # One scope per caller: `invoke` for first-party clients, `partner-<name>` for each partner.
    partner_scopes = {partner.name: f"partner-{partner.name}" for partner in api.partners}
    partners = [replace(partner, scopes=(scope_string(api_identifier, partner_scopes[partner.name]),))
                for partner in api.partners]
    first_party_scope = scope_string(api_identifier, "invoke")
    if api.jwt_issuer is None:
        identity = CognitoApiIdentity(
            "api-identity",
            CognitoApiIdentityArgs(
                environment=config.environment,
                owner=config.owner,
                identifier=api_identifier,
                domain_prefix=api.auth_domain_prefix,
                # Cognito prefix domains are global to the region: a derived prefix gets a suffix
                # unique to this account, region and stack; one set by hand is used as given.
                unique_domain_suffix=api.auth_domain_prefix_derived,
                scopes={"invoke": "first-party inference",
                        **{scope: f"routes of partner {name}" for name, scope in partner_scopes.items()}},
                clients=[ApiClient("inference", ("invoke",)),
                         *(ApiClient(scope, (scope,)) for scope in partner_scopes.values())],
                deletion_protection=config.is_prod,
                protect=config.is_prod,
            ),
        )
        jwt_issuer: pulumi.Input[str] = identity.issuer
        jwt_audiences: list[pulumi.Input[str]] = list(identity.client_ids.values())
    else:
        jwt_issuer, jwt_audiences = api.jwt_issuer, list(api.jwt_audiences)
    gateway = SecureApiGateway(
        "api",
        SecureApiGatewayArgs(
            environment=config.environment,
            owner=config.owner,
            domain_name=api.domain_name,
            hosted_zone_id=api.hosted_zone_id,
            certificate_arn=api.certificate_arn,
            ownership_verification_certificate_arn=api.ownership_verification_certificate_arn,
            jwt_issuer=jwt_issuer,
            jwt_audiences=jwt_audiences,
            routes=[ApiRoute("POST /v1/infer", (first_party_scope,))],
            partners=partners,
            client_ca_files=api.client_ca_files,
            vpc_id=inference.vpc.id,
            subnet_ids=[subnet.id for subnet in inference.private_subnets],
            backend_cidr=next(s.cidr for s in config.segments if s.name == "inference"),
            backend_port=fleet.listener_port,
            nlb_listener_arn=fleet.listener.arn,
            backend_server_name=fleet.tls_server_name,
            truststore_key_arn=keys.key_arn("inference"),
            truststore_bucket_name=truststore_bucket_name(config.environment, config.region),
            logs_key_arn=keys.key_arn("logs"),
            throttling_rate_limit=api.rate_limit,
            throttling_burst_limit=api.burst_limit,
            log_retention_days=api.access_log_retention_days,
            publish_after_grants=True,
            protect=config.is_prod,
        ),
    )
    keys.grant_cloudwatch_logs(gateway.log_group_prefix)
    fleet.admit_clients_from(gateway.vpc_link_security_group.id, "api-gateway")

    # The training data: raw/, curated/ (tokenized) and outputs/, under the training-data key.
    training_data = TrainingDataBucket(
        "training-data",
        TrainingDataBucketArgs(environment=config.environment, owner=config.owner, region=config.region,
                               key_arn=keys.key_arn("training-data"), protect=config.is_prod),
    )

    # The human roles and the JIT elevations (compose_identity): this stack's in a combined
    # deployment; in a split one the key layer's, read here by their known names.
    management_endpoints = [endpoint.id for endpoint in management.endpoints.values()]
    people: AccessRoles | IdentityReference
    jit: JustInTimeAccess | None
    trail_copy: list[aws.cloudwatch.LogGroup] = []
    if isinstance(keys, KeyHierarchy):
        people, jit = compose_identity(config, keys, management_endpoints, alarms)
        trail_copy.append(compose_audit(config, keys, people, alarms).log_group)
        elevation_roles: Mapping[str, aws.iam.Role] = jit.roles
    else:
        people = IdentityReference("access", IdentityReferenceArgs(
            environment=config.environment, elevations=config.jit_elevations, key_layer=keys.stack,
            key_layer_stack=str(config.key_layer_stack)))
        elevation_roles, jit = people.elevation_roles, None
    curator, engineer = people["data-curator"], people["model-engineer"]
    publisher, responder = people["model-publisher"], people["security-responder"]
    # Data curator: brings raw data in, tokenizes it into curated/; never detokenizes, never weights.
    training_data.grant_read_prefix(curator, "raw/")
    training_data.grant_write_prefix(curator, "raw/")
    training_data.grant_write_prefix(curator, "curated/")
    keys.grant_use_through_service("training-data", curator, "s3")
    token_vault.grant_tokenize(curator, keys=keys)
    # Model engineer: trains on curated (tokenized) data and writes outputs.
    training_data.grant_read_prefix(engineer, "curated/")
    training_data.grant_read_prefix(engineer, "outputs/")
    training_data.grant_write_prefix(engineer, "outputs/")
    keys.grant_use_through_service("training-data", engineer, "s3")
    # Model publisher: uploads to models/ (its data keys are the key owner's grant, compose_identity).
    fleet.grant_model_publishing(publisher)
    keys.grant_use_through_service("inference", publisher, "s3")
    # Security responder: logged shells on the fleet's parents and the build instances.
    sessions.grant_start_session(responder)

    # Through the segments' s3, logs, ecr and ssm endpoints, principals reach only what is named
    # here (the model bucket, the AMI-id parameter, the image build's log group, whose name is the
    # pipeline's log_group_prefix), no other resource of the account, another environment's included.
    endpoint_policies = network.restrict_endpoints(
        bucket_names=[fleet.model_bucket_name],
        parameter_arns=[fleet.image_parameter.arn],
        log_group_names=[ami_pipeline.log_group_prefix, fleet.inference_log_group_name],
    )

    # --- Just-in-time elevation: what the elevations touch of this stack's resources ---------------
    for elevation in config.jit_elevations:
        role = elevation_roles[elevation.name]
        # As managed policies: an elevation's inline policies are the JIT's (its window policy ends
        # sessions at expiry and revocation), written by no deployer (components/role_policies.py).
        managed = workload_policy_name(config.environment, f"jit-{elevation.name}")
        if elevation.grant == "training-data-prefix-write":  # the canonical case: one job run's writes
            training_data.grant_write_prefix(role, elevation.prefix, managed_policy_name=managed)
            keys.grant_use_through_service("training-data", role, "s3")
        if elevation.grant == "model-prefix-write":
            fleet.grant_prefix_write(role, elevation.prefix, managed_policy_name=managed)
            keys.grant_use_through_service("inference", role, "s3")
    # --- end of just-in-time elevation -------------------------------------------------------------

    # Every log group of this stack to the SIEM (docs/siem-stream.md); the stream's own are never
    # subscribed (a loop). A split deployment's key layer streams its own (the JIT's, the trail's copy).
    siem_stream(config, keys, [
        *(segment.flow_log_group for segment in network.segments.values()), network.query_log_group,
        rotation.log_group, rollout.log_group, *ami_pipeline.log_groups, sessions.log_group,
        gateway.log_group, *((jit.api.log_group, jit.expiry.log_group) if jit is not None else ()),
        *([fleet.inference_log_group] if fleet.inference_log_group is not None else []), *trail_copy],
        alarms)

    # Every grant is made above this line: sealing writes the key policies.
    key_policies = keys.seal()
    gateway.publish_after(key_policies)

    if config.enclave_artifacts is not None:
        # First boot: the parameter's first value is stock AL2023. One image is built now (tens of
        # minutes of `pulumi up`), its distribution writes the parameter, and the group launches
        # only after it. The build waits for the grants it uses, the key policies included.
        fleet.launch_after(ami_pipeline.build_image(
            after=[publish_image, read_artifacts, *key_policies, *endpoint_policies]))

    pulumi.export("vpcIds", network.vpc_ids())
    pulumi.export("privateSubnetIds", {
        name: [subnet.id for subnet in segment.private_subnets]
        for name, segment in network.segments.items()
    })
    pulumi.export("keyArns", keys.key_arns())
    pulumi.export("keyAliases", {purpose: keys.alias_name(purpose) for purpose in KEY_PURPOSES})
    # Every key grant of the composition: in a workload stack, what the key layer's grants file
    # must hold (docs/deploying.md); in a combined stack, what a split would move there.
    pulumi.export("keyGrants", ledger_output(config.environment, keys.ledger, management_endpoints))
    pulumi.export("tokenVaultTable", token_vault.table_name)
    if isinstance(people, AccessRoles) and jit is not None:
        export_identity(people, jit)
    pulumi.export("inferenceEndpoint", fleet.load_balancer.dns_name)
    pulumi.export("inferenceLaunchTemplateId", fleet.launch_template.id)
    pulumi.export("amiPipelineArn", ami_pipeline.pipeline.arn)
    pulumi.export("amiIdParameter", fleet.image_parameter.name)
    pulumi.export("modelBucket", fleet.model_bucket_name)
    pulumi.export("trainingDataBucket", training_data.bucket_name)
    if api.jwt_issuer is None:
        # What the enclave image bakes to re-verify every request (enclave_images/build.sh): the pool,
        # each app client bound to its CAs' names, each route's scopes. Onboarding a partner changes
        # it, and so the EIF and its pinned measurements.
        pulumi.export("enclaveTrust", gateway.enclave_trust(identity.issuer, {
            FIRST_PARTY: identity.client_ids["inference"],
            **{name: identity.client_ids[scope] for name, scope in partner_scopes.items()}},
            # The scopes each client is given above: they decide the routes the enclave lets it call.
            {FIRST_PARTY: [first_party_scope],
             **{partner.name: list(partner.scopes) for partner in partners}}))
    else:
        pulumi.log.warn("enclaveTrust is not exported with an external jwtIssuer: bind its client ids "
                        "to their CAs by hand in the enclave's trust file (enclave_images/trust.py)")
    pulumi.export("api", {
        "apiId": gateway.api_id, "stageName": gateway.stage_name, "routeKeys": gateway.route_keys,
        "domainName": gateway.domain_name, "truststoreVersion": gateway.truststore_version,
        "accessLogGroup": gateway.log_group_name,
    })


config = load_stack_config()
# Before the first resource: every taggable resource gets environment, owner and project here, once.
register_standard_tags(config.environment, config.owner)
if isinstance(config, OrganizationConfig):
    compose_organization(config)
elif isinstance(config, BootstrapConfig):
    compose_bootstrap(config)
elif isinstance(config, KeyLayerConfig):
    compose_key_layer(config)
else:
    compose_workload(config)
