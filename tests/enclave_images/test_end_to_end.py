"""End to end: weights encrypted with the key-hierarchy library (KMS: moto's server) →
the parent agent fetches them from S3 and streams them to the enclave application, a separate
process on a Unix socket standing in for vsock → attested KMS Decrypt with Recipient through the
stand-in, under the key policy that `KeyHierarchy` renders for the pinned measurements → a
prediction from the model. Each negative case ends in refusal, no model and no plaintext."""

from __future__ import annotations

import io
import json
import multiprocessing
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pulumi_aws as aws
import pytest
from moto.server import ThreadedMotoServer

from components.keys import EnclaveMeasurements, KeyHierarchy, KeyHierarchyArgs
from enclave_images.parent.agent import EnclaveClient, EnclaveError, fetch_weights
from enclave_images.protocol import Address
from tests.components.test_keys import build, named, statements
from tests.enclave_images.conftest import TrainedModel
from tests.support.attestation import ZERO_PCR, measurement, measurements
from tests.support.enclave_process import run_enclave
from tests.support.kms_standin import KmsStandIn
from tests.support.token_issuer import StandInIssuer
from ztai_runtime.weights import KmsDataKeySource, KmsUnwrapper, UnwrapError, encrypt_stream

REGION = "eu-west-1"
CONTEXT = {"model": "digits", "version": "1"}
PINNED = measurements()  # what the stack pins (the EIF's PCR0/1/2)
CREDENTIALS = {"access_key_id": "testing", "secret_access_key": "testing", "session_token": ""}
ISSUER = StandInIssuer()


@dataclass(frozen=True)
class World:
    endpoint: str
    key_arn: str
    weights: Path  # encrypted, fetched from S3 by the parent agent
    policy: str  # the key policy KeyHierarchy rendered
    role_arn: str  # the inference instance role the policy names


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def rendered_policy() -> tuple[str, str]:
    def compose(keys: KeyHierarchy) -> None:
        role = aws.iam.Role("inference-instance", assume_role_policy=json.dumps(
            {"Version": "2012-10-17", "Statement": []}))
        keys.grant_decrypt_with_attestation("model-weights", role, EnclaveMeasurements(
            pcr0=PINNED[0].hex(), pcr1=PINNED[1].hex(), pcr2=PINNED[2].hex()))
        # As __main__.py composes it: the model key's policy changes only in a key-admin elevation.
        keys.grant_key_administration("model-weights", aws.iam.Role(
            "key-admin-elevation", assume_role_policy=json.dumps({"Version": "2012-10-17", "Statement": []})),
            policy_writer="arn:aws:iam::111122223333:role/zero-trust-ai-dev-jit-api-role")
        keys.seal()

    stack = build(KeyHierarchyArgs(environment="prod", owner="ml", region=REGION,
                                   administrator_role_arns=("arn:aws:iam::111122223333:role/kms-admin",)),
                  compose)
    resource = named(stack, "keys-model-weights-policy")
    [role_arn] = {s["Principal"]["AWS"] for sid, s in statements(resource).items()
                  if sid.startswith("DecryptWithAttestation")}
    return resource.inputs["policy"], role_arn


@pytest.fixture(scope="module")
def world(trained_model: TrainedModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        clients = {name: boto3.client(name, region_name=REGION, endpoint_url=endpoint,
                                      aws_access_key_id="testing", aws_secret_access_key="testing")
                   for name in ("kms", "s3")}
        key_arn = clients["kms"].create_key(Description="model weights")["KeyMetadata"]["Arn"]
        sealed = io.BytesIO()
        encrypt_stream(io.BytesIO(trained_model.data), sealed, KmsDataKeySource(clients["kms"], key_arn),
                       CONTEXT, frame_length=64 * 1024)
        clients["s3"].create_bucket(Bucket="models", CreateBucketConfiguration={"LocationConstraint": REGION})
        clients["s3"].put_object(Bucket="models", Key="digits/1.enc", Body=sealed.getvalue())
        directory = tmp_path_factory.mktemp("parent")
        weights = fetch_weights(clients["s3"], "models", "digits/1.enc", directory)
        policy, role_arn = rendered_policy()
        yield World(endpoint, key_arn, weights, policy, role_arn)
    finally:
        server.stop()


@pytest.fixture
def start_enclave(world: World, tmp_path: Path) -> Iterator[Any]:
    processes: list[multiprocessing.process.BaseProcess] = []

    def start(pcrs: dict[int, bytes] = PINNED, forgery: str | None = None) -> EnclaveClient:
        path = tmp_path / f"enclave-{len(processes)}.sock"
        # spawn: a fresh interpreter, nothing inherited from the test process but the arguments.
        process = multiprocessing.get_context("spawn").Process(
            target=run_enclave, daemon=True,
            args=(str(path), world.endpoint, {world.key_arn: world.policy}, world.role_arn,
                  [pcrs[index].hex() for index in range(16)], forgery,
                  {"region": REGION, "key_arns": [world.key_arn], "context": {"model": "digits"}},
                  ISSUER.trust()))
        process.start()
        processes.append(process)
        deadline = time.monotonic() + 60
        while not path.exists():
            if time.monotonic() > deadline or not process.is_alive():
                raise RuntimeError("the enclave process did not start")
            time.sleep(0.05)
        return EnclaveClient(Address.parse(f"unix:{path}"))

    yield start
    for process in processes:
        process.terminate()
        process.join(10)


def load(client: EnclaveClient, world: World) -> dict[str, Any]:
    return client.load(world.weights, key_arns=[world.key_arn], context=CONTEXT, credentials=CREDENTIALS)


def test_an_attested_enclave_decrypts_and_predicts(world: World, start_enclave: Any,
                                                   trained_model: TrainedModel) -> None:
    enclave = start_enclave()
    assert load(enclave, world) == {"type": "loaded", "classes": 10, "features": 64}
    labels = enclave.predict(trained_model.test_inputs[:50].tolist(), ISSUER.headers())
    correct = sum(a == b for a, b in zip(labels, trained_model.test_labels[:50], strict=True))
    assert correct >= 45  # the real model: ~97% on held-out digits


@pytest.mark.parametrize(("pcrs", "forgery", "reason"), [
    ({**PINNED, 0: measurement("another-image/pcr0")}, None, "AccessDeniedException"),  # another EIF
    ({**PINNED, 0: ZERO_PCR, 1: ZERO_PCR, 2: ZERO_PCR}, None, "AccessDeniedException"),  # debug mode
    (PINNED, "payload", "ValidationException"),  # a tampered document
    (PINNED, "expired-leaf", "ValidationException"),
    (PINNED, "foreign-chain", "ValidationException"),
], ids=["wrong-pcr0", "all-zero-pcrs", "tampered-document", "expired-chain", "foreign-chain"])
def test_refused_attestations_load_nothing(world: World, start_enclave: Any, pcrs: dict[int, bytes],
                                           forgery: str | None, reason: str) -> None:
    enclave = start_enclave(pcrs, forgery)
    with pytest.raises(EnclaveError, match=f"weights refused: .*{reason}"):
        load(enclave, world)
    assert enclave.ping()["loaded"] is False
    with pytest.raises(EnclaveError, match="no model loaded"):
        enclave.predict([[0] * 64], ISSUER.headers())


def test_the_parent_cannot_choose_another_key_or_model(world: World, start_enclave: Any) -> None:
    enclave = start_enclave()
    foreign = "arn:aws:kms:eu-west-1:999999999999:key/11111111-2222-3333-4444-555555555555"
    with pytest.raises(EnclaveError, match="not among those this image accepts"):
        enclave.load(world.weights, key_arns=[foreign], context=CONTEXT, credentials=CREDENTIALS)
    with pytest.raises(EnclaveError, match="this image serves model='digits' only"):
        enclave.load(world.weights, key_arns=[world.key_arn], context={"model": "backdoored"},
                     credentials=CREDENTIALS)
    assert load(enclave, world)["classes"] == 10  # the stream stayed in step after both refusals


def test_the_parent_cannot_decrypt_with_the_same_role(world: World) -> None:
    kms = boto3.client("kms", region_name=REGION, endpoint_url=world.endpoint,
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    standin = KmsStandIn(kms, {world.key_arn: world.policy}, b"unused-root", world.role_arn)
    from ztai_runtime.weights import decrypt_stream
    sink = io.BytesIO()
    with open(world.weights, "rb") as source, pytest.raises(UnwrapError, match="AccessDeniedException"):
        decrypt_stream(source, sink, KmsUnwrapper(standin, key_arns=[world.key_arn]))  # no Recipient
    assert sink.getvalue() == b""
