"""The committed OCSF class schemas are exactly what ocsf-json-schema generates, and `validate`
refuses what OCSF refuses."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from ztai_runtime.siem import schemas
from ztai_runtime.siem.ocsf import OCSF_VERSION, to_ocsf
from ztai_runtime.siem.schemas import CLASSES, SCHEMA_DIR, generate, load_schema, validate
from ztai_runtime.siem.schemas.__main__ import main

FLOW = "2 111122223333 eni-0a1b 10.0.1.23 10.0.2.40 49152 443 6 10 5120 1796638500 1796638560 ACCEPT OK"


def test_committed_schemas_are_the_generated_ones() -> None:
    fresh = generate()
    assert sorted(fresh) == sorted(f"{name}.json" for name in CLASSES.values())
    assert sorted(path.name for path in SCHEMA_DIR.glob("*.json")) == sorted(fresh)
    for name, text in fresh.items():
        assert (SCHEMA_DIR / name).read_text(encoding="utf-8") == text, (
            f"{name} differs from what ocsf-json-schema generates: run python -m ztai_runtime.siem.schemas")


@pytest.mark.parametrize(("class_uid", "name"), sorted(CLASSES.items()))
def test_each_schema_is_its_class_at_the_pinned_version_with_the_cloud_profile(class_uid: int,
                                                                              name: str) -> None:
    schema = load_schema(class_uid)
    assert schema["$id"] == f"https://schema.ocsf.io/schema/{OCSF_VERSION}/classes/{name}?profiles=cloud"
    assert schema["properties"]["class_uid"]["const"] == class_uid
    assert "cloud" in schema["required"]
    assert schema["additionalProperties"] is False


def test_check_passes_on_the_committed_schemas(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--check"]) == 0
    assert capsys.readouterr().err == ""


def test_check_names_a_schema_that_drifted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    for path in SCHEMA_DIR.glob("*.json"):
        (tmp_path / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    edited = tmp_path / "http_activity.json"
    text = edited.read_text(encoding="utf-8")
    edited.write_text(text.replace('"integer"', '"number"', 1), encoding="utf-8")
    (tmp_path / "dns_activity.json").unlink()
    monkeypatch.setattr("ztai_runtime.siem.schemas.__main__.SCHEMA_DIR", tmp_path)
    assert main(["--check"]) == 1
    err = capsys.readouterr().err
    assert "http_activity.json differs" in err and "dns_activity.json differs" in err
    assert "api_activity.json" not in err
    # Without --check the stale files are written again, and then the check passes.
    assert main([]) == 0
    assert "wrote" in capsys.readouterr().out
    assert main(["--check"]) == 0


def test_generating_without_the_package_says_what_to_install(monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "ocsf_json_schema", None)  # import raises ImportError
    assert main(["--check"]) == 2
    assert "ocsf-json-schema is not installed" in capsys.readouterr().err


def test_an_ocsf_version_the_package_does_not_bundle_is_named(monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match=r"no OCSF 9\.9\.9 export .* it has .*1\.7\.0"):
        generate("9.9.9")
    monkeypatch.setattr("ztai_runtime.siem.schemas.__main__.generate", lambda: generate("9.9.9"))
    assert main([]) == 2
    assert "no OCSF 9.9.9 export" in capsys.readouterr().err


# -- validate ------------------------------------------------------------------------------------

def valid_flow_event() -> dict[str, Any]:
    event = to_ocsf(FLOW)
    assert event is not None
    assert validate(event) == []
    return event


@pytest.mark.parametrize("value", [None, "{}", [], 6003])
def test_validate_wants_an_object(value: Any) -> None:
    assert validate(value) == [f"an OCSF event is a JSON object, not {type(value).__name__}"]


@pytest.mark.parametrize("class_uid", [None, 2001, "4001", True])  # 2001: Security Finding
def test_validate_names_the_classes_it_knows(class_uid: Any) -> None:
    event = valid_flow_event()
    event["class_uid"] = class_uid
    problems = validate(event)
    assert len(problems) == 1
    assert f"class_uid {class_uid!r} is not a class the SIEM stream emits" in problems[0]
    assert "6003 api_activity" in problems[0] and "4001 network_activity" in problems[0]


@pytest.mark.parametrize(("change", "where"), [
    (lambda e: e.pop("cloud"), "(event)"),                    # the cloud profile requires it
    (lambda e: e["metadata"].pop("product"), "metadata"),
    (lambda e: e.update(time="2026-12-07T10:15:42Z"), "time"),  # epoch milliseconds, not text
    (lambda e: e.update(type_uid=600302), "type_uid"),  # another class's type
    (lambda e: e.update(activity_id=42), "activity_id"),
    (lambda e: e.update(severity_id=7), "severity_id"),
    (lambda e: e["src_endpoint"].update(ip="08.1.250.216"), "src_endpoint/ip"),
    (lambda e: e.update(colour="blue"), "(event)"),           # no field outside the schema
    (lambda e: e.pop("src_endpoint") and e.pop("dst_endpoint"), "(event)"),
    (lambda e: e["src_endpoint"].update(port=70000), "src_endpoint/port"),
])
def test_validate_refuses_what_ocsf_refuses(change: Any, where: str) -> None:
    event = valid_flow_event()
    change(event)
    problems = validate(event)
    assert problems, "the change should have made the event invalid"
    assert any(problem.startswith(f"{where}: ") for problem in problems), problems


def test_validate_accepts_anything_in_unmapped() -> None:
    event = valid_flow_event()
    event["unmapped"] = {"a": [None, {"b": 1.5}], "c": None}
    assert validate(event) == []


def test_a_validated_event_is_not_changed() -> None:
    event = valid_flow_event()
    before = copy.deepcopy(event)
    validate(event)
    assert event == before
    assert json.loads(json.dumps(event)) == before


def test_validate_is_importable_without_loading_the_validator() -> None:
    # The runtime imports the module; jsonschema_rs is loaded only by a call to validate.
    assert "jsonschema_rs" not in vars(schemas)
