"""The {{ }} engine: every function, data fields, placeholders that render later, and errors."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime

import pytest

from kiln import PACKER_COMPATIBLE_VERSION
from kiln.errors import TemplateError
from kiln.template import InterpContext, render
from kiln.template.gotime import INIT_TIME, go_format, strftime
from kiln.template.interpolate import UnknownUserVariable, compile_template, references

CTX = InterpContext(
    user_variables={"fruit": "apple", "csv": "a,b,c"},
    template_dir="/srv/tpl",
    build_name="web",
    build_type="null",
    data={"Path": "/tmp/script.sh", "Vars": "A='1'", "Nested": {"Inner": "deep"}},
    generated={"ID": "Null", "Count": 3},
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain", "plain"),
        ("echo {{ user `fruit` }} > {{user `fruit`}}.txt", "echo apple > apple.txt"),
        ("{{build_name}}/{{ build_type }}", "web/null"),
        ("{{ template_dir }}", "/srv/tpl"),
        ("{{ packer_version }}", PACKER_COMPATIBLE_VERSION),
        ("{{ split (user `csv`) `,` 2 }}", "c"),
        ('{{ replace "p" "P" 1 "apple" }}', "aPple"),
        ('{{ replace "p" "P" -1 "apple" }}', "aPPle"),
        ("{{ replace_all `p` `b` (user `fruit`) }}", "abble"),
        ("{{ upper `abc` }}{{ lower `DEF` }}", "ABCdef"),
        ("{{ user `fruit` | upper }}", "APPLE"),
        ("{{ `a-b` | replace_all `-` `_` | upper }}", "A_B"),
        ("chmod +x {{.Path}}; {{.Vars}} {{.Path}}", "chmod +x /tmp/script.sh; A='1' /tmp/script.sh"),
        ("{{ .Nested.Inner }}", "deep"),
        ("{{ build `ID` }}-{{ build `Count` }}", "Null-3"),
        ("a {{- `b` -}} c", "abc"),
        ("x{{/* a comment */}}y", "xy"),
        ('{{ "tab\\there" }}', "tab\there"),
        ("{{ print 1 2 `s` }}", "1 2s"),
        ("{{ len `abcd` }}", "4"),
        ("{{ eq (user `fruit`) `apple` }}", "true"),
        ("{{ pwd }}", os.getcwd()),
    ],
)
def test_render(text: str, expected: str) -> None:
    assert render(text, CTX) == expected


def test_time_functions_share_one_instant() -> None:
    stamp = render("{{timestamp}}", CTX)
    assert stamp == str(int(INIT_TIME.timestamp()))
    iso = render("{{isotime}}", CTX)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", iso)
    assert datetime.fromisoformat(iso.replace("Z", "+00:00")) == INIT_TIME.replace(microsecond=0)
    assert render("{{isotime `2006`}}", CTX) == str(INIT_TIME.year)
    assert render("{{strftime `%Y%m%d`}}", CTX) == INIT_TIME.strftime("%Y%m%d")


@pytest.mark.parametrize(
    ("layout", "expected"),
    [
        ("2006-01-02T15:04:05Z07:00", "2009-11-10T23:04:05Z"),
        ("Mon Jan _2 15:04:05 MST 2006", "Tue Nov 10 23:04:05 UTC 2009"),
        ("20060102150405", "20091110230405"),
        ("3:04PM", "11:04PM"),
        ("2006-01-02 15:04:05.000", "2009-11-10 23:04:05.123"),
        ("Monday, January 2 -07:00 .999", "Tuesday, November 10 +00:00 .123"),
        ("Month 060102", "Month 091110"),
    ],
)
def test_go_layouts(layout: str, expected: str) -> None:
    assert go_format(layout, datetime(2009, 11, 10, 23, 4, 5, 123456, tzinfo=UTC)) == expected


def test_strftime_directives() -> None:
    t = datetime(2009, 11, 10, 23, 4, 5, tzinfo=UTC)
    assert strftime("%Y-%m-%d %H:%M:%S %a %b %j %% %Q", t) == "2009-11-10 23:04:05 Tue Nov 314 % %Q"


def test_uuid_is_unique_and_shaped() -> None:
    a, b = render("{{uuid}}", CTX), render("{{uuid}}", CTX)
    assert a != b
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", a)


def test_unknown_things_are_left_for_a_later_render() -> None:
    early = InterpContext(user_variables={"fruit": "apple"})
    text = "id={{ build `ID` }} ip={{ .HTTPIP }} fruit={{ user `fruit` }}"
    first = render(text, early)
    assert first == "id={{ build `ID` }} ip={{ .HTTPIP }} fruit=apple"
    late = InterpContext(data={"HTTPIP": "10.0.2.2"}, generated={"ID": "i-1"})
    assert render(first, late) == "id=i-1 ip=10.0.2.2 fruit=apple"


def test_env_only_where_allowed() -> None:
    with pytest.raises(TemplateError, match="env vars are not allowed here"):
        render("{{ env `HOME` }}", CTX)
    ctx = InterpContext(allow_env=True, environ={"FRUIT": "pear"})
    assert render("{{ env `FRUIT` }}{{ env `NOPE` }}", ctx) == "pear"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{{ nope }}", 'function "nope" not defined'),
        ("{{ user `x`", "unclosed action"),
        ("{{ if true }}x{{ end }}", '"if" is not supported'),
        ("{{ $x := 1 }}", "not supported"),
        ('{{ "open }}', "unterminated quoted string"),
        ("{{ (upper `a` }}", "unclosed left paren"),
        ("{{ }}", "missing value"),
        ("{{ split `a` `,` 4 }}", "the substring 4 was unavailable"),
        ("{{ upper }}", "wrong number of args for upper"),
        ("{{ .Missing }}", "can't evaluate field Missing"),
        ("{{ build `Nope` }}", "couldn't find Nope"),
        ("{{ vault `a` `b` }}", "only allowed in the variables section"),
        ("{{ sed `s/a/b/` `a` }}", "deprecated"),
        ("{{ .Path `x` }}", "can't give argument to non-function"),
        ("{{/* open", "unclosed comment"),
        ("{{ replace `a` `b` 99999999999999999999999 `a` }}", "overflows int"),
        ("{{ isotime 1 }}", "expected string; got int"),
    ],
)
def test_errors(text: str, message: str) -> None:
    with pytest.raises(TemplateError) as info:
        render(text, CTX)
    assert message in info.value.message
    assert "\n" not in info.value.message


def test_unknown_user_variable() -> None:
    with pytest.raises(UnknownUserVariable) as info:
        render("{{ user `ghost` }}", CTX)
    assert info.value.name == "ghost"
    assert 'user variable "ghost" is not defined' in info.value.message


def test_build_name_unavailable() -> None:
    with pytest.raises(TemplateError, match="build_name not available"):
        render("{{ build_name }}", InterpContext())
    with pytest.raises(TemplateError, match="template path not available"):
        render("{{ template_dir }}", InterpContext())


def test_compiled_once() -> None:
    compile_template.cache_clear()
    for _ in range(3):
        render("{{ user `fruit` }}-cached", CTX)
    info = compile_template.cache_info()
    assert info.misses == 1 and info.hits == 2


def test_references() -> None:
    assert references("{{user `a`}} {{ upper (user `b`) }} {{ env `C` }}", "user") == ["a", "b"]
    assert references("{{ broken", "user") == []
