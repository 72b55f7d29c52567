"""The parent's boot script (launch template user data), rendered from `boot.sh.tpl`.

The script lives in its own file so a shell linter reads what the instances run (the tests render
it and run shellcheck on the result). Placeholders are `@{name}`: the script's own `$` stays
plain shell. Values that the shell reads as words are shell-quoted; values inside the quoted
here-documents (`<<'EOF'`) are data the shell never expands, so they are written as they are and
refused if they could end the here-document early.
"""

from __future__ import annotations

import json
import shlex
import string
from pathlib import Path

from components.enclave_fleet.args import EnclaveInferenceFleetArgs
from components.enclave_fleet.settings import AGENT_ENVIRONMENT_FILE, ENCLAVE_CID, ENCLAVE_PORT

BOOT_TEMPLATE = Path(__file__).resolve().parent / "boot.sh.tpl"


class _BootTemplate(string.Template):
    # `$` is the shell's: a template that used it would need `$$` before every shell variable.
    delimiter = "@"


def user_data(args: EnclaveInferenceFleetArgs, bucket: str, model_key_arn: str,
              events_log_group: str | None = None) -> str:
    """The parent's boot script. Every value in it is validated or quoted; it has no debug flag
    and no console, and the policy pack's enclave-user-data-no-debug rule checks that it stays so.
    `events_log_group`: where the agent sends its inference events (none: its journal only)."""
    settings = args.settings
    expected = {name: value.lower() for name, value in args.measurements.pcrs().items()}
    agent_args = [
        "--bucket", bucket, "--key", args.model_object_key, "--key-arn", model_key_arn,
        *[part for key, value in sorted(args.encryption_context.items())
          for part in ("--context", f"{key}={value}")],
        "--enclave", f"vsock:{ENCLAVE_CID}:{ENCLAVE_PORT}", "--listen", f"0.0.0.0:{args.agent_port}",
        # The load balancer's TLS target group speaks TLS to the agent.
        *([] if args.allow_plaintext_listener else ["--tls"]),
        *([] if events_log_group is None else ["--events-log-group", events_log_group]),
    ]
    # Inside the quoted here-documents: written verbatim (the agent's EnvironmentFile and the
    # measurement check read them as they are), so a line break could end one early.
    documents = {"region": args.region, "agent_args": " ".join(agent_args),
                 "expected_measurements": json.dumps(expected, sort_keys=True)}
    for name, value in documents.items():
        if "\n" in value or "\r" in value:
            raise ValueError(f"user data: {name} {value!r} holds a line break; it would end the "
                             "boot script's here-document early")
    # Shell words: quoted (shlex.quote leaves a word of safe characters as it is).
    words = {"eif_path": args.eif_path, "agent_unit": args.agent_unit,
             "agent_environment_file": AGENT_ENVIRONMENT_FILE,
             "enclave_cpu_count": str(settings.enclave_cpu_count),
             "enclave_memory_mib": str(settings.enclave_memory_mib), "enclave_cid": str(ENCLAVE_CID)}
    template = _BootTemplate(BOOT_TEMPLATE.read_text(encoding="utf-8"))
    return template.substitute({**documents, **{name: shlex.quote(value) for name, value in words.items()}})
