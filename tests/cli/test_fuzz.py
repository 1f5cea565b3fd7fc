"""Random and mutated templates never crash kiln: no traceback, exit code 0 or 1, and no file
written outside the run's own folder (temporary files included)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kiln.cli import main
from kiln.core.secrets import REDACTOR

KEYS = [
    "builders", "provisioners", "post-processors", "variables", "sensitive-variables", "description",
    "min_packer_version", "error-cleanup-provisioner", "type", "name", "only", "except", "override",
    "pause_before", "max_retries", "timeout", "keep_input_artifact", "communicator", "content", "target",
    "inline", "output", "checksum_types", "_comment", "unknown_key",
]  # fmt: skip
TYPES = ["null", "file", "shell-local", "manifest", "checksum", "compress", "sleep", "breakpoint", "nope", ""]
TEXT = st.one_of(
    st.sampled_from(
        [*KEYS, *TYPES, "{{user `x`}}", "{{ build_name }}", "{{", "}}", "{{env `HOME`}}", "1s", "-1"]
    ),
    st.text(max_size=12),
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=False, allow_infinity=False) | TEXT,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS) | TEXT, inner, max_size=5)
    ),
    max_leaves=25,
)

BASE: dict[str, Any] = {
    "variables": {"x": "1", "secret": "s3cr3t-value"},
    "sensitive-variables": ["secret"],
    "builders": [
        {"type": "file", "name": "f", "target": "out.txt", "content": "{{user `x`}}"},
        {"type": "null", "communicator": "none"},
    ],
    "provisioners": [{"type": "sleep", "duration": "0s", "only": ["null"]}],
    "post-processors": [
        [{"type": "checksum", "output": "sums.txt"}, {"type": "manifest", "output": "m.json"}]
    ],
}


def mutate(base: Any, draw: Any) -> Any:
    if isinstance(base, dict) and base and draw(st.booleans()):
        key = draw(st.sampled_from(sorted(base)))
        choice = draw(st.integers(0, 3))
        copy = dict(base)
        if choice == 0:
            del copy[key]
        elif choice == 1:
            copy[key] = draw(JSON)
        elif choice == 2:
            copy[draw(st.sampled_from(KEYS))] = draw(JSON)
        else:
            copy[key] = mutate(base[key], draw)
        return copy
    if isinstance(base, list) and base and draw(st.booleans()):
        i = draw(st.integers(0, len(base) - 1))
        copy_list = list(base)
        copy_list[i] = mutate(base[i], draw) if draw(st.booleans()) else draw(JSON)
        return copy_list
    return draw(JSON) if draw(st.integers(0, 4)) == 0 else base


@st.composite
def templates(draw: Any) -> str:
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return draw(st.text(max_size=60))  # not JSON at all
    if kind == 1:
        return json.dumps(draw(JSON))
    text = json.dumps(mutate(BASE, draw))
    if kind == 2 and len(text) > 2:  # truncated or corrupted JSON
        cut = draw(st.integers(0, len(text) - 1))
        return text[:cut] + draw(st.sampled_from(["", ",", "}", "]]", '"', "\x00"]))
    return text


def still_sensitive(text: str) -> bool:
    """Whether the template still marks the secret sensitive: a template that is not JSON cannot
    say what is sensitive (its syntax error may quote it), and a mutation may unmark it."""
    try:
        data = json.loads(text)
    except ValueError:
        return False
    if not isinstance(data, dict) or not isinstance(data.get("variables"), dict):
        return False
    marked = data.get("sensitive-variables")
    return (
        data["variables"].get("secret") == "s3cr3t-value" and isinstance(marked, list) and "secret" in marked
    )


def snapshot(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def run_kiln(argv: list[str]) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse-style exits count as results, not crashes
            code = int(exc.code or 0)
    return code, out.getvalue() + err.getvalue()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=templates(), command=st.sampled_from(["validate", "build", "inspect", "validate -syntax-only"]))
def test_random_templates_never_crash_or_leak_files(tmp_path_factory: Any, text: str, command: str) -> None:
    root = tmp_path_factory.mktemp("fuzz")
    run_dir, tmp_dir = root / "run", root / "tmp"
    run_dir.mkdir()
    tmp_dir.mkdir()
    template = run_dir / "template.json"
    template.write_bytes(text.encode("utf-8", errors="surrogatepass"))
    before = snapshot(root)
    old_cwd, old_tmp = os.getcwd(), tempfile.tempdir
    os.chdir(run_dir)
    tempfile.tempdir = str(tmp_dir)
    try:
        extra = ["-color=false"] if command == "build" else []
        code, output = run_kiln([*command.split(), *extra, str(template)])
    finally:
        os.chdir(old_cwd)
        tempfile.tempdir = old_tmp
        REDACTOR.clear()
    assert code in (0, 1), output
    assert "Traceback" not in output
    if still_sensitive(text):
        assert "s3cr3t-value" not in output
    created = snapshot(root) - before
    outside = {p for p in created if not p.startswith("run")}
    assert not outside, f"files written outside the run folder: {outside}"


# -- hostile inputs: paths that are not template files, and files built to exhaust kiln

#: longer than any input kiln accepts takes to refuse; a FIFO read would block forever
TIME_BOUND = 15.0
#: the longest error an input may cause (excerpts are bounded, not the size of the input)
OUTPUT_BOUND = 20_000
KINDS = ["fifo", "dev-zero", "dev-null", "folder", "link-loop", "sparse-huge", "deep-json", "deep-hcl",
         "long-line", "not-utf8", "hcl-function"]  # fmt: skip
HUGE_ARGUMENTS = [
    "range(1e12)", "range(-1e12, 1e12, 1e-9)", "range(0, 1, 0)", "range(1e308)", 'format("%999999999d", 1)',
    'format("%.999999999f", 1)', 'format("%1000000s", "x")', 'replace("abcdefghijklmnopqrstu", "", format("%999999s", ""))',
    'join(",", [for i in range(1000) : format("%9999s", i)])', "[for i in range(1024) : [for j in range(1024) : j]]",
    'regex_replace("aaaaaaaaaaaaaaaaaaaa", "", format("%999999s", ""))', "flatten([for i in range(1024) : range(1024)])",
    "jsonencode([for i in range(1024) : [for j in range(1024) : i]])", 'substr("abc", 1e12, 1e12)',
    "element([1], 1e300)", "abs(-1e308 * 10)", "9" * 5000, "max(1e308, 1e308) * 1e308",
    'formatlist("%999999s", range(100))', "length(range(1024))",
]  # fmt: skip


def nested_hcl(depth: int, brackets: bool) -> str:
    if brackets:
        return "x = " + "[" * depth + "]" * depth + "\n"
    return "".join(f"b{i} {{\n" for i in range(depth)) + "}\n" * depth


def write_input(folder: Path, kind: str, name: str, draw: Any) -> Path:
    """A file (or not a file) of the given kind, at folder/name."""
    path = folder / name
    if kind == "fifo":
        os.mkfifo(path)
    elif kind in ("dev-zero", "dev-null"):
        os.symlink(f"/dev/{kind[4:]}", path)
    elif kind == "folder":
        path.mkdir()
        (path / "inner.pkr.hcl").write_text(nested_hcl(draw(st.integers(0, 80)), draw(st.booleans())))
    elif kind == "link-loop":
        os.symlink(path.name, path)
    elif kind == "sparse-huge":
        with open(path, "wb") as f:
            f.truncate(draw(st.sampled_from([16 * 1024 * 1024 + 1, 1 << 30, 1 << 40])))
    elif kind == "deep-json":
        depth = draw(st.integers(500, 5000))
        opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
        inner = opener * depth + "1" + closer * depth
        path.write_text('{"builders": [{"type": "null", "communicator": "none", "x": ' + inner + "}]}")
    elif kind == "deep-hcl":
        path.write_text(nested_hcl(draw(st.integers(60, 3000)), draw(st.booleans())))
    elif kind == "long-line":
        filler = "x" * draw(st.integers(100_000, 3_000_000))
        text = draw(st.sampled_from(['{"a": "%s", ]', "x = %s +\n", 'x = "%s\n', '{"%s": 1}', "%s = 1\n"]))
        path.write_text(text.replace("%s", filler))
    elif kind == "not-utf8":
        path.write_bytes(b'x = "\xff\xfe\x00"\n' * draw(st.integers(1, 1000)))
    else:  # hcl-function
        expression = draw(st.sampled_from(HUGE_ARGUMENTS))
        path.write_text(
            f'locals {{\n  x = {expression}\n}}\nsource "null" "a" {{\n  communicator = "none"\n}}\n'
            'build {\n  sources = ["source.null.a"]\n  provisioner "shell-local" {\n'
            '    inline = ["echo ${jsonencode(local.x)}"]\n  }\n}\n'
        )
    return path


@st.composite
def hostile_runs(draw: Any) -> tuple[str, str, list[str]]:
    """(kind, role, argv with {} for the input's path)."""
    kind = draw(st.sampled_from(KINDS))
    role = draw(st.sampled_from(["template", "var-file", "fmt", "stdin"]))
    if role == "template":
        command = draw(
            st.sampled_from(["validate", "validate -syntax-only", "inspect", "build", "hcl2_upgrade"])
        )
        return kind, draw(st.sampled_from(["t.json", "t.pkr.hcl", "t.pkr.json"])), [*command.split(), "{}"]
    if role == "var-file":
        name = draw(st.sampled_from(["v.json", "v.pkrvars.hcl"]))
        return (
            kind,
            name,
            ["validate", "-var-file", "{}", draw(st.sampled_from(["base.json", "base.pkr.hcl"]))],
        )
    if role == "fmt":
        flags = draw(st.sampled_from([[], ["-check"], ["-diff", "-write=false"], ["-recursive", "-check"]]))
        return kind, "f.pkr.hcl", ["fmt", *flags, "{}" if "-recursive" not in flags else "."]
    return kind, "in.json", [draw(st.sampled_from(["validate", "fmt"])), "-"]


BASES = {
    "base.json": '{"variables": {"a": ""}, "builders": [{"type": "null", "communicator": "none"}]}',
    "base.pkr.hcl": 'variable "a" {\n  default = ""\n}\nsource "null" "a" {\n  communicator = "none"\n}\n'
    'build {\n  sources = ["source.null.a"]\n}\n',
}


@settings(max_examples=int(os.environ.get("KILN_FUZZ_EXAMPLES", "60")), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(run=hostile_runs(), data=st.data())
def test_hostile_inputs_end_at_once_in_one_error(tmp_path_factory: Any, run: tuple[str, str, list[str]],
                                                 data: st.DataObject) -> None:  # fmt: skip
    from tests.bounds import bounded

    kind, name, argv = run
    root = tmp_path_factory.mktemp("hostile")
    for base, text in BASES.items():
        (root / base).write_text(text)
    path = write_input(root, kind, name, data.draw)
    old_cwd, old_stdin = os.getcwd(), sys.stdin
    os.chdir(root)
    try:
        if argv[-1] == "-":
            if kind in ("fifo", "folder", "link-loop"):
                return  # a shell could not even open these as standard input
            sys.stdin = io.TextIOWrapper(open(path, "rb"))  # noqa: SIM115 - closed below
        with bounded(TIME_BOUND):
            code, output = run_kiln([str(path) if a == "{}" else a for a in argv])
    finally:
        if sys.stdin is not old_stdin:
            sys.stdin.close()
        sys.stdin = old_stdin
        os.chdir(old_cwd)
        REDACTOR.clear()
    assert code in (0, 1, 3), output[:2000]
    assert "Traceback" not in output, output[:5000]
    if code == 1:  # an error quotes excerpts of the input, never all of it
        assert len(output) < OUTPUT_BOUND, (len(output), output[:2000])
