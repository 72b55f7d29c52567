"""Enclave inference fleet: the parents of the enclaves, their load balancer and image parameter.

Parent instances in the inference segment's private subnets run one Nitro Enclave each. The parent
fetches the *encrypted* weights from S3 and streams them into the enclave; only the enclave can have
them decrypted, because the model-weights key releases plaintext to the instance role only with an
attestation document whose measurements are pinned (`KeyHierarchy.grant_decrypt_with_attestation`,
granted by `__main__.py`, never by this component). What it builds, secure by default:

- a launch template: enclaves enabled; IMDSv2 required with hop limit 1; no key pair (operators use
  SSM Session Manager); one network interface without a public address; the root volume encrypted
  with the given CMK; user data that sizes the enclave allocator, refuses an EIF whose measurements
  are not the pinned ones, starts the enclave with `nitro-cli run-enclave` (CPU count and memory
  from the stack configuration, never in debug mode and never with a console), then the parent
  agent (`enclave_images/parent/agent.py`, a systemd unit the AMI pipeline bakes). Its image is
  `resolve:ssm:` of the fleet's image parameter, so EC2 reads the AMI id at each launch and the
  template never changes when an image is built;
- the image parameter (`/zero-trust-ai/<env>/enclave-parent/ami-id`, data type aws:ec2:image):
  created with the current Amazon Linux 2023 AMI and then written only by the AMI pipeline's
  distribution (Pulumi ignores its value), which `grant_image_publishing` allows. One writer for
  the image: Pulumi writes the template, the pipeline the parameter;
- an Auto Scaling group across the given private subnets, replaced by an instance refresh whenever
  the launch template changes (it follows the template's latest version; `$Latest` would not
  trigger one), ELB health checks, and its own Auto Scaling service-linked role (custom suffix),
  so the key policy can name the one role that launches these encrypted volumes. A new image does
  not change the template: `ImageRollout` (rollout.py) starts the refresh then;
- an internal Network Load Balancer in the same subnets with a TLS listener on 443 (TLS 1.2/1.3
  policy; the certificate given, or a DNS-validated public ACM certificate for
  `certificate_domain_name` requested in `hosted_zone_id`) and a TLS target group whose HTTPS
  health check reads the agent's `/health`: the caller's bearer token and prompt are encrypted
  from the API gateway to the load balancer (which the gateway verifies by name) and from the load
  balancer to the parent (the agent serves TLS with a key it makes at start; an NLB does not
  verify target certificates). A plain TCP listener needs `allow_plaintext_listener`, by name;
- security groups: the load balancer admits only the client CIDRs (default: the VPC) on its
  listener port and sends only to the instances' agent port; the instances admit only the load
  balancer on the agent port and send only HTTPS, to the VPC (interface endpoints: KMS through the
  enclave's vsock-proxy, SSM, STS, logs) and to the segment's S3 gateway endpoint;
- the instance role: trusted by ec2.amazonaws.com; read (GetObject) on the model objects' prefix
  only; write on the inference events' streams (with `logs_key_arn`); what the SSM agent needs
  for Session Manager and Run Command, listed action by action instead of
  AmazonSSMManagedInstanceCore (which also reads every SSM parameter and document,
  writes inventory and compliance, and fetches patch snapshots); nothing else;
- with `logs_key_arn`, the inference events' log group `/zero-trust-ai/<env>/inference-events`
  (logs key, `log_retention_days`, deletion protection with `protect`): the agents write one event
  per request there themselves (`--events-log-group`), and the instance role may write its
  streams and nothing else of CloudWatch Logs (docs/inference-events.md). `inference_log_group`
  is what the SIEM stream subscribes;
- unless a bucket is given, a model-object bucket: private (all public access blocked, ACLs off),
  versioned, encrypted with the given CMK (S3 Bucket Key on), TLS only, and refusing uploads
  encrypted any other way. Its `artifacts/` prefix holds the EIF and the parent agent package the
  AMI pipeline bakes in; `grant_artifact_read` lets the pipeline's build role read that prefix.

Grants the key owner must make (components never write key policies), all above `keys.seal()`:
`keys.grant_decrypt_with_attestation("model-weights", fleet.instance_role, measurements)`;
`keys.grant_use_through_service(<storage purpose>, fleet.autoscaling_role, "ec2")` (Auto Scaling
launches the encrypted volumes through EC2: use and CreateGrant, only via EC2, only for an AWS
resource); and, for the component's bucket, `keys.grant_decrypt_through_service(<storage purpose>,
fleet.instance_role, "s3")` (and for the pipeline's build role when it reads the artifacts); with
`logs_key_arn`, `keys.grant_cloudwatch_logs(fleet.inference_log_group_name)`, and the group's name
in `network.restrict_endpoints(log_group_names=...)` for the segment's logs endpoint. Type
token `zero-trust-ai:inference:EnclaveInferenceFleet`.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Mapping

import pulumi
import pulumi_aws as aws

from components import role_policies
from components.aws_facts import enclave_parent_type, partition_for_region
from components.buckets import ELB_LOG_PREFIX, AccessLogBucket, access_log_bucket, log_to, private_bucket
from components.certificates import dns_validated_certificate
from components.enclave_fleet.args import (
    EnclaveInferenceFleetArgs,
    image_parameter_name,
    inference_log_group_name,
    validate_fleet_args,
)
from components.enclave_fleet.boot import user_data
from components.enclave_fleet.settings import (
    ARTIFACT_STACK_KEYS,
    HEALTH_PATH,
    INSTANCE_WARMUP_SECONDS,
    MAX_HEALTHY_PERCENTAGE,
    MIN_HEALTHY_PERCENTAGE,
    PARENT_IMAGE_PARAMETERS,
    SSM_AGENT_ACTIONS,
    TLS_POLICY,
)
from components.functions import policy_document
from components.tags import standard_tags


class EnclaveInferenceFleet(pulumi.ComponentResource):
    """Type token `zero-trust-ai:inference:EnclaveInferenceFleet`."""

    instance_role: aws.iam.Role
    autoscaling_role: aws.iam.ServiceLinkedRole
    launch_template: aws.ec2.LaunchTemplate
    group: aws.autoscaling.Group
    load_balancer: aws.lb.LoadBalancer
    # The launch template's image: created here, then written only by the AMI pipeline.
    image_parameter: aws.ssm.Parameter
    model_bucket_name: pulumi.Output[str]
    # Load balancer access logs and the model bucket's server access logs.
    access_logs: AccessLogBucket
    # Where the AMI pipeline reads the EIF and the agent package (grant_artifact_read).
    artifact_prefix: str
    # One event per inference request, written by the agents (None without `logs_key_arn`).
    inference_log_group: aws.cloudwatch.LogGroup | None
    inference_log_group_name: str

    def __init__(self, name: str, args: EnclaveInferenceFleetArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        validate_fleet_args(args)
        super().__init__("zero-trust-ai:inference:EnclaveInferenceFleet", name, None, opts)
        self._name = name
        self._grants: dict[str, int] = {}
        child = pulumi.ResourceOptions(parent=self)
        partition = partition_for_region(args.region)
        self._partition = partition
        account_id = aws.get_caller_identity_output(opts=pulumi.InvokeOptions(parent=self)).account_id
        # The stack's transformation adds the standard tags (components/tags.py).
        tags = {"data-classification": args.data_classification, "ztai:segment": "inference",
                "ztai:workload": "enclave-inference"}

        # -- model objects -------------------------------------------------------------------
        models: aws.s3.Bucket | None = None
        if args.model_bucket_name is None:
            models = self._model_bucket(name, args, tags)
            bucket_name: pulumi.Output[str] = models.bucket
        else:
            bucket_name = pulumi.Output.from_input(args.model_bucket_name)
        self.model_bucket_name = bucket_name
        # -- access logs ---------------------------------------------------------------------
        # The load balancer's access logs and the model bucket's S3 server access logs (who read
        # which object, beside CloudTrail's data events), in one SSE-S3 bucket (components/buckets.py
        # says why not the CMK).
        self.access_logs = access_log_bucket(
            f"{name}-access-logs", partition=partition, region=args.region, account_id=account_id,
            source_bucket_arns=[models.arn] if models is not None else [], tags=tags,
            protect=args.protect, parent=self)
        if models is not None:
            log_to(f"{name}-models-logging", bucket=models, log_bucket=self.access_logs.bucket,
                   after=self.access_logs.policy)

        # -- inference events ----------------------------------------------------------------
        # The agents send their events themselves (enclave_images/parent/event_sink.py says why
        # not the CloudWatch agent); the group exists before any instance, encrypted and with a
        # retention, and the instance role may write its streams only.
        self.inference_log_group_name = inference_log_group_name(args)
        self.inference_log_group = None
        events_group: str | None = None
        if args.logs_key_arn is not None:
            events_group = self.inference_log_group_name
            self.inference_log_group = aws.cloudwatch.LogGroup(
                f"{name}-inference-events", name=events_group,
                retention_in_days=args.log_retention_days, kms_key_id=args.logs_key_arn,
                deletion_protection_enabled=args.protect, tags=tags,
                opts=pulumi.ResourceOptions(parent=self, protect=args.protect))

        # -- identities ----------------------------------------------------------------------
        # EC2 sends no aws:SourceAccount when it assumes an instance profile's role, so a
        # condition on it would leave the instances without credentials; a role can only be
        # passed to EC2 in its own account (iam:PassRole), which is the confused-deputy guard.
        self.instance_role = aws.iam.Role(
            f"{name}-instance-role",
            description="zero-trust-ai inference parent: read encrypted model objects, SSM agent",
            assume_role_policy=json.dumps({"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
                "Action": "sts:AssumeRole"}]}),
            max_session_duration=3600,
            tags=tags, opts=child)
        aws.iam.RolePolicy(
            f"{name}-instance-policy", role=self.instance_role.id,
            policy=pulumi.Output.all(bucket_name, account_id).apply(
                lambda values: instance_policy(partition, args.region, values[1], values[0],
                                               args.model_prefix, events_log_group=events_group)),
            opts=pulumi.ResourceOptions(parent=self.instance_role))
        profile = aws.iam.InstanceProfile(f"{name}-instance-profile", role=self.instance_role.name,
                                          tags=tags, opts=pulumi.ResourceOptions(parent=self.instance_role))
        self.autoscaling_role = aws.iam.ServiceLinkedRole(
            f"{name}-autoscaling-role", aws_service_name="autoscaling.amazonaws.com",
            custom_suffix=f"ztai-{args.environment}-{name}"[:35],
            description="Launches the zero-trust-ai enclave fleet (uses the volume key via EC2)",
            tags=tags, opts=child)

        # -- network -------------------------------------------------------------------------
        clients: list[pulumi.Input[str]] = list(args.client_cidrs) or (
            [] if args.clients_by_security_group_only else [args.vpc_cidr])
        tls = not args.allow_plaintext_listener
        listener_port = 443 if tls else args.agent_port
        lb_group = aws.ec2.SecurityGroup(
            f"{name}-nlb-sg", vpc_id=args.vpc_id,
            description="Inference load balancer: clients in, agent port out",
            tags={**tags, "Name": f"{name}-nlb"}, opts=child)
        instance_group = aws.ec2.SecurityGroup(
            f"{name}-instance-sg", vpc_id=args.vpc_id,
            description="Inference parents: agent port from the load balancer, HTTPS out",
            tags={**tags, "Name": f"{name}-instance"}, opts=child)
        rules = pulumi.ResourceOptions(parent=lb_group)
        self._lb_group, self._tags = lb_group, tags
        for index, cidr in enumerate(clients):
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-nlb-in-{index}", security_group_id=lb_group.id, ip_protocol="tcp",
                from_port=listener_port, to_port=listener_port, cidr_ipv4=cidr,
                description="clients of the inference API", tags=tags, opts=rules)
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-nlb-out", security_group_id=lb_group.id, ip_protocol="tcp",
            from_port=args.agent_port, to_port=args.agent_port,
            referenced_security_group_id=instance_group.id,
            description="requests and health checks to the agents", tags=tags, opts=rules)
        rules = pulumi.ResourceOptions(parent=instance_group)
        s3_prefix_list = (args.s3_prefix_list_id if args.s3_prefix_list_id is not None
                          else aws.ec2.get_prefix_list_output(
                              name=f"com.amazonaws.{args.region}.s3",
                              opts=pulumi.InvokeOptions(parent=self)).id)
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-instance-in", security_group_id=instance_group.id, ip_protocol="tcp",
            from_port=args.agent_port, to_port=args.agent_port,
            referenced_security_group_id=lb_group.id,
            description="the load balancer only", tags=tags, opts=rules)
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-instance-out-vpc", security_group_id=instance_group.id, ip_protocol="tcp",
            from_port=443, to_port=443, cidr_ipv4=args.vpc_cidr,
            description="interface endpoints (KMS, SSM, STS, logs)", tags=tags, opts=rules)
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-instance-out-s3", security_group_id=instance_group.id, ip_protocol="tcp",
            from_port=443, to_port=443, prefix_list_id=s3_prefix_list,
            description="S3 through the gateway endpoint", tags=tags, opts=rules)

        self.load_balancer = aws.lb.LoadBalancer(
            f"{name}-nlb", internal=True, load_balancer_type="network",
            subnets=list(args.subnet_ids), security_groups=[lb_group.id], ip_address_type="ipv4",
            enable_cross_zone_load_balancing=True, enable_deletion_protection=args.protect,
            enforce_security_group_inbound_rules_on_private_link_traffic="on",
            # ELB writes access logs only for TLS listeners, and only their TLS connections
            # ("Access logs for your Network Load Balancer"): with a plaintext listener (allowed
            # only by name) the bucket stays empty.
            access_logs=aws.lb.LoadBalancerAccessLogsArgs(
                bucket=self.access_logs.bucket.bucket, prefix=ELB_LOG_PREFIX, enabled=True),
            tags=tags, opts=pulumi.ResourceOptions(parent=self, protect=args.protect,
                                                   depends_on=[self.access_logs.policy]))
        # A TLS target group: the load balancer re-encrypts to the agent, which serves TLS with a
        # key it makes at start (the load balancer does not validate target certificates:
        # https://docs.aws.amazon.com/elasticloadbalancing/latest/network/load-balancer-target-groups.html).
        target_group = aws.lb.TargetGroup(
            f"{name}-agents", vpc_id=args.vpc_id, target_type="instance",
            protocol="TLS" if tls else "TCP", port=args.agent_port, deregistration_delay=30,
            health_check=aws.lb.TargetGroupHealthCheckArgs(
                enabled=True, protocol="HTTPS" if tls else "HTTP", path=HEALTH_PATH,
                port="traffic-port",
                matcher="200", interval=10, healthy_threshold=3, unhealthy_threshold=3),
            tags=tags, opts=pulumi.ResourceOptions(parent=self.load_balancer))
        certificate_arn: pulumi.Input[str] | None = None
        if tls:
            certificate_arn = (args.certificate_arn if args.hosted_zone_id is None else
                               dns_validated_certificate(
                                   f"{name}-listener", str(args.certificate_domain_name),
                                   args.hosted_zone_id, tags, self.load_balancer))
        # The API gateway's VPC link integrates with this listener, and verifies this name on it.
        self.tls_server_name: str | None = args.certificate_domain_name if tls else None
        self.listener_port = listener_port
        self.listener = aws.lb.Listener(
            f"{name}-listener", load_balancer_arn=self.load_balancer.arn, port=listener_port,
            protocol="TLS" if tls else "TCP", certificate_arn=certificate_arn,
            ssl_policy=TLS_POLICY if tls else None,
            default_actions=[aws.lb.ListenerDefaultActionArgs(
                type="forward", target_group_arn=target_group.arn)],
            tags=tags, opts=pulumi.ResourceOptions(parent=self.load_balancer))

        # -- image ---------------------------------------------------------------------------
        # One writer for the image: Pulumi creates the parameter with today's Amazon Linux 2023
        # AMI and then ignores its value; the AMI pipeline's distribution overwrites it with each
        # new AMI. The template names the parameter, never an AMI, so Pulumi's template does not
        # change when an image is built and Image Builder never writes a template version.
        settings = args.settings
        self.artifact_prefix = args.artifact_prefix
        self.model_prefix = args.model_prefix
        architecture = enclave_parent_type(settings.instance_type).architecture
        first_image = aws.ssm.get_parameter_output(
            name=PARENT_IMAGE_PARAMETERS[architecture], opts=pulumi.InvokeOptions(parent=self))
        self.image_parameter = aws.ssm.Parameter(
            f"{name}-image-parameter", name=image_parameter_name(args), type="String",
            data_type="aws:ec2:image", insecure_value=first_image.insecure_value,
            description="zero-trust-ai enclave parent AMI: resolved by the launch template at each "
                        "launch, written by the AMI pipeline",
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["insecure_value"]))

        # -- instances -----------------------------------------------------------------------
        self.launch_template = aws.ec2.LaunchTemplate(
            f"{name}-launch-template",
            description="zero-trust-ai enclave parent",
            image_id=self.image_parameter.name.apply(lambda parameter: f"resolve:ssm:{parameter}"),
            instance_type=settings.instance_type,
            enclave_options=aws.ec2.LaunchTemplateEnclaveOptionsArgs(enabled=True),
            metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(
                http_endpoint="enabled", http_tokens="required", http_put_response_hop_limit=1,
                http_protocol_ipv6="disabled", instance_metadata_tags="disabled"),
            iam_instance_profile=aws.ec2.LaunchTemplateIamInstanceProfileArgs(arn=profile.arn),
            network_interfaces=[aws.ec2.LaunchTemplateNetworkInterfaceArgs(
                device_index=0, associate_public_ip_address="false",
                delete_on_termination="true", security_groups=[instance_group.id])],
            block_device_mappings=[aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
                device_name=args.root_device_name,
                ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
                    encrypted="true", kms_key_id=args.storage_key_arn, volume_type="gp3",
                    volume_size=args.root_volume_size_gib, delete_on_termination="true"))],
            user_data=pulumi.Output.all(bucket_name, args.model_key_arn).apply(
                lambda values: base64.b64encode(
                    user_data(args, values[0], values[1], events_group).encode()).decode()),
            update_default_version=True,
            # What EC2 creates from the template is no resource of the stack: no transformation
            # reaches it, so the standard tags are named here.
            tag_specifications=[aws.ec2.LaunchTemplateTagSpecificationArgs(
                resource_type=kind, tags={**standard_tags(args.environment, args.owner), **tags,
                                          "Name": f"{name}-parent"})
                for kind in ("instance", "volume", "network-interface")],
            tags=tags, opts=child)
        # The parameter's first value is stock AL2023: no instance may boot it. Either the group
        # waits for the image built at deploy (launch_after), or it starts empty.
        self._image_gate: asyncio.Future[list[pulumi.Resource]] | None = None
        group_opts = child
        if args.image_built_at_deploy:
            self._image_gate = asyncio.get_event_loop().create_future()
            group_opts = pulumi.ResourceOptions(
                parent=self, depends_on=pulumi.Output.from_input(self._image_gate))
            min_size, desired_capacity = settings.min_size, settings.desired_capacity
        else:
            min_size = desired_capacity = 0
            pulumi.log.warn(
                f"{name}: the enclave artifacts are not pinned ({', '.join(ARTIFACT_STACK_KEYS)} "
                "in the stack configuration), so no hardened image is built at deploy and the "
                "image parameter holds stock Amazon Linux 2023 (no nitro-cli, EIF or agent): the "
                f"Auto Scaling group is created with min = desired = 0 (max {settings.max_size}). "
                "Pin the four keys and deploy again to build the image and start the instances.",
                resource=self)
        self.group = aws.autoscaling.Group(
            f"{name}-asg",
            min_size=min_size, max_size=settings.max_size,
            desired_capacity=desired_capacity,
            vpc_zone_identifiers=list(args.subnet_ids),
            launch_template=aws.autoscaling.GroupLaunchTemplateArgs(
                id=self.launch_template.id,
                version=self.launch_template.latest_version.apply(str)),
            service_linked_role_arn=self.autoscaling_role.arn,
            target_group_arns=[target_group.arn],
            health_check_type="ELB",
            # Boot, allocator, enclave start and the weights' download and decryption.
            health_check_grace_period=300,
            default_instance_warmup=300,
            # No auto rollback: Auto Scaling supports none for a template whose image is an SSM
            # parameter. Keeping 100 % healthy means a bad image fails the refresh while the old
            # instances still serve.
            instance_refresh=aws.autoscaling.GroupInstanceRefreshArgs(
                strategy="Rolling",
                preferences=aws.autoscaling.GroupInstanceRefreshPreferencesArgs(
                    min_healthy_percentage=MIN_HEALTHY_PERCENTAGE,
                    max_healthy_percentage=MAX_HEALTHY_PERCENTAGE,
                    instance_warmup=str(INSTANCE_WARMUP_SECONDS), auto_rollback=False)),
            tags=[aws.autoscaling.GroupTagArgs(key=key, value=value, propagate_at_launch=False)
                  for key, value in tags.items()],
            opts=group_opts)

        self.register_outputs({
            "launchTemplateId": self.launch_template.id,
            "launchTemplateLatestVersion": self.launch_template.latest_version,
            "autoScalingGroupName": self.group.name,
            "loadBalancerArn": self.load_balancer.arn,
            "loadBalancerDnsName": self.load_balancer.dns_name,
            "instanceRoleArn": self.instance_role.arn,
            "modelBucket": bucket_name,
            "imageParameter": self.image_parameter.name,
            "inferenceLogGroup": events_group,
        })

    def admit_clients_from(self, security_group_id: pulumi.Input[str], label: str) -> None:
        """Let members of one security group (the API gateway's VPC link) reach the listener:
        with `clients_by_security_group_only`, the only way in."""
        aws.vpc.SecurityGroupIngressRule(
            f"{self._name}-nlb-in-{label}", security_group_id=self._lb_group.id, ip_protocol="tcp",
            from_port=self.listener_port, to_port=self.listener_port,
            referenced_security_group_id=security_group_id, description=f"clients: {label}",
            tags=self._tags, opts=pulumi.ResourceOptions(parent=self._lb_group))

    def launch_after(self, image: pulumi.Resource) -> None:
        """Let the group launch only once `image` (the AMI pipeline's deploy-time build, which
        writes the image parameter) exists. Only with `image_built_at_deploy`, exactly once."""
        if self._image_gate is None:
            raise ValueError("launch_after: the fleet was declared without image_built_at_deploy; "
                             "its group is empty and waits for nothing")
        if self._image_gate.done():
            raise ValueError("launch_after: the group already waits for an image")
        self._image_gate.set_result([image])

    # -- grants: the fleet owns the image parameter and the bucket, so it writes these ---------------
    def grant_image_publishing(self, role: aws.iam.Role) -> aws.iam.RolePolicy:
        """Let `role` (the AMI pipeline's execution role) overwrite the image parameter with a new
        AMI id: ssm:PutParameter on that parameter only. Each new value reaches the instances
        that launch after it."""
        return self._grant(role, "publish-image", self.image_parameter.arn.apply(lambda arn: policy_document([
                {"Sid": "PublishTheFleetsImage", "Effect": "Allow", "Action": "ssm:PutParameter",
                 "Resource": arn}])))

    def grant_artifact_read(self, role: aws.iam.Role) -> aws.iam.RolePolicy:
        """Let `role` (the AMI pipeline's build instances) read the objects under artifact_prefix
        of the model bucket: s3:GetObject there only. Their SSE-KMS layer also needs
        `keys.grant_decrypt_through_service(<storage purpose>, role, "s3")`."""
        partition = self._partition
        prefix = self.artifact_prefix
        return self._grant(role, "read-artifacts", self.model_bucket_name.apply(
            lambda bucket: policy_document([
                {"Sid": "ReadEnclaveArtifacts", "Effect": "Allow", "Action": "s3:GetObject",
                 "Resource": f"arn:{partition}:s3:::{bucket}/{prefix}*"}])))

    def grant_model_publishing(self, role: aws.iam.Role) -> aws.iam.RolePolicy:
        """Let `role` (the model publisher) upload encrypted weights under model_prefix of the model
        bucket: s3:PutObject there only, no read, no delete (the bucket is versioned, so an upload
        never destroys the version the fleet serves). Its SSE-KMS layer also needs
        `keys.grant_use_through_service(<storage purpose>, role, "s3")`; the weights themselves are
        encrypted before upload with data keys from the model-weights key."""
        partition = self._partition
        prefix = self.model_prefix
        return self._grant(role, "publish-models", self.model_bucket_name.apply(
            lambda bucket: policy_document([
                {"Sid": "UploadEncryptedModels", "Effect": "Allow", "Action": "s3:PutObject",
                 "Resource": f"arn:{partition}:s3:::{bucket}/{prefix}*"}])))

    def grant_prefix_write(self, role: aws.iam.Role, prefix: str, *,
                           managed_policy_name: str | None = None) -> pulumi.CustomResource:
        """Let `role` (a just-in-time elevation) write objects under `prefix` of the model bucket:
        s3:PutObject there only, never under the model or artifact prefixes. Their SSE-KMS layer
        also needs `keys.grant_use_through_service(<storage purpose>, role, "s3")`. With
        `managed_policy_name`, as that managed policy (components/role_policies.py): an
        elevation's inline policies are the JIT's."""
        if not prefix.endswith("/") or prefix.startswith((self.artifact_prefix, "models/")):
            raise ValueError(f"prefix {prefix!r}: a prefix ending in / outside models/ and "
                             f"{self.artifact_prefix}")
        partition = self._partition
        return role_policies.grant(self._grant_name("write-prefix"), role, self.model_bucket_name.apply(
            lambda bucket: policy_document([
                {"Sid": "WriteOnePrefix", "Effect": "Allow", "Action": "s3:PutObject",
                 "Resource": f"arn:{partition}:s3:::{bucket}/{prefix}*"}])),
            managed_policy_name=managed_policy_name, parent=self)

    def _grant_name(self, what: str) -> str:
        # <fleet>-<what> for the first role granted, <fleet>-<what>-2 ... for more.
        self._grants[what] = self._grants.get(what, 0) + 1
        suffix = f"-{self._grants[what]}" if self._grants[what] > 1 else ""
        return f"{self._name}-{what}{suffix}"

    def _grant(self, role: aws.iam.Role, what: str, policy: pulumi.Output[str]) -> aws.iam.RolePolicy:
        return aws.iam.RolePolicy(self._grant_name(what), role=role.id, policy=policy,
                                  opts=pulumi.ResourceOptions(parent=self))

    def _model_bucket(self, name: str, args: EnclaveInferenceFleetArgs,
                      tags: Mapping[str, str]) -> aws.s3.Bucket:
        return private_bucket(f"{name}-models", key_arn=args.storage_key_arn, tags=tags,
                              protect=args.protect, parent=self).bucket


def instance_policy(partition: str, region: str, account_id: str, bucket: str, prefix: str, *,
                    events_log_group: str | None = None) -> str:
    """The parent's IAM policy: the model objects, the SSM agent, the inference events' log
    group's streams, nothing else. KMS is not in it: the model-weights key policy names the role,
    with attestation conditions, and CloudWatch Logs encrypts the events with the logs key itself.
    The events: CreateLogStream (on the group) and PutLogEvents (on its streams) only; no read,
    no delete, no retention or policy change, no other group."""
    events: list[dict[str, object]] = []
    if events_log_group is not None:
        group = f"arn:{partition}:logs:{region}:{account_id}:log-group:{events_log_group}"
        events.append({"Sid": "WriteInferenceEvents", "Effect": "Allow",
                       "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                       "Resource": [group, f"{group}:log-stream:*"]})
    return policy_document([
        {"Sid": "ReadEncryptedModelObjects", "Effect": "Allow", "Action": "s3:GetObject",
         "Resource": f"arn:{partition}:s3:::{bucket}/{prefix}*"},
        {"Sid": "RegisterWithSsm", "Effect": "Allow", "Action": "ssm:UpdateInstanceInformation",
         "Resource": f"arn:{partition}:ec2:{region}:{account_id}:instance/*"},
        {"Sid": "SsmSessionsAndCommands", "Effect": "Allow", "Action": list(SSM_AGENT_ACTIONS),
         "Resource": "*"},
        *events,
    ])
