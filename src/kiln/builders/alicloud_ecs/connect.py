"""Connect to the instance over SSH, run the provisioners, and remove the temporary key from the
machine when asked to (Packer's StepConnect, StepProvision and StepCleanupTempKeys)."""

from __future__ import annotations

import time
from typing import Any

from kiln.builders.alicloud_ecs.steps import EcsState
from kiln.communicators.base import NoneCommunicator, RemoteCommand
from kiln.components import BuildContext
from kiln.engine.secrets import REDACTOR
from kiln.engine.steps import Step
from kiln.errors import CommunicatorError


class StepConnect(Step[EcsState]):
    name = "StepConnect"

    def run(self, state: EcsState, ctx: BuildContext) -> None:
        cfg = state.config
        if cfg.communicator == "none":
            ctx.provision(NoneCommunicator())
            return
        from kiln.communicators.ssh import SSHCommunicator

        key: Any = None
        if state.private_key:
            import asyncssh

            REDACTOR.add(state.private_key)
            key = asyncssh.import_private_key(state.private_key)
        host = cfg.ssh_host or state.host
        comm = SSHCommunicator(cfg, host=host, private_key=key, log=ctx.log)
        state.communicator = comm
        ctx.ui.say(f"Using ssh communicator to connect: {host}")
        ctx.ui.say("Waiting for SSH to become available...")
        self._wait(comm, state, ctx)
        ctx.ui.say("Connected to SSH!")
        ctx.provision(comm)
        if cfg.ssh_clear_authorized_keys and state.key_pair_name:
            ctx.ui.say("Trying to remove ephemeral keys from authorized_keys files")
            pattern = state.key_pair_name
            for command in (
                f"sed -i.bak '/{pattern}/d' ~/.ssh/authorized_keys; rm -f ~/.ssh/authorized_keys.bak",
                f"sudo sed -i.bak '/{pattern}/d' /root/.ssh/authorized_keys; sudo rm -f /root/.ssh/authorized_keys.bak",
            ):
                comm.run(RemoteCommand(command), ctx.cancel)

    def _wait(self, comm: Any, state: EcsState, ctx: BuildContext) -> None:
        """Try to connect until ssh_timeout; refusals of our key count against ssh_handshake_attempts
        (cloud-init may not have installed it yet)."""
        cfg = state.config
        deadline = time.monotonic() + float(cfg.ssh_timeout)
        refusals = 0
        pause = 0.2
        while True:
            ctx.cancel.check()
            try:
                comm.connect(timeout=min(30.0, max(1.0, deadline - time.monotonic())), cancel=ctx.cancel)
                return
            except CommunicatorError as exc:
                if type(exc).__name__ == "AuthFailed":
                    refusals += 1
                    if refusals >= cfg.ssh_handshake_attempts:
                        raise
                if time.monotonic() >= deadline:
                    raise CommunicatorError(
                        f"Timeout waiting for SSH: {exc}",
                        "raise ssh_timeout, or check that the instance's sshd is reachable at "
                        f"{comm.target.address}",
                    ) from None
                ctx.log.debug("SSH not ready: %s", exc)
            ctx.cancel.sleep(pause)
            pause = min(2.0, pause * 1.5)

    def cleanup(self, state: EcsState, ctx: BuildContext) -> None:
        if state.communicator is not None:
            state.communicator.close()
            state.communicator = None
