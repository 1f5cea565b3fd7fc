"""localcloud's certificate authority, for HTTPS clients that reach it through CONNECT.

At its first start localcloud makes a CA (an ECDSA P-256 key, 0600, and a certificate valid for ten
years) in its state folder, and signs a leaf certificate for each aliyuncs.com name a client asks
for, when it first asks (kept in memory and under `certs/`). The CA is name-constrained to
`aliyuncs.com`: a TLS client that trusts it still refuses a certificate it signed for any other
name, so trusting it vouches for nothing else.

`bundle.pem` is the system's CA bundle followed by this CA: what SSL_CERT_FILE (which replaces the
system bundle for Go, OpenSSL and Python) must name so that other TLS still works in that shell.
"""

from __future__ import annotations

import datetime
import os
import re
import ssl
import threading
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kiln import paths
from kiln.localcloud.store import state_folder

SYSTEM_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt")
CONSTRAINED_TO = "aliyuncs.com"
_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")
_DAY = datetime.timedelta(days=1)


def ca_file(state_dir: Path) -> Path:
    return state_dir / "ca.pem"


def bundle_file(state_dir: Path) -> Path:
    return state_dir / "bundle.pem"


def _system_bundle() -> bytes:
    for name in SYSTEM_BUNDLES:
        try:
            return Path(name).read_bytes().rstrip(b"\n") + b"\n"
        except OSError:
            continue
    return b""


def _pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


class Authority:
    """The CA of one state folder, and the TLS server contexts of the names it has signed."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_folder(state_dir)
        self.certs = state_folder(self.state_dir / "certs")
        key_path, cert_path = self.state_dir / "ca-key.pem", ca_file(self.state_dir)
        try:
            loaded = serialization.load_pem_private_key(key_path.read_bytes(), None)
            assert isinstance(loaded, ec.EllipticCurvePrivateKey)
            self.key = loaded
            self.cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        except (OSError, ValueError, AssertionError):
            self.key, self.cert = self._make_ca()
            paths.write_private(key_path, _pem(self.key))
            paths.write_private(cert_path, self.cert.public_bytes(serialization.Encoding.PEM))
        # One key for every leaf: made once per start, so a new name costs one signature only.
        self.leaf_key = ec.generate_private_key(ec.SECP256R1())
        self._contexts: dict[str, ssl.SSLContext] = {}
        self._lock = threading.Lock()
        ca_pem = self.cert.public_bytes(serialization.Encoding.PEM)
        paths.write_private(bundle_file(self.state_dir), _system_bundle() + ca_pem)

    def _make_ca(self) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "kiln localcloud"),
                x509.NameAttribute(NameOID.COMMON_NAME, f"kiln localcloud CA ({os.uname().nodename})"),
            ]
        )
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _DAY)
            .not_valid_after(now + 3650 * _DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.NameConstraints(
                    permitted_subtrees=[x509.DNSName(CONSTRAINED_TO)], excluded_subtrees=None
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        return key, cert

    def context(self, host: str) -> ssl.SSLContext:
        """The server context presenting a certificate for `host` (an aliyuncs.com name)."""
        host = host.lower().rstrip(".")
        if not _NAME.match(host) or not (host == CONSTRAINED_TO or host.endswith("." + CONSTRAINED_TO)):
            raise ValueError(f"{host!r} is not an aliyuncs.com name")
        with self._lock:
            found = self._contexts.get(host)
            if found is None:
                found = self._contexts[host] = self._make_context(host)
            return found

    def _make_context(self, host: str) -> ssl.SSLContext:
        now = datetime.datetime.now(datetime.UTC)
        leaf = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
            .issuer_name(self.cert.subject)
            .public_key(self.leaf_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _DAY)
            .not_valid_after(now + 365 * _DAY)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )
        chain = leaf.public_bytes(serialization.Encoding.PEM) + self.cert.public_bytes(
            serialization.Encoding.PEM
        )
        path = paths.write_private(self.certs / f"{host}.pem", _pem(self.leaf_key) + chain)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(path)
        return context
