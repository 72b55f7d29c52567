"""Benchmark: weights decryption against raw AES-256-GCM and the official AWS Encryption SDK.

Run with `./run bench weights` (or `python -m benchmarks.weights_throughput --size-mib 1024`).
Everything is measured in this run on the same data, each variant in a fresh child process so
its peak RSS is its own (reported above the child's RSS right before the work starts):

- raw:        `AESGCM.decrypt` of the message's frames in memory, one thread, no format and no I/O
              (the pure cost of the cipher, the baseline of the ratios);
- stream:     our `decrypt_stream` from the encrypted file to a sink that discards (format, read I/O,
              verification; the enclave's use, where plaintext stays in memory);
- file:       our `decrypt_file` to a file on disk, fsync and rename included (the CLI's use);
- copy:       the same file read and written to disk with fsync, no cryptography (the I/O floor of
              `file`);
- sdk:        the official `aws-encryption-sdk` streaming decryptor on the same file;
- encrypt:    our `encrypt_file`, for reference.

KMS is moto's in-process stand-in: one call per message, negligible next to the data. Reported as
throughput in MiB/s and ratios; nothing here asserts a time. Median of `--repeat` runs.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024
CONTEXT = {"model": "benchmark", "version": "1"}
AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "eu-west-1"}


class _DiscardingSink(io.RawIOBase):
    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        return len(data)


def _rss() -> int:
    import psutil
    rss: int = psutil.Process().memory_info().rss
    return rss


def _peak_rss() -> int:
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def _child(variant: str, plaintext: Path, sealed: Path, frame_length: int) -> dict[str, float]:
    """Runs in a fresh process: set up (KMS stand-in, key, imports), then time one variant."""
    os.environ.update(AWS_ENV)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    import boto3
    from moto import mock_aws

    from ztai_runtime.weights import (
        KmsDataKeySource,
        KmsUnwrapper,
        decrypt_file,
        decrypt_stream,
        encrypt_file,
    )

    with mock_aws():
        kms = boto3.client("kms", region_name="eu-west-1")
        arn = kms.create_key()["KeyMetadata"]["Arn"]
        # Each child has its own moto: the message is (re-)encrypted here, outside the timing, from
        # the same plaintext file, so every variant decrypts the same bytes under its own key.
        encrypt_file(plaintext, sealed, KmsDataKeySource(kms, arn), CONTEXT, frame_length=frame_length,
                     overwrite=True)
        unwrapper = KmsUnwrapper(kms, key_arns=[arn])
        if variant == "raw":
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM

            from ztai_runtime.weights import format as fmt
            with open(sealed, "rb") as sealed_file:
                header, _ = fmt.read_header(sealed_file)
                data_key = unwrapper.unwrap(header.encrypted_data_keys, header.encryption_context)
                body = sealed_file.read()
            key, _ = fmt.derive_keys(data_key, header.message_id)
            # The frames' (IV, ciphertext+tag, AAD), sliced out beforehand: the raw cipher only.
            frames: list[tuple[bytes, bytes, bytes]] = []
            offset = 0
            while offset < len(body):
                final = body[offset:offset + 4] == b"\xff\xff\xff\xff"
                if final:  # marker, seq, IV, length
                    iv, length, head = body[offset + 8:offset + 20], int.from_bytes(
                        body[offset + 20:offset + 24]), 24
                else:  # seq, IV
                    iv, length, head = body[offset + 4:offset + 16], frame_length, 16
                begin = offset + head
                frames.append((iv, body[begin:begin + length + 16],
                               fmt.body_aad(header.message_id, final, len(frames) + 1, length)))
                offset = begin + length + 16
            del body
            aead = AESGCM(key)
            baseline = _rss()
            start = time.perf_counter()
            for iv, ciphertext, aad in frames:
                aead.decrypt(iv, ciphertext, aad)
            elapsed = time.perf_counter() - start
        elif variant == "sdk":
            import aws_encryption_sdk
            from aws_encryption_sdk.identifiers import CommitmentPolicy
            client = aws_encryption_sdk.EncryptionSDKClient(
                commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT)
            provider = aws_encryption_sdk.StrictAwsKmsMasterKeyProvider(key_ids=[arn])
            baseline = _rss()
            start = time.perf_counter()
            with open(sealed, "rb") as sdk_source, client.stream(mode="d", source=sdk_source,
                                                                 key_provider=provider) as decryptor:
                for _chunk in decryptor:
                    pass
            elapsed = time.perf_counter() - start
        else:
            baseline = _rss()
            start = time.perf_counter()
            if variant == "stream":
                with open(sealed, "rb", buffering=0) as source:
                    decrypt_stream(source, _DiscardingSink(), unwrapper)  # type: ignore[arg-type]
            elif variant == "file":
                decrypt_file(sealed, sealed.with_suffix(".out"), unwrapper, overwrite=True)
            elif variant == "copy":
                copy = sealed.with_suffix(".copy")
                with open(sealed, "rb", buffering=0) as source, open(copy, "wb", buffering=0) as sink:
                    buffer = memoryview(bytearray(frame_length))
                    while count := source.readinto(buffer):
                        sink.write(buffer[:count])
                    os.fsync(sink.fileno())
            elif variant == "encrypt":
                encrypt_file(plaintext, sealed.with_suffix(".enc2"), KmsDataKeySource(kms, arn), CONTEXT,
                             frame_length=frame_length, overwrite=True)
            else:
                raise SystemExit(f"unknown variant {variant}")
            elapsed = time.perf_counter() - start
    return {"seconds": elapsed, "peak_above_baseline_mib": max(0, _peak_rss() - baseline) / MIB}


VARIANTS = ("raw", "stream", "file", "copy", "sdk", "encrypt")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="plaintext size (default 1 GiB)")
    parser.add_argument("--frame-mib", type=float, default=2, help="frame length in MiB (default 2)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per variant (median)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--child", nargs=4, metavar=("VARIANT", "PLAIN", "SEALED", "FRAME"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        variant, plain, sealed, frame = args.child
        print(json.dumps(_child(variant, Path(plain), Path(sealed), int(frame))))
        return

    frame_length = int(args.frame_mib * MIB)
    size = args.size_mib * MIB
    with tempfile.TemporaryDirectory(prefix="ztai-bench-", dir=os.environ.get("BENCH_DIR")) as temp:
        plain = Path(temp) / "weights.bin"
        with open(plain, "wb") as out:
            block = os.urandom(16 * MIB)
            for offset in range(0, size, len(block)):
                out.write(block[:min(len(block), size - offset)])
        sealed = Path(temp) / "weights.enc"
        samples: dict[str, list[dict[str, float]]] = {variant: [] for variant in args.variants}
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        for _ in range(args.repeat):  # interleaved, so drift hits every variant alike
            for variant in args.variants:
                output = subprocess.run(
                    [sys.executable, "-m", "benchmarks.weights_throughput", "--child", variant, str(plain),
                     str(sealed), str(frame_length)], env=env, cwd=ROOT, capture_output=True, text=True,
                    check=True).stdout
                samples[variant].append(json.loads(output))

    seconds = {v: statistics.median(s["seconds"] for s in runs) for v, runs in samples.items()}
    peaks = {v: max(s["peak_above_baseline_mib"] for s in runs) for v, runs in samples.items()}
    rates = {v: size / MIB / t for v, t in seconds.items()}
    print(f"weights decryption, {args.size_mib} MiB, frames of {args.frame_mib:g} MiB, "
          f"median of {args.repeat}, {os.cpu_count()} cores")
    for variant in args.variants:
        # The raw baseline holds the whole message in memory by design: its RSS says nothing.
        peak = "     n/a" if variant == "raw" else f"{peaks[variant]:6.1f} MiB"
        line = f"  {variant:8s} {rates[variant]:9.1f} MiB/s   peak RSS +{peak}"
        if "raw" in rates and variant != "raw":
            line += f"   {rates[variant] / rates['raw']:5.2f} x raw AES-GCM"
        if variant == "file" and "copy" in rates:
            line += f"   {rates['file'] / rates['copy']:5.2f} x plain copy"
        if "sdk" in rates and variant not in ("sdk", "raw", "copy"):
            line += f"   {rates[variant] / rates['sdk']:6.1f} x official SDK"
        print(line)


if __name__ == "__main__":
    main()
