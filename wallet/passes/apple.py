"""Apple Wallet store cards: a signed ``.pkpass`` archive with the static card number.

The archive (a zip, files at its root):

- ``pass.json``: a ``storeCard`` with the balance (primary field), the tier and the member's
  name (secondary fields), the card number and the caller's texts on the back, and one QR
  barcode of the static card number (``iso-8859-1``; the digits are shown under it formatted
  for reading). ``sharingProhibited`` is true. With a web service URL the pass carries it and
  its ``authenticationToken``, and the balance and tier say what changed when they change.
- ``icon.png``, ``icon@2x.png``, ``icon@3x.png``, ``logo.png``, ``logo@2x.png``: the program's
  initials in its colours, drawn with Pillow.
- ``<lang>.lproj/pass.strings``: translations of the fixed labels (German by default; English is
  added as it is whenever another language is there, so a phone in a third language does not
  show whichever language its file system lists first).
- ``manifest.json``: the SHA-1 of every other file (Apple's format prescribes SHA-1).
- ``signature``: a detached PKCS #7 signature (DER, SHA-256) of ``manifest.json`` by the pass
  type certificate, carrying Apple's WWDR intermediate certificate.

Only the static card number goes into a pass: Apple Wallet cannot compute rotating codes.

Configuration (``ApplePassConfig``): the pass type identifier, the team identifier, the pass
certificate and its private key (PEM; the key may be encrypted), and the WWDR intermediate
certificate that issued the pass certificate (PEM; currently "G4"). ``load_apple_pass_config``
reads them from the ``LOYALTY_APPLE_*`` settings and checks that they fit together.

The pass web service (devices register for updates of a pass) authenticates a device with the
pass's ``authenticationToken``. ``authentication_token`` derives it from the server key, the
pass type and the serial number (HMAC-SHA256), so the service can check it without storing it;
``check_authentication_token`` compares in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import re
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID
from PIL import Image, ImageDraw

from loyalty.domain.card_style import DEFAULT_STYLE, CardStyle, css_rgb
from loyalty.domain.cards import check_card_number, format_card_number
from wallet.card_images import drawable_text, font, text_width
from wallet.passes import (
    WalletConfigError,
    WalletNotConfiguredError,
    missing_settings,
    read_setting_file,
)

if TYPE_CHECKING:
    from loyalty.app.settings import Settings

NOT_CONFIGURED = "apple_wallet_not_configured"
PKPASS_MEDIA_TYPE = "application/vnd.apple.pkpass"

_SERIAL = re.compile(r"[A-Za-z0-9._-]{1,64}")
_TOKEN_PURPOSE = b"loyalty apple pass authentication token v1\x00"
#: Apple asks for at least 16 characters.
MIN_TOKEN_LENGTH = 16
#: The zip entries' timestamp, fixed so that the same pass gives the same archive.
_ZIP_TIME = (2000, 1, 1, 0, 0, 0)

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


# --- Configuration -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ApplePassConfig:
    """The keys a pass is signed with. Build it with ``from_pem`` (checks that the key belongs
    to the certificate and that the WWDR certificate issued it)."""

    pass_type_id: str
    team_id: str
    certificate: x509.Certificate
    private_key: PrivateKey = field(repr=False)
    wwdr_certificate: x509.Certificate

    @classmethod
    def from_pem(
        cls,
        *,
        pass_type_id: str,
        team_id: str,
        certificate_pem: bytes,
        private_key_pem: bytes,
        wwdr_pem: bytes,
        private_key_password: bytes | None = None,
    ) -> ApplePassConfig:
        """Parse and check the PEM files; ``WalletConfigError`` naming the setting at fault."""
        if not re.fullmatch(r"pass\.[A-Za-z0-9.-]+", pass_type_id):
            raise WalletConfigError(
                f"LOYALTY_APPLE_PASS_TYPE_ID {pass_type_id!r} is not a pass type identifier "
                "(pass.com.example.loyalty)"
            )
        if not re.fullmatch(r"[A-Z0-9]{10}", team_id):
            raise WalletConfigError(
                f"LOYALTY_APPLE_TEAM_ID {team_id!r} is not a team identifier (10 letters/digits)"
            )
        certificate = _load_certificate("LOYALTY_APPLE_PASS_CERT", certificate_pem)
        wwdr = _load_certificate("LOYALTY_APPLE_WWDR_CERT", wwdr_pem)
        try:
            key = serialization.load_pem_private_key(private_key_pem, private_key_password)
        except (ValueError, TypeError) as exc:
            raise WalletConfigError(
                "LOYALTY_APPLE_PASS_KEY: not a PEM private key, or "
                "LOYALTY_APPLE_PASS_KEY_PASSWORD does not open it"
            ) from exc
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise WalletConfigError("LOYALTY_APPLE_PASS_KEY: an RSA or EC key is needed")
        public = serialization.PublicFormat.SubjectPublicKeyInfo
        der = serialization.Encoding.DER
        if key.public_key().public_bytes(der, public) != certificate.public_key().public_bytes(
            der, public
        ):
            raise WalletConfigError(
                "LOYALTY_APPLE_PASS_KEY does not belong to the certificate in "
                "LOYALTY_APPLE_PASS_CERT"
            )
        try:
            certificate.verify_directly_issued_by(wwdr)
        except (ValueError, TypeError, InvalidSignature) as exc:
            raise WalletConfigError(
                "LOYALTY_APPLE_WWDR_CERT did not issue the certificate in LOYALTY_APPLE_PASS_CERT "
                "(download the WWDR generation named in the pass certificate's issuer)"
            ) from exc
        uids = certificate.subject.get_attributes_for_oid(NameOID.USER_ID)
        if uids and uids[0].value != pass_type_id:
            raise WalletConfigError(
                f"LOYALTY_APPLE_PASS_CERT is for {uids[0].value!r}, not for "
                f"LOYALTY_APPLE_PASS_TYPE_ID {pass_type_id!r}"
            )
        return cls(
            pass_type_id=pass_type_id,
            team_id=team_id,
            certificate=certificate,
            private_key=key,
            wwdr_certificate=wwdr,
        )


def _load_certificate(variable: str, pem: bytes) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise WalletConfigError(f"{variable}: not a PEM certificate") from exc


_SETTINGS = {
    "LOYALTY_APPLE_PASS_TYPE_ID": "apple_pass_type_id",
    "LOYALTY_APPLE_TEAM_ID": "apple_team_id",
    "LOYALTY_APPLE_PASS_CERT": "apple_pass_cert",
    "LOYALTY_APPLE_PASS_KEY": "apple_pass_key",
    "LOYALTY_APPLE_WWDR_CERT": "apple_wwdr_cert",
}


def load_apple_pass_config(settings: Settings) -> ApplePassConfig | None:
    """The configured keys, or ``None`` when no ``LOYALTY_APPLE_*`` setting is set (Apple
    Wallet is off). ``WalletConfigError`` when only some are set or the files are wrong."""
    values: dict[str, str | None] = {
        variable: getattr(settings, name) for variable, name in _SETTINGS.items()
    }
    if not any(values.values()) and not settings.apple_pass_key_password:
        return None
    missing = missing_settings(values)
    if missing:
        raise WalletConfigError(
            f"Apple Wallet is partly configured: set {', '.join(missing)} too, "
            "or unset all LOYALTY_APPLE_* settings"
        )
    password = settings.apple_pass_key_password
    return ApplePassConfig.from_pem(
        pass_type_id=str(values["LOYALTY_APPLE_PASS_TYPE_ID"]),
        team_id=str(values["LOYALTY_APPLE_TEAM_ID"]),
        certificate_pem=read_setting_file(
            "LOYALTY_APPLE_PASS_CERT", str(values["LOYALTY_APPLE_PASS_CERT"])
        ),
        private_key_pem=read_setting_file(
            "LOYALTY_APPLE_PASS_KEY", str(values["LOYALTY_APPLE_PASS_KEY"])
        ),
        wwdr_pem=read_setting_file(
            "LOYALTY_APPLE_WWDR_CERT", str(values["LOYALTY_APPLE_WWDR_CERT"])
        ),
        private_key_password=password.encode() if password else None,
    )


def require_apple_pass_config(settings: Settings) -> ApplePassConfig:
    """``load_apple_pass_config``, raising ``WalletNotConfiguredError`` when it is off."""
    config = load_apple_pass_config(settings)
    if config is None:
        raise WalletNotConfiguredError(
            NOT_CONFIGURED,
            "Apple Wallet passes are not available: this installation has no pass certificate "
            "(LOYALTY_APPLE_PASS_TYPE_ID, LOYALTY_APPLE_TEAM_ID, LOYALTY_APPLE_PASS_CERT, "
            "LOYALTY_APPLE_PASS_KEY, LOYALTY_APPLE_WWDR_CERT)",
        )
    return config


# --- Authentication tokens of the pass web service ----------------------------------------


def _server_key_bytes(server_key: str | bytes) -> bytes:
    key = server_key.encode() if isinstance(server_key, str) else server_key
    if not key:
        raise ValueError("the server key is empty")
    return key


def authentication_token(server_key: str | bytes, pass_type_id: str, serial_number: str) -> str:
    """The pass's ``authenticationToken``: hex HMAC-SHA256 of the pass type and serial number
    under the server key (64 characters). The same inputs give the same token, so the web
    service recomputes it instead of storing it; a new server key changes every token (passes
    already on phones then stop updating until they are added again)."""
    _check_serial(serial_number)
    message = _TOKEN_PURPOSE + pass_type_id.encode() + b"\x00" + serial_number.encode()
    return hmac.new(_server_key_bytes(server_key), message, hashlib.sha256).hexdigest()


def check_authentication_token(
    server_key: str | bytes, pass_type_id: str, serial_number: str, token: str
) -> bool:
    """Whether ``token`` (from ``Authorization: ApplePass <token>``) is the pass's token."""
    if not _SERIAL.fullmatch(serial_number):
        return False
    expected = authentication_token(server_key, pass_type_id, serial_number)
    return hmac.compare_digest(expected.encode(), token.encode("utf-8", "replace"))


def _check_serial(serial_number: str) -> None:
    if not _SERIAL.fullmatch(serial_number):
        raise ValueError(
            f"serial number {serial_number!r}: 1-64 letters, digits, '.', '_' or '-' "
            "(it appears in the web service's URLs)"
        )


# --- The pass ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PassLabels:
    """The pass's fixed texts (in pass.json; ``.lproj/pass.strings`` translate them).
    ``%@`` in a change message stands for the new value."""

    description: str = "Membership card"
    balance: str = "Points"
    balance_changed: str = "Your balance is now %@ points."
    tier: str = "Tier"
    tier_changed: str = "Your tier is now %@."
    member: str = "Member"
    card_number: str = "Card number"

    def texts(self) -> tuple[str, ...]:
        return (
            self.description,
            self.balance,
            self.balance_changed,
            self.tier,
            self.tier_changed,
            self.member,
            self.card_number,
        )


DEFAULT_LABELS = PassLabels()
#: German for ``DEFAULT_LABELS``.
GERMAN_STRINGS: Mapping[str, str] = {
    "Membership card": "Mitgliedskarte",
    "Points": "Punkte",
    "Your balance is now %@ points.": "Ihr Punktestand: %@ Punkte.",
    "Tier": "Stufe",
    "Your tier is now %@.": "Ihre Stufe: %@.",
    "Member": "Mitglied",
    "Card number": "Kartennummer",
}
DEFAULT_LOCALIZATIONS: Mapping[str, Mapping[str, str]] = {"de": GERMAN_STRINGS}


@dataclass(frozen=True, slots=True)
class StoreCard:
    """What one member's pass shows. ``serial_number`` identifies the pass for the web service
    (1-64 of ``A-Za-z0-9._-``; better an opaque id than the card number, which would otherwise
    appear in every update URL). ``back_fields``: (label, text) pairs for the back, such as the
    program's terms or its address."""

    serial_number: str
    card_number: str
    program_name: str
    display_name: str
    balance: int
    tier: str | None = None
    style: CardStyle = DEFAULT_STYLE
    back_fields: Sequence[tuple[str, str]] = ()
    web_service_url: str | None = None
    authentication_token: str | None = None

    def __post_init__(self) -> None:
        _check_serial(self.serial_number)
        object.__setattr__(self, "card_number", check_card_number(self.card_number))
        if not self.program_name.strip():
            raise ValueError("a pass needs the program's name")
        if (self.web_service_url is None) != (self.authentication_token is None):
            raise ValueError("web_service_url and authentication_token go together")
        if self.web_service_url is not None:
            if not self.web_service_url.startswith("https://"):
                raise ValueError("Apple Wallet calls its web service over HTTPS only")
            if len(self.authentication_token or "") < MIN_TOKEN_LENGTH:
                raise ValueError(f"authentication_token needs {MIN_TOKEN_LENGTH}+ characters")


def _field(key: str, label: str, value: object, **extra: object) -> dict[str, Any]:
    return {"key": key, "label": label, "value": value, **extra}


def pass_json(
    card: StoreCard, config: ApplePassConfig, labels: PassLabels = DEFAULT_LABELS
) -> dict[str, Any]:
    """The pass.json document of ``card``."""
    style = card.style
    updates = card.web_service_url is not None
    balance_extra: dict[str, object] = {"numberStyle": "PKNumberStyleDecimal"}
    if updates:
        balance_extra["changeMessage"] = labels.balance_changed
    secondary: list[dict[str, Any]] = []
    if card.tier:
        tier_extra: dict[str, object] = {"changeMessage": labels.tier_changed} if updates else {}
        secondary.append(_field("tier", labels.tier, card.tier, **tier_extra))
    if card.display_name.strip():
        secondary.append(_field("name", labels.member, card.display_name.strip()))
    formatted = format_card_number(card.card_number)
    back = [_field("card_number", labels.card_number, formatted)]
    back += [
        _field(f"back_{index}", label, text)
        for index, (label, text) in enumerate(card.back_fields, start=1)
    ]
    document: dict[str, Any] = {
        "formatVersion": 1,
        "passTypeIdentifier": config.pass_type_id,
        "serialNumber": card.serial_number,
        "teamIdentifier": config.team_id,
        "organizationName": card.program_name,
        "description": labels.description,
        "logoText": card.program_name,
        "foregroundColor": css_rgb(style.foreground_rgb),
        "backgroundColor": css_rgb(style.background_rgb),
        "labelColor": css_rgb(style.accent_rgb),
        "sharingProhibited": True,
        "storeCard": {
            "primaryFields": [_field("balance", labels.balance, card.balance, **balance_extra)],
            "secondaryFields": secondary,
            "backFields": back,
        },
        "barcodes": [
            {
                "format": "PKBarcodeFormatQR",
                "message": card.card_number,
                "messageEncoding": "iso-8859-1",
                "altText": formatted,
            }
        ],
    }
    if updates:
        document["webServiceURL"] = card.web_service_url
        document["authenticationToken"] = card.authentication_token
    return document


def _initials(name: str) -> str:
    words = [w for w in re.split(r"[\W_]+", drawable_text(name) or "") if w]
    return "".join(word[0] for word in words[:2]).upper() or "•"


def _badge(card: StoreCard, side: int, *, round_: bool) -> bytes:
    """The program's initials: on the card's background for the icon; a disc in the text colour
    with the initials in the background colour for the logo."""
    style = card.style
    scale = 4  # drawn large and scaled down: smooth edges without antialiased shapes in Pillow
    big = side * scale
    image = Image.new("RGBA", (big, big), (0, 0, 0, 0) if round_ else (*style.background_rgb, 255))
    draw = ImageDraw.Draw(image)
    text_colour = style.foreground_rgb
    if round_:
        draw.ellipse((0, 0, big - 1, big - 1), fill=style.foreground_rgb)
        text_colour = style.background_rgb
    initials = _initials(card.program_name)
    size = int(big * 0.5)
    while size > 8 and text_width(initials, bold=True, size=size) > big * 0.72:
        size -= 2
    draw.text((big / 2, big / 2), initials, font=font(True, size), fill=text_colour, anchor="mm")
    small = image.resize((side, side), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    small.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def pass_images(card: StoreCard) -> dict[str, bytes]:
    """icon.png (29 pt, @2x, @3x) and logo.png (50 pt, @2x) of ``card``'s program."""
    return {
        "icon.png": _badge(card, 29, round_=False),
        "icon@2x.png": _badge(card, 58, round_=False),
        "icon@3x.png": _badge(card, 87, round_=False),
        "logo.png": _badge(card, 50, round_=True),
        "logo@2x.png": _badge(card, 100, round_=True),
    }


def _strings_file(strings: Mapping[str, str]) -> bytes:
    """A ``.strings`` file: ``"key" = "value";`` lines, UTF-16 with a byte order mark."""

    def quote(text: str) -> str:
        escaped = text.replace("\\", "\\\\").replace('"', '\\"')
        return '"' + escaped.replace("\n", "\\n") + '"'

    lines = "".join(f"{quote(key)} = {quote(value)};\n" for key, value in strings.items())
    return lines.encode("utf-16")


def localization_files(
    labels: PassLabels, localizations: Mapping[str, Mapping[str, str]]
) -> dict[str, bytes]:
    """``<lang>.lproj/pass.strings`` for each language; English as it is (``labels``' own
    texts) whenever another language is there and English is not."""
    files: dict[str, bytes] = {}
    languages = dict(localizations)
    if languages and "en" not in languages:
        languages["en"] = {text: text for text in labels.texts()}
    for language, strings in sorted(languages.items()):
        if not re.fullmatch(r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})*", language):
            raise ValueError(f"language {language!r} is not a language code such as de or pt-BR")
        files[f"{language}.lproj/pass.strings"] = _strings_file(strings)
    return files


def manifest(files: Mapping[str, bytes]) -> bytes:
    """manifest.json: the SHA-1 (hex) of each file, by name."""
    hashes_by_name = {
        name: hashlib.sha1(data).hexdigest()  # noqa: S324 - Apple's manifest format is SHA-1
        for name, data in sorted(files.items())
    }
    return json.dumps(hashes_by_name, indent=2).encode()


def sign_manifest(
    manifest_json: bytes, config: ApplePassConfig, *, now: datetime | None = None
) -> bytes:
    """The detached PKCS #7 signature (DER) of ``manifest_json`` by the pass certificate
    (SHA-256), with the pass and WWDR certificates in it. ``WalletConfigError`` when the pass
    certificate has expired or is not valid yet: iOS would refuse the pass."""
    moment = now or datetime.now(UTC)
    certificate = config.certificate
    if not certificate.not_valid_before_utc <= moment <= certificate.not_valid_after_utc:
        raise WalletConfigError(
            "LOYALTY_APPLE_PASS_CERT is valid from "
            f"{certificate.not_valid_before_utc:%Y-%m-%d} to "
            f"{certificate.not_valid_after_utc:%Y-%m-%d}: renew it in Apple's developer account"
        )
    return (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(manifest_json)
        .add_signer(certificate, config.private_key, hashes.SHA256())
        .add_certificate(config.wwdr_certificate)
        .sign(
            serialization.Encoding.DER,
            [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary],
        )
    )


def build_pkpass(
    card: StoreCard,
    config: ApplePassConfig,
    *,
    labels: PassLabels = DEFAULT_LABELS,
    localizations: Mapping[str, Mapping[str, str]] = DEFAULT_LOCALIZATIONS,
    now: datetime | None = None,
) -> bytes:
    """The signed .pkpass archive of ``card`` (serve it as ``PKPASS_MEDIA_TYPE``)."""
    document = pass_json(card, config, labels)
    files: dict[str, bytes] = {
        "pass.json": json.dumps(document, ensure_ascii=False, indent=2).encode(),
        **pass_images(card),
        **localization_files(labels, localizations),
    }
    manifest_json = manifest(files)
    files["manifest.json"] = manifest_json
    files["signature"] = sign_manifest(manifest_json, config, now=now)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return buffer.getvalue()
