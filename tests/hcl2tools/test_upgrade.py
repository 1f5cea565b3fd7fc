"""hcl2_upgrade: the value writer, the `{{ }}` rewriting, whole conversions against Packer's expected
files, the round trip through kiln's own HCL2 loader, and the command's report of what it could not
convert."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from kiln.duration import go_duration
from kiln.template.hcl2.loader import load_hcl2_template, parse_hcl_file
from kiln.template.hcl2.upgrade import body_text, upgrade, value_text
from kiln.template.hcl2.upgrade_tpl import (
    UpgradeState,
    fix_quoting,
    referenced_user_variables,
    transpose,
    variable_transpose,
)
from kiln.template.json_loader import load_json_template
from tests.conformance_suite import need_suite

from .conftest import FIXTURES, Kiln

UPGRADE_FIXTURES = sorted(p.parent.name for p in FIXTURES.glob("hcl2_upgrade/*/input.json"))
#: the fixtures Packer's test converts with -with-annotations
ANNOTATED = {"complete", "minimal", "source-name", "error-cleanup-provisioner"}


def test_values_are_written_as_hclwrite_writes_them() -> None:
    assert value_text('a"b\\c\n${x} %{y} $z') == '"a\\"b\\\\c\\n$${x} %%{y} $z"'
    assert value_text(48.0) == "48"
    assert value_text(0.5) == "0.5"
    assert value_text([True, None, "x"]) == '[true, null, "x"]'
    assert value_text({"b": 1, "a-b": 2, "1x": 3}) == '{\n"1x" = 3\na-b = 2\nb = 1\n}'
    assert value_text({}) == "{}"


def test_json_objects_become_blocks_or_attributes_like_packer() -> None:
    body = body_text(
        {
            "tags": {"a": "1"},
            "filter": {"inner": {"x": 1}},
            "disks": [{"size": 1}, {"size": 2}],
            "names": ["a"],
            "empty": [],
            "linux_options": {"host": "h"},
        }
    )
    assert body == (
        "disks {\nsize = 1\n}\ndisks {\nsize = 2\n}\n"
        "filter {\ninner = {\nx = 1\n}\n}\n"
        'linux_options {\nhost = "h"\n}\n'
        'names = ["a"]\n'
        'tags = {\na = "1"\n}\n'
    )


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(5, "5s"), (90, "1m30s"), (3600, "1h0m0s"), (1.5, "1.5s"), (0.25, "250ms"), (0, "0s")],
)
def test_durations_read_like_go(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


def test_calls_become_hcl2_expressions() -> None:
    state = UpgradeState()
    state.local_names.add("pw")
    text = transpose(
        'x = "{{ user `a` }} {{user `pw`}} {{ env `E` }} {{ timestamp }} {{ isotime `2006` }} '
        '{{ build `ID` }} {{ build_name }} {{ template_dir }} {{ .Path }}"\n',
        state,
        "here",
    )
    assert text == (
        'x = "${var.a} ${local.pw} ${env("E")} ${local.timestamp} ${legacy_isotime("2006")} '
        '${build.ID} ${build.name} ${path.root} {{ .Path }}"\n'
    )
    assert state.timestamp and state.isotime and not state.issues


def test_a_call_without_equivalent_is_kept_commented_and_recorded() -> None:
    state = UpgradeState()
    text = transpose('x = "{{ `A` | lower }}"\n', state, "provisioners[2]")
    assert text.startswith('\n# 1 error occurred upgrading the following block:\n\t# unhandled "lower" call:')
    assert text.endswith('x = "{{ lower `A` }}"\n')
    assert [i.place for i in state.issues] == ["provisioners[2].x"]
    assert "lower" in state.issues[0].message


def test_an_unknown_function_keeps_the_block_and_says_why() -> None:
    state = UpgradeState()
    text = transpose('x = "{{ consul_key `k` }}"\n', state, "builders[0]")
    assert text.startswith(
        '\n# could not parse template for following block: "template: hcl2_upgrade:1: function'
    )
    assert 'x = "{{ consul_key `k` }}"' in text
    assert [i.place for i in state.issues] == ["builders[0].x"]
    assert 'function "consul_key" not defined' in state.issues[0].message


def test_control_structures_keep_the_block_as_packer_does() -> None:
    state = UpgradeState()
    text = transpose('x = "{{ if true }}a{{ end }}"\n', state, "p")
    assert text == '\n# unhandled node type *parse.IfNode\nx = "{{ if true }}a{{ end }}"\n'
    assert len(state.issues) == 1


def test_an_unreadable_variable_is_reported_once() -> None:
    from kiln.template.json_loader import parse_template

    raw = {"variables": {"s": "{{ vault `p` `k` }}"}, "builders": [{"type": "null", "communicator": "none"}]}
    result = upgrade(parse_template(raw, "t.json", None, Path.cwd()), raw, builtin_builders={"null"})
    assert [i.place for i in result.issues] == ["variables.s.default"]
    assert 'default = "{{ vault `p` `k` }}"' in result.text


def test_escaped_quotes_inside_calls_are_fixed() -> None:
    assert fix_quoting('a = "{{ env \\"ONE\\" }}"') == 'a = "{{ env "ONE" }}"'
    state = UpgradeState()
    assert transpose('a = "{{ env \\"ONE\\" }}"\n', state, "v") == 'a = "${env("ONE")}"\n'


def test_variables_that_need_other_values_become_locals() -> None:
    state = UpgradeState()
    assert variable_transpose("{{ env `X` }}", state, "v")[0] is False
    assert variable_transpose("{{ user `x` }}-{{ timestamp }}", state, "v")[0] is True
    assert variable_transpose("plain", state, "v")[0] is False


def test_referenced_user_variables_are_found_beside_any_other_call() -> None:
    texts = [
        "{{ user `x` }}",
        "{{user `y`}} {{ timestamp }} {{ vault `a` `b` }}",
        "{{ upper (user `z`) }}",
        "{{ user `x` }}",
    ]
    assert referenced_user_variables(texts) == ["x", "y", "z"]
    assert referenced_user_variables(["{{ unclosed"]) == []


@pytest.mark.parametrize("name", UPGRADE_FIXTURES)
def test_conversion_matches_packers_expected_file_and_loads_back(name: str, tmp_path: Path) -> None:
    folder = FIXTURES / "hcl2_upgrade" / name
    source = folder / "input.json"
    result = upgrade(
        load_json_template(str(source)),
        json.loads(source.read_text()),
        annotations=name in ANNOTATED,
        builtin_builders={"null", "file"},
    )
    assert result.text == (folder / "expected.pkr.hcl").read_text()
    assert bool(result.errors) == (name == "unknown_builder")
    out = tmp_path / "out.pkr.hcl"
    out.write_text(result.text)
    assert isinstance(parse_hcl_file(str(out)), dict)
    load_hcl2_template(str(out))


def test_kiln_builders_are_not_unknown_and_need_no_plugin() -> None:
    from kiln.registry import BUILDERS
    from kiln.template.json_loader import parse_template

    raw = {"builders": [{"type": "alicloud-ecs", "image_name": "x-{{ timestamp }}"}]}
    tpl = parse_template(raw, "t.json", None, Path.cwd())
    result = upgrade(tpl, raw, builtin_builders=set(BUILDERS))
    assert not result.errors and not result.issues
    assert "required_plugins" not in result.text
    assert 'image_name = "x-${local.timestamp}"' in result.text


# --- the command -------------------------------------------------------------------------------

PARTIAL = {
    "builders": [{"type": "null", "communicator": "none"}],
    "provisioners": [
        {"type": "shell-local", "inline": ["echo {{ `A` | lower }}"]},
        {"type": "shell-local", "inline": ["echo {{ user `x` }}"], "override": {"null": {"inline": ["b"]}}},
    ],
}


def test_command_lists_each_part_it_could_not_convert(kiln: Kiln, tmp_path: Path) -> None:
    (tmp_path / "t.json").write_text(json.dumps(PARTIAL))
    result = kiln("hcl2_upgrade", "t.json")
    assert result.code == 0
    assert "2 part(s) of t.json could not be converted" in result.err
    assert '* provisioners[0].inline: "lower" has no HCL2 equivalent' in result.err
    assert "* provisioners[1]: 'override' (for null) is not converted" in result.err
    written = (tmp_path / "t.json.pkr.hcl").read_text()
    assert 'inline = ["echo {{ lower `A` }}"]' in written
    assert 'variable "x"' in written


def test_strict_makes_a_partial_conversion_fail(kiln: Kiln, tmp_path: Path) -> None:
    (tmp_path / "t.json").write_text(json.dumps(PARTIAL))
    result = kiln("hcl2_upgrade", "-strict", "-output-file=out/t.pkr.hcl", "t.json")
    assert result.code == 2
    assert (tmp_path / "out/t.pkr.hcl").exists()


def test_full_conversion_succeeds_quietly(kiln: Kiln, tmp_path: Path) -> None:
    (tmp_path / "t.json").write_text(json.dumps({"builders": [{"type": "null", "communicator": "none"}]}))
    result = kiln("hcl2_upgrade", "-strict", "t.json")
    assert (result.code, result.err) == (0, "")
    assert result.out.startswith("Successfully created t.json.pkr.hcl")
    check = kiln("validate", "t.json.pkr.hcl")
    assert check.code == 0, check.out + check.err


def test_missing_template_fails_without_writing(kiln: Kiln, tmp_path: Path) -> None:
    result = kiln("hcl2_upgrade", "nothere.json")
    assert result.code == 1
    assert "nothere.json: no such template file" in result.err
    assert not (tmp_path / "nothere.json.pkr.hcl").exists()


def test_unknown_builder_fails_but_writes_the_file(kiln: Kiln, tmp_path: Path) -> None:
    if not UPGRADE_FIXTURES:
        need_suite()
    shutil.copy(FIXTURES / "hcl2_upgrade/unknown_builder/input.json", tmp_path / "in.json")
    result = kiln("hcl2_upgrade", "in.json")
    assert result.code == 1
    assert "unknown builder type(s): [potatoes]" in result.err
    assert (tmp_path / "in.json.pkr.hcl").exists()
