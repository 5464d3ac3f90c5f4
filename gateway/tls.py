"""TLS for the gateway's own HTTPS origin: a self-signed certificate for local use."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from pathlib import Path

LOCAL_NAMES = ("localhost",)
LOCAL_ADDRESSES = ("127.0.0.1", "::1")


def ensure_self_signed(certs_dir: Path, days: int = 825) -> tuple[Path, Path]:
    """Return (cert, key) in ``certs_dir``, generating a self-signed pair for localhost if missing."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    cert_path, key_path = certs_dir / "localhost.pem", certs_dir / "localhost-key.pem"
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    certs_dir.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "speech-gateway localhost")])
    now = dt.datetime.now(dt.timezone.utc)
    san = [x509.DNSName(n) for n in LOCAL_NAMES] + [x509.IPAddress(ipaddress.ip_address(a)) for a in LOCAL_ADDRESSES]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def trust_instructions(cert_path: Path) -> str:
    """How to make browsers and clients trust the generated certificate."""
    return (
        f"Generated a self-signed certificate for localhost: {cert_path}\n"
        f"  Browsers: open the page and accept the warning once, or import {cert_path} as a trusted authority.\n"
        f"  Debian/Ubuntu: cp {cert_path} /usr/local/share/ca-certificates/speech-gateway.crt && update-ca-certificates\n"
        f"  wscat: NODE_EXTRA_CA_CERTS={cert_path} wscat -c wss://localhost:8443/v1/stream -n (or pass -n to skip checks)\n"
        f"  Python client: python -m gateway.client FILE --cafile {cert_path}"
    )
