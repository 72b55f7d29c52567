"""Benchmark: the enclave's cold start, and decrypt+load throughput against reading plaintext.

Run with `./run bench enclave` (or `python -m benchmarks.enclave_cold_start`). Everything runs
locally, as in tests/enclave_images/test_end_to_end.py: KMS is moto's server behind the KMS
stand-in (attestation verified, key policy evaluated, CMS built), the enclave application is a
process of its own on a Unix socket in place of vsock. Nothing here asserts a time.

- cold start: from starting the enclave process to the first prediction: interpreter start and
  imports, the attested KMS Decrypt, decrypting and parsing the weights, one prediction.
- throughput: a large synthetic model of the same format (`--size-mib`), decrypted from its
  encrypted file and loaded into arrays (as the enclave does, attested unwrap included), against
  reading the plaintext file and loading it; median of `--repeat`, reported as a ratio.
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REGION = "eu-west-1"
CONTEXT = {"model": "digits", "version": "1"}
CREDENTIALS = {"access_key_id": "testing", "secret_access_key": "testing", "session_token": ""}


def synthetic_model(size_mib: int) -> bytes:
    """A model file of about `size_mib` MiB in the enclave's format (random weights)."""
    hidden = max(16, size_mib * 1024 * 1024 // (8 * (64 + 1 + 10)))
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    np.savez(buffer, w1=rng.standard_normal((64, hidden)), b1=rng.standard_normal(hidden),
             w2=rng.standard_normal((hidden, 10)), b2=rng.standard_normal(10), format_version=np.array(1))
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=256, help="synthetic model size for throughput")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import boto3
    from moto.server import ThreadedMotoServer

    from enclave_images.enclave.app import _Memory
    from enclave_images.enclave.model import DigitsModel
    from enclave_images.model.train import train
    from enclave_images.parent.agent import EnclaveClient
    from enclave_images.protocol import Address
    from tests.enclave_images.test_end_to_end import PINNED, free_port, rendered_policy
    from tests.support.attestation import TestAttestationSource, TestPki
    from tests.support.enclave_process import run_enclave
    from tests.support.kms_standin import KmsStandIn
    from tests.support.token_issuer import StandInIssuer
    from ztai_runtime.attestation.recipient import AttestedKmsUnwrapper
    from ztai_runtime.weights import KmsDataKeySource, encrypt_stream
    from ztai_runtime.weights.stream import decrypt_stream

    os.environ.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"})
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    kms = boto3.client("kms", region_name=REGION, endpoint_url=endpoint)
    key_arn = kms.create_key()["KeyMetadata"]["Arn"]
    policy, role_arn = rendered_policy()
    model, _, (inputs, _) = train()
    issuer = StandInIssuer()  # the enclave verifies a token on every prediction
    with tempfile.TemporaryDirectory(prefix="ztai-enclave-bench-") as temp:
        directory = Path(temp)

        def seal(data: bytes, name: str) -> Path:
            path = directory / name
            with open(path, "wb") as sink:
                encrypt_stream(io.BytesIO(data), sink, KmsDataKeySource(kms, key_arn), CONTEXT)
            return path

        small = seal(model, "digits.enc")
        cold: list[dict[str, float]] = []
        for attempt in range(args.repeat):
            socket_path = directory / f"enclave-{attempt}.sock"
            start = time.perf_counter()
            process = multiprocessing.get_context("spawn").Process(
                target=run_enclave, daemon=True,
                args=(str(socket_path), endpoint, {key_arn: policy}, role_arn,
                      [PINNED[index].hex() for index in range(16)], None,
                      {"region": REGION, "key_arns": [key_arn], "context": {"model": "digits"}},
                      issuer.trust()))
            process.start()
            while not socket_path.exists():
                time.sleep(0.005)
            listening = time.perf_counter()
            client = EnclaveClient(Address.parse(f"unix:{socket_path}"))
            client.load(small, key_arns=[key_arn], context=CONTEXT, credentials=CREDENTIALS)
            loaded = time.perf_counter()
            client.predict(inputs[:1].tolist(), issuer.headers())
            done = time.perf_counter()
            process.terminate()
            process.join(10)
            cold.append({"start": listening - start, "load": loaded - listening, "predict": done - loaded,
                         "total": done - start})

        large = synthetic_model(args.size_mib)
        plain = directory / "large.npz"
        plain.write_bytes(large)
        sealed = seal(large, "large.enc")
        size_mib = len(large) / (1024 * 1024)
        pki = TestPki.create()
        standin = KmsStandIn(kms, {key_arn: policy}, pki.root_der, role_arn)
        source = TestAttestationSource(pki, PINNED)
        baseline, ours = [], []
        for _ in range(args.repeat):
            begin = time.perf_counter()
            DigitsModel.from_bytes(plain.read_bytes())
            baseline.append(time.perf_counter() - begin)
            begin = time.perf_counter()
            memory = _Memory(sealed.stat().st_size)
            with open(sealed, "rb", buffering=0) as encrypted:
                decrypt_stream(encrypted, memory,  # type: ignore[arg-type]
                               AttestedKmsUnwrapper(standin, source, key_arns=[key_arn]),
                               expected_context=CONTEXT)
            DigitsModel.from_bytes(memory.view)
            memory.wipe()
            ours.append(time.perf_counter() - begin)
    server.stop()

    def median(key: str) -> float:
        return statistics.median(sample[key] for sample in cold)

    result: dict[str, Any] = {
        "cold_start_s": {key: round(median(key), 3) for key in ("start", "load", "predict", "total")},
        "model_bytes": len(model), "large_model_mib": round(size_mib, 1),
        "plaintext_read_load_mib_s": round(size_mib / statistics.median(baseline), 1),
        "decrypt_load_mib_s": round(size_mib / statistics.median(ours), 1),
    }
    result["ratio"] = round(result["decrypt_load_mib_s"] / result["plaintext_read_load_mib_s"], 2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
