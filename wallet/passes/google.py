"""Google Wallet loyalty cards: the loyalty class and object, and the "save to Google Wallet" link.

- ``loyalty_class``: one per program, id ``<issuer id>.<program code>``: the program's name and
  logo (a public HTTPS URL: Google fetches it), its background colour, the labels.
- ``loyalty_object``: one per member, id ``<issuer id>.<card number>``: ``accountId`` the static
  card number, ``accountName`` the display name, ``loyaltyPoints`` the balance, the tier as a
  text module, a QR ``barcode`` of the static card number and, when the member's TOTP secret is
  given, a ``rotatingBarcode`` that Google Wallet computes on the phone exactly like the web
  wallet does (``loyalty.domain.cards.rotating_code``): the value pattern
  ``08<member number, 10 digits>{totp_value_0}``, ``TOTP_SHA1``, 30 000 ms, 8 digits, the secret
  in Base16. Google shows the rotating barcode where its app supports it and the static one
  elsewhere.
- ``save_jwt`` / ``save_url``: the JWT (RS256, signed with the service account's key;
  ``iss`` the service account, ``aud`` ``google``, ``typ`` ``savetowallet``, ``origins``, and
  the classes and objects in ``payload``) and ``https://pay.google.com/gp/v/save/<jwt>``.
  Google calls 1800 characters the longest safe JWT (``MAX_SAFE_JWT_LENGTH``): with the class
  inserted beforehand through the REST API, a JWT carrying only the object stays well below it.

A rotating barcode puts the member's TOTP secret into the JWT, which travels in a URL: only
build such a link for the signed-in member's own browser (it already holds the secret to show
the rotating code), never for mail, or insert the object through the REST API and reference it
by id (``object_reference``).

Configuration (``GoogleWalletConfig``): the issuer id (Google Pay & Wallet Console) and the
service account key file Google issues (JSON with ``client_email``, ``private_key`` and
``private_key_id``), from ``LOYALTY_GOOGLE_WALLET_ISSUER_ID`` and
``LOYALTY_GOOGLE_WALLET_SERVICE_ACCOUNT``. The JWT is signed with ``cryptography`` directly
(RS256 is PKCS #1 v1.5 with SHA-256 over ``header.payload``): no JWT library is needed to make
one; the tests verify it with PyJWT.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from loyalty.domain.card_style import DEFAULT_STYLE, CardStyle
from loyalty.domain.cards import (
    MAX_MEMBER_NUMBER,
    MEMBER_NUMBER_WIDTH,
    MIN_SECRET_BYTES,
    ROTATING_PREFIX,
    TOTP_DIGITS,
    TOTP_STEP,
    check_card_number,
    format_card_number,
)
from wallet.passes import (
    WalletConfigError,
    WalletNotConfiguredError,
    missing_settings,
    read_setting_file,
)

if TYPE_CHECKING:
    from loyalty.app.settings import Settings

NOT_CONFIGURED = "google_wallet_not_configured"
SAVE_URL_PREFIX = "https://pay.google.com/gp/v/save/"
#: Google's word for the longest JWT that works in every browser's URL.
MAX_SAFE_JWT_LENGTH = 1800

_ISSUER = re.compile(r"[0-9]{1,30}")
_ID_SUFFIX = re.compile(r"[A-Za-z0-9._-]{1,100}")

JsonObject = dict[str, Any]


# --- Configuration -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GoogleWalletConfig:
    """The issuer and the service account that signs the save links."""

    issuer_id: str
    service_account_email: str
    private_key: rsa.RSAPrivateKey = field(repr=False)
    private_key_id: str | None = None

    def __post_init__(self) -> None:
        if not _ISSUER.fullmatch(self.issuer_id):
            raise WalletConfigError(
                f"LOYALTY_GOOGLE_WALLET_ISSUER_ID {self.issuer_id!r} is not an issuer id "
                "(digits, from the Google Pay & Wallet Console)"
            )

    @classmethod
    def from_service_account_json(cls, issuer_id: str, key_file: bytes | str) -> GoogleWalletConfig:
        """From the service account key file as Google issues it; ``WalletConfigError`` when it
        is not one (the message never quotes the key)."""
        variable = "LOYALTY_GOOGLE_WALLET_SERVICE_ACCOUNT"
        try:
            data = json.loads(key_file)
        except ValueError as exc:
            raise WalletConfigError(f"{variable}: the file is not JSON") from exc
        if not isinstance(data, dict):
            raise WalletConfigError(f"{variable}: not a service account key file")
        if data.get("type", "service_account") != "service_account":
            raise WalletConfigError(
                f"{variable}: type is {data.get('type')!r}, not service_account"
            )
        email, pem = data.get("client_email"), data.get("private_key")
        if not isinstance(email, str) or "@" not in email or not isinstance(pem, str):
            raise WalletConfigError(f"{variable}: client_email or private_key is missing")
        try:
            key = serialization.load_pem_private_key(pem.encode(), None)
        except (ValueError, TypeError) as exc:
            raise WalletConfigError(f"{variable}: private_key is not a PEM private key") from exc
        if not isinstance(key, rsa.RSAPrivateKey):
            raise WalletConfigError(f"{variable}: private_key is not an RSA key")
        key_id = data.get("private_key_id")
        return cls(
            issuer_id=issuer_id,
            service_account_email=email,
            private_key=key,
            private_key_id=key_id if isinstance(key_id, str) and key_id else None,
        )


def load_google_wallet_config(settings: Settings) -> GoogleWalletConfig | None:
    """The configured issuer and key, or ``None`` when neither ``LOYALTY_GOOGLE_WALLET_*``
    setting is set (Google Wallet is off). ``WalletConfigError`` when only one is set or the
    key file is wrong."""
    values: dict[str, str | None] = {
        "LOYALTY_GOOGLE_WALLET_ISSUER_ID": settings.google_wallet_issuer_id,
        "LOYALTY_GOOGLE_WALLET_SERVICE_ACCOUNT": settings.google_wallet_service_account,
    }
    if not any(values.values()):
        return None
    missing = missing_settings(values)
    if missing:
        raise WalletConfigError(
            f"Google Wallet is partly configured: set {', '.join(missing)} too, "
            "or unset both LOYALTY_GOOGLE_WALLET_* settings"
        )
    path = str(values["LOYALTY_GOOGLE_WALLET_SERVICE_ACCOUNT"])
    key_file = read_setting_file("LOYALTY_GOOGLE_WALLET_SERVICE_ACCOUNT", path)
    return GoogleWalletConfig.from_service_account_json(
        str(values["LOYALTY_GOOGLE_WALLET_ISSUER_ID"]), key_file
    )


def require_google_wallet_config(settings: Settings) -> GoogleWalletConfig:
    """``load_google_wallet_config``, raising ``WalletNotConfiguredError`` when it is off."""
    config = load_google_wallet_config(settings)
    if config is None:
        raise WalletNotConfiguredError(
            NOT_CONFIGURED,
            "Google Wallet passes are not available: this installation has no Google Wallet "
            "issuer (LOYALTY_GOOGLE_WALLET_ISSUER_ID, LOYALTY_GOOGLE_WALLET_SERVICE_ACCOUNT)",
        )
    return config


# --- Classes and objects -------------------------------------------------------------------


def class_id(config: GoogleWalletConfig, program_code: str) -> str:
    """``<issuer id>.<program code>``; the code must be unique among the issuer's programs
    (``A-Za-z0-9._-``)."""
    if not _ID_SUFFIX.fullmatch(program_code):
        raise ValueError(f"program code {program_code!r}: 1-100 of A-Za-z0-9 . _ -")
    return f"{config.issuer_id}.{program_code}"


def object_id(config: GoogleWalletConfig, card_number: str) -> str:
    """``<issuer id>.<card number>`` (canonical digits)."""
    return f"{config.issuer_id}.{check_card_number(card_number)}"


@dataclass(frozen=True, slots=True)
class GoogleLabels:
    """Labels in the default language, and their translations by language code."""

    language: str = "en"
    points: str = "Points"
    tier: str = "Tier"
    member: str = "Member"
    card_number: str = "Card number"
    translations: Mapping[str, Mapping[str, str]] = field(
        default_factory=lambda: {
            "de": {
                "Points": "Punkte",
                "Tier": "Stufe",
                "Member": "Mitglied",
                "Card number": "Kartennummer",
            }
        }
    )

    def localized(self, text: str) -> JsonObject:
        """A LocalizedString of ``text`` with each translation there is."""
        translated = [
            {"language": language, "value": strings[text]}
            for language, strings in sorted(self.translations.items())
            if text in strings
        ]
        value: JsonObject = {"defaultValue": {"language": self.language, "value": text}}
        if translated:
            value["translatedValues"] = translated
        return value


DEFAULT_LABELS = GoogleLabels()


def loyalty_class(
    config: GoogleWalletConfig,
    *,
    program_code: str,
    program_name: str,
    logo_url: str,
    style: CardStyle = DEFAULT_STYLE,
    issuer_name: str | None = None,
    homepage_url: str | None = None,
    country_code: str | None = None,
    labels: GoogleLabels = DEFAULT_LABELS,
    review_status: str = "UNDER_REVIEW",
) -> JsonObject:
    """The program's LoyaltyClass. ``logo_url``: a public HTTPS URL of the program's logo
    (Google requires one; it fetches and caches the image)."""
    if not logo_url.startswith("https://"):
        raise ValueError("Google fetches the program logo over HTTPS only")
    document: JsonObject = {
        "id": class_id(config, program_code),
        "issuerName": issuer_name or program_name,
        "programName": program_name,
        "programLogo": {
            "sourceUri": {"uri": logo_url},
            "contentDescription": {
                "defaultValue": {"language": labels.language, "value": program_name}
            },
        },
        "hexBackgroundColor": style.background,
        "accountNameLabel": labels.member,
        "localizedAccountNameLabel": labels.localized(labels.member),
        "accountIdLabel": labels.card_number,
        "localizedAccountIdLabel": labels.localized(labels.card_number),
        "reviewStatus": review_status,
        "multipleDevicesAndHoldersAllowedStatus": "ONE_USER_ALL_DEVICES",
    }
    if homepage_url is not None:
        document["homepageUri"] = {"uri": homepage_url, "description": program_name}
    if country_code is not None:
        document["countryCode"] = country_code
    return document


def rotating_barcode(member_number: int, totp_secret: bytes) -> JsonObject:
    """The RotatingBarcode that shows ``loyalty.domain.cards.rotating_code`` of the member:
    ``08`` + member number (10 digits) + the 8-digit RFC 6238 TOTP (SHA-1, 30 s) of the secret,
    which Google takes in Base16."""
    if not 1 <= member_number <= MAX_MEMBER_NUMBER:
        raise ValueError(f"member number must be 1..{MAX_MEMBER_NUMBER}, not {member_number}")
    if len(totp_secret) < MIN_SECRET_BYTES:
        raise ValueError(f"a TOTP secret needs at least {MIN_SECRET_BYTES} bytes")
    prefix = ROTATING_PREFIX + str(member_number).zfill(MEMBER_NUMBER_WIDTH)
    return {
        "type": "QR_CODE",
        "renderEncoding": "UTF_8",
        "valuePattern": prefix + "{totp_value_0}",
        "totpDetails": {
            "periodMillis": str(int(TOTP_STEP.total_seconds() * 1000)),
            "algorithm": "TOTP_SHA1",
            "parameters": [{"key": totp_secret.hex(), "valueLength": TOTP_DIGITS}],
        },
    }


def loyalty_object(
    config: GoogleWalletConfig,
    *,
    program_code: str,
    card_number: str,
    display_name: str,
    balance: int,
    tier: str | None = None,
    member_number: int | None = None,
    totp_secret: bytes | None = None,
    labels: GoogleLabels = DEFAULT_LABELS,
) -> JsonObject:
    """One member's LoyaltyObject. With ``member_number`` and ``totp_secret`` it also carries
    the rotating barcode (see the module's note on where such a JWT may go)."""
    number = check_card_number(card_number)
    document: JsonObject = {
        "id": object_id(config, number),
        "classId": class_id(config, program_code),
        "state": "ACTIVE",
        "accountId": number,
        "accountName": display_name,
        "loyaltyPoints": {
            "label": labels.points,
            "localizedLabel": labels.localized(labels.points),
            "balance": {"int": balance},
        },
        "barcode": {
            "type": "QR_CODE",
            "renderEncoding": "UTF_8",
            "value": number,
            "alternateText": format_card_number(number),
        },
    }
    if tier:
        document["textModulesData"] = [
            {
                "id": "tier",
                "header": labels.tier,
                "localizedHeader": labels.localized(labels.tier),
                "body": tier,
            }
        ]
    if (member_number is None) != (totp_secret is None):
        raise ValueError("member_number and totp_secret go together")
    if member_number is not None and totp_secret is not None:
        document["rotatingBarcode"] = rotating_barcode(member_number, totp_secret)
    return document


def object_reference(config: GoogleWalletConfig, program_code: str, card_number: str) -> JsonObject:
    """A LoyaltyObject by id only, for a JWT whose object was inserted through the REST API."""
    return {"id": object_id(config, card_number), "classId": class_id(config, program_code)}


# --- The save link -------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def save_jwt(
    config: GoogleWalletConfig,
    *,
    loyalty_objects: Sequence[JsonObject],
    loyalty_classes: Sequence[JsonObject] = (),
    origins: Sequence[str] = (),
    issued_at: datetime | None = None,
) -> str:
    """The signed "save to Google Wallet" JWT (RS256). ``origins``: the sites that show the
    save button (empty for a plain link)."""
    if not loyalty_objects:
        raise ValueError("a save link needs at least one loyalty object")
    moment = issued_at or datetime.now(UTC)
    header: JsonObject = {"alg": "RS256", "typ": "JWT"}
    if config.private_key_id:
        header["kid"] = config.private_key_id
    payload: JsonObject = {"loyaltyObjects": list(loyalty_objects)}
    if loyalty_classes:
        payload["loyaltyClasses"] = list(loyalty_classes)
    claims: JsonObject = {
        "iss": config.service_account_email,
        "aud": "google",
        "typ": "savetowallet",
        "iat": int(moment.timestamp()),
        "origins": list(origins),
        "payload": payload,
    }
    signing_input = f"{_b64url(_json(header))}.{_b64url(_json(claims))}"
    signature = config.private_key.sign(
        signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256()
    )
    return f"{signing_input}.{_b64url(signature)}"


def save_url(
    config: GoogleWalletConfig,
    *,
    loyalty_objects: Sequence[JsonObject],
    loyalty_classes: Sequence[JsonObject] = (),
    origins: Sequence[str] = (),
    issued_at: datetime | None = None,
) -> str:
    """``https://pay.google.com/gp/v/save/<jwt>``, the link behind the save button."""
    token = save_jwt(
        config,
        loyalty_objects=loyalty_objects,
        loyalty_classes=loyalty_classes,
        origins=origins,
        issued_at=issued_at,
    )
    return SAVE_URL_PREFIX + token
