"""OpenSSH client helpers for tests that log into instances."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from kiln.localcloud.sshlogin import ssh_argv


def write_key(folder: Path, private_key: str) -> Path:
    path = folder / "id_instance"
    path.write_text(private_key if private_key.endswith("\n") else private_key + "\n")
    os.chmod(path, 0o600)
    return path


def ssh(
    key: Path, host: str, command: str, timeout: float = 300.0, port: int = 22
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ssh_argv(key, host, command, port=port),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def wait_for_ssh(key: Path, host: str, timeout: float = 180.0) -> float:
    began = time.monotonic()
    while True:
        try:
            result = ssh(key, host, "true", timeout=30)
        except subprocess.TimeoutExpired:  # a booting guest's sshd can accept and then say nothing
            result = subprocess.CompletedProcess([], 255, "", "ssh timed out")
        if result.returncode == 0:
            return time.monotonic() - began
        if time.monotonic() - began > timeout:
            raise AssertionError(f"no SSH to {host} after {timeout:.0f} s: {result.stderr.strip()[-300:]}")
        time.sleep(0.3)
