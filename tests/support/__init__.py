"""Test support shared by several test modules (and the end-to-end test): stand-ins for what
cannot run here (the NSM, KMS with attestation), built to behave like the real services."""
