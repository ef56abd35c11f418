"""Test keys for the wallet passes: a CA, a fake Apple WWDR intermediate, a pass type
certificate, and a Google service account key file, all made here with ``cryptography``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

PASS_TYPE_ID = "pass.de.example.loyalty"
TEAM_ID = "A1B2C3D4E5"
NOW = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)

Key = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def key_pem(key: Key, password: bytes | None = None) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def _name(*attributes: tuple[x509.ObjectIdentifier, str]) -> x509.Name:
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in attributes])


def _certificate(
    subject: x509.Name,
    public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey,
    issuer: x509.Name,
    issuer_key: Key,
    *,
    ca: bool,
    not_before: datetime,
    not_after: datetime,
    path_length: int | None = None,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not ca,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    return builder.sign(issuer_key, hashes.SHA256())


@dataclass(frozen=True)
class Chain:
    ca: x509.Certificate
    ca_key: Key
    wwdr: x509.Certificate
    wwdr_key: Key
    pass_certificate: x509.Certificate
    pass_key: rsa.RSAPrivateKey


def make_chain(
    pass_type_id: str = PASS_TYPE_ID,
    *,
    not_before: datetime = NOW - timedelta(days=30),
    not_after: datetime = NOW + timedelta(days=365),
    ca_name: str = "Test Root CA",
) -> Chain:
    """Root CA -> "WWDR" intermediate -> pass type certificate (RSA 2048 like Apple's; the CAs
    use P-256 to be quick)."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_subject = _name((NameOID.COMMON_NAME, ca_name), (NameOID.ORGANIZATION_NAME, "Test"))
    start, end = NOW - timedelta(days=3650), NOW + timedelta(days=3650)
    ca = _certificate(
        ca_subject,
        ca_key.public_key(),
        ca_subject,
        ca_key,
        ca=True,
        not_before=start,
        not_after=end,
        path_length=1,
    )
    wwdr_key = ec.generate_private_key(ec.SECP256R1())
    wwdr_subject = _name(
        (NameOID.COMMON_NAME, "Test Worldwide Developer Relations"),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, "G4"),
        (NameOID.ORGANIZATION_NAME, "Test"),
    )
    wwdr = _certificate(
        wwdr_subject,
        wwdr_key.public_key(),
        ca_subject,
        ca_key,
        ca=True,
        not_before=start,
        not_after=end,
        path_length=0,
    )
    pass_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pass_subject = _name(
        (NameOID.USER_ID, pass_type_id),
        (NameOID.COMMON_NAME, f"Pass Type ID: {pass_type_id}"),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, TEAM_ID),
        (NameOID.ORGANIZATION_NAME, "Bäckerei Sonnenschein GmbH"),
        (NameOID.COUNTRY_NAME, "DE"),
    )
    pass_certificate = _certificate(
        pass_subject,
        pass_key.public_key(),
        wwdr_subject,
        wwdr_key,
        ca=False,
        not_before=not_before,
        not_after=not_after,
    )
    return Chain(ca, ca_key, wwdr, wwdr_key, pass_certificate, pass_key)


def service_account_json(key: rsa.RSAPrivateKey, email: str, key_id: str = "0123abcd") -> str:
    """A key file shaped like the ones Google Cloud issues for a service account."""
    return json.dumps(
        {
            "type": "service_account",
            "project_id": "loyalty-test",
            "private_key_id": key_id,
            "private_key": key_pem(key).decode(),
            "client_email": email,
            "client_id": "1234567890",
            "token_uri": "https://oauth2.googleapis.com/token",
        }
    )
