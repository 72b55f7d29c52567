"""Facts about AWS that decide what the stack configuration may ask for.

Plain data, no pulumi import, so the stack-config parser and the offline preview's mocks read the
same table. Extend it when you deploy to a region that is not listed: the parser refuses regions
it does not know rather than guessing how many Availability Zones they have.
"""

from __future__ import annotations

# Availability Zones an account can use in each commercial region (AWS Regions and Zones page,
# checked 2026-11). Where AWS has more zones than new accounts may use (us-west-1, ap-northeast-1),
# the usable number is given, because that is what `get_availability_zones` returns.
REGION_AZ_COUNT: dict[str, int] = {
    "us-east-1": 6,
    "us-east-2": 3,
    "us-west-1": 2,
    "us-west-2": 4,
    "ca-central-1": 3,
    "ca-west-1": 3,
    "sa-east-1": 3,
    "eu-west-1": 3,
    "eu-west-2": 3,
    "eu-west-3": 3,
    "eu-central-1": 3,
    "eu-central-2": 3,
    "eu-north-1": 3,
    "eu-south-1": 3,
    "eu-south-2": 3,
    "ap-south-1": 3,
    "ap-south-2": 3,
    "ap-northeast-1": 3,
    "ap-northeast-2": 4,
    "ap-northeast-3": 3,
    "ap-southeast-1": 3,
    "ap-southeast-2": 3,
    "ap-southeast-3": 3,
    "ap-southeast-4": 3,
    "ap-east-1": 3,
    "me-south-1": 3,
    "me-central-1": 3,
    "il-central-1": 3,
    "af-south-1": 3,
    "us-gov-west-1": 3,
    "us-gov-east-1": 3,
}

# CloudWatch Logs accepts only these retention periods (PutRetentionPolicy API reference).
LOG_RETENTION_DAYS: tuple[int, ...] = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731,
    1096, 1827, 2192, 2557, 2922, 3288, 3653,
)


def partition_for_region(region: str) -> str:
    """The ARN partition of a region: `aws`, `aws-cn` or `aws-us-gov`."""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def availability_zone_names(region: str) -> list[str]:
    """The zone names `get_availability_zones` returns for a region in the table above."""
    return [f"{region}{letter}" for letter in "abcdef"[: REGION_AZ_COUNT[region]]]
