"""The OpenSSH command line with which localcloud's tests and benchmarks log into an instance as root
with a key. Instances get new host keys on every boot, so host keys are neither checked nor kept."""

from __future__ import annotations

from pathlib import Path


def ssh_argv(key: Path, host: str, command: str, port: int = 22, connect_timeout: int = 5) -> list[str]:
    return [
        "ssh",
        "-i",
        str(key),
        "-p",
        str(port),
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "BatchMode=yes",
        "-o",
        f"ConnectTimeout={connect_timeout}",
        "-o",
        "LogLevel=ERROR",
        f"root@{host}",
        command,
    ]
