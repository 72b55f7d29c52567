"""An alias that names a model key is held to that key by the stack (§4.2).

Publishers that encrypt by alias encrypt under whatever key the alias names when they run. An
administrator allowed `kms:UpdateAlias` can point the model-weights alias at a key of their own,
whose policy lets them decrypt outside an enclave. `ignore_changes=["targetKeyId"]` on such an
alias (or `"*"`) tells the engine to leave that move in place forever: no preview shows it, no
`pulumi up` undoes it. So every `aws.kms.Alias` that names a model key (a key
model-key-attestation-required must hold to attestation: same `attestedKeyPurposes` and
`attestedAliases` configuration), or whose own name claims the model role, must not ignore changes
to `targetKeyId`. A successor key is then adopted in the program, with the alias, in one reviewed
change, rather than moved out of band.

Not suppressible. `ztai weights encrypt` refuses an alias whose key is not the expected key ARN:
that protects publishers between a move and the next `pulumi up`; this rule makes sure the next
`pulumi up` happens to notice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fnmatch import fnmatchcase
from typing import Any

from pulumi_policy import Severity

from ztpolicy.graph import as_list, known, of_type, refers_to_key
from ztpolicy.rule import Finding, Resource, Rule
from ztpolicy.rules.model_key_attestation_required import (
    ALIAS,
    ATTESTED_KEY_CONFIG,
    DEFAULT_ATTESTED_PURPOSES,
    attested_keys,
    claims_purpose,
)

_PINNED_PROPERTY = "targetkeyid"


def _ignores_target(alias: Resource) -> bool:
    return any(str(path).strip().lower() in {_PINNED_PROPERTY, "*"} for path in alias.ignore_changes)


def _claims_role(alias: Resource, config: Mapping[str, Any]) -> bool:
    name = known(alias, "name", "")
    if not isinstance(name, str) or not name:
        return False
    purposes = list(as_list(config.get("attestedKeyPurposes", DEFAULT_ATTESTED_PURPOSES)))
    patterns = [str(p) for p in as_list(config.get("attestedAliases", []))]
    return claims_purpose(name.rsplit("/", 1)[-1], purposes) or any(fnmatchcase(name, p) for p in patterns)


def model_key_alias_pinned(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[Finding]:
    keys = list(attested_keys(resources, config).values())
    findings = []
    for alias in of_type(resources, ALIAS):
        if not _ignores_target(alias):
            continue
        target = next((key for key, _ in keys if refers_to_key(alias, "targetKeyId", key)), None)
        if target is None and not _claims_role(alias, config):
            continue
        what = f"model key {target.name}" if target is not None else "a model key (by its name)"
        findings.append(Finding(alias.urn, f"alias {alias.name} names {what} but ignores changes to "
                                "targetKeyId: an administrator who moves it to a key of their own "
                                "(kms:UpdateAlias) is never corrected or shown by a preview, and "
                                "publishers encrypting by alias would use that key; drop "
                                "targetKeyId from ignore_changes and adopt successor keys in the "
                                "program"))
    return findings


RULE = Rule(
    name="model-key-alias-pinned",
    description="An alias naming a model-weights key must not ignore changes to targetKeyId.",
    section="4.2",
    severity=Severity.CRITICAL,
    remediation="Remove \"targetKeyId\" from the alias's ignore_changes (components/keys.py "
                "KeyHierarchy, for attested purposes); adopt a successor key in the program, moving "
                "the alias in the same reviewed change.",
    stack_check=model_key_alias_pinned,
    suppressible=False,
    config=ATTESTED_KEY_CONFIG,
)
