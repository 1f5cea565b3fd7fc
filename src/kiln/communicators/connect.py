"""Connecting a build to its machine: `connect()` and the `StepConnect` step builders list.

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

import shlex
import time
from collections.abc import Callable
from typing import Protocol, TypeVar

from kiln.communicators.banner import wait_for_banner
from kiln.communicators.base import Communicator, NoneCommunicator, RemoteCommand, Unreachable
from kiln.communicators.config import SSHConfig
from kiln.communicators.keys import TemporaryKeyPair
from kiln.communicators.ssh import AuthFailed, SSHCommunicator
from kiln.components import BuildContext
from kiln.engine.steps import Step
from kiln.errors import CommunicatorError

DEFAULT_TIMEOUT = 300.0
#: Longest single connection attempt: a machine that accepts TCP but never answers (still booting,
#: behind a port forward) must not eat the whole ssh_timeout in one try.
ATTEMPT_TIMEOUT = 30.0


class HasCommunicator(Protocol):
    communicator: Communicator | None


S = TypeVar("S", bound=HasCommunicator)


def connect(
    config: SSHConfig,
    ctx: BuildContext,
    host: str = "",
    port: int = 0,
    private_key: TemporaryKeyPair | None = None,
    alive: Callable[[], str | None] | None = None,
    ready: Callable[[], bool] | None = None,
) -> Communicator:
    """Wait until the machine accepts SSH (retrying until ssh_timeout, cancellable) and return the
    connected communicator; a NoneCommunicator for `communicator: none`. `alive`, when given, is
    asked between attempts and returns why the machine can no longer answer (it stopped), or None.
    `ready`, for machines behind a user-mode port forward (which accepts connections long before the
    guest answers): wait for sshd's banner before logging in, with overlapping probes once ready()
    says the machine announced its sshd (see kiln.communicators.banner); `lambda: True` at once."""
    if config.communicator == "none":
        return NoneCommunicator()
    host = host or config.ssh_host
    ctx.ui.say(f"Using ssh communicator to connect: {host}")
    comm = SSHCommunicator(config, host, port, private_key.private_key if private_key else None, ctx.log)
    ctx.ui.say("Waiting for SSH to become available...")
    try:
        deadline = time.monotonic() + (float(config.ssh_timeout) or DEFAULT_TIMEOUT)
        if ready is not None and not config.ssh_bastion_host:
            wait_for_banner_or_fail(comm, config, ctx, alive, ready, deadline)
        wait_for_ssh(comm, config, ctx, alive, deadline)
    except BaseException:
        comm.close()
        raise
    ctx.ui.say("Connected to SSH!")
    # Nothing to check a new machine's key against: accept it, and say which key it was.
    ctx.ui.message(f"Accepted host key of {comm.target.address}: {comm.host_key}")
    return comm


def wait_for_banner_or_fail(
    comm: SSHCommunicator,
    config: SSHConfig,
    ctx: BuildContext,
    alive: Callable[[], str | None] | None,
    ready: Callable[[], bool],
    deadline: float,
) -> None:
    gone: list[str] = []

    def stop() -> bool:
        why = alive() if alive is not None else None
        if why:
            gone.append(why)
        return ctx.cancel.cancelled or bool(why)

    if wait_for_banner(
        comm.target.host, comm.target.port, deadline - time.monotonic(), stop=stop, ready=ready
    ):
        return
    ctx.cancel.check()
    if gone:
        raise _gone(comm, gone[0])
    raise _timed_out(comm, config)


def _gone(comm: SSHCommunicator, why: str) -> CommunicatorError:
    return CommunicatorError(f"{comm.target.address} can no longer answer SSH: {why}")


def _timed_out(comm: SSHCommunicator, config: SSHConfig) -> CommunicatorError:
    return CommunicatorError(
        f"Timeout waiting for SSH. ({comm.target.address} did not accept SSH within {config.ssh_timeout})",
        hint="check that the machine is up and ssh_host/ssh_port are right, or raise ssh_timeout",
    )


def wait_for_ssh(
    comm: SSHCommunicator,
    config: SSHConfig,
    ctx: BuildContext,
    alive: Callable[[], str | None] | None,
    deadline: float,
) -> None:
    auth_failures = 0
    delay = 0.5
    while True:
        ctx.cancel.check()
        gone = alive() if alive is not None else None
        if gone:
            raise _gone(comm, gone)
        remaining = deadline - time.monotonic()
        try:
            comm.connect(max(1.0, min(ATTEMPT_TIMEOUT, remaining)), ctx.cancel)
            return
        except AuthFailed as exc:
            auth_failures += 1
            ctx.log.info("ssh: %s (attempt %d of %d)", exc, auth_failures, config.ssh_handshake_attempts)
            if auth_failures >= config.ssh_handshake_attempts:
                raise CommunicatorError(
                    f"SSH authentication failed: {exc} (after {auth_failures} attempt(s))",
                    hint=exc.hint or "check ssh_username and the password or key",
                ) from None
        except Unreachable as exc:
            ctx.log.info("ssh: %s; retrying", exc)
        if time.monotonic() + delay >= deadline:
            raise _timed_out(comm, config)
        ctx.cancel.sleep(delay)
        delay = min(delay * 2, 5.0)


class StepConnect(Step[S]):
    """Wait for SSH and store the connection in `state.communicator`; close it on cleanup."""

    name = "StepConnect"

    def __init__(
        self,
        config: SSHConfig,
        host: Callable[[S], str] | None = None,
        port: Callable[[S], int] | None = None,
        private_key: Callable[[S], TemporaryKeyPair | None] | None = None,
    ) -> None:
        self.config = config
        self.host = host
        self.port = port
        self.private_key = private_key

    def run(self, state: S, ctx: BuildContext) -> None:
        state.communicator = connect(
            self.config,
            ctx,
            host=self.host(state) if self.host else "",
            port=self.port(state) if self.port else 0,
            private_key=self.private_key(state) if self.private_key else None,
        )

    def cleanup(self, state: S, ctx: BuildContext) -> None:
        comm, state.communicator = state.communicator, None
        if comm is not None:
            comm.close()


class StepCleanupTempKeys(Step[S]):
    """ssh_clear_authorized_keys: remove the temporary public key from the machine's
    authorized_keys files (the user's and root's), so that the image does not trust it."""

    name = "StepCleanupTempKeys"

    def __init__(self, config: SSHConfig, key: Callable[[S], TemporaryKeyPair | None]) -> None:
        self.config = config
        self.key = key

    def run(self, state: S, ctx: BuildContext) -> None:
        key = self.key(state)
        comm = state.communicator
        if not self.config.ssh_clear_authorized_keys or key is None or not isinstance(comm, SSHCommunicator):
            return
        ctx.ui.say("Trying to remove ephemeral keys from authorized_keys files")
        clear_authorized_keys(comm, key.comment, ctx)


def clear_authorized_keys(comm: Communicator, comment: str, ctx: BuildContext) -> None:
    """Delete the lines tagged `comment` from ~/.ssh/authorized_keys and root's. Failures are
    reported, not fatal: the image is built either way."""
    pattern = shlex.quote(f"/{comment}/d")
    sed = f"-name authorized_keys -exec sed -i -e {pattern} {{}} \\;"
    errors: list[str] = []
    try:
        status = comm.run(RemoteCommand(f"find ~/.ssh/ {sed}", on_stderr=errors.append), ctx.cancel)
    except CommunicatorError as exc:
        status, errors = -1, [str(exc)]
    if status != 0:
        ctx.ui.error(f"Error removing temporary key from authorized_keys: {' '.join(errors)[:300]}")
    # root's file too, when the user may sudo without a password (Packer does the same).
    root = f'[ "$(id -u)" = 0 ] || sudo -n find /root/.ssh/ {sed}'
    try:
        comm.run(
            RemoteCommand(root, on_stderr=lambda line: ctx.log.info("clearing root keys: %s", line)),
            ctx.cancel,
        )
    except CommunicatorError as exc:
        ctx.log.info("clearing root's authorized_keys: %s", exc)
