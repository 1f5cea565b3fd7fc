"""The steps every builder with a machine lists: connect to it, provision it, and clean its
temporary key off it (Packer's StepConnect, StepProvision, StepCleanupTempKeys).

How a builder hands over the address: it passes `StepConnect` callables that read its own typed
state, because the address is known only once an earlier step has made the machine (an EIP, a
forwarded port). The state must have a `communicator` attribute; StepConnect puts the connection
there and closes it on cleanup:

    @dataclass
    class State:
        public_ip: str = ""
        key_pair: TemporaryKeyPair | None = None
        communicator: Communicator | None = None

    steps = [
        StepCreateInstance(...),                  # sets state.public_ip
        StepConnect(cfg, host=lambda s: s.public_ip, private_key=lambda s: s.key_pair),
        StepProvision(),                          # ctx.provision(state.communicator)
        StepCleanupTempKeys(cfg, key=lambda s: s.key_pair),
    ]

Without `host`, ssh_host is used (the `null` builder, which calls `connect()` directly).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

from kiln.communicators.base import Communicator
from kiln.communicators.config import SSHConfig
from kiln.communicators.keys import TemporaryKeyPair
from kiln.components import BuildContext, Checkpoint
from kiln.engine.steps import Step
from kiln.errors import KilnError


class HasCommunicator(Protocol):
    communicator: Communicator | None


S = TypeVar("S", bound=HasCommunicator)


class StepConnect(Step[S]):
    """Wait for SSH and store the connection in `state.communicator`; close it on cleanup.
    `alive` and `ready` make connect()'s callables for this run (a VM's); `failed` is called when
    the machine never answered, before the error goes on (to say where its console log is kept)."""

    name = "StepConnect"

    def __init__(
        self,
        config: SSHConfig,
        host: Callable[[S], str] | None = None,
        port: Callable[[S], int] | None = None,
        private_key: Callable[[S], TemporaryKeyPair | None] | None = None,
        alive: Callable[[S, BuildContext], Callable[[], str | None]] | None = None,
        ready: Callable[[S], Callable[[], bool]] | None = None,
        failed: Callable[[S, BuildContext], None] | None = None,
    ) -> None:
        self.config = config
        self.host = host
        self.port = port
        self.private_key = private_key
        self.alive = alive
        self.ready = ready
        self.failed = failed

    def run(self, state: S, ctx: BuildContext) -> None:
        from kiln.communicators.connect import connect  # asyncssh only when a build connects

        try:
            state.communicator = connect(
                self.config,
                ctx,
                host=self.host(state) if self.host else "",
                port=self.port(state) if self.port else 0,
                private_key=self.private_key(state) if self.private_key else None,
                alive=self.alive(state, ctx) if self.alive else None,
                ready=self.ready(state) if self.ready else None,
            )
        except KilnError:
            if self.failed is not None:
                self.failed(state, ctx)
            raise

    def cleanup(self, state: S, ctx: BuildContext) -> None:
        comm, state.communicator = state.communicator, None
        if comm is not None:
            comm.close()


class StepProvision(Step[S]):
    """Run the template's provisioners over the connection StepConnect made. `checkpoint` makes the
    builder's hook that keeps the machine's state after each cached provisioner (the build cache)."""

    name = "StepProvision"

    def __init__(self, checkpoint: Callable[[S, BuildContext], Checkpoint | None] | None = None) -> None:
        self.checkpoint = checkpoint

    def run(self, state: S, ctx: BuildContext) -> None:
        assert state.communicator is not None, "StepProvision runs after StepConnect"
        ctx.provision(state.communicator, self.checkpoint(state, ctx) if self.checkpoint else None)


class StepCleanupTempKeys(Step[S]):
    """ssh_clear_authorized_keys: remove the temporary public key from the machine's
    authorized_keys files (the user's and root's), so that the image does not trust it."""

    name = "StepCleanupTempKeys"

    def __init__(self, config: SSHConfig, key: Callable[[S], TemporaryKeyPair | None]) -> None:
        self.config = config
        self.key = key

    def run(self, state: S, ctx: BuildContext) -> None:
        from kiln.communicators.connect import clear_authorized_keys
        from kiln.communicators.ssh import SSHCommunicator

        key = self.key(state)
        comm = state.communicator
        if not self.config.ssh_clear_authorized_keys or key is None or not isinstance(comm, SSHCommunicator):
            return
        ctx.ui.say("Trying to remove ephemeral keys from authorized_keys files")
        clear_authorized_keys(comm, key.comment, ctx)
