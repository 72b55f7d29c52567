"""The README fits one screen's worth of reading and tells a forker what to replace."""

from __future__ import annotations

import re

import yaml

from tests.docs.markdown import ROOT, section

README = ROOT / "README.md"
MAX_LINES = 200

# Values the shipped stacks hold only as stand-ins: the documentation account, the reserved domain,
# the dummy zone id and the CAs whose keys were discarded.
PLACEHOLDER_MARKERS = ("111122223333", "example.com", "PLACEHOLDER", "placeholder-")
# Placeholders whose values look real: the PCRs are not any image's measurements, and the artifact
# pins are empty until an EIF and an agent package are built.
PLACEHOLDER_KEYS = ("enclavePcr0", "enclavePcr1", "enclavePcr2", "enclaveEifSizeMiB",
                    "enclaveEifObjectKey", "enclaveEifSha256", "parentAgentObjectKey", "parentAgentSha256")


def _readme() -> str:
    return README.read_text(encoding="utf-8")


def _leaves(value: object) -> list[str]:
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in _leaves(item)]
    if isinstance(value, list):
        return [leaf for item in value for leaf in _leaves(item)]
    return [str(value)]


def test_readme_fits_in_200_lines() -> None:
    lines = len(_readme().splitlines())
    assert lines <= MAX_LINES, f"README.md has {lines} lines; keep it to {MAX_LINES} and move detail to docs/"


def test_readme_says_what_it_is_and_its_status_before_anything_else() -> None:
    headings = re.findall(r"^## (.+)$", _readme(), flags=re.MULTILINE)
    assert headings[0].startswith("Status"), headings
    status = section(_readme(), headings[0])
    assert "Nothing here has been deployed to a real AWS account" in status
    assert "Not checked against AWS" in status


def test_readme_gives_the_two_commands() -> None:
    commands = section(_readme(), "Two commands")
    assert "./run preview" in commands and "./run test" in commands


def test_forking_checklist_names_every_placeholder_key_of_the_shipped_stacks() -> None:
    checklist = section(_readme(), "Forking checklist")
    assert checklist, "README.md needs a '## Forking checklist' section"
    placeholder_keys = set(PLACEHOLDER_KEYS)
    for stack in sorted((ROOT / "stacks").glob("Pulumi.*.yaml")):
        config = yaml.safe_load(stack.read_text(encoding="utf-8"))["config"]
        for key, value in config.items():
            if any(marker in leaf for leaf in _leaves(value) for marker in PLACEHOLDER_MARKERS):
                placeholder_keys.add(key.split(":", 1)[1])
    missing = sorted(key for key in placeholder_keys if f"`{key}`" not in checklist)
    assert not missing, f"the README's forking checklist does not name {missing}"
    assert {"keyAdministratorRoleArns", "apiDomainName", "apiHostedZoneId"} <= placeholder_keys


def test_forking_checklist_names_the_placeholder_partners_and_cas() -> None:
    checklist = section(_readme(), "Forking checklist")
    partner_files = sorted((ROOT / "stacks" / "partners").glob("*.yaml"))
    assert partner_files
    for partners in partner_files:
        for partner in yaml.safe_load(partners.read_text(encoding="utf-8"))["partners"] or []:
            ca_name = partner["caFile"].rsplit("/", 1)[-1]
            if ca_name.startswith("placeholder-"):
                assert f"`{partner['name']}`" in checklist and f"`{ca_name}`" in checklist, partners
    for ca in sorted((ROOT / "stacks" / "truststore").glob("placeholder-*.pem")):
        assert f"`{ca.name}`" in checklist, f"the forking checklist does not name {ca.name}"


def test_control_map_links_every_control_to_a_page() -> None:
    rows = [line for line in section(_readme(), "Control map").splitlines()
            if line.startswith("| ") and not line.startswith("| control ")]
    assert len(rows) >= 10, rows
    for row in rows:
        if row.startswith("| planned "):
            continue
        assert re.search(r"\]\(docs/[^)]+\.md(#[^)]*)?\)", row), \
            f"control map line without a docs/ page: {row}"


def test_every_rule_names_a_control_of_the_control_map() -> None:
    # The pack's reports print each violation's control: a forker reads it in the README's map.
    from ztpolicy.rules import ALL_RULES
    rows = [line for line in section(_readme(), "Control map").splitlines() if line.startswith("| ")]
    controls = {row.split("|")[1].strip() for row in rows[1:]}  # after the header row
    unknown = sorted({rule.control for rule in ALL_RULES} - controls)
    assert not unknown, f"rules name controls the README's control map does not list: {unknown}"
