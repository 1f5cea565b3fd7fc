"""Random and mutated templates never crash kiln: no traceback, exit code 0 or 1, and no file
written outside the run's own folder (temporary files included)."""

from __future__ import annotations

import contextlib
import io
import json
import os
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
