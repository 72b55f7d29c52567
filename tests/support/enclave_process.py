"""The enclave application in a process of its own, for the end-to-end tests.

Everything an enclave would hold is made inside the child: its attestation source (a test PKI
signing documents with the PCRs the "EIF" would produce) and KMS, reached as a real HTTP client of
moto's server and wrapped by the KMS stand-in that evaluates the key policy the component
rendered. The parent side (the test process) only sees the Unix socket, as a parent sees vsock.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any


def run_enclave(socket_path: str, kms_endpoint: str, key_policies: dict[str, str], role_arn: str,
                pcr_hex: Sequence[str], forgery: str | None, config: dict[str, Any],
                trust: dict[str, Any]) -> None:
    """`trust`: the enclave's trust configuration (enclave/auth.py), as the image would bake it."""
    import boto3

    from enclave_images.enclave.app import EnclaveApp, EnclaveConfig
    from enclave_images.enclave.auth import RequestVerifier, TrustConfig
    from enclave_images.protocol import Address
    from tests.support.attestation import TestAttestationSource, TestPki, measurements
    from tests.support.kms_standin import KmsStandIn
    from ztai_runtime.attestation.recipient import AttestedKmsUnwrapper

    os.environ.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"})
    pki = TestPki.create()
    pcrs = measurements(overrides={index: bytes.fromhex(value) for index, value in enumerate(pcr_hex)})
    source = TestAttestationSource(pki, pcrs, forgery=forgery)  # type: ignore[arg-type]

    def unwrapper(enclave_config: EnclaveConfig, credentials: dict[str, str]) -> Any:
        # Region and keys are the image's own; credentials come from the parent, as in production.
        kms = boto3.client("kms", region_name=enclave_config.region, endpoint_url=kms_endpoint,
                           aws_access_key_id=credentials.get("access_key_id"),
                           aws_secret_access_key=credentials.get("secret_access_key"))
        # As KMS: the key policy, not the stand-in, refuses a debug-mode enclave.
        standin = KmsStandIn(kms, key_policies, pki.root_der, role_arn, refuse_debug_documents=False)
        return AttestedKmsUnwrapper(standin, source, key_arns=list(enclave_config.key_arns))

    app = EnclaveApp(EnclaveConfig(region=config["region"], key_arns=tuple(config["key_arns"]),
                                   context=dict(config["context"])), unwrapper,
                     RequestVerifier(TrustConfig.from_dict(trust)))
    app.serve(Address.parse(f"unix:{socket_path}").listen())
