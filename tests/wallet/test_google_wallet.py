"""Google Wallet: the loyalty class and object, and the save link whose JWT verifies (PyJWT)
with the test service account's public key and carries the expected claims."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from loyalty.app.settings import Settings
from loyalty.domain.card_style import CardStyle
from loyalty.domain.cards import (
    damm_check_digit,
    format_card_number,
    rotating_code,
    time_step,
    totp,
)
from tests.wallet.pass_keys import service_account_json
from wallet.passes import WalletConfigError, WalletNotConfiguredError
from wallet.passes.google import (
    MAX_SAFE_JWT_LENGTH,
    NOT_CONFIGURED,
    SAVE_URL_PREFIX,
    GoogleWalletConfig,
    load_google_wallet_config,
    loyalty_class,
    loyalty_object,
    object_reference,
    require_google_wallet_config,
    save_jwt,
    save_url,
)

pytestmark = pytest.mark.unit

ISSUER = "3388000000022123456"
EMAIL = "wallet-signer@loyalty-test.iam.gserviceaccount.com"
CARD = "0711112222333344" + damm_check_digit("0711112222333344")
SECRET = bytes(range(20))
AT = datetime(2026, 5, 4, 12, 0, 7, tzinfo=UTC)


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def config(key: rsa.RSAPrivateKey) -> GoogleWalletConfig:
    return GoogleWalletConfig.from_service_account_json(ISSUER, service_account_json(key, EMAIL))


def member_object(config: GoogleWalletConfig, **extra: Any) -> dict[str, Any]:
    return loyalty_object(
        config,
        program_code="sonnenschein",
        card_number=CARD,
        display_name="Jürgen Müller",
        balance=1234,
        tier="Gold",
        **extra,
    )


def decode(token: str, key: rsa.RSAPrivateKey) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(
        token,
        key.public_key(),
        algorithms=["RS256"],
        audience="google",
        issuer=EMAIL,
        options={"require": ["iss", "aud", "iat", "typ"]},
    )
    return claims


# --- The save link -------------------------------------------------------------------------


def test_save_url_jwt_verifies_and_has_the_expected_fields(
    config: GoogleWalletConfig, key: rsa.RSAPrivateKey
) -> None:
    url = save_url(
        config,
        loyalty_objects=[member_object(config)],
        origins=["https://loyalty.example.de"],
        issued_at=AT,
    )
    assert SAVE_URL_PREFIX == "https://pay.google.com/gp/v/save/"
    assert url.startswith(SAVE_URL_PREFIX)
    token = url.removeprefix(SAVE_URL_PREFIX)
    assert jwt.get_unverified_header(token) == {"alg": "RS256", "typ": "JWT", "kid": "0123abcd"}
    claims = decode(token, key)
    assert claims["iss"] == EMAIL
    assert claims["aud"] == "google"
    assert claims["typ"] == "savetowallet"
    assert claims["iat"] == int(AT.timestamp())
    assert claims["origins"] == ["https://loyalty.example.de"]
    [card] = claims["payload"]["loyaltyObjects"]
    assert card["accountId"] == CARD
    assert card["barcode"]["value"] == CARD
    assert card["barcode"]["type"] == "QR_CODE"
    assert "loyaltyClasses" not in claims["payload"]
    assert len(token) < MAX_SAFE_JWT_LENGTH


def test_a_changed_jwt_does_not_verify(config: GoogleWalletConfig, key: rsa.RSAPrivateKey) -> None:
    token = save_jwt(config, loyalty_objects=[member_object(config)], issued_at=AT)
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["payload"]["loyaltyObjects"][0]["loyaltyPoints"]["balance"]["int"] = 999_999
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(jwt.InvalidSignatureError):
        decode(f"{header}.{forged}.{signature}", key)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(jwt.InvalidSignatureError):
        decode(token, other)


def test_class_and_object_travel_together(
    config: GoogleWalletConfig, key: rsa.RSAPrivateKey
) -> None:
    program = loyalty_class(
        config,
        program_code="sonnenschein",
        program_name="Bäckerei Sonnenschein",
        logo_url="https://loyalty.example.de/static/logo.png",
        style=CardStyle("#7a2e0e", "#ffffff", "#f6c343"),
        homepage_url="https://sonnenschein.example.de",
        country_code="DE",
    )
    token = save_jwt(
        config, loyalty_objects=[member_object(config)], loyalty_classes=[program], issued_at=AT
    )
    payload = decode(token, key)["payload"]
    assert payload["loyaltyClasses"] == [program]
    assert payload["loyaltyObjects"][0]["classId"] == program["id"]


def test_save_jwt_needs_an_object(config: GoogleWalletConfig) -> None:
    with pytest.raises(ValueError, match="at least one"):
        save_jwt(config, loyalty_objects=[])


# --- Class and object ----------------------------------------------------------------------


def test_loyalty_class(config: GoogleWalletConfig) -> None:
    program = loyalty_class(
        config,
        program_code="sonnenschein",
        program_name="Bäckerei Sonnenschein",
        logo_url="https://loyalty.example.de/static/logo.png",
        style=CardStyle("#7A2E0E", "#ffffff", "#f6c343"),
    )
    assert program["id"] == f"{ISSUER}.sonnenschein"
    assert program["programName"] == program["issuerName"] == "Bäckerei Sonnenschein"
    assert (
        program["programLogo"]["sourceUri"]["uri"] == "https://loyalty.example.de/static/logo.png"
    )
    assert program["hexBackgroundColor"] == "#7a2e0e"
    assert program["reviewStatus"] == "UNDER_REVIEW"
    assert program["localizedAccountIdLabel"] == {
        "defaultValue": {"language": "en", "value": "Card number"},
        "translatedValues": [{"language": "de", "value": "Kartennummer"}],
    }
    with pytest.raises(ValueError, match="HTTPS"):
        loyalty_class(config, program_code="x", program_name="X", logo_url="http://x/logo.png")
    with pytest.raises(ValueError, match="program code"):
        loyalty_class(config, program_code="a b", program_name="X", logo_url="https://x/l.png")


def test_loyalty_object(config: GoogleWalletConfig) -> None:
    card = member_object(config)
    assert card["id"] == f"{ISSUER}.{CARD}"
    assert card["classId"] == f"{ISSUER}.sonnenschein"
    assert card["state"] == "ACTIVE"
    assert card["accountId"] == CARD
    assert card["accountName"] == "Jürgen Müller"
    assert card["loyaltyPoints"]["balance"] == {"int": 1234}
    assert card["loyaltyPoints"]["label"] == "Points"
    assert card["barcode"]["alternateText"] == format_card_number(CARD)
    assert card["textModulesData"] == [
        {
            "id": "tier",
            "header": "Tier",
            "localizedHeader": {
                "defaultValue": {"language": "en", "value": "Tier"},
                "translatedValues": [{"language": "de", "value": "Stufe"}],
            },
            "body": "Gold",
        }
    ]
    assert "rotatingBarcode" not in card
    assert object_reference(config, "sonnenschein", CARD) == {
        "id": card["id"],
        "classId": card["classId"],
    }


def test_rotating_barcode_shows_the_wallets_rotating_code(config: GoogleWalletConfig) -> None:
    card = member_object(config, member_number=12345, totp_secret=SECRET)
    rotating = card["rotatingBarcode"]
    assert rotating["type"] == "QR_CODE"
    details = rotating["totpDetails"]
    assert details["algorithm"] == "TOTP_SHA1"
    assert details["periodMillis"] == "30000"
    [parameters] = details["parameters"]
    assert parameters == {"key": SECRET.hex(), "valueLength": 8}
    # What Google's phone app shows: the pattern with {totp_value_0} = TOTP of the Base16 key.
    for moment in (AT, AT + timedelta(seconds=30), AT + timedelta(hours=5)):
        value = totp(bytes.fromhex(parameters["key"]), time_step(moment), parameters["valueLength"])
        shown = rotating["valuePattern"].replace("{totp_value_0}", value)
        assert shown == rotating_code(12345, SECRET, moment)
    with pytest.raises(ValueError, match="go together"):
        member_object(config, member_number=12345)
    with pytest.raises(ValueError, match="member number"):
        member_object(config, member_number=0, totp_secret=SECRET)
    with pytest.raises(ValueError, match="16 bytes"):
        member_object(config, member_number=1, totp_secret=b"short")


# --- Configuration -------------------------------------------------------------------------


def test_not_configured_is_none_and_a_clear_error() -> None:
    settings = Settings()
    assert load_google_wallet_config(settings) is None
    with pytest.raises(WalletNotConfiguredError) as error:
        require_google_wallet_config(settings)
    assert error.value.code == NOT_CONFIGURED == "google_wallet_not_configured"


def test_configured_from_the_environment(tmp_path: Path, key: rsa.RSAPrivateKey) -> None:
    path = tmp_path / "service-account.json"
    path.write_text(service_account_json(key, EMAIL))
    settings = Settings.from_env(
        {
            "LOYALTY_GOOGLE_WALLET_ISSUER_ID": ISSUER,
            "LOYALTY_GOOGLE_WALLET_SERVICE_ACCOUNT": str(path),
        }
    )
    config = require_google_wallet_config(settings)
    assert (config.issuer_id, config.service_account_email) == (ISSUER, EMAIL)
    assert config.private_key_id == "0123abcd"
    assert "private_key=" not in repr(config)


def test_partly_configured_names_what_is_missing() -> None:
    with pytest.raises(WalletConfigError, match="set LOYALTY_GOOGLE_WALLET_SERVICE_ACCOUNT"):
        load_google_wallet_config(Settings(google_wallet_issuer_id=ISSUER))


@pytest.mark.parametrize(
    ("key_file", "message"),
    [
        ("{not json", "not JSON"),
        ("[]", "not a service account key file"),
        ('{"type": "authorized_user"}', "not service_account"),
        ('{"client_email": "x@y"}', "client_email or private_key is missing"),
        ('{"client_email": "x@y", "private_key": "nope"}', "not a PEM private key"),
    ],
)
def test_a_wrong_key_file_is_named(key_file: str, message: str) -> None:
    with pytest.raises(WalletConfigError, match=message):
        GoogleWalletConfig.from_service_account_json(ISSUER, key_file)


def test_an_ec_key_or_a_bad_issuer_is_refused(key: rsa.RSAPrivateKey) -> None:
    ec_pem = (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        .decode()
    )
    key_file = json.dumps({"client_email": EMAIL, "private_key": ec_pem})
    with pytest.raises(WalletConfigError, match="not an RSA key"):
        GoogleWalletConfig.from_service_account_json(ISSUER, key_file)
    with pytest.raises(WalletConfigError, match="not an issuer id"):
        GoogleWalletConfig.from_service_account_json("issuer-1", service_account_json(key, EMAIL))
