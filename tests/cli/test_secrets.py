"""Sensitive values never appear in any output channel: UI, machine-readable, log file, errors,
manifest."""

from __future__ import annotations

import stat

from tests.cli.conftest import Kiln

SECRET = "hunter2-very-secret"
MULTI = "line-one-secret\nline-two-secret"


def template(kiln: Kiln, fail: bool) -> str:
    data = {
        "variables": {"password": SECRET, "cert": MULTI},
        "sensitive-variables": ["password", "cert"],
        "builders": [{"type": "file", "target": "artifact.txt", "content": "{{user `password`}}"}],
        "provisioners": [
            {
                "type": "shell-local",
                "environment_vars": ["PW={{user `password`}}", "CERT={{user `cert`}}"],
                "inline": ['echo "pw is $PW"', 'printf "%s\\n" "$CERT"']
                + (['echo "bad $PW" >&2; exit 1'] if fail else []),
            }
        ],
        "post-processors": [
            {"type": "manifest", "output": "manifest.json", "custom_data": {"pw": "{{user `password`}}"}}
        ],
    }
    return str(kiln.template(data))


def assert_clean(text: str) -> None:
    assert SECRET not in text
    assert "line-one-secret" not in text and "line-two-secret" not in text


def test_secrets_hidden_in_ui_log_and_manifest(kiln: Kiln) -> None:
    path = template(kiln, fail=False)
    log = kiln.cwd / "kiln.log"
    result = kiln("build", path, env={"KILN_LOG": "1", "KILN_LOG_PATH": str(log)})
    assert result.code == 0, result.text
    assert "pw is <sensitive>" in result.out
    assert_clean(result.text)
    assert_clean(log.read_text())
    assert log.read_text().strip(), "the log file should not be empty"
    assert_clean((kiln.cwd / "manifest.json").read_text())


def test_secrets_hidden_in_machine_readable_and_errors(kiln: Kiln) -> None:
    path = template(kiln, fail=True)
    result = kiln("-machine-readable", "build", path, env={"PACKER_LOG": "1"})
    assert result.code == 1
    assert "<sensitive>" in result.out
    assert_clean(result.text)


def test_a_wrong_option_value_is_shown_as_written_so_a_secret_in_it_stays_hidden(kiln: Kiln) -> None:
    """A sensitive value used where a bool or a number belongs is quoted in the error exactly as
    written (not lower-cased or trimmed, which the redactor would no longer recognise)."""
    secret = "TrUe-Secret"
    path = kiln.template(
        {
            "variables": {"flag": secret, "port": f" {secret}9 "},
            "sensitive-variables": ["flag", "port"],
            "builders": [{"type": "null", "communicator": "none"}],
            "provisioners": [
                {"type": "shell-local", "inline": ["true"], "use_linux_pathing": "{{user `flag`}}"},
            ],
            "post-processors": [
                {"type": "compress", "compression_level": "{{user `port`}}", "format": "{{user `flag`}}"}
            ],
        }
    )
    result = kiln("validate", str(path))
    assert result.code == 1
    assert 'provisioners[0].use_linux_pathing: cannot parse "<sensitive>" as bool' in result.err, result.err
    assert 'compression_level: cannot parse "<sensitive>" as int' in result.err, result.err
    assert 'post-processors[0].format: unknown format "<sensitive>"' in result.err, result.err
    assert "secret" not in result.text.lower()


def test_a_killed_build_leaves_its_inline_scripts_only_where_cleanup_removes_them(kiln: Kiln) -> None:
    """The script made from `inline` (a secret in it) is written in the run's own folder, never in
    TMPDIR; kill -9 leaves it there, and `kiln cleanup --stale` removes it."""
    tmp = kiln.cwd / "tmp"
    tmp.mkdir()
    secret = "hunter2-inline-S3CRET"
    template = kiln.template(
        {
            "variables": {"token": secret},
            "sensitive-variables": ["token"],
            "builders": [{"type": "null", "communicator": "none"}],
            "provisioners": [
                {"type": "shell-local", "inline": ["echo started", "T={{user `token`}}", "sleep 60"]}
            ],
        }
    )
    proc = kiln.start("build", str(template), env={"TMPDIR": str(tmp)})
    assert proc.stdout is not None
    for line in proc.stdout:
        if "null: started" in line:
            break
    runs = kiln.cwd / ".state" / "runs"
    (folder,) = runs.iterdir()
    (script,) = folder.glob("script-*")
    assert secret in script.read_text()
    for private in (runs, folder, script):
        assert stat.S_IMODE(private.stat().st_mode) == 0o700, private
    proc.kill()
    proc.wait()
    assert not [p for p in tmp.rglob("*") if secret in p.read_text(errors="replace")]
    assert script.exists()  # killed: nothing could remove it

    done = kiln("cleanup", "--stale")
    assert done.code == 0, done.text
    assert f"Removed the private files (inline scripts) that killed run {folder.name} left" in done.out
    assert not folder.exists()


def test_a_finished_build_removes_its_run_folder(kiln: Kiln) -> None:
    template = kiln.template(
        {
            "builders": [{"type": "null", "communicator": "none"}],
            "provisioners": [{"type": "shell-local", "inline": ["echo hello"]}],
        }
    )
    done = kiln("build", str(template))
    assert done.code == 0 and "null: hello" in done.out, done.text
    assert list((kiln.cwd / ".state" / "runs").iterdir()) == []


HCL_SECRETS = """
variable "password" {
  type      = string
  default   = "hunter2-very-secret"
  sensitive = true
}
locals {
  url  = "https://admin:${var.password}@example.com"
  note = "no secret here"
}
local "token" {
  expression = "tok-${upper("abc")}-9271"
  sensitive  = true
}
source "null" "a" {
  communicator = "none"
}
build {
  sources = ["source.null.a"]
}
"""


def test_hcl2_inspect_masks_what_build_masks(kiln: Kiln) -> None:
    (kiln.cwd / "t.pkr.hcl").write_text(HCL_SECRETS)
    result = kiln("inspect", "t.pkr.hcl")
    assert result.code == 0, result.err
    assert_clean(result.text)
    assert 'var.password: "<sensitive>"' in result.out
    assert 'local.url: "https://admin:<sensitive>@example.com"' in result.out
    assert 'local.token: "<sensitive>"' in result.out and "tok-ABC-9271" not in result.text
    assert 'local.note: "no secret here"' in result.out
    # a value given on the command line is masked the same way
    result = kiln("inspect", "-var", "password=other-secret-7", "t.pkr.hcl")
    assert "other-secret-7" not in result.text and "admin:<sensitive>@" in result.out
