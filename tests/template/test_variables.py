"""User variables: precedence, env, references between variables, required, undeclared, secrets."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kiln.core.secrets import REDACTOR
from kiln.errors import TemplateError, TemplateProblems
from kiln.template import load_template, parse_var_flag, resolve_variables
from kiln.template.model import Template


@pytest.fixture(autouse=True)
def clean_redactor() -> Iterator[None]:
    REDACTOR.clear()
    yield
    REDACTOR.clear()


def template(tmp_path: Path, variables: dict[str, Any], **extra: Any) -> Template:
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"variables": variables, "builders": [{"type": "null"}], **extra}))
    return load_template(str(path))


def var_file(tmp_path: Path, name: str, values: dict[str, Any]) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(values))
    return str(path)


def test_precedence(tmp_path: Path) -> None:
    tpl = template(tmp_path, {"a": "default", "b": "default", "c": "default", "d": "default"})
    first = var_file(tmp_path, "1.json", {"a": "file1", "b": "file1", "c": "file1"})
    second = var_file(tmp_path, "2.json", {"b": "file2", "c": "file2"})
    values = resolve_variables(tpl, [first, second], [("c", "cli1"), ("c", "cli2")], {})
    assert values == {"a": "file1", "b": "file2", "c": "cli2", "d": "default"}


def test_env_and_references_in_any_order(tmp_path: Path) -> None:
    tpl = template(
        tmp_path,
        {
            "bang": "bang{{user `baz`}}",
            "baz": "{{user `foo`}}baz",
            "foo": "{{ env `FOO` }}",
            "dir": "{{ template_dir }}",
            "later": "{{ .HTTPIP }}/{{ build `ID` }}",
        },
    )
    values = resolve_variables(tpl, [], [("foo", "{{ env `CLI` }}x")], {"FOO": "unused", "CLI": "c"})
    assert values["foo"] == "cx" and values["baz"] == "cxbaz" and values["bang"] == "bangcxbaz"
    assert values["dir"] == str(tmp_path)
    assert values["later"] == "{{ .HTTPIP }}/{{ build `ID` }}"


def test_required_variables_all_reported(tmp_path: Path) -> None:
    tpl = template(tmp_path, {"a": None, "b": None, "c": "x"})
    with pytest.raises(TemplateProblems) as info:
        resolve_variables(tpl, [], [], {})
    assert info.value.problems == ["required variable not set: a", "required variable not set: b"]
    assert resolve_variables(tpl, [], [("a", "1"), ("b", "")], {})["b"] == ""


def test_undeclared_cli_variable(tmp_path: Path) -> None:
    tpl = template(tmp_path, {"a": "x"})
    with pytest.raises(TemplateProblems) as info:
        resolve_variables(tpl, [], [("ghost", "1")], {})
    assert "the variable is not declared" in info.value.problems[0]
    assert info.value.hint and "ghost" in info.value.hint


def test_bad_references(tmp_path: Path) -> None:
    tpl = template(tmp_path, {"a": "{{user `b`}}", "b": "{{user `a`}}", "c": "{{user `nope`}}",
                              "d": "{{ nope }}", "e": "{{ user `e` }}"})  # fmt: skip
    with pytest.raises(TemplateProblems) as info:
        resolve_variables(tpl, [], [], {})
    text = "\n".join(info.value.problems)
    assert "variables.c: uses user variable 'nope', which is not defined" in text
    assert "variables.d: error interpolating default value" in text
    assert "variables.e: refers to itself" in text
    assert "cycle: a -> b, b -> a" in text


def test_var_file_problems(tmp_path: Path) -> None:
    tpl = template(tmp_path, {"a": "x"})
    with pytest.raises(TemplateError, match=r"potato\.json: no such var file"):
        resolve_variables(tpl, [str(tmp_path / "potato.json")], [], {})
    bad = tmp_path / "bad.json"
    bad.write_text('{"a": 1,}')
    with pytest.raises(TemplateError, match=r"bad.json: Error parsing JSON: .* line 1, column 9"):
        resolve_variables(tpl, [str(bad)], [], {})
    with pytest.raises(TemplateProblems, match="expected a string value, got number"):
        resolve_variables(tpl, [var_file(tmp_path, "n.json", {"a": 3})], [], {})
    with pytest.raises(TemplateError, match="must be a JSON object"):
        resolve_variables(tpl, [var_file(tmp_path, "l.json", ["a"])], [], {})  # type: ignore[arg-type]


def test_sensitive_values_returned(tmp_path: Path) -> None:
    tpl = template(tmp_path, {"password": "{{ env `PW` }}", "plain": "visible"},
                   **{"sensitive-variables": ["password"]})  # fmt: skip
    resolve_variables(tpl, [], [], {"PW": "hunter22\nsecond-line"})
    assert tpl.sensitive_values == ["hunter22\nsecond-line"]
    assert REDACTOR.secrets == frozenset()  # the caller registers them, not the template package


def test_parse_var_flag() -> None:
    assert parse_var_flag("a=b=c") == ("a", "b=c")
    assert parse_var_flag("a=") == ("a", "")
    with pytest.raises(TemplateError, match="No '=' value in arg"):
        parse_var_flag("novalue")
    with pytest.raises(TemplateError, match="name is empty"):
        parse_var_flag("=x")
