"""Rules on VPC and EC2 networking: subnets, addresses, security groups, flow logs, endpoints, egress."""
