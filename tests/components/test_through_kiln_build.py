"""The local components run by the real `kiln build`: post-processor chains, keep_input_artifact,
and secrets in every channel. Each test builds in its own temporary folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"


def kiln_build(
    folder: Path, template: dict[str, Any], *args: str, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    (folder / "template.json").write_text(json.dumps(template))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PACKER_", "PKR_VAR_"))}
    env["PYTHONPATH"] = str(SRC)
    env["KILN_STATE_DIR"] = str(folder / ".state")
    env["KILN_CACHE_DIR"] = str(folder / ".cache")
    env.update(extra_env or {})
    return subprocess.run(
        [sys.executable, "-m", "kiln", "build", "-color=false", *args, "template.json"],
        cwd=folder, env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def file_builder(name: str = "img") -> dict[str, Any]:
    return {"type": "file", "name": name, "content": "disk content\n", "target": "out/disk.img"}


def test_chain_checksum_then_compress_kept_and_manifest(tmp_path: Path) -> None:
    template = {
        "builders": [file_builder()],
        "post-processors": [
            [
                {"type": "checksum", "checksum_types": ["sha256"], "output": "out/SHA256SUMS"},
                {"type": "compress", "output": "out/{{build_name}}.tar.gz", "keep_input_artifact": True},
            ],
            {"type": "manifest", "output": "manifest.json", "strip_time": True},
        ],
    }
    result = kiln_build(tmp_path, template)
    assert result.returncode == 0, result.stdout + result.stderr
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["SHA256SUMS", "disk.img", "img.tar.gz"]
    check = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=out, capture_output=True, text=True)
    assert check.stdout == "disk.img: OK\n"
    listing = subprocess.run(
        ["tar", "-tzf", "img.tar.gz"], cwd=out, capture_output=True, text=True, check=True
    )
    assert listing.stdout.split() == ["disk.img", "SHA256SUMS"]  # the checksum artifact's files, in order
    build = json.loads((tmp_path / "manifest.json").read_text())["builds"][0]
    assert (build["name"], build["builder_type"]) == ("img", "file")
    assert build["files"] == [{"name": "out/disk.img", "size": 13}]
    assert "--> img: compressed artifacts in: out/img.tar.gz" in result.stdout


def test_compress_discards_its_input_unless_kept(tmp_path: Path) -> None:
    template = {
        "builders": [file_builder()],
        "post-processors": [[{"type": "compress", "output": "out/disk.img.gz"}]],
    }
    result = kiln_build(tmp_path, template)
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["disk.img.gz"]
    data = subprocess.run(
        ["gzip", "-dc", "out/disk.img.gz"], cwd=tmp_path, capture_output=True, check=True
    ).stdout
    assert data == b"disk content\n"


def test_shell_local_failure_fails_the_build_with_packers_message(tmp_path: Path) -> None:
    template = {
        "builders": [{"type": "null", "communicator": "none"}],
        "provisioners": [{"type": "shell-local", "inline": ["echo before", "exit 3", "echo never-printed"]}],
    }
    result = kiln_build(tmp_path, template)
    assert result.returncode == 1
    combined = result.stdout + result.stderr
    assert "    null: before" in combined and "never-printed" not in combined
    assert "Script exited with non-zero exit status: 3. Allowed exit codes are: [0]" in combined
    assert "Traceback" not in combined


@pytest.mark.parametrize("machine_readable", [False, True])
def test_secrets_never_leave_through_output_or_manifest(tmp_path: Path, machine_readable: bool) -> None:
    secret = "pa55-Word with 'quotes' and spaces"
    template = {
        "variables": {"password": secret},
        "sensitive-variables": ["password"],
        "builders": [{"type": "null", "communicator": "none"}],
        "provisioners": [
            {
                "type": "shell-local",
                "environment_vars": ["PASSWORD={{user `password`}}"],
                "inline": ['echo "the password is $PASSWORD"', 'echo "$PASSWORD" >&2'],
            }
        ],
        "post-processors": [
            {"type": "shell-local", "inline": ['echo "post $P"'], "env": {"P": "{{user `password`}}"}},
            {"type": "manifest", "custom_data": {"password": "{{user `password`}}"}},
        ],
    }
    args = ("-machine-readable",) if machine_readable else ()
    log = tmp_path / "kiln.log"
    result = kiln_build(tmp_path, template, *args, extra_env={"PACKER_LOG": "1", "PACKER_LOG_PATH": str(log)})
    assert result.returncode == 0, result.stdout + result.stderr
    combined = result.stdout + result.stderr
    assert secret not in combined and "pa55-Word" not in combined
    assert "<sensitive>" in combined
    manifest = (tmp_path / "packer-manifest.json").read_text()
    assert "pa55-Word" not in manifest
    assert json.loads(manifest)["builds"][0]["custom_data"] == {"password": "<sensitive>"}
    assert log.exists() and "shell-local" in log.read_text()
    assert "pa55-Word" not in log.read_text()
