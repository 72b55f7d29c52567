"""Runtime code that AWS runs (Lambda functions) and the enclave imports.

It depends on boto3 and `cryptography` (and, for the attestation document, `cbor2` and
`asn1crypto`): never on pulumi, the policy pack or the `ztai` CLI, so it ships as a Lambda asset or
into an enclave image as it is. Functions take their AWS clients as
arguments and log one JSON line per decision (`ztai_runtime.jsonlog`).
"""
