"""The Image Builder component documents of the enclave parent image: where they are, how they
are read, checked and versioned, and the parameters the recipe passes to each.

The documents themselves are the YAML files beside this module (AWSTOE schema 1.0); read them,
they are the image. `ImmutableAmiPipeline` turns each into an Image Builder component.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from components.aws_facts import partition_for_region

if TYPE_CHECKING:  # the pipeline's module imports this one
    from components.ami_pipeline import ImmutableAmiPipelineArgs

DOCUMENTS_DIR = Path(__file__).resolve().parent
# Applied in this order: updates (and the reboot into a new kernel) first; the artifacts last, into
# the directories and for the user parent-agent creates. The artifacts only when the stack pins them.
BASE_DOCUMENTS: tuple[str, ...] = ("base-hardening", "nitro-enclaves", "parent-agent")
ARTIFACTS_DOCUMENT = "enclave-artifacts"
COMPONENT_DOCUMENTS: tuple[str, ...] = (*BASE_DOCUMENTS, ARTIFACTS_DOCUMENT)
PHASES: tuple[str, ...] = ("build", "validate", "test")
# Flags that make an enclave debuggable: a debug-mode enclave reports all-zero PCRs and exposes
# its console. No document may contain them, not even in a comment.
FORBIDDEN_FLAGS: tuple[str, ...] = ("--debug-mode", "--attach-console")
_PARAMETER_REFERENCE = re.compile(r"{{\s*([A-Za-z0-9_-]+)\s*}}")


@dataclass(frozen=True)
class ComponentDocument:
    """A component document as validated: its text, and what the component resource takes."""

    text: str
    description: str
    version: str


def component_names(environment: str) -> tuple[str, ...]:
    """The names every component the pipeline may create gets (the artifacts' one only with
    artifacts): known before deploy, so their key can admit them at creation."""
    return tuple(f"zero-trust-ai-{environment}-{key}" for key in COMPONENT_DOCUMENTS)


def document_text(key: str) -> str:
    """The YAML text of one component document, as Image Builder receives it."""
    return (DOCUMENTS_DIR / f"{key}.yaml").read_text(encoding="utf-8")


def document_version(text: str) -> str:
    """A semantic version derived from the document's content (1.0.<28 bits of its SHA-256>).

    Image Builder component versions are immutable; a content-derived patch number turns every
    change of a document into a new version instead of a name/version conflict. Each node may
    reach 2^30-1, and 28 bits stay below that.
    """
    return f"1.0.{int(hashlib.sha256(text.encode()).hexdigest()[:7], 16)}"


def validate_document(key: str, text: str) -> dict[str, Any]:
    """Parse a component document and refuse what Image Builder (or this project) would refuse."""
    for flag in FORBIDDEN_FLAGS:
        if flag in text:
            raise ValueError(f"component document {key}: contains {flag}; enclaves never run in "
                             "debug mode or with an attached console")
    document = yaml.safe_load(text)
    if not isinstance(document, dict):
        raise ValueError(f"component document {key}: not a YAML mapping")
    if document.get("schemaVersion") != 1.0:
        raise ValueError(f"component document {key}: schemaVersion must be 1.0, got "
                         f"{document.get('schemaVersion')!r}")
    phases = document.get("phases")
    if not isinstance(phases, list) or not phases:
        raise ValueError(f"component document {key}: no phases")
    names = [phase.get("name") if isinstance(phase, dict) else None for phase in phases]
    if any(name not in PHASES for name in names) or len(set(names)) != len(names):
        raise ValueError(f"component document {key}: phases {names} must be distinct, from "
                         f"{', '.join(PHASES)}")
    for phase in phases:
        steps = phase.get("steps")
        if not isinstance(steps, list) or not steps or any(
                not isinstance(step, dict) or not step.get("name") or not step.get("action")
                for step in steps):
            raise ValueError(f"component document {key}: phase {phase['name']} needs steps, each "
                             "with a name and an action")
    declared = {name for item in document.get("parameters") or [] for name in item}
    referenced = set(_PARAMETER_REFERENCE.findall(text))
    if referenced - declared:
        raise ValueError(f"component document {key}: references undeclared parameters "
                         f"{sorted(referenced - declared)}")
    return document


def kms_endpoint(region: str) -> str:
    """The regional KMS endpoint, the only host vsock-proxy forwards to."""
    suffix = "amazonaws.com.cn" if partition_for_region(region) == "aws-cn" else "amazonaws.com"
    return f"kms.{region}.{suffix}"


def documents_for(args: ImmutableAmiPipelineArgs) -> tuple[str, ...]:
    """The recipe's documents, in order: the artifacts only when the stack pins them."""
    return COMPONENT_DOCUMENTS if args.enclave_artifacts is not None else BASE_DOCUMENTS


def component_parameters(key: str, args: ImmutableAmiPipelineArgs,
                         artifacts_bucket: str | None = None) -> dict[str, str]:
    """The values the recipe passes to each document's parameters. `artifacts_bucket`: the
    resolved bucket name (default: `args.artifacts_bucket_name` when it is a plain string)."""
    if key == "nitro-enclaves":
        return {"EnclaveMemoryMiB": str(args.enclave_memory_mib),
                "EnclaveCpuCount": str(args.enclave_cpu_count),
                "KmsEndpoint": kms_endpoint(args.region)}
    if key == ARTIFACTS_DOCUMENT:
        artifacts = args.enclave_artifacts
        bucket = artifacts_bucket if artifacts_bucket is not None else args.artifacts_bucket_name
        if artifacts is None or not isinstance(bucket, str):
            raise ValueError(f"{ARTIFACTS_DOCUMENT} needs enclave_artifacts and the bucket's name")
        return {"EifS3Uri": f"s3://{bucket}/{artifacts.eif_key}", "EifSha256": artifacts.eif_sha256,
                "AgentS3Uri": f"s3://{bucket}/{artifacts.agent_key}",
                "AgentSha256": artifacts.agent_sha256, "Region": args.region}
    return {}


def recipe_version(parts: Sequence[str]) -> str:
    """A recipe version derived from everything that defines the recipe (recipes are immutable)."""
    return document_version("\n".join(parts))


def load_documents(args: ImmutableAmiPipelineArgs) -> Mapping[str, ComponentDocument]:
    """Read and check the recipe's documents, in order; refuse one Image Builder would refuse or
    whose parameters differ from what the recipe passes."""
    documents: dict[str, ComponentDocument] = {}
    for key in documents_for(args):
        text = document_text(key)
        document = validate_document(key, text)
        declared = {name for item in document.get("parameters") or [] for name in item}
        given = set(component_parameters(key, args, "bucket"))
        if declared != given:
            raise ValueError(f"component document {key}: declares parameters {sorted(declared)}, "
                             f"the recipe passes {sorted(given)}")
        documents[key] = ComponentDocument(text, str(document.get("description", ""))[:1024],
                                           document_version(text))
    return documents
