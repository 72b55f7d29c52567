"""Pin an EIF's measurements in a stack: read `nitro-cli build-enclave` output, check it, and print
the `pulumi config set` commands (or rewrite the stack file with --write).

    python -m enclave_images.measurements build/measurements.json --stack prod [--write]

`nitro-cli build-enclave` prints {"Measurements": {"HashAlgorithm": "Sha384 { ... }", "PCR0": ...,
"PCR1": ..., "PCR2": ...}} and PCR8 too when the EIF is signed. Each value must be 96 hex digits
(SHA-384) and not all zero (the value a debug-mode enclave reports).

Reproducibility: the EIF embeds its build time and the image layers' timestamps, so rebuilding the
same sources gives other PCR0/PCR2 values unless the build is pinned (base image by digest,
SOURCE_DATE_EPOCH, identical layer order). Pin what you actually deploy; never rebuild to "match".
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

PCR_PATTERN = re.compile(r"[0-9a-f]{96}")
CONFIG_KEYS = {"PCR0": "enclavePcr0", "PCR1": "enclavePcr1", "PCR2": "enclavePcr2", "PCR8": "enclavePcr8"}
PROJECT = "zero-trust-ai"


class MeasurementsError(ValueError):
    pass


@dataclass(frozen=True)
class Measurements:
    pcrs: dict[str, str]  # "PCR0" -> lowercase hex; PCR8 only for a signed EIF

    @classmethod
    def parse(cls, text: str, *, require_signed: bool = False) -> Measurements:
        try:
            document = json.loads(text)
        except (json.JSONDecodeError, RecursionError):
            document = None
        raw = document.get("Measurements") if isinstance(document, dict) else None
        if not isinstance(raw, dict):
            raise MeasurementsError("not nitro-cli build-enclave output: expected a JSON object with a "
                                    "\"Measurements\" object")
        algorithm = str(raw.get("HashAlgorithm", ""))
        if not algorithm.lower().startswith("sha384"):
            raise MeasurementsError(f"HashAlgorithm {algorithm!r}: KMS attestation conditions use SHA-384")
        problems, pcrs = [], {}
        for name in ("PCR0", "PCR1", "PCR2", "PCR8"):
            value = raw.get(name)
            if value is None:
                if name != "PCR8" or require_signed:
                    hint = " (the EIF is not signed)" if name == "PCR8" else ""
                    problems.append(f"{name} is missing{hint}")
                continue
            value = str(value).lower()
            if not PCR_PATTERN.fullmatch(value):
                problems.append(f"{name} = {value!r} is not 96 hex digits")
            elif set(value) == {"0"}:
                problems.append(f"{name} is all zeros: that is what a debug-mode enclave reports")
            else:
                pcrs[name] = value
        if problems:
            raise MeasurementsError("; ".join(problems))
        return cls(pcrs)

    def config_commands(self, stack: str) -> list[str]:
        return [f"pulumi config set --stack {shlex.quote(stack)} {PROJECT}:{CONFIG_KEYS[name]} {value}"
                for name, value in sorted(self.pcrs.items())]

    def rewrite_stack_file(self, path: Path) -> str:
        """The stack file with each measurement key set, other lines untouched (comments kept)."""
        lines = _read_text(path).splitlines(keepends=True)
        remaining = {f"{PROJECT}:{CONFIG_KEYS[name]}": value for name, value in self.pcrs.items()}
        out = []
        for line in lines:
            key = line.strip().split(":", 2)
            full = ":".join(key[:2]).strip() if len(key) >= 2 else ""
            if full in remaining and line.startswith("  "):
                out.append(f"  {full}: \"{remaining.pop(full)}\"\n")
            else:
                out.append(line)
        if remaining:
            if not any(line.rstrip() == "config:" for line in lines):
                raise MeasurementsError(f"{path} has no top-level 'config:' block")
            out.extend(f"  {key}: \"{value}\"\n" for key, value in sorted(remaining.items()))
        return "".join(out)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise MeasurementsError(f"{path}: not UTF-8 text (byte {error.start}: {error.reason})") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("measurements", type=Path, help="nitro-cli build-enclave output (JSON)")
    parser.add_argument("--stack", required=True, help="stack name (stacks/Pulumi.STACK.yaml)")
    parser.add_argument("--signed", action="store_true", help="require PCR8 (signed EIF)")
    parser.add_argument("--write", action="store_true", help="rewrite the stack file in place")
    parser.add_argument("--stacks-dir", type=Path, default=Path(__file__).resolve().parent.parent / "stacks")
    args = parser.parse_args(argv)
    try:
        measurements = Measurements.parse(_read_text(args.measurements), require_signed=args.signed)
        if args.write:
            stack_file = args.stacks_dir / f"Pulumi.{args.stack}.yaml"
            stack_file.write_text(measurements.rewrite_stack_file(stack_file), encoding="utf-8")
            print(f"pinned {', '.join(sorted(measurements.pcrs))} in {stack_file}")
        else:
            print("\n".join(measurements.config_commands(args.stack)))
    except (OSError, MeasurementsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
