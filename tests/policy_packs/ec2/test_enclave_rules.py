"""The enclave rules: launch templates, enclave user data and the model key's attestation
conditions. The configuration EnclaveInferenceFleet and KeyHierarchy write passes; each insecure
variant is caught."""

from __future__ import annotations

import base64
import gzip
import json
import quopri
from typing import Any

import pytest

from components.keys import EnclaveMeasurements, _Grant, _pinned_enclave_denies, _policy_document
from tests.policy_packs.test_rules import NO_CONFIG, res, urns
from ztpolicy.rule import Resource
from ztpolicy.rules.ec2.enclave_user_data_no_debug import enclave_user_data_no_debug
from ztpolicy.rules.ec2.launch_template_hardened import launch_template_hardened
from ztpolicy.rules.kms.model_key_attestation_required import model_key_attestation_required

LAUNCH_TEMPLATE, INSTANCE = "aws:ec2/launchTemplate:LaunchTemplate", "aws:ec2/instance:Instance"
KEY, KEY_POLICY = "aws:kms/key:Key", "aws:kms/keyPolicy:KeyPolicy"
ALIAS, GRANT = "aws:kms/alias:Alias", "aws:kms/grant:Grant"
ROLE = "arn:aws:iam::111122223333:role/inference-parent"
GLASS = "arn:aws:iam::111122223333:role/break-glass"
KEY_ADMIN = "arn:aws:iam::111122223333:role/zero-trust-ai-key-admin"
PCRS = EnclaveMeasurements(pcr0="a1" * 48, pcr1="b2" * 48, pcr2="c3" * 48)
SCRIPT = ("#!/bin/bash\nnitro-cli run-enclave --eif-path /opt/e.eif --cpu-count 2 \\\n"
          "    --memory 4096 --enclave-cid 16\n")


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def template(**changes: Any) -> Resource:
    props: dict[str, Any] = {
        "metadataOptions": {"httpEndpoint": "enabled", "httpTokens": "required",
                            "httpPutResponseHopLimit": 1},
        "blockDeviceMappings": [{"deviceName": "/dev/xvda", "ebs": {
            "encrypted": "true", "kmsKeyId": "arn:aws:kms:eu-west-1:111122223333:key/k"}}],
        "enclaveOptions": {"enabled": True},
        "userData": b64(SCRIPT),
        "tags": {"ztai:workload": "enclave-inference"},
    }
    props.update(changes)
    return res(LAUNCH_TEMPLATE, "lt", **{k: v for k, v in props.items() if v is not None})


# -- launch-template-hardened --------------------------------------------------------------------
def test_hardened_template_passes() -> None:
    assert launch_template_hardened(template(), NO_CONFIG) == []
    # IMDS switched off altogether is stricter still; a template for something else need no enclave.
    assert launch_template_hardened(template(metadataOptions={"httpEndpoint": "disabled"}), NO_CONFIG) == []
    plain = template(enclaveOptions=None, tags={"ztai:workload": "batch"}, userData=b64("#!/bin/sh\n"))
    assert launch_template_hardened(plain, NO_CONFIG) == []


def test_a_customer_alias_ending_like_the_managed_one_passes() -> None:
    key = "arn:aws:kms:eu-west-1:111122223333:alias/zero-trust-ai/dev/inference"
    mappings = [{"deviceName": "/dev/xvda", "ebs": {"encrypted": "true", "kmsKeyId": key}}]
    assert launch_template_hardened(template(blockDeviceMappings=mappings), NO_CONFIG) == []


@pytest.mark.parametrize("changes, fragment", [
    ({"metadataOptions": None}, "sets no metadataOptions"),
    ({"metadataOptions": {"httpTokens": "optional", "httpPutResponseHopLimit": 1}}, "allows IMDSv1"),
    ({"metadataOptions": {"httpTokens": "required", "httpPutResponseHopLimit": 2}}, "hop limit 2"),
    ({"metadataOptions": {"httpTokens": "required"}}, "hop limit unset"),
    ({"keyName": "ops-key"}, "names key pair ops-key"),
    ({"blockDeviceMappings": None}, "declares no EBS volume"),
    ({"blockDeviceMappings": [{"deviceName": "/dev/xvda", "ebs": {"encrypted": "false"}}]},
     "volume /dev/xvda is not encrypted"),
    ({"blockDeviceMappings": [{"deviceName": "/dev/xvda", "ebs": {"encrypted": "true"}}]},
     "AWS managed EBS key"),
    ({"blockDeviceMappings": [{"deviceName": "/dev/xvda", "ebs": {
        "encrypted": "true", "kmsKeyId": "alias/aws/ebs"}}]}, "AWS managed EBS key"),
    ({"blockDeviceMappings": [{"deviceName": "/dev/xvda", "ebs": {
        "encrypted": "true", "kmsKeyId": "arn:aws:kms:eu-west-1:111122223333:alias/aws/ebs"}}]},
     "AWS managed EBS key"),
    ({"blockDeviceMappings": [{"deviceName": "/dev/xvda", "ebs": {
        "encrypted": "true", "kmsKeyId": "arn:aws-cn:kms:cn-north-1:111122223333:ALIAS/AWS/EBS"}}]},
     "AWS managed EBS key"),
    ({"enclaveOptions": None}, "is for enclaves but does not enable them"),
    ({"enclaveOptions": {"enabled": False}, "tags": {}}, "is for enclaves"),  # found by its user data
])
def test_insecure_templates_are_caught(changes: dict[str, Any], fragment: str) -> None:
    problems = launch_template_hardened(template(**changes), NO_CONFIG)
    assert any(fragment in problem for problem in problems), problems


# -- enclave-user-data-no-debug ------------------------------------------------------------------
def test_production_user_data_passes() -> None:
    assert enclave_user_data_no_debug(template(), NO_CONFIG) == []
    gzipped = base64.b64encode(gzip.compress(SCRIPT.encode())).decode()
    assert enclave_user_data_no_debug(template(userData=gzipped), NO_CONFIG) == []
    assert enclave_user_data_no_debug(res(INSTANCE, "i", userData=SCRIPT), NO_CONFIG) == []
    assert enclave_user_data_no_debug(template(userData=None), NO_CONFIG) == []


@pytest.mark.parametrize("script, flag", [
    (SCRIPT.replace("--enclave-cid 16", "--enclave-cid 16 --debug-mode"), "--debug-mode"),
    (SCRIPT.replace("--memory 4096", "--memory 4096 --attach-console"), "--attach-console"),
    (SCRIPT + "nitro-cli console --enclave-id $(nitro-cli describe-enclaves | jq -r .[0].EnclaveID)\n",
     "nitro-cli console"),
    ("#!/bin/bash\necho '{\"debug_mode\": true}' > /etc/e.json\n", "debug_mode"),
    ("#!/bin/bash\nnitro-cli run-enclave \\\n  --config /etc/enclave.json\n", "run-enclave --config"),
])
def test_debug_flags_are_caught_in_every_encoding(script: str, flag: str) -> None:
    for resource in (template(userData=b64(script)),
                     template(userData=base64.b64encode(gzip.compress(script.encode())).decode()),
                     res(INSTANCE, "i", userData=script),
                     res(INSTANCE, "i", userDataBase64=b64(script))):
        [problem] = enclave_user_data_no_debug(resource, NO_CONFIG)
        assert flag in problem and "production mode only" in problem


@pytest.mark.parametrize("user_data, fragment", [
    ("not base64 at all!", "is not base64"),
    (base64.b64encode(b"\x1f\x8b\x08broken").decode(), "not valid gzip"),
    (base64.b64encode(b"\xff\xfe\x00binary").decode(), "not UTF-8 text"),
])
def test_unreadable_user_data_fails_closed(user_data: str, fragment: str) -> None:
    [problem] = enclave_user_data_no_debug(template(userData=user_data), NO_CONFIG)
    assert fragment in problem and "cannot check it" in problem



DEBUG_SCRIPT = SCRIPT.replace("--enclave-cid 16", "--enclave-cid 16 --debug-mode")


def mime(*parts: tuple[str, str, bytes]) -> str:
    """cloud-init multipart user data: (content type, transfer encoding, body) per part."""
    lines = ['Content-Type: multipart/mixed; boundary="==BOUNDARY=="', "MIME-Version: 1.0", ""]
    for kind, encoding, body in parts:
        text = (base64.encodebytes(body).decode() if encoding == "base64"
                else quopri.encodestring(body).decode() if encoding == "quoted-printable"
                else body.decode())
        lines += ["--==BOUNDARY==", f'Content-Type: {kind}; charset="utf-8"', "MIME-Version: 1.0",
                  f"Content-Transfer-Encoding: {encoding}", "", text]
    return "\n".join([*lines, "--==BOUNDARY==--", ""])


CLOUD_CONFIG = b"#cloud-config\npackage_update: false\n"


def test_clean_mime_user_data_passes() -> None:
    for encoding in ("7bit", "base64", "quoted-printable"):
        data = mime(("text/cloud-config", "7bit", CLOUD_CONFIG),
                    ("text/x-shellscript", encoding, SCRIPT.encode()))
        assert enclave_user_data_no_debug(template(userData=b64(data)), NO_CONFIG) == []
    gzipped = mime(("text/x-shellscript", "base64", gzip.compress(SCRIPT.encode())))
    assert enclave_user_data_no_debug(res(INSTANCE, "i", userData=gzipped), NO_CONFIG) == []


@pytest.mark.parametrize("encoding, body", [
    ("base64", DEBUG_SCRIPT.encode()),
    ("base64", gzip.compress(DEBUG_SCRIPT.encode())),
    ("quoted-printable", DEBUG_SCRIPT.encode()),
])
def test_debug_flags_in_encoded_mime_parts_are_caught(encoding: str, body: bytes) -> None:
    data = mime(("text/cloud-config", "7bit", CLOUD_CONFIG), ("text/x-shellscript", encoding, body))
    for resource in (template(userData=b64(data)), res(INSTANCE, "i", userData=data),
                     template(userData=base64.b64encode(gzip.compress(data.encode())).decode())):
        [problem] = enclave_user_data_no_debug(resource, NO_CONFIG)
        assert "--debug-mode" in problem and "production mode only" in problem


def test_a_mime_document_nested_in_a_part_is_opened() -> None:
    inner = mime(("text/x-shellscript", "base64", DEBUG_SCRIPT.encode()))
    data = mime(("text/cloud-config", "7bit", CLOUD_CONFIG),
                ("multipart/mixed", "base64", inner.encode()))
    [problem] = enclave_user_data_no_debug(template(userData=b64(data)), NO_CONFIG)
    assert "--debug-mode" in problem


@pytest.mark.parametrize("flag, quoted", [
    ("--debug-mode", '"--debug"-mode'),
    ("--debug-mode", "--debug''-mode"),
    ("--debug-mode", "--deb\\ug-mode"),
    ("--attach-console", "'--attach'-console"),
    ("nitro-cli console", "nitro-cli 'con'sole"),
])
def test_shell_quoting_does_not_hide_a_flag(flag: str, quoted: str) -> None:
    script = SCRIPT.replace("--enclave-cid 16", f"--enclave-cid 16 {quoted}")
    if flag == "nitro-cli console":
        script = SCRIPT + f"{quoted} --enclave-id i-0\n"
    for resource in (template(userData=b64(script)), res(INSTANCE, "i", userData=script),
                     template(userData=b64(mime(("text/x-shellscript", "base64", script.encode()))))):
        [problem] = enclave_user_data_no_debug(resource, NO_CONFIG)
        assert flag in problem and "production mode only" in problem


def test_shell_that_does_not_tokenise_is_reported_and_still_matched_raw() -> None:
    unbalanced = SCRIPT + "echo \"it's --debug-mode\n"
    problems = enclave_user_data_no_debug(template(userData=b64(unbalanced)), NO_CONFIG)
    assert len(problems) == 2
    assert "does not tokenise as shell" in problems[0] and "cannot check it" in problems[0]
    assert "--debug-mode" in problems[1]
    [problem] = enclave_user_data_no_debug(template(userData=b64(SCRIPT + "echo 'a\n")), NO_CONFIG)
    assert "does not tokenise as shell" in problem


@pytest.mark.parametrize("data, fragment", [
    ('Content-Type: multipart/mixed; boundary="B"\n\n--B\nContent-Type: text/x-shellscript\n'
     "Content-Transfer-Encoding: base64\n\n!!not base64!!\n--B--\n", "not valid base64"),
    ('Content-Type: multipart/mixed; boundary="B"\n\n--B\nContent-Type: text/x-shellscript\n'
     "Content-Transfer-Encoding: x-uuencode\n\nbegin\n--B--\n", "transfer encoding"),
    ("Content-Type: multipart/mixed\n\nno boundary\n", "malformed MIME"),
])
def test_unreadable_mime_fails_closed(data: str, fragment: str) -> None:
    [problem] = enclave_user_data_no_debug(template(userData=b64(data)), NO_CONFIG)
    assert fragment in problem and "cannot check it" in problem

# -- model-key-attestation-required --------------------------------------------------------------
ABSENT = {"Null": {"kms:RecipientAttestation:PCR0": "true"}}


def attested_policy(measurements: EnclaveMeasurements = PCRS, *, glass: str = "",
                    extra: list[tuple[_Grant, dict[str, Any]]] | None = None,
                    null_only: bool = False, administrators: tuple[str, ...] = (KEY_ADMIN,)) -> str:
    """What KeyHierarchy writes for grant_decrypt_with_attestation (the same grant objects).

    null_only: the shape before the per-PCR denies: one Deny for everyone that only checks that
    SOME attestation is present (Null), which let break-glass unwrap for any attested enclave."""
    role: dict[str, Any] = {"AWS": ROLE}
    everyone = ([_Grant("DenyPlaintextWithoutAttestation", {"AWS": "*"}, ("kms:Decrypt", "kms:ReEncryptFrom"),
                        lambda a, r: ABSENT, effect="Deny")] if null_only
                else _pinned_enclave_denies([measurements]))
    grants = [
        (_Grant("DecryptWithAttestation", role, ("kms:Decrypt",),
                lambda a, r: {"StringEqualsIgnoreCase": measurements.conditions()}), role),
        (_Grant("DenyWithoutAttestation", role, ("kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*"),
                lambda a, r: ABSENT, effect="Deny"), role),
        *(extra or []),
        *((grant, dict(grant.principal)) for grant in everyone),
    ]
    return _policy_document("aws", "111122223333", "eu-west-1", administrators, glass, grants)


def stack(policy: str | None, *, tag: bool = True, alias: bool = False,
          more: list[Resource] | None = None) -> list[Resource]:
    # The key keeps its administration-only first policy; the KeyPolicy, if any, owns it.
    first = _policy_document("aws", "111122223333", "eu-west-1", [], "", [])
    key = res(KEY, "keys-model-weights", id="key-1", policy=first,
              tags={"ztai:key-purpose": "model-weights"} if tag else {})
    resources = [key, res(KEY, "keys-secrets", id="key-2", tags={"ztai:key-purpose": "secrets"})]
    if alias:
        resources.append(Resource(type=ALIAS, name="alias", urn=f"{key.urn}-alias",
                                  props={"name": "alias/zero-trust-ai/dev/model-weights"},
                                  property_dependencies={"targetKeyId": (key.urn,)}))
    if policy is not None:
        resources.append(res(KEY_POLICY, "keys-model-weights-policy", deps={"keyId": [key.urn]},
                             policy=policy))
    return resources + (more or [])


def edit(policy: str, sid: str, **fields: Any) -> str:
    document = json.loads(policy)
    for statement in document["Statement"]:
        if statement["Sid"].startswith(sid):
            statement.update(fields)
            for name, value in fields.items():
                if value is None:
                    del statement[name]
    return json.dumps(document)


def problems(resources: list[Resource], config: dict[str, Any] | None = None) -> list[str]:
    return [finding.message for finding in model_key_attestation_required(resources, config or NO_CONFIG)]


def test_attested_policy_passes_found_by_tag_or_alias() -> None:
    assert problems(stack(attested_policy())) == []
    assert problems(stack(attested_policy(), tag=False, alias=True)) == []
    signed = EnclaveMeasurements(pcr0="a1" * 48, pcr1="b2" * 48, pcr2="c3" * 48, pcr8="d4" * 48)
    assert problems(stack(attested_policy(signed))) == []
    # Break-glass (kms:* with MFA) is allowed when the rule is told who it is.
    assert problems(stack(attested_policy(glass=GLASS)), {"breakGlassPrincipalArns": [GLASS]}) == []


def test_other_keys_are_not_applicable() -> None:
    assert problems(stack(None, tag=False)) == []


def test_a_model_key_without_any_policy_is_caught() -> None:
    key = res(KEY, "bare", tags={"ztai:key-purpose": "model-weights"})
    [finding] = model_key_attestation_required([key], NO_CONFIG)
    assert "has no policy: AWS's default lets every IAM principal of the account decrypt" in finding.message


def test_an_unsealed_model_key_is_caught() -> None:
    found = model_key_attestation_required(stack(None), NO_CONFIG)
    assert urns(found) == {"keys-model-weights"}
    messages = " ".join(f.message for f in found)
    assert "allows no principal kms:Decrypt under enclave attestation" in messages
    assert "does not deny kms:Decrypt, kms:ReEncryptFrom to every principal outside a pinned enclave" \
        in messages


def test_the_null_only_deny_for_everyone_is_caught() -> None:
    # The reviewed shape: a deny that holds only when NO attestation is present lets break-glass
    # (kms:*) have the data key wrapped for any attested enclave, its own EIF or a debug-mode one.
    found = problems(stack(attested_policy(null_only=True, glass=GLASS)),
                     {"breakGlassPrincipalArns": [GLASS]})
    for pcr in ("PCR0", "PCR1", "PCR2"):
        assert any(f"does not deny kms:Decrypt, kms:ReEncryptFrom to every principal unless {pcr} is "
                   "the pinned value" in message for message in found), found
    # ...while the per-PCR shape passes; with a signed EIF it needs the PCR8 statement as well.
    signed = EnclaveMeasurements(pcr0="a1" * 48, pcr1="b2" * 48, pcr2="c3" * 48, pcr8="d4" * 48)
    assert problems(stack(attested_policy(signed))) == []
    without_pcr8 = json.loads(attested_policy(signed))
    without_pcr8["Statement"] = [s for s in without_pcr8["Statement"]
                                 if not s["Sid"].startswith("DenyPlaintextUnlessPCR8")]
    [message] = problems(stack(json.dumps(without_pcr8)))
    assert "unless PCR8 is the pinned value" in message


def test_a_pinned_deny_with_an_image_sha384_key_or_case_differences_passes() -> None:
    policy = edit(attested_policy(), "DenyPlaintextUnlessPCR0Pinned", Condition={
        "StringNotEqualsIgnoreCase": {"kms:RecipientAttestation:ImageSha384": "A1" * 48}})
    assert problems(stack(policy)) == []
    # A key both forms pin: StringNotEquals is stricter still, so it counts as well.
    policy = edit(attested_policy(), "DenyPlaintextUnlessPCR1Pinned", Condition={
        "StringNotEquals": {"kms:RecipientAttestation:PCR1": "b2" * 48}})
    assert problems(stack(policy)) == []


@pytest.mark.parametrize("mutate, fragment", [
    # The attested Allow weakened.
    (lambda p: edit(p, "DecryptWithAttestation", Condition=None), "without attestation conditions on "
     "PCR0, PCR1, PCR2"),
    (lambda p: edit(p, "DecryptWithAttestation", Condition={"StringEqualsIgnoreCase": {
        "kms:RecipientAttestation:PCR0": "a1" * 48}}), "without attestation conditions on PCR1, PCR2"),
    (lambda p: edit(p, "DecryptWithAttestation", Condition={"StringEqualsIgnoreCaseIfExists": {
        f"kms:RecipientAttestation:PCR{n}": "a1" * 48 for n in range(3)}}), "without attestation"),
    (lambda p: edit(p, "DecryptWithAttestation", Principal={"AWS": "*"}), "to any principal"),
    # Debug-mode or malformed measurements.
    (lambda p: p.replace("a1" * 48, "0" * 96), "PCR0 is all zeros"),
    (lambda p: p.replace("b2" * 48, "b2" * 32), "PCR1 '" + "b2" * 32 + "' is not a SHA-384"),
    # The per-PCR denies for everyone missing, narrowed, or pinning something else.
    (lambda p: edit(p, "DenyPlaintextUnlessPCR0Pinned", Effect="Allow", Action=["kms:DescribeKey"]),
     "does not deny kms:Decrypt, kms:ReEncryptFrom to every principal unless PCR0 is the pinned value"),
    (lambda p: edit(p, "DenyPlaintextUnlessPCR2Pinned", Action=["kms:Decrypt"]),
     "does not deny kms:ReEncryptFrom to every principal unless PCR2 is the pinned value"),
    (lambda p: edit(p, "DenyPlaintextUnlessPCR1Pinned", Principal={"AWS": ROLE}),
     "unless PCR1 is the pinned value"),
    (lambda p: edit(p, "DenyPlaintextUnlessPCR0Pinned", Condition={
        "StringNotEqualsIgnoreCase": {"kms:RecipientAttestation:PCR0": "a1" * 48},
        "StringEquals": {"aws:PrincipalAccount": "999999999999"}}), "unless PCR0 is the pinned value"),
    # IfExists: reads as the same, but the pack takes only the shape KeyHierarchy writes.
    (lambda p: edit(p, "DenyPlaintextUnlessPCR0Pinned", Condition={
        "StringNotEqualsIgnoreCaseIfExists": {"kms:RecipientAttestation:PCR0": "a1" * 48}}),
     "unless PCR0 is the pinned value"),
    # One statement for all PCRs: its keys are ANDed, so it denies only an enclave that differs in all.
    (lambda p: edit(p, "DenyPlaintextUnlessPCR0Pinned", Condition={"StringNotEqualsIgnoreCase": {
        f"kms:RecipientAttestation:PCR{n}": v * 48 for n, v in enumerate(("a1", "b2", "c3"))}}),
     "unless PCR0 is the pinned value"),
    (lambda p: edit(p, "DenyPlaintextUnlessPCR2Pinned", Condition={
        "StringNotEqualsIgnoreCase": {"kms:RecipientAttestation:PCR2": ["c3" * 48, "0" * 96]}}),
     "denies unless PCR2 is all zeros, the measurement of a debug-mode enclave"),
    (lambda p: edit(p, "DenyPlaintextUnlessPCR2Pinned", Condition={
        "StringNotEqualsIgnoreCase": {"kms:RecipientAttestation:PCR2": ["c3" * 48, "ee" * 48]}}),
     "but the attested Allows pin ['" + "c3" * 48 + "']"),
    (lambda p: edit(p, "DenyPlaintextUnlessPCR1Pinned", Condition={
        "StringNotEqualsIgnoreCase": {"kms:RecipientAttestation:PCR1": "ee" * 48}}),
     "does not deny kms:Decrypt, kms:ReEncryptFrom to every principal unless PCR1 is the pinned value"),
    # The role's deny without attestation.
    (lambda p: edit(p, "DenyWithoutAttestation", Action=["kms:Decrypt"]),
     f"does not deny {ROLE} kms:ReEncryptTo, kms:GenerateDataKey"),
    (lambda p: edit(p, "DenyWithoutAttestation", Condition={
        "Null": {"kms:RecipientAttestation:PCR0": "false"}}), f"does not deny {ROLE}"),
])
def test_weakened_policies_are_caught(mutate: Any, fragment: str) -> None:
    found = problems(stack(mutate(attested_policy())))
    assert any(fragment in message for message in found), found


@pytest.mark.parametrize("grant, fragment", [
    (_Grant("Decrypt", {"AWS": "arn:aws:iam::111122223333:role/analyst"}, ("kms:Decrypt",)),
     "role/analyst without attestation conditions"),
    (_Grant("ThroughS3", {"AWS": "arn:aws:iam::111122223333:role/app"}, ("kms:Decrypt",),
            lambda a, r: {"StringEquals": {"kms:ViaService": f"s3.{r}.amazonaws.com"}}),
     "role/app without attestation conditions"),
    (_Grant("Rewrap", {"AWS": "arn:aws:iam::111122223333:role/ops"}, ("kms:ReEncrypt*",)),
     "allows kms:ReEncryptFrom to arn:aws:iam::111122223333:role/ops"),
    (_Grant("Admin", {"AWS": "arn:aws:iam::111122223333:role/ops"}, ("kms:*",)),
     "role/ops without attestation conditions"),
])
def test_any_other_plaintext_path_is_caught(grant: _Grant, fragment: str) -> None:
    policy = attested_policy(extra=[(grant, dict(grant.principal))])
    found = problems(stack(policy))
    assert any(fragment in message for message in found), found


def test_break_glass_is_exempt_only_when_configured() -> None:
    found = problems(stack(attested_policy(glass=GLASS)))
    assert any(f"allows kms:Decrypt to {GLASS} without attestation" in m for m in found), found


def test_kms_grants_on_the_model_key_are_caught() -> None:
    resources = stack(attested_policy())
    key_urn = resources[0].urn
    grant = res(GRANT, "side-door", deps={"keyId": [key_urn]}, operations=["Decrypt"],
                granteePrincipal="arn:aws:iam::111122223333:role/analyst")
    describe = res(GRANT, "describe", deps={"keyId": [key_urn]}, operations=["DescribeKey"])
    found = model_key_attestation_required([*resources, grant, describe], NO_CONFIG)
    assert urns(found) == {"side-door"}
    assert "a grant cannot require enclave attestation" in found[0].message


# -- who may rewrite the model key's policy; how policies are linked to it ------------------------
@pytest.mark.parametrize("principal", [
    "arn:aws:iam::111122223333:root", "arn:aws-us-gov:iam::111122223333:root", "111122223333", "*"])
@pytest.mark.parametrize("action", ["kms:PutKeyPolicy", "kms:*", "kms:Put*"])
def test_put_key_policy_for_the_account_root_or_anyone_is_caught(principal: str, action: str) -> None:
    policy = edit(attested_policy(), "AdministerWithoutUse", Principal={"AWS": principal},
                  Action=[action] if action != "kms:PutKeyPolicy" else ["kms:DescribeKey", action])
    found = problems(stack(policy))
    assert any(f"statement AdministerWithoutUse allows kms:PutKeyPolicy to {principal}" in m
               and "drop the attestation denies" in m for m in found), found


def test_the_root_administered_policy_keyhierarchy_wrote_before_is_caught() -> None:
    root_administered = attested_policy(administrators=())
    found = problems(stack(root_administered))
    assert found == ["model key keys-model-weights (policy keys-model-weights-policy) statement "
                     "AdministerWithoutUse allows kms:PutKeyPolicy to arn:aws:iam::111122223333:root: "
                     "any IAM principal allowed kms:PutKeyPolicy could rewrite the policy, drop the "
                     "attestation denies and decrypt; name the key administrator roles "
                     "(keyAdministratorRoleArns)"]


def test_a_second_key_policy_naming_the_key_by_its_arn_is_caught() -> None:
    resources = stack(attested_policy())
    key_arn = "arn:aws:kms:eu-west-1:111122223333:key/key-1"
    weak = res(KEY_POLICY, "side-policy", keyId=key_arn,
               policy=edit(attested_policy(), "DenyPlaintextUnless", Effect="Allow"))
    found = model_key_attestation_required([*resources, weak], NO_CONFIG)
    assert "side-policy" in urns(found)
    assert any("has 2 key policies (keys-model-weights-policy, side-policy)" in f.message
               and "last write wins" in f.message for f in found)
    # Its own weaknesses are read too, now that it is linked to the model key.
    assert any(f.urn.endswith("side-policy") and "does not deny" in f.message for f in found)
    # The same by key id; a policy of another key (by ARN) is not linked.
    by_id = res(KEY_POLICY, "by-id", keyId="key-1", policy=attested_policy())
    assert any("has 2 key policies" in m for m in problems([*resources, by_id]))
    other = res(KEY_POLICY, "other", keyId="arn:aws:kms:eu-west-1:111122223333:key/key-2",
                policy="{}")
    assert problems([*resources, other]) == []


def test_a_grant_or_alias_naming_the_key_by_its_arn_is_linked() -> None:
    resources = stack(attested_policy(), tag=False)
    key_arn = "arn:aws:kms:eu-west-1:111122223333:key/key-1"
    alias = Resource(type=ALIAS, name="by-arn", urn="by-arn", property_dependencies={},
                     props={"name": "alias/zero-trust-ai/dev/model-weights", "targetKeyId": key_arn})
    grant = res(GRANT, "side-door", keyId=key_arn, operations=["Decrypt"])
    found = model_key_attestation_required([*resources, alias, grant], NO_CONFIG)
    assert urns(found) == {"side-door"}


@pytest.mark.parametrize("token", ["aws-native:kms:Key", "aws-native:kms:ReplicaKey"])
def test_aws_native_kms_resources_are_reported_unsupported(token: str) -> None:
    native = res(token, "native-key", keyPolicy={"Statement": []})
    found = model_key_attestation_required([*stack(attested_policy()), native], NO_CONFIG)
    assert urns(found) == {"native-key"}
    assert "aws-native provider are not supported" in found[0].message
