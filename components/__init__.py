"""Reusable Pulumi components of zero-trust-ai (infrastructure as code only)."""
