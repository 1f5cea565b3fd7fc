"""Connecting a build to its machine: `connect()` waits for SSH and returns the communicator;
`clear_authorized_keys()` removes a temporary key from it (ssh_clear_authorized_keys).

Both take what they need of a build (its UI, cancel token and log) as a `ConnectContext`; a
`kiln.components.BuildContext` is one. The steps builders list (`StepConnect`,
`StepCleanupTempKeys`) are in `kiln.builders.connect`: communicators know nothing of builds.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from kiln.communicators.banner import wait_for_banner
from kiln.communicators.base import Communicator, NoneCommunicator, RemoteCommand, Unreachable
from kiln.communicators.config import SSHConfig
from kiln.communicators.keys import TemporaryKeyPair
from kiln.communicators.ssh import AuthFailed, SSHCommunicator
from kiln.core.cancel import CancelToken
from kiln.core.ui import Ui
from kiln.errors import CommunicatorError

if TYPE_CHECKING:
    import logging

DEFAULT_TIMEOUT = 300.0
#: Longest single connection attempt: a machine that accepts TCP but never answers (still booting,
#: behind a port forward) must not eat the whole ssh_timeout in one try.
ATTEMPT_TIMEOUT = 30.0


class ConnectContext(Protocol):
    """What connecting needs of a build: where to say what happens, when to stop, where to log."""

    @property
    def ui(self) -> Ui: ...

    @property
    def cancel(self) -> CancelToken: ...

    @property
    def log(self) -> logging.Logger: ...


def connect(
    config: SSHConfig,
    ctx: ConnectContext,
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
    ctx: ConnectContext,
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
    ctx: ConnectContext,
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


def clear_authorized_keys(comm: Communicator, comment: str, ctx: ConnectContext) -> None:
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
