"""SSH keys: the user's private key files, and temporary key pairs made for one build.

A temporary key pair lives in memory only: the private key never touches the disk (nothing on the
machine can read it), and its OpenSSH text is registered with the secret redactor so that it can
never be printed. Builders that need a file for a tool they run write it with `write_private_key`,
which creates the file 0600 in a 0700 folder.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh

from kiln import paths
from kiln.core.secrets import REDACTOR
from kiln.errors import CommunicatorError

DEFAULT_RSA_BITS = 4096


def load_private_key(path: str) -> Any:
    """The key in file `path` (an asyncssh.SSHKey), or a CommunicatorError naming the file."""
    file = Path(path).expanduser()
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise CommunicatorError(
            f"cannot read private key file {path}: {exc.strerror}", hint="check ssh_private_key_file"
        ) from None
    try:
        return asyncssh.import_private_key(data)
    except asyncssh.KeyImportError as exc:
        raise CommunicatorError(
            f"{path} is not a usable private key: {exc}",
            hint="give an unencrypted OpenSSH or PEM private key, or use ssh_agent_auth",
        ) from None


@dataclass
class TemporaryKeyPair:
    """A key pair made for one build. `comment` (packer_<uuid>) tags the public key so that
    ssh_clear_authorized_keys can find it again in authorized_keys."""

    private_key: Any  # asyncssh.SSHKey
    comment: str
    public_openssh: str = field(init=False)
    #: The private key in OpenSSH format, made once: each export differs (a random check value),
    #: and this is the text registered as a secret.
    private_openssh: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.public_openssh = self.private_key.export_public_key("openssh").decode().strip()
        self.private_openssh = self.private_key.export_private_key("openssh").decode()
        REDACTOR.add(self.private_openssh)

    @classmethod
    def generate(cls, kind: str = "rsa", bits: int = 0, comment: str = "") -> TemporaryKeyPair:
        comment = comment or f"packer_{uuid.uuid4()}"
        if kind == "ed25519":
            key = asyncssh.generate_private_key("ssh-ed25519", comment=comment)
        elif kind == "rsa":
            key = asyncssh.generate_private_key("ssh-rsa", key_size=bits or DEFAULT_RSA_BITS, comment=comment)
        else:
            raise CommunicatorError(
                f"unsupported temporary key pair type {kind!r}",
                hint="use ssh_temporary_key_pair_type rsa or ed25519",
            )
        return cls(key, comment)

    @property
    def authorized_key_line(self) -> str:
        return f"{self.public_openssh.split(' ')[0]} {self.public_openssh.split(' ')[1]} {self.comment}"

    def write_private_key(self, folder: Path) -> Path:
        """Write the private key to `folder`/id (folder made 0700, file 0600) for tools needing a file."""
        return paths.write_private(paths.private_dir(folder) / "id", self.private_openssh.encode())
