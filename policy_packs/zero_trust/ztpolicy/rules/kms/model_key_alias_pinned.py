"""An alias that names a model key is held to that key by the stack (control: encryption and key management).

Publishers that encrypt by alias encrypt under whatever key the alias names when they run. An
administrator allowed `kms:UpdateAlias` can point the model-weights alias at a key of their own,
whose policy lets them decrypt outside an enclave. `ignore_changes=["targetKeyId"]` on such an
alias (or `"*"`) tells the engine to leave that move in place forever: no preview shows it, no
`pulumi up` undoes it. So every `aws.kms.Alias` that names a model key (a key
model-key-attestation-required must hold to attestation: same `attestedKeyPurposes` and
`attestedAliases` configuration), or whose own name claims the model role, must not ignore changes
to `targetKeyId`. A successor key is then adopted in the program, with the alias, in one reviewed
change, rather than moved out of band.

The alias's target is read from its value whenever it is known (`targetKeyId`, or the output
`targetKeyArn`, compared with the keys' ids and ARNs); the dependency the program recorded only
stands in while the value is unknown (a key still being created). An alias whose known target is
not the key it was computed from has been moved (by hand in the state, or outside Pulumi and
refreshed) and is reported as moved when it names a model key, claims the model role by its name,
or was computed from a model key; model-key-attestation-required then holds the key it now names
to attestation.

Not suppressible. `ztai weights encrypt` refuses an alias whose key is not the expected key ARN:
that protects publishers between a move and the next `pulumi up`; this rule makes sure the next
`pulumi up` happens to notice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fnmatch import fnmatchcase
from typing import Any

from pulumi_policy import Severity

from ztpolicy.graph import as_list, known, names_key, of_type, refers_to_key
from ztpolicy.rule import Finding, Resource, Rule
from ztpolicy.rules.kms.kms_key_policy_least_privilege import KEY, REPLICA_KEY
from ztpolicy.rules.kms.model_key_attestation_required import (
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


def _moved(alias: Resource, all_keys: Sequence[Resource]) -> tuple[Resource, str] | None:
    """(the key the alias was computed from, the value it now holds) when its known target is
    another key; None when it agrees, or when either side cannot be told."""
    dependencies = alias.property_dependencies.get("targetKeyId", ())
    source = next((key for key in all_keys if key.urn in dependencies), None)
    if source is None:
        return None
    for prop in ("targetKeyId", "targetKeyArn"):
        value = known(alias, prop)
        if names_key(value, source) is False:
            return source, str(value)
    return None


def model_key_alias_pinned(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[Finding]:
    attested = attested_keys(resources, config)
    keys = list(attested.values())
    all_keys = of_type(resources, KEY, REPLICA_KEY)
    findings = []
    for alias in of_type(resources, ALIAS):
        target = next((key for key, _ in keys
                       if refers_to_key(alias, "targetKeyId", key, "targetKeyArn", among=all_keys)), None)
        moved = _moved(alias, all_keys)
        if moved is not None:
            source, value = moved
            now = next((key for key in all_keys
                        if refers_to_key(alias, "targetKeyId", key, "targetKeyArn", among=all_keys)), None)
            if target is not None or source.urn in attested or _claims_role(alias, config):
                now_label = f"key {now.name}" if now is not None else "a key outside this stack"
                findings.append(Finding(alias.urn, f"alias {alias.name} was moved from key "
                                        f"{source.name} to {now_label} ({value}): the program "
                                        f"points it at {source.name}, but it names another key, so "
                                        "publishers encrypting by alias would use that key; move it "
                                        "back (pulumi up after a refresh) and find out who moved it"))
        if not _ignores_target(alias):
            continue
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
    description="An alias naming a model-weights key must not ignore changes to targetKeyId, "
                "nor name another key than the one the program points it at.",
    control="encrypted weights",
    severity=Severity.CRITICAL,
    remediation="Remove \"targetKeyId\" from the alias's ignore_changes (components/keys.py "
                "KeyHierarchy, for attested purposes); adopt a successor key in the program, moving "
                "the alias in the same reviewed change.",
    stack_check=model_key_alias_pinned,
    suppressible=False,
    config=ATTESTED_KEY_CONFIG,
)
