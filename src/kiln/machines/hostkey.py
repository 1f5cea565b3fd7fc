"""A machine's SSH host key, made on the host (ssh-keygen in an emulated guest costs seconds) and
handed to the guest through its seed, so kiln knows the key before it connects."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HostKey:
    private: str  # OpenSSH private key file content
    public: str  # one-line public key, as in known_hosts after the host name


def new_host_key() -> HostKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return HostKey(private.decode(), public.decode())
