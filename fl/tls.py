"""Certificates of a local Flower deployment: a CA and a SuperLink server certificate.

``make_local_certificates(folder)`` writes ``ca.crt`` / ``ca.key`` (a self-signed CA) and
``server.crt`` / ``server.key`` (the SuperLink's certificate for ``localhost``, ``127.0.0.1``
and ``::1``, signed by that CA), PEM-encoded, keys readable by the owner only. The SuperLink
serves with ``--ssl-ca-certfile ca.crt --ssl-certfile server.crt --ssl-keyfile server.key``;
SuperNodes and ``flwr`` verify it with ``--root-certificates ca.crt`` / ``root-certificates``.
A client that does not hold ``ca.crt`` cannot complete the TLS handshake.

SuperNode authentication (``flower-superlink --enable-supernode-auth``): each SuperNode holds
an ECDSA key pair in OpenSSH format (``make_supernode_key``, as ``ssh-keygen -t ecdsa -b 384``
makes), its public key is registered with ``flwr supernode register``, and the node starts with
``--auth-supernode-private-key``; the SuperLink refuses nodes whose key is not registered.

Keys are ECDSA P-256 (``cryptography``, which flwr itself depends on); certificates are valid
for ``days`` (default 7: they are for one local deployment, not for keeping).
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from models.io import atomic_write_bytes

__all__ = ["LocalCertificates", "make_local_certificates", "make_supernode_key", "LOCAL_HOSTS"]

#: Names the local SuperLink certificate is valid for.
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class LocalCertificates:
    """Paths of the PEM files written by :func:`make_local_certificates`."""

    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path


def _name(common_name: str):
    from cryptography.x509.oid import NameOID
    from cryptography import x509

    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "MetaTrading local deployment"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_local_certificates(folder: str | os.PathLike, days: int = 7) -> LocalCertificates:
    """Write a fresh CA and a SuperLink certificate for the loopback names into ``folder``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.timezone.utc)
    start, end = now - dt.timedelta(minutes=5), now + dt.timedelta(days=days)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("MetaTrading local CA")
    ca_cert = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
               .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(start).not_valid_after(end)
               .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                            content_commitment=False, key_encipherment=False,
                                            data_encipherment=False, key_agreement=False,
                                            encipher_only=False, decipher_only=False), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
               .sign(ca_key, hashes.SHA256()))

    key = ec.generate_private_key(ec.SECP256R1())
    sans = [x509.DNSName("localhost")] + [x509.IPAddress(ipaddress.ip_address(h)) for h in LOCAL_HOSTS[1:]]
    cert = (x509.CertificateBuilder().subject_name(_name("localhost")).issuer_name(ca_name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))

    def pem_key(k) -> bytes:
        return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                               serialization.NoEncryption())

    paths = LocalCertificates(folder / "ca.crt", folder / "ca.key", folder / "server.crt", folder / "server.key")
    atomic_write_bytes(paths.ca_cert, ca_cert.public_bytes(serialization.Encoding.PEM))
    atomic_write_bytes(paths.server_cert, cert.public_bytes(serialization.Encoding.PEM))
    for path, k in ((paths.ca_key, ca_key), (paths.server_key, key)):
        atomic_write_bytes(path, pem_key(k))
        os.chmod(path, 0o600)
    return paths


def make_supernode_key(path: str | os.PathLike) -> tuple[Path, Path]:
    """Write an ECDSA P-384 key pair in OpenSSH format: ``path`` (private, owner-only) and
    ``path.pub``; returns both paths."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP384R1())
    atomic_write_bytes(path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                               serialization.NoEncryption()))
    os.chmod(path, 0o600)
    pub = path.with_name(path.name + ".pub")
    atomic_write_bytes(pub, key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                                          serialization.PublicFormat.OpenSSH))
    return path, pub
