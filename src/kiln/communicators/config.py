"""Packer's communicator options, as one config dataclass builders embed.

A builder's `Config` inherits `SSHConfig` (dataclass inheritance), so a template's `ssh_*` keys decode
straight into it, with the same names, defaults and weak typing Packer uses. `validate_ssh_config`
runs the cross-field checks; builders call it from their `validate` hook.
"""

# ruff: noqa: RUF009 - option() returns a dataclass field, not a shared mutable default

from __future__ import annotations

from dataclasses import dataclass

from kiln.config import DecodeContext, Duration, Options, option

COMMUNICATORS = ("ssh", "none")
FILE_TRANSFER_METHODS = ("scp", "sftp")
TEMPORARY_KEY_TYPES = ("rsa", "ed25519")
_5M, _5S, _ZERO = Duration(300), Duration(5), Duration(0)


@dataclass
class SSHConfig(Options):
    communicator: str = option(
        "ssh",
        choices=COMMUNICATORS,
        invalid='unknown communicator "{value}" (use "ssh" or "none")',
        doc="how kiln reaches the machine (none: it does not connect)",
    )
    ssh_host: str = option(
        "", cache=False, doc="address to connect to; builders that create the machine fill it in"
    )
    ssh_port: int = option(22, cache=False, doc="the port sshd listens on")
    ssh_username: str = option("", doc="the user to log in as")
    ssh_password: str = option("", secret=True, cache=False, doc="log in with this password")
    ssh_private_key_file: str = option("", cache=False, doc="a private key file (OpenSSH or PEM)")
    ssh_keypair_name: str = option(
        "", cache=False, doc="the cloud's name for an existing key pair; ssh_private_key_file is its key"
    )
    ssh_agent_auth: bool = option(
        False, cache=False, doc="authenticate with the keys of the running ssh-agent"
    )
    ssh_timeout: Duration = option(
        _5M, aliases=("ssh_wait_timeout",), cache=False, doc="how long to wait for the machine to accept SSH"
    )
    ssh_handshake_attempts: int = option(
        10, cache=False, doc="authentication failures tolerated before giving up"
    )
    ssh_pty: bool = option(False, doc="request a pseudo-terminal for commands (stderr merges into stdout)")
    ssh_keep_alive_interval: Duration = option(_5S, cache=False, doc="0 disables keep-alives")
    ssh_read_write_timeout: Duration = option(
        _ZERO, cache=False, doc="drop a connection that has sent nothing for this long (0: never)"
    )
    ssh_disable_agent_forwarding: bool = option(
        False, cache=False, doc="do not forward the local ssh-agent to the machine"
    )
    ssh_bastion_host: str = option("", cache=False, doc="connect through this jump host")
    ssh_bastion_port: int = option(22, cache=False, doc="the jump host's SSH port")
    ssh_bastion_username: str = option("", cache=False, doc="the user on the jump host")
    ssh_bastion_password: str = option("", secret=True, cache=False, doc="the jump host user's password")
    ssh_bastion_private_key_file: str = option("", cache=False, doc="a private key file for the jump host")
    ssh_bastion_agent_auth: bool = option(
        False, cache=False, doc="log in to the jump host with the ssh-agent's keys"
    )
    ssh_file_transfer_method: str = option(
        "scp", choices=FILE_TRANSFER_METHODS, cache=False, doc="how files are copied to and from the machine"
    )
    ssh_clear_authorized_keys: bool = option(
        False, doc="remove the temporary key from the machine's authorized_keys before the image is made"
    )
    ssh_temporary_key_pair_type: str = option(
        "rsa",
        aliases=("temporary_key_pair_type",),
        choices=TEMPORARY_KEY_TYPES,
        cache=False,
        doc="the type of the key kiln makes when no password or key is given",
    )
    ssh_temporary_key_pair_bits: int = option(
        0, aliases=("temporary_key_pair_bits",), cache=False, doc="rsa: 4096 by default"
    )
    ssh_ciphers: list[str] = option(
        default_factory=list, cache=False, doc="ciphers to offer, in order of preference"
    )
    ssh_key_exchange_algorithms: list[str] = option(
        default_factory=list, cache=False, doc="key exchange algorithms to offer, in order of preference"
    )


def validate_ssh_config(cfg: SSHConfig, dctx: DecodeContext, path: str, *, needs_host: bool = False) -> None:
    """Report every problem of the communicator options. `needs_host`: the builder cannot find the
    address by itself (the `null` builder), so ssh_host is required."""
    if cfg.communicator != "ssh":  # "none", or one decoding has already refused
        return
    if needs_host and not cfg.ssh_host:
        dctx.error(path, "ssh_host must be specified")
    if not cfg.ssh_username:
        dctx.error(path, "ssh_username must be specified")
    if not 0 < cfg.ssh_port < 65536:
        dctx.error(path, f"ssh_port: {cfg.ssh_port} is not a valid port")
    if cfg.ssh_handshake_attempts < 1:
        dctx.error(path, "ssh_handshake_attempts must be at least 1")
    bits = cfg.ssh_temporary_key_pair_bits
    if bits and cfg.ssh_temporary_key_pair_type == "rsa" and not 2048 <= bits <= 16384:
        dctx.error(path, f"ssh_temporary_key_pair_bits: {bits} is out of range for rsa (2048 to 16384)")
    for name in ("ssh_timeout", "ssh_keep_alive_interval", "ssh_read_write_timeout"):
        if getattr(cfg, name) < 0:
            dctx.error(path, f"{name} must not be negative")
    for name in ("ssh_private_key_file", "ssh_bastion_private_key_file"):
        _check_key_file(getattr(cfg, name), f"{path}.{name}" if path else name, dctx)
    if cfg.ssh_keypair_name and not cfg.ssh_private_key_file and not cfg.ssh_agent_auth:
        dctx.error(path, "ssh_keypair_name needs ssh_private_key_file (or ssh_agent_auth) to log in with")
    if cfg.ssh_bastion_host:
        if not cfg.ssh_bastion_username:
            dctx.error(path, "ssh_bastion_username must be specified with ssh_bastion_host")
        if not (cfg.ssh_bastion_password or cfg.ssh_bastion_private_key_file or cfg.ssh_bastion_agent_auth):
            dctx.error(
                path,
                "ssh_bastion_host needs ssh_bastion_password, ssh_bastion_private_key_file or ssh_bastion_agent_auth",
            )


def _check_key_file(name: str, path: str, dctx: DecodeContext) -> None:
    if not name:
        return
    from kiln.communicators.keys import load_private_key  # asyncssh only when a key is given

    try:
        load_private_key(name)
    except Exception as exc:
        dctx.error(path, str(exc))
