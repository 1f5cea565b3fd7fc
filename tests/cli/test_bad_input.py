"""Paths that are not template files (FIFOs, devices, huge files) and templates built to exhaust
kiln (deep nesting, huge ranges): each ends at once in a one-line error naming the file, never a
hang, a traceback or an error the size of the input."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.cli.conftest import Kiln

TEMPLATE = '{"builders": [{"type": "null", "communicator": "none"}]}'
#: a command that would wait for a writer forever ends well before this
QUICK = 20


def one_error(text: str, *words: str) -> None:
    assert "Traceback" not in text, text
    assert text.startswith("Error: "), text
    for word in words:
        assert word in text, text


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "pipe.pkr.hcl"
    os.mkfifo(path)
    return path


def test_fifo_as_template(kiln: Kiln, fifo: Path) -> None:
    for name in (fifo.name, "pipe.json"):
        if name != fifo.name:
            os.symlink(fifo, kiln.cwd / name)
        result = kiln("validate", name, timeout=QUICK)
        assert result.code == 1
        one_error(result.err, name, "FIFO", "not a regular template file")


def test_fifo_as_var_file(kiln: Kiln, fifo: Path) -> None:
    (kiln.cwd / "t.json").write_text(TEMPLATE)
    result = kiln("validate", "-var-file", fifo.name, "t.json", timeout=QUICK)
    assert result.code == 1
    one_error(result.err, fifo.name, "FIFO", "not a regular var file")
    (kiln.cwd / "t.pkr.hcl").write_text('source "null" "a" {\n  communicator = "none"\n}\n')
    result = kiln("validate", "-var-file", fifo.name, "t.pkr.hcl", timeout=QUICK)
    assert result.code == 1
    one_error(result.err, fifo.name, "FIFO")


def test_fifo_as_fmt_path(kiln: Kiln, fifo: Path) -> None:
    result = kiln("fmt", fifo.name, timeout=QUICK)
    assert result.code == 1
    one_error(result.err, fifo.name, "FIFO")
    # in a folder too
    result = kiln("fmt", "-check", ".", timeout=QUICK)
    assert result.code == 1
    one_error(result.err, fifo.name, "FIFO")


def test_file_function_on_a_fifo(kiln: Kiln, fifo: Path) -> None:
    (kiln.cwd / "t.pkr.hcl").write_text(
        f'locals {{\n  x = file("{fifo}")\n}}\nsource "null" "a" {{\n  communicator = "none"\n}}\n'
        'build {\n  sources = ["source.null.a"]\n}\n'
    )
    result = kiln("validate", "t.pkr.hcl", timeout=QUICK)
    assert result.code == 1
    one_error(result.err, "local.x", "FIFO")


@pytest.mark.parametrize("command", ["validate", "inspect", "build", "hcl2_upgrade"])
def test_device_as_template(kiln: Kiln, command: str) -> None:
    result = kiln(command, "/dev/zero", timeout=QUICK)
    assert result.code == 1
    one_error(result.err, "/dev/zero", "character device")


@pytest.mark.parametrize("command", ["validate", "fmt"])
def test_endless_standard_input(kiln: Kiln, command: str) -> None:
    with open("/dev/zero", "rb") as zero:
        proc = subprocess.run(
            kiln.argv(command, "-"), cwd=kiln.cwd, env=kiln.env, stdin=zero, capture_output=True,
            text=True, timeout=QUICK,
        )  # fmt: skip
    assert proc.returncode == 1
    one_error(proc.stderr, "<stdin>", "more than 16.0 MB")


def test_huge_template_file(kiln: Kiln) -> None:
    path = kiln.cwd / "big.json"
    with open(path, "w") as f:
        f.write('{"a": "' + "x" * (50 * 1024 * 1024) + '", ]')
    result = kiln("validate", "big.json", timeout=QUICK)
    assert result.code == 1
    one_error(result.err, "big.json", "50.0 MB", "at most 16.0 MB")
    assert len(result.err) < 1000


@pytest.mark.parametrize("name", ["big.json", "big.pkr.json"])
def test_syntax_error_in_a_long_line_quotes_an_excerpt(kiln: Kiln, name: str) -> None:
    (kiln.cwd / name).write_text('{"a": "' + "x" * (10 * 1024 * 1024) + '", ]')
    result = kiln("validate", name, timeout=QUICK)
    assert result.code == 1
    one_error(result.err, name, "line 1")
    assert len(result.err) < 2000, len(result.err)


def test_hcl_syntax_error_in_a_long_line_quotes_an_excerpt(kiln: Kiln) -> None:
    (kiln.cwd / "t.pkr.hcl").write_text("x = " + "a" * (2 * 1024 * 1024) + " +\n")
    for command in ("validate", "fmt"):
        result = kiln(command, "t.pkr.hcl", timeout=60)
        assert result.code == 1
        assert "Traceback" not in result.err
        assert "t.pkr.hcl" in result.err
        assert len(result.err) < 2000, (command, len(result.err))


def nested_blocks(depth: int) -> str:
    return "".join(f"b{i} {{\n" for i in range(depth)) + "}\n" * depth


def test_deeply_nested_blocks(kiln: Kiln) -> None:
    (kiln.cwd / "deep.pkr.hcl").write_text(nested_blocks(2000))
    result = kiln("fmt", "-check", "deep.pkr.hcl", timeout=QUICK)
    assert result.code == 1
    assert "Traceback" not in result.err
    assert "Too deeply nested" in result.err and "deep.pkr.hcl line 65" in result.err
    result = kiln("validate", "deep.pkr.hcl", timeout=QUICK)
    assert result.code == 1
    one_error(result.err, "deep.pkr.hcl:65", "nest more than 64 levels")


def test_nesting_within_the_bound_is_formatted(kiln: Kiln) -> None:
    (kiln.cwd / "ok.pkr.hcl").write_text(nested_blocks(60).replace("{\n}", "{\n    }"))
    result = kiln("fmt", "-check", "ok.pkr.hcl", timeout=QUICK)
    assert result.code == 3, result.err  # needs formatting, and can be formatted
    assert kiln("fmt", "ok.pkr.hcl", timeout=QUICK).code == 0
    assert kiln("fmt", "-check", "ok.pkr.hcl", timeout=QUICK).code == 0


def test_recursive_fmt_does_not_follow_a_link_to_a_parent(kiln: Kiln) -> None:
    (kiln.cwd / "sub").mkdir()
    (kiln.cwd / "sub" / "a.pkr.hcl").write_text('x   = "1"\n')
    os.symlink("..", kiln.cwd / "sub" / "up")
    result = kiln("fmt", "-check", "-recursive", ".", timeout=QUICK)
    assert result.code == 3, result.err
    assert result.out.splitlines() == ["./sub/a.pkr.hcl"]  # once, not once per trip round the link


HCL_BUILD = 'source "null" "a" {\n  communicator = "none"\n}\nbuild {\n  sources = ["source.null.a"]\n}\n'


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        ("range(1e12)", "more than 1024 values were generated"),
        ("[for i in range(1e12) : i]", "more than 1024 values were generated"),
        (
            "[for i in range(1000) : [for j in range(1000) : [for k in range(1000) : k]]]",
            "more than 1000000 iterations",
        ),
        ('format("%999999999d", 1)', "width 999999999"),
        ('format("%.999999999f", 1)', "precision"),
        ('replace("abcdefghijklmnopqrst", "", format("%999999s", "x"))', "more than 16777216 characters"),
    ],
)
def test_huge_hcl_computations(kiln: Kiln, expression: str, words: str) -> None:
    (kiln.cwd / "t.pkr.hcl").write_text(f"locals {{\n  x = {expression}\n}}\n{HCL_BUILD}")
    result = kiln("validate", "t.pkr.hcl", timeout=QUICK)
    assert result.code == 1
    one_error(result.err, "local.x (on t.pkr.hcl line 2)", words)


def test_doubling_locals_stop_at_a_bound(kiln: Kiln) -> None:
    chain = "".join(f"  s{i + 1} = \"${{local.s{i}}}${{local.s{i}}}\"\n  l{i + 1} = [local.l{i}, local.l{i}]\n"
                    for i in range(60))  # fmt: skip
    (kiln.cwd / "t.pkr.hcl").write_text(f'locals {{\n  s0 = "xxxx"\n  l0 = ["x"]\n{chain}}}\n{HCL_BUILD}')
    result = kiln("validate", "t.pkr.hcl", timeout=60)
    assert result.code == 1
    assert "Traceback" not in result.err
    assert "more than 16777216 characters" in result.err and "more than 1000000 elements" in result.err


def test_range_counts_like_cty() -> None:
    from kiln.template.hcl2.functions import _range

    assert _range(3) == [0, 1, 2]
    assert _range(-3) == [0, -1, -2]
    assert _range(5, 2) == [5, 4, 3]
    assert _range(0, 1, 0.25) == [0, 0.25, 0.5, 0.75]
    assert _range(1024) == list(range(1024))


@pytest.mark.parametrize(
    ("component", "words"),
    [
        (
            {
                "provisioners": [
                    {"type": "shell-local", "environment_vars": ["A=x\u0000y"], "inline": ["true"]}
                ]
            },
            "provisioners[0].environment_vars[0]: contains a NUL character",
        ),
        (
            {"provisioners": [{"type": "shell-local", "env": {"A": "x\u0000y"}, "inline": ["true"]}]},
            "provisioners[0].env.A: contains a NUL character",
        ),
        (
            {"provisioners": [{"type": "sleep", "duration": "99999999999h"}]},
            'provisioners[0].duration: time: invalid duration "99999999999h"',
        ),
        (
            {"provisioners": [{"type": "sleep", "duration": "1s", "timeout": "99999999999h"}]},
            'provisioners[0].timeout: time: invalid duration "99999999999h"',
        ),
        (  # a bare number is nanoseconds
            {"provisioners": [{"type": "sleep", "duration": 1e300}]},
            "provisioners[0].duration: time: invalid duration 1e+300",
        ),
        (
            {"provisioners": [{"type": "sleep", "duration": "1s", "pause_before": 1e300}]},
            "provisioners[0].pause_before: time: invalid duration 1e+300",
        ),
    ],
)
def test_option_values_no_build_can_use_fail_validation(
    kiln: Kiln, component: dict[str, object], words: str
) -> None:
    path = kiln.template({"builders": [{"type": "null", "communicator": "none"}], **component})
    for command in ("validate", "build"):
        result = kiln(command, str(path), timeout=QUICK)
        assert result.code == 1
        one_error(result.err, words)


def test_file_builder_target_that_is_a_folder(kiln: Kiln) -> None:
    (kiln.cwd / "out").mkdir()
    os.mkfifo(kiln.cwd / "pipe")
    for target, kind in (("out", "a folder"), ("pipe", "a FIFO (named pipe)")):
        path = kiln.template({"builders": [{"type": "file", "content": "x", "target": target}]})
        for command in ("validate", "build"):
            result = kiln(command, str(path), timeout=QUICK)
            assert result.code == 1
            one_error(result.err, f'builders[0].target: "{target}" is {kind}')


@pytest.mark.parametrize("command", ["validate", "hcl2_upgrade", "inspect"])
def test_deeply_nested_json(kiln: Kiln, command: str) -> None:
    deep = "[" * 900 + "]" * 900
    (kiln.cwd / "t.json").write_text('{"builders": [{"type": "null", "x": ' + deep + "}]}")
    result = kiln(command, "t.json", timeout=QUICK)
    assert result.code == 1
    one_error(result.err, "t.json: objects and arrays nest more than 64 levels deep at line 1, column 98")


def test_an_error_quoting_a_huge_value_prints_its_start(kiln: Kiln) -> None:
    key = "k" * 2_000_000
    builders = '"builders": [{"type": "null", "communicator": "none"}]'
    (kiln.cwd / "t.json").write_text(f'{{"{key}": 1, {builders}}}')
    result = kiln("validate", "t.json", timeout=QUICK)
    assert result.code == 1
    one_error(result.err, "Unknown root level key in template: 'kkkk", "more characters)")
    assert len(result.err) < 2000


def test_a_script_that_is_a_fifo(kiln: Kiln, fifo: Path) -> None:
    for kind in ("shell-local", "shell"):
        path = kiln.template(
            {"builders": [{"type": "null", "communicator": "none"}],
             "provisioners": [{"type": kind, "script": fifo.name}]}
        )  # fmt: skip
        result = kiln("validate", str(path), timeout=QUICK)
        assert result.code == 1
        assert f"Bad script '{fifo.name}': not a regular file" in result.err, result.err


def test_hcl2_upgrade_output_that_is_a_fifo(kiln: Kiln, fifo: Path) -> None:
    (kiln.cwd / "t.json").write_text(TEMPLATE)
    result = kiln("hcl2_upgrade", "-output-file", fifo.name, "t.json", timeout=QUICK)
    assert result.code == 1
    one_error(result.err, f"{fifo.name}: is a FIFO (named pipe)")
