"""A private certificate authority for the brokers and their clients.

One CA (``ca.crt``/``ca.key`` in the PKI directory) signs a server certificate per broker (with
the DNS names and addresses clients reach it by, checked by every client) and, where a broker
requires them, client certificates. Keys are ECDSA P-256, written with mode 0600. An existing CA
is reused, so certificates can be added later; a leaf is replaced when issued again.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from edgecascade.deploy.errors import DeployError
from edgecascade.deploy.files import write_file
from edgecascade.shared.topics import validate_id

CA_DAYS = 3650
LEAF_DAYS = 825  # what public CAs and Apple platforms accept as the longest TLS leaf
_CA_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)


@dataclass(frozen=True, slots=True)
class Issued:
    """Where a certificate and its key were written."""

    cert: Path
    key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "EdgeCascade"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_file(path, pem, mode=0o600)


def _load_ca(directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert_path, key_path = directory / "ca.crt", directory / "ca.key"
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise DeployError(f"CA in {directory} cannot be read: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise DeployError(f"{key_path} is not an EC private key")
    return cert, key


def ensure_ca(directory: Path, days: int = CA_DAYS) -> tuple[Issued, bool]:
    """The CA in ``directory``, created if absent; True when it was created now."""
    issued = Issued(directory / "ca.crt", directory / "ca.key")
    if issued.cert.exists() or issued.key.exists():
        _load_ca(directory)  # both there and readable, or a clear error
        return issued, False
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    name = _name("EdgeCascade private CA")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_CA_USAGE, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_key(issued.key, key)
    write_file(issued.cert, cert.public_bytes(serialization.Encoding.PEM))
    return issued, True


def check_hosts(hosts: list[str]) -> list[x509.GeneralName]:
    """The subject alternative names for ``hosts``; :class:`DeployError` names a bad one."""
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
            continue
        except ValueError:
            pass
        labels = host.rstrip(".").split(".")
        if (
            not host
            or not all(label and len(label) <= 63 for label in labels)
            or any(not ch.isalnum() and ch not in "-*" for ch in host.replace(".", ""))
        ):
            raise DeployError(f"invalid host name {host!r} for a certificate")
        names.append(x509.DNSName(host))
    return names


def issue(
    directory: Path,
    name: str,
    *,
    server_hosts: list[str] | None = None,
    days: int = LEAF_DAYS,
) -> Issued:
    """Sign ``<name>.crt``/``<name>.key`` with the CA in ``directory``.

    With ``server_hosts`` it is a broker's certificate valid for those names and addresses;
    without, a client certificate whose common name is ``name``.
    """
    validate_id(name, "certificate name")
    if server_hosts is not None and not server_hosts:
        raise DeployError(f"server certificate {name!r} needs at least one host name or address")
    ca_cert, ca_key = _load_ca(directory)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server_hosts else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if server_hosts:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(check_hosts(server_hosts)), critical=False
        )
    cert = builder.sign(ca_key, hashes.SHA256())
    issued = Issued(directory / f"{name}.crt", directory / f"{name}.key")
    _write_key(issued.key, key)
    write_file(issued.cert, cert.public_bytes(serialization.Encoding.PEM))
    return issued
