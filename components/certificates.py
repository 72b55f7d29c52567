"""A public ACM certificate validated by DNS in a Route 53 zone, for the components that need one
(the API's custom domain; the inference load balancer's TLS listener)."""

from __future__ import annotations

from collections.abc import Mapping

import pulumi
import pulumi_aws as aws


def dns_validated_certificate(name: str, domain_name: str, hosted_zone_id: str,
                              tags: Mapping[str, str], parent: pulumi.Resource) -> pulumi.Output[str]:
    """A public ACM certificate for `domain_name`, DNS-validated in `hosted_zone_id`: the ARN once
    ACM has issued it (nothing can use a pending certificate). Resources `<name>-certificate`,
    `<name>-certificate-validation` and `<name>-certificate-issued`."""
    certificate = aws.acm.Certificate(
        f"{name}-certificate", domain_name=domain_name, validation_method="DNS",
        # RSA 2048: the key type every API Gateway endpoint type, load balancer and client accepts.
        key_algorithm="RSA_2048",
        options=aws.acm.CertificateOptionsArgs(certificate_transparency_logging_preference="ENABLED"),
        tags=dict(tags), opts=pulumi.ResourceOptions(parent=parent))
    option = certificate.domain_validation_options.apply(lambda options: options[0])
    record = aws.route53.Record(
        f"{name}-certificate-validation", zone_id=hosted_zone_id,
        name=option.resource_record_name, type=option.resource_record_type,
        records=[option.resource_record_value], ttl=300,
        opts=pulumi.ResourceOptions(parent=certificate))
    validation = aws.acm.CertificateValidation(
        f"{name}-certificate-issued", certificate_arn=certificate.arn,
        validation_record_fqdns=[record.fqdn], opts=pulumi.ResourceOptions(parent=certificate))
    return validation.certificate_arn
