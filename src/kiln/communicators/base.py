"""The communicator interface provisioners use to run commands on, and move files to and from,
the machine being built."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from kiln.core.cancel import CancelToken
from kiln.errors import CommunicatorError


class Disconnected(CommunicatorError):
    """The connection dropped while a command was running (a reboot, sshd restarted...)."""


class Unreachable(CommunicatorError):
    """The machine could not be reached to start an operation (it may be rebooting). Nothing was
    started, so the caller may retry (the shell provisioner does, until start_retry_timeout)."""


@dataclass
class RemoteCommand:
    """A command to run on the machine. Output is delivered line by line (without the newline) to
    the callbacks as it arrives, so the build can stream it live."""

    command: str
    stdin: bytes | None = None
    on_stdout: Callable[[str], None] | None = None
    on_stderr: Callable[[str], None] | None = None


class Communicator(ABC):
    """A connection to the machine. Implementations are thread-safe for one caller at a time."""

    #: the name used in template options and log lines ("ssh", "none")
    type_name: str = ""

    @abstractmethod
    def run(self, cmd: RemoteCommand, cancel: CancelToken | None = None) -> int:
        """Run the command to completion and return its exit status. Raises Disconnected if the
        connection drops before the command exits."""

    def run_once(self, cmd: RemoteCommand, timeout: float = 10.0, cancel: CancelToken | None = None) -> int:
        """Best effort (removing a temporary file after a failure): like `run`, but one short try,
        `timeout` seconds in all, with no waiting for a machine that went away. Raises
        CommunicatorError if it cannot be done at once."""
        return self.run(cmd, cancel)

    @abstractmethod
    def upload(
        self, dst: str, src: BinaryIO, mode: int | None = None, cancel: CancelToken | None = None
    ) -> None:
        """Write the stream to the remote file `dst` (created or replaced)."""

    @abstractmethod
    def upload_dir(
        self, dst: str, src: Path, exclude: Sequence[str] = (), cancel: CancelToken | None = None
    ) -> None:
        """Copy the contents of local folder `src` into remote folder `dst` (created if missing),
        keeping modes and symlinks, as one stream."""

    @abstractmethod
    def download(self, src: str, dst: BinaryIO, cancel: CancelToken | None = None) -> None:
        """Copy the remote file `src` into the stream."""

    @abstractmethod
    def download_dir(
        self, src: str, dst: Path, exclude: Sequence[str] = (), cancel: CancelToken | None = None
    ) -> None:
        """Copy the contents of remote folder `src` into local folder `dst` (created if missing)."""

    def close(self) -> None:  # noqa: B027 - optional for communicators holding no connection
        """Close the connection. Safe to call twice."""


class NoneCommunicator(Communicator):
    """`communicator: none`: the build has no connection; provisioners that need one fail clearly."""

    type_name = "none"

    def _refuse(self) -> CommunicatorError:
        return CommunicatorError(
            "this provisioner needs a connection to the machine, but the build's communicator is 'none'",
            hint='set "communicator": "ssh" (with ssh_host, ssh_username...) on the builder',
        )

    def run(self, cmd: RemoteCommand, cancel: CancelToken | None = None) -> int:
        raise self._refuse()

    def upload(
        self, dst: str, src: BinaryIO, mode: int | None = None, cancel: CancelToken | None = None
    ) -> None:
        raise self._refuse()

    def upload_dir(
        self, dst: str, src: Path, exclude: Sequence[str] = (), cancel: CancelToken | None = None
    ) -> None:
        raise self._refuse()

    def download(self, src: str, dst: BinaryIO, cancel: CancelToken | None = None) -> None:
        raise self._refuse()

    def download_dir(
        self, src: str, dst: Path, exclude: Sequence[str] = (), cancel: CancelToken | None = None
    ) -> None:
        raise self._refuse()
