"""Temporary key pairs, ssh_clear_authorized_keys, agent auth, and StepConnect in a step list."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import Captured, Server, SudoUser, needs_root

from kiln.builders.connect import StepCleanupTempKeys, StepConnect
from kiln.communicators.base import Communicator, RemoteCommand
from kiln.communicators.keys import TemporaryKeyPair
from kiln.communicators.ssh import SSHCommunicator
from kiln.core.secrets import REDACTOR
from kiln.engine.steps import Step, run_steps


@pytest.mark.parametrize("kind", ["ed25519", "rsa"])
def test_temporary_key_pair_logs_in_and_is_secret(server: Server, kind: str) -> None:
    key = TemporaryKeyPair.generate(kind, 2048 if kind == "rsa" else 0)
    assert key.comment.startswith("packer_")
    assert REDACTOR.redact(key.private_openssh) == "<sensitive>"
    lines = key.private_openssh.splitlines()
    assert REDACTOR.redact(f"x {lines[1]} y") == "x <sensitive> y"  # each line alone too
    server.sshd.authorized_keys.write_text(key.authorized_key_line + "\n")
    comm = SSHCommunicator(server.config(ssh_private_key_file=""), private_key=key.private_key)
    try:
        comm.connect(10)
        assert comm.run(RemoteCommand("true")) == 0
    finally:
        comm.close()


def test_private_key_file_is_written_owner_only(tmp_path: Path) -> None:
    key = TemporaryKeyPair.generate("ed25519")
    path = key.write_private_key(tmp_path / "keys")
    assert path.read_text() == key.private_openssh
    assert (tmp_path / "keys").stat().st_mode & 0o777 == 0o700
    assert path.stat().st_mode & 0o777 == 0o600


@dataclass
class State:
    key: TemporaryKeyPair | None = None
    communicator: Communicator | None = None


class Check(Step[State]):
    """Runs between StepConnect's run and its cleanup: the connection must be usable there."""

    def __init__(self) -> None:
        self.output: list[str] = []

    def run(self, state: State, ctx: object) -> None:  # type: ignore[override]
        assert state.communicator is not None
        state.communicator.run(RemoteCommand("cat ~/.ssh/authorized_keys", on_stdout=self.output.append))


@needs_root
def test_step_connect_and_clear_authorized_keys(server: Server, test_user: SudoUser, build: Captured) -> None:
    key = TemporaryKeyPair.generate("ed25519")
    ssh_dir = test_user.home / ".ssh"
    ssh_dir.mkdir(mode=0o700)
    keep = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKeepThisKeyKeepThisKeyKeepThisKeyKeepThisKey keep@me"
    (ssh_dir / "authorized_keys").write_text(f"{keep}\n{key.authorized_key_line}\n")
    subprocess.run(["chown", "-R", f"{test_user.name}:", str(ssh_dir)], check=True)
    cfg = server.config(ssh_username=test_user.name, ssh_private_key_file="", ssh_clear_authorized_keys=True)
    state = State(key=key)
    check = Check()
    steps: list[Step[State]] = [
        StepConnect(cfg, host=lambda s: "127.0.0.1", private_key=lambda s: s.key),
        check,
        StepCleanupTempKeys(cfg, key=lambda s: s.key),
    ]
    run_steps(steps, state, build.ctx)
    assert state.communicator is None  # closed and forgotten by the cleanup
    assert key.comment in "\n".join(check.output)
    assert (ssh_dir / "authorized_keys").read_text() == keep + "\n"
    assert "==> test: Trying to remove ephemeral keys from authorized_keys files" in build.lines()


@pytest.fixture
def agent(tmp_path: Path, server: Server) -> Iterator[str]:
    sock = str(tmp_path / "agent.sock")
    proc = subprocess.Popen(
        ["ssh-agent", "-D", "-a", sock], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        for _ in range(100):
            if os.path.exists(sock):
                break
            subprocess.run(["sleep", "0.05"], check=True)
        subprocess.run(
            ["ssh-add", "-q", str(server.key)], env={**os.environ, "SSH_AUTH_SOCK": sock}, check=True
        )
        yield sock
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


def test_agent_auth_and_forwarding(server: Server, agent: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSH_AUTH_SOCK", agent)
    comm = SSHCommunicator(server.config(ssh_private_key_file="", ssh_agent_auth=True))
    try:
        comm.connect(10)
        keys: list[str] = []
        assert comm.run(RemoteCommand("ssh-add -l", on_stdout=keys.append)) == 0  # the forwarded agent
        assert len(keys) == 1 and "ED25519" in keys[0]
    finally:
        comm.close()
    comm = SSHCommunicator(
        server.config(ssh_private_key_file="", ssh_agent_auth=True, ssh_disable_agent_forwarding=True)
    )
    try:
        comm.connect(10)
        assert comm.run(RemoteCommand("ssh-add -l")) != 0  # no agent on the other side
    finally:
        comm.close()
