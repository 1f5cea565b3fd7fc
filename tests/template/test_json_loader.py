"""The JSON loader: syntax errors located like Packer's, structural problems all at once with their
paths, and the parse/validate outcome of every template fixture of Packer's SDK tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kiln.errors import TemplateError, TemplateProblems
from kiln.template import load_template, validate_template
from kiln.template.json_loader import check_min_version
from tests.conformance_suite import SUITE, need_suite

FIXTURES = SUITE / "fixtures" / "template"


def _parse_cases() -> list[dict[str, object]]:
    if not SUITE.exists():
        return []
    cases = json.loads((SUITE / "cases.json").read_text())["cases"]
    return [c for c in cases if c["category"] == "template-parse"]


@pytest.mark.parametrize("case", _parse_cases(), ids=lambda c: str(c["id"]))
def test_sdk_parse_expectations(case: dict[str, object], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(FIXTURES)
    path = str(case["args"][-1])  # type: ignore[index]
    expected = case["parse"]
    assert isinstance(expected, dict)
    if expected["outcome"] == "error":
        with pytest.raises(TemplateError) as info:
            load_template(path)
        text = info.value.render()
        if "line" in expected:
            where = f"line {expected['line']}, column {expected['column']} (offset {expected['offset']})"
            assert where in text
        for check in case.get("output", []):  # type: ignore[attr-defined]
            assert check["contains"] in text
        return
    tpl = load_template(path)
    if "template_validate" in expected:
        if expected["template_validate"] == "ok":
            validate_template(tpl)
        else:
            with pytest.raises(TemplateProblems):
                validate_template(tpl)


def write(tmp_path: Path, text: str, name: str = "t.json") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def problems_of(path: str) -> list[str]:
    with pytest.raises(TemplateProblems) as info:
        load_template(path)
    return info.value.problems


def test_monolithic_template_model(monkeypatch: pytest.MonkeyPatch) -> None:
    need_suite()
    monkeypatch.chdir(FIXTURES)
    tpl = load_template("test-fixtures/parse-monolithic.json")
    assert tpl.description == "Description Test"
    assert tpl.min_version == "1.3.0"
    assert tpl.variables["three"].required and tpl.variables["one"].default == "1"
    assert tpl.variables["one"].sensitive and tpl.sensitive_variables == ["one"]
    assert [b.name for b in tpl.builders] == ["amazon-ebs", "docker"]
    assert tpl.provisioners[1].override == {"docker": {"execute_command": "echo 'override'"}}
    assert "override" not in tpl.provisioners[1].config
    chain = tpl.post_processors[0]
    assert [(p.type, p.path) for p in chain] == [
        ("compress", "post-processors[0][0]"),
        ("vagrant", "post-processors[0][1]"),
    ]
    assert chain[1].only == ["docker"] and "only" not in chain[1].config
    assert tpl.post_processors[1][0].except_ == ["amazon-ebs"]
    assert tpl.dir == FIXTURES / "test-fixtures"
    assert tpl.display_path == "test-fixtures/parse-monolithic.json"


def test_every_problem_at_once_with_paths(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        json.dumps(
            {
                "bogus": 1,
                "_comment": "fine",
                "variables": {"n": 3},
                "builders": [{"type": "null"}, {"name": "x"}, {"type": "null"}],
                "provisioners": [{"type": "shell", "pause_before": "soon", "max_retries": "many"}],
                "post-processors": [[["nested"]], 5, {"type": "x", "keep_input_artifact": "yes"}],
            }
        ),
    )
    problems = problems_of(path)
    assert "Unknown root level key in template: 'bogus'" in problems
    assert any(p.startswith("variables.n: expected a string default") for p in problems)
    assert "builders[1]: missing 'type'" in problems
    assert "builders[2].name: builder with name 'null' already exists" in problems
    assert any(p.startswith("provisioners[0].pause_before: invalid duration") for p in problems)
    assert any(p.startswith("provisioners[0].max_retries:") for p in problems)
    assert "post-processors[0][0]: sequence not allowed to be nested in a sequence" in problems
    assert any(p.startswith("post-processors[1]: bad format") for p in problems)
    assert any(p.startswith("post-processors[2].keep_input_artifact:") for p in problems)
    assert len(problems) == 9


def test_provisioner_fields(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        json.dumps(
            {
                "builders": [{"type": "null", "name": "a"}, {"type": "null", "name": "b"}],
                "provisioners": [
                    {
                        "type": "shell-local",
                        "only": "a",
                        "pause_before": "1m30s",
                        "timeout": "5s",
                        "max_retries": 3,
                        "inline": ["x"],
                    },
                    {"type": "shell-local", "max_retries": "{{user `n`}}", "except": ["b"]},
                ],
                "error-cleanup-provisioner": {"type": "shell-local", "inline": ["echo"]},
                "push": {"name": "ignored"},
            }
        ),
    )
    tpl = load_template(path)
    first, second = tpl.provisioners
    assert first.only == ["a"] and first.pause_before == 90 and first.timeout == 5
    assert first.max_retries == 3 and first.config == {"inline": ["x"]}
    assert second.max_retries_text == "{{user `n`}}" and second.except_ == ["b"]
    assert tpl.error_cleanup_provisioner is not None
    assert tpl.error_cleanup_provisioner.path == "error-cleanup-provisioner"
    validate_template(tpl)
    assert tpl.provisioners[0].applies_to("a") and not tpl.provisioners[0].applies_to("b")


def test_post_processor_forms_and_default_name(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        json.dumps(
            {
                "builders": [{"type": "null"}],
                "post-processors": [
                    "checksum",
                    {"type": "manifest", "name": "m", "keep_input_artifact": True, "output": "x"},
                    ["compress", {"type": "shell-local"}],
                ],
            }
        ),
    )
    tpl = load_template(path)
    assert [[p.name for p in chain] for chain in tpl.post_processors] == [
        ["checksum"], ["m"], ["compress", "shell-local"],
    ]  # fmt: skip
    assert tpl.post_processors[1][0].keep_input_artifact is True
    assert tpl.post_processors[1][0].config == {"output": "x"}
    assert tpl.post_processors[0][0].keep_input_artifact is None


def test_only_and_except_together(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        json.dumps({"builders": [{"type": "null"}], "provisioners": [
            {"type": "shell-local", "only": ["null"], "except": ["null"]}]}),
    )  # fmt: skip
    with pytest.raises(TemplateProblems) as info:
        validate_template(load_template(path))
    assert info.value.problems == ["provisioners[0]: only one of 'only' or 'except' may be specified"]


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('{"builders": [1,]}', "line 1, column 17 (offset 17)"),
        ('{"a": NaN}', "line 1, column 7 (offset 7)"),
        ('{"a": "x', "line 1, column 8 (offset 8)"),
        ("", "line 1, column 0 (offset 0)"),
        ('{"a":\n  "é" x}', "line 2, column 9 (offset 14)"),
    ],
)
def test_syntax_error_positions(tmp_path: Path, text: str, where: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(TemplateError) as info:
        load_template(path)
    assert where in info.value.message
    assert "\n" not in info.value.message
    assert info.value.hint is not None and "^" in info.value.hint


def test_not_an_object_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="must be a JSON object, got list"):
        load_template(write(tmp_path, "[]"))
    with pytest.raises(TemplateError, match="no such template file"):
        load_template(str(tmp_path / "absent.json"))
    with pytest.raises(TemplateError, match=r"no \.pkr\.hcl files in this folder"):
        load_template(str(tmp_path))


def test_deep_nesting_is_a_template_error(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="nest more than 64 levels deep at line 1, column 65"):
        load_template(write(tmp_path, "[" * 100000))
    # brackets inside strings do not count; 64 levels are fine
    text = '{"a": "' + "[" * 100 + '", "b": ' + "[" * 63 + "]" * 63 + "}"
    with pytest.raises(TemplateError, match="Unknown root level key in template: 'a'"):
        load_template(write(tmp_path, text))


def test_duplicate_fields_all_listed(tmp_path: Path) -> None:
    with pytest.raises(TemplateError) as info:
        load_template(write(tmp_path, '{"a": 1, "a": 2, "b": {"c": 1, "c": 1}}'))
    assert "template has duplicate field: a" in info.value.message
    assert "template has duplicate field: c" in info.value.message


def test_min_packer_version() -> None:
    check_min_version("1.3.0")
    check_min_version("v1.16")
    with pytest.raises(TemplateError) as info:
        check_min_version("101.0.0")
    assert info.value.message.startswith("This template requires Packer version 101.0.0 or higher; using ")
    with pytest.raises(TemplateError) as info:
        check_min_version("1.5", version="1.4.9")
    assert info.value.message == "This template requires Packer version 1.5.0 or higher; using 1.4.9"
    with pytest.raises(TemplateError, match="min_version is invalid"):
        check_min_version("one")


def test_min_version_checked_after_structure(tmp_path: Path) -> None:
    path = write(tmp_path, json.dumps({"min_packer_version": "101.0.0"}))
    tpl = load_template(path)  # parsing alone does not check versions (validate -syntax-only)
    with pytest.raises(TemplateProblems, match="at least one builder"):
        validate_template(tpl)


def test_stdin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    import sys

    data = io.TextIOWrapper(io.BytesIO(b'{"builders": [{"type": "null"}]}'))
    monkeypatch.setattr(sys, "stdin", data)
    monkeypatch.chdir(tmp_path)
    tpl = load_template("-")
    assert tpl.path is None and tpl.dir == tmp_path and tpl.display_path == "<stdin>"
