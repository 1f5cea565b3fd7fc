"""Connect to the instance over SSH, run the provisioners, and remove the temporary key from the
machine when asked to (Packer's StepConnect, StepProvision and StepCleanupTempKeys), with the
communicator package's `connect` and `clear_authorized_keys`."""

from __future__ import annotations

from kiln.builders.alicloud_ecs.steps import EcsState
from kiln.components import BuildContext
from kiln.engine.steps import Step


class StepConnect(Step[EcsState]):
    name = "StepConnect"

    def run(self, state: EcsState, ctx: BuildContext) -> None:
        # Imported here: asyncssh is loaded only by builds that connect, not by `kiln validate`.
        from kiln.communicators.connect import clear_authorized_keys, connect
        from kiln.communicators.keys import TemporaryKeyPair

        cfg = state.config
        key = None
        if state.private_key and cfg.communicator == "ssh":
            import asyncssh

            # The cloud made this key (CreateKeyPair); TemporaryKeyPair registers it as a secret.
            key = TemporaryKeyPair(asyncssh.import_private_key(state.private_key), state.key_pair_name)
        state.communicator = connect(cfg, ctx, host=cfg.ssh_host or state.host, private_key=key)
        ctx.provision(state.communicator)
        if cfg.ssh_clear_authorized_keys and key is not None:
            ctx.ui.say("Trying to remove ephemeral keys from authorized_keys files")
            clear_authorized_keys(state.communicator, state.key_pair_name, ctx)

    def cleanup(self, state: EcsState, ctx: BuildContext) -> None:
        comm, state.communicator = state.communicator, None
        if comm is not None:
            comm.close()
