"""`kiln build` end to end: the null builder with `communicator: ssh` against a real sshd, with the
shell and file provisioners (the template is the one in examples/ssh)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import Server

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "ssh" / "provision.json"


def kiln(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PACKER_", "PKR_VAR_"))}
    env.update(
        KILN_STATE_DIR=str(cwd / "state"), KILN_CACHE_DIR=str(cwd / "cache"), PYTHONPATH=str(ROOT / "src")
    )
    return subprocess.run(
        [sys.executable, "-m", "kiln", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_example_template_builds(server: Server, tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    result = kiln(
        tmp_path, "build",
        "-var", "ssh_host=127.0.0.1", "-var", f"ssh_port={server.port}", "-var", f"ssh_username={server.user}",
        "-var", f"ssh_private_key_file={server.key}", "-var", f"remote_dir={remote}", "-var", "out_dir=out",
        str(EXAMPLE),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert "==> null: Connected to SSH!" in lines
    assert f"==> null: Uploading {EXAMPLE.parent / 'files'} => {remote}" in lines
    assert '    null: it\'s a "quoted" value from null (null)' in lines
    assert "    null: files uploaded: 1" in lines
    assert f"==> null: Downloading {remote}/report.txt => out/report.txt" in lines
    assert "Build 'null' finished after" in result.stdout
    report = (tmp_path / "out" / "report.txt").read_text()
    assert report.startswith("kernel: ") and "files uploaded: 1" in report
    assert not remote.exists()  # the last provisioner cleaned up
    assert str(server.key) not in result.stdout


def test_failing_script_fails_the_build_and_reboot_is_survived(server: Server, tmp_path: Path) -> None:
    template = {
        "builders": [{
            "type": "null", "communicator": "ssh", "ssh_host": "127.0.0.1", "ssh_port": server.port,
            "ssh_username": server.user, "ssh_private_key_file": str(server.key),
        }],
        "provisioners": [
            {"type": "shell", "expect_disconnect": True, "inline": [
                "echo dropping; sleep 1",
                'p=$$; while [ "$(cat /proc/$p/comm)" != sshd ]; do p=$(cut -d" " -f4 /proc/$p/stat); done; kill -9 $p',
            ]},
            {"type": "shell", "inline": ["echo reconnected", "exit 4"]},
        ],
    }  # fmt: skip
    path = tmp_path / "t.json"
    path.write_text(json.dumps(template))
    result = kiln(tmp_path, "build", str(path))
    assert result.returncode == 1
    assert "    null: dropping" in result.stdout
    assert "    null: reconnected" in result.stdout
    assert "Script exited with non-zero exit status: 4" in result.stdout + result.stderr
