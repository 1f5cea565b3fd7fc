"""shell_common against a real /bin/sh: what {{.Vars}} sets is what the script sees."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from kiln.config import DecodeContext
from kiln.core.secrets import REDACTOR
from kiln.provisioners import shell_common as sc

NASTY = {
    "SPACES": "a value  with   spaces",
    "SINGLE": "it's 'quoted'",
    "DOUBLE": 'say "hi"',
    "DOLLAR": "$HOME `id` $(id) \\n",
    "NEWLINE": "line one\nline two",
    "EMPTY": "",
    "EQUALS": "a=b=c",
}


def run_with_vars(flat: str, names: list[str]) -> dict[str, str]:
    script = flat + " /usr/bin/env -0"
    raw = subprocess.run(["/bin/sh", "-c", script], check=True, capture_output=True).stdout
    seen = dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)
    return {name: seen[name] for name in names}


def test_values_with_quotes_spaces_and_newlines_reach_the_script_unchanged() -> None:
    env = sc.build_env([f"{k}={v}" for k, v in NASTY.items()], {}, "build", "null")
    assert run_with_vars(sc.flatten_env(env), list(NASTY)) == NASTY


def test_env_map_wins_over_environment_vars_and_packer_names_are_set() -> None:
    env = sc.build_env(["A=from list", "B=kept"], {"A": "from map"}, "my build", "qemu")
    assert env == {
        "A": "from map",
        "B": "kept",
        "PACKER_BUILDER_TYPE": "qemu",
        "PACKER_BUILD_NAME": "my build",
    }
    assert list(env) == sorted(env)  # Packer writes them sorted by name
    assert run_with_vars(sc.flatten_env(env), ["A", "PACKER_BUILD_NAME"]) == {
        "A": "from map",
        "PACKER_BUILD_NAME": "my build",
    }


def test_flatten_uses_packers_default_format_and_escaping() -> None:
    assert sc.flatten_env({"K": "it's"}) == "K='it'\"'\"'s' "
    assert sc.flatten_env({"K": "v"}, 'export %s="%s"\n') == 'export K="v"\n'
    assert sc.go_sprintf("%s%%%s", "a") == "a%%!s(MISSING)"


def test_http_address_from_generated_data_is_exported() -> None:
    env = sc.build_env(
        [],
        {},
        "b",
        "qemu",
        {"PackerHTTPAddr": "10.0.2.2:8080", "PackerHTTPIP": "ERR_HTTP_IP_NOT_IMPLEMENTED_BY_BUILDER"},
    )
    assert env["PACKER_HTTP_ADDR"] == "10.0.2.2:8080"
    assert "PACKER_HTTP_IP" not in env


def test_bad_environment_vars_are_all_reported() -> None:
    dctx = DecodeContext()
    sc.validate_env_vars(["NOEQUALS", "=value", "OK=1", "BAD NAME=x"], {"1X": "y"}, dctx, "provisioners[0]")
    assert dctx.errors == [
        "provisioners[0].environment_vars[0]: Environment variable not in format 'key=value': NOEQUALS",
        "provisioners[0].environment_vars[1]: Environment variable not in format 'key=value': =value",
        "provisioners[0].environment_vars[3]: invalid environment variable name 'BAD NAME' (use letters, digits and _; not starting with a digit)",
        "provisioners[0].env: invalid environment variable name '1X' (use letters, digits and _; not starting with a digit)",
    ]


def test_env_var_format_needs_two_values() -> None:
    dctx = DecodeContext()
    sc.validate_env_var_format("%s ", dctx, "p")
    sc.validate_env_var_format("%s='%s' ", dctx, "q")
    assert dctx.errors == ["p.env_var_format: must contain two %s (name, then value), got '%s '"]


def test_exit_codes_with_packers_message() -> None:
    sc.check_exit_code(0, [])
    sc.check_exit_code(3010, [0, 3010])
    with pytest.raises(sc.InvalidExitCode) as info:
        sc.check_exit_code(2, [0, 1])
    assert str(info.value) == "Script exited with non-zero exit status: 2. Allowed exit codes are: [0 1]"
    with pytest.raises(sc.InvalidExitCode, match=r"Allowed exit codes are: \[0\]$"):
        sc.check_exit_code(1, None)


def test_inline_script_runs_with_its_shebang(tmp_path: Path) -> None:
    path = sc.write_inline_script(
        ["echo one", "false", "echo never"], sc.DEFAULT_INLINE_SHEBANG, tmp_path, "sh"
    )
    try:
        assert path.suffix == ".sh" and path.stat().st_mode & 0o777 == 0o700 and path.parent == tmp_path
        assert path.read_text() == "#!/bin/sh -e\necho one\nfalse\necho never\n"
        result = subprocess.run([str(path)], capture_output=True, text=True)
        assert (result.returncode, result.stdout) == (1, "one\n")  # -e stops at `false`
    finally:
        path.unlink()
    assert sc.inline_script_text(["a"], "") == "a\n"


def test_scripts_collected_and_checked(tmp_path: Path) -> None:
    base = tmp_path
    (base / "ok.sh").write_text("true\n")
    assert sc.collect_scripts("ok.sh", ["b.sh"]) == ["ok.sh", "b.sh"]
    dctx = DecodeContext()
    sc.validate_scripts_exist(["ok.sh", "missing.sh", "."], dctx, "p.scripts", base)
    assert dctx.errors == [
        "p.scripts: Bad script 'missing.sh': no such file or directory",
        "p.scripts: Bad script '.': is a directory",
    ]


def test_escaped_form_of_a_secret_is_hidden_too() -> None:
    secret = "it's-a-secret"
    REDACTOR.add(secret)
    try:
        flat = sc.flatten_env({"PW": f"x {secret}", "OTHER": "it's fine"})
        assert "secret" not in REDACTOR.redact(flat)
        assert "OTHER='it'\"'\"'s fine'" in REDACTOR.redact(flat)  # values without secrets stay readable
    finally:
        REDACTOR.clear()
