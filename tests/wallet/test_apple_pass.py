"""Apple Wallet store cards: the .pkpass has the files Wallet needs, every manifest hash matches,
the detached PKCS #7 signature verifies (with openssl) against a test CA -> WWDR -> pass
certificate chain made here, and a changed manifest does not; configuration errors are clear."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import zipfile
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
import zxingcpp
from cryptography.hazmat.primitives.serialization import pkcs7
from PIL import Image

from loyalty.app.settings import Settings
from loyalty.domain.card_style import CardStyle
from loyalty.domain.cards import damm_check_digit, format_card_number
from tests.wallet.pass_keys import (
    NOW,
    PASS_TYPE_ID,
    TEAM_ID,
    Chain,
    key_pem,
    make_chain,
    pem,
)
from wallet.card_images import qr_png
from wallet.passes import WalletConfigError, WalletNotConfiguredError
from wallet.passes.apple import (
    NOT_CONFIGURED,
    ApplePassConfig,
    StoreCard,
    authentication_token,
    build_pkpass,
    check_authentication_token,
    load_apple_pass_config,
    require_apple_pass_config,
)

CARD = "0798765432109876" + damm_check_digit("0798765432109876")
FORMATTED = format_card_number(CARD)
SERVER_KEY = "test-server-key"
REQUIRED = {"pass.json", "manifest.json", "signature", "icon.png", "icon@2x.png", "logo.png"}


@pytest.fixture(scope="module")
def chain() -> Chain:
    return make_chain()


@pytest.fixture(scope="module")
def config(chain: Chain) -> ApplePassConfig:
    return ApplePassConfig.from_pem(
        pass_type_id=PASS_TYPE_ID,
        team_id=TEAM_ID,
        certificate_pem=pem(chain.pass_certificate),
        private_key_pem=key_pem(chain.pass_key),
        wwdr_pem=pem(chain.wwdr),
    )


def store_card(**changes: Any) -> StoreCard:
    card = StoreCard(
        serial_number="m-42",
        card_number=CARD,
        program_name="Bäckerei Sonnenschein",
        display_name="Jürgen Müller",
        balance=1234,
        tier="Gold",
        style=CardStyle("#7a2e0e", "#ffffff", "#f6c343"),
        back_fields=[("Kontakt", "Hauptstraße 1, 80331 München")],
        web_service_url="https://loyalty.example.de/api/v1/wallet/apple",
        authentication_token=authentication_token(SERVER_KEY, PASS_TYPE_ID, "m-42"),
    )
    return replace(card, **changes)


def open_pass(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


# --- The archive ---------------------------------------------------------------------------


@pytest.mark.unit
def test_pkpass_has_the_required_files_and_every_manifest_hash_matches(
    config: ApplePassConfig,
) -> None:
    files = open_pass(build_pkpass(store_card(), config, now=NOW))
    assert set(files) >= REQUIRED
    manifest = json.loads(files["manifest.json"])
    assert set(manifest) == set(files) - {"manifest.json", "signature"}
    for name, digest in manifest.items():
        assert hashlib.sha1(files[name]).hexdigest() == digest, name


@pytest.mark.unit
def test_pass_json_is_a_store_card_with_the_static_number(config: ApplePassConfig) -> None:
    document = json.loads(open_pass(build_pkpass(store_card(), config, now=NOW))["pass.json"])
    assert document["formatVersion"] == 1
    assert document["passTypeIdentifier"] == PASS_TYPE_ID
    assert document["teamIdentifier"] == TEAM_ID
    assert document["serialNumber"] == "m-42"
    assert document["organizationName"] == "Bäckerei Sonnenschein"
    assert document["description"] == "Membership card"
    assert document["sharingProhibited"] is True
    assert document["barcodes"] == [
        {
            "format": "PKBarcodeFormatQR",
            "message": CARD,
            "messageEncoding": "iso-8859-1",
            "altText": FORMATTED,
        }
    ]
    assert document["backgroundColor"] == "rgb(122, 46, 14)"
    assert document["foregroundColor"] == "rgb(255, 255, 255)"
    assert document["labelColor"] == "rgb(246, 195, 67)"
    card = document["storeCard"]
    [balance] = card["primaryFields"]
    assert balance["key"] == "balance"
    assert balance["value"] == 1234
    assert balance["changeMessage"] == "Your balance is now %@ points."
    assert [(f["key"], f["value"]) for f in card["secondaryFields"]] == [
        ("tier", "Gold"),
        ("name", "Jürgen Müller"),
    ]
    assert [(f["label"], f["value"]) for f in card["backFields"]] == [
        ("Card number", FORMATTED),
        ("Kontakt", "Hauptstraße 1, 80331 München"),
    ]
    assert document["webServiceURL"] == "https://loyalty.example.de/api/v1/wallet/apple"
    assert check_authentication_token(
        SERVER_KEY, PASS_TYPE_ID, "m-42", document["authenticationToken"]
    )


@pytest.mark.unit
def test_pass_without_web_service_or_tier_leaves_them_out(config: ApplePassConfig) -> None:
    card = store_card(web_service_url=None, authentication_token=None, tier=None)
    document = json.loads(open_pass(build_pkpass(card, config, now=NOW))["pass.json"])
    assert "webServiceURL" not in document
    assert "authenticationToken" not in document
    assert [f["key"] for f in document["storeCard"]["secondaryFields"]] == ["name"]
    assert "changeMessage" not in document["storeCard"]["primaryFields"][0]


@pytest.mark.unit
def test_pass_images_and_translations(config: ApplePassConfig) -> None:
    files = open_pass(build_pkpass(store_card(), config, now=NOW))
    sizes = {
        name: Image.open(io.BytesIO(files[name])).size for name in files if name.endswith(".png")
    }
    assert sizes == {
        "icon.png": (29, 29),
        "icon@2x.png": (58, 58),
        "icon@3x.png": (87, 87),
        "logo.png": (50, 50),
        "logo@2x.png": (100, 100),
    }
    german = files["de.lproj/pass.strings"].decode("utf-16")
    assert '"Points" = "Punkte";' in german
    assert '"Your balance is now %@ points." = "Ihr Punktestand: %@ Punkte.";' in german
    english = files["en.lproj/pass.strings"].decode("utf-16")
    assert '"Points" = "Points";' in english


@pytest.mark.unit
def test_the_barcode_wallet_draws_from_the_pass_reads_back(config: ApplePassConfig) -> None:
    document = json.loads(open_pass(build_pkpass(store_card(), config, now=NOW))["pass.json"])
    message = document["barcodes"][0]["message"]
    # Wallet renders the message itself; our own renderer's QR of it must read back too.
    grey = Image.open(io.BytesIO(qr_png(message, size_px=320))).convert("L")
    assert [r.text for r in zxingcpp.read_barcodes(grey)] == [CARD]


@pytest.mark.unit
def test_signature_carries_the_pass_and_wwdr_certificates(
    config: ApplePassConfig, chain: Chain
) -> None:
    files = open_pass(build_pkpass(store_card(), config, now=NOW))
    certificates = pkcs7.load_der_pkcs7_certificates(files["signature"])
    assert set(certificates) == {chain.pass_certificate, chain.wwdr}


# --- The signature, checked by openssl -----------------------------------------------------


def openssl() -> str:
    found = shutil.which("openssl")
    if found is None:
        if os.environ.get("LOYALTY_REQUIRE_SERVICES") == "1":
            pytest.fail("openssl is needed to verify the pass signature")
        pytest.skip("openssl is not installed")
    return found


def verify(
    tmp_path: Path, files: dict[str, bytes], ca_pem: bytes
) -> subprocess.CompletedProcess[str]:
    for name in ("manifest.json", "signature"):
        (tmp_path / name).write_bytes(files[name])
    (tmp_path / "ca.pem").write_bytes(ca_pem)
    return subprocess.run(
        [
            openssl(), "smime", "-verify", "-binary", "-inform", "DER",
            "-in", str(tmp_path / "signature"),
            "-content", str(tmp_path / "manifest.json"),
            "-CAfile", str(tmp_path / "ca.pem"),
            "-purpose", "any", "-out", os.devnull,
        ],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip


def test_signature_verifies_against_the_chain(
    tmp_path: Path, config: ApplePassConfig, chain: Chain
) -> None:
    files = open_pass(build_pkpass(store_card(), config, now=NOW))
    result = verify(tmp_path, files, pem(chain.ca))
    assert result.returncode == 0, result.stderr
    assert "Verification successful" in result.stderr


def test_a_changed_manifest_fails_verification(
    tmp_path: Path, config: ApplePassConfig, chain: Chain
) -> None:
    files = open_pass(build_pkpass(store_card(), config, now=NOW))
    manifest = json.loads(files["manifest.json"])
    manifest["pass.json"] = hashlib.sha1(b"a forged pass").hexdigest()
    files["manifest.json"] = json.dumps(manifest, indent=2).encode()
    result = verify(tmp_path, files, pem(chain.ca))
    assert result.returncode != 0
    assert "Verification successful" not in result.stderr


def test_a_signature_does_not_verify_against_another_ca(
    tmp_path: Path, config: ApplePassConfig
) -> None:
    files = open_pass(build_pkpass(store_card(), config, now=NOW))
    other = make_chain(ca_name="Another Root")
    assert verify(tmp_path, files, pem(other.ca)).returncode != 0


# --- Configuration -------------------------------------------------------------------------


@pytest.mark.unit
def test_not_configured_is_none_and_a_clear_error() -> None:
    settings = Settings()
    assert load_apple_pass_config(settings) is None
    with pytest.raises(WalletNotConfiguredError) as error:
        require_apple_pass_config(settings)
    assert error.value.code == NOT_CONFIGURED == "apple_wallet_not_configured"
    assert "LOYALTY_APPLE_PASS_CERT" in str(error.value)


@pytest.mark.unit
def test_partly_configured_names_what_is_missing() -> None:
    settings = Settings(apple_pass_type_id=PASS_TYPE_ID, apple_team_id=TEAM_ID)
    with pytest.raises(
        WalletConfigError, match="set LOYALTY_APPLE_PASS_CERT, LOYALTY_APPLE_PASS_KEY"
    ):
        load_apple_pass_config(settings)


@pytest.mark.unit
def test_configured_from_environment_files_with_an_encrypted_key(
    tmp_path: Path, chain: Chain
) -> None:
    (tmp_path / "pass.pem").write_bytes(pem(chain.pass_certificate))
    (tmp_path / "pass.key").write_bytes(key_pem(chain.pass_key, b"geheim"))
    (tmp_path / "wwdr.pem").write_bytes(pem(chain.wwdr))
    settings = Settings.from_env(
        {
            "LOYALTY_APPLE_PASS_TYPE_ID": PASS_TYPE_ID,
            "LOYALTY_APPLE_TEAM_ID": TEAM_ID,
            "LOYALTY_APPLE_PASS_CERT": str(tmp_path / "pass.pem"),
            "LOYALTY_APPLE_PASS_KEY": str(tmp_path / "pass.key"),
            "LOYALTY_APPLE_PASS_KEY_PASSWORD": "geheim",
            "LOYALTY_APPLE_WWDR_CERT": str(tmp_path / "wwdr.pem"),
        }
    )
    config = require_apple_pass_config(settings)
    assert config.pass_type_id == PASS_TYPE_ID
    assert config.certificate == chain.pass_certificate
    assert "private_key" not in repr(config)
    wrong = msgspec.structs.replace(settings, apple_pass_key_password="falsch")
    with pytest.raises(WalletConfigError, match="LOYALTY_APPLE_PASS_KEY_PASSWORD"):
        load_apple_pass_config(wrong)
    missing = msgspec.structs.replace(settings, apple_wwdr_cert=str(tmp_path / "nowhere.pem"))
    with pytest.raises(WalletConfigError, match="LOYALTY_APPLE_WWDR_CERT: cannot read"):
        load_apple_pass_config(missing)


@pytest.mark.unit
def test_a_key_of_another_certificate_is_refused(chain: Chain) -> None:
    other = make_chain()
    with pytest.raises(WalletConfigError, match="does not belong to the certificate"):
        ApplePassConfig.from_pem(
            pass_type_id=PASS_TYPE_ID,
            team_id=TEAM_ID,
            certificate_pem=pem(chain.pass_certificate),
            private_key_pem=key_pem(other.pass_key),
            wwdr_pem=pem(chain.wwdr),
        )


@pytest.mark.unit
def test_a_wwdr_that_did_not_issue_the_certificate_is_refused(chain: Chain) -> None:
    other = make_chain()
    with pytest.raises(WalletConfigError, match="did not issue"):
        ApplePassConfig.from_pem(
            pass_type_id=PASS_TYPE_ID,
            team_id=TEAM_ID,
            certificate_pem=pem(chain.pass_certificate),
            private_key_pem=key_pem(chain.pass_key),
            wwdr_pem=pem(other.wwdr),
        )


@pytest.mark.unit
def test_a_certificate_for_another_pass_type_is_refused(chain: Chain) -> None:
    with pytest.raises(WalletConfigError, match=r"is for 'pass\.de\.example\.loyalty'"):
        ApplePassConfig.from_pem(
            pass_type_id="pass.de.example.other",
            team_id=TEAM_ID,
            certificate_pem=pem(chain.pass_certificate),
            private_key_pem=key_pem(chain.pass_key),
            wwdr_pem=pem(chain.wwdr),
        )


@pytest.mark.unit
@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"pass_type_id": "de.example.loyalty"}, "not a pass type identifier"),
        ({"team_id": "abc"}, "not a team identifier"),
        ({"certificate_pem": b"-----BEGIN CERTIFICATE-----\nnope\n"}, "not a PEM certificate"),
        ({"private_key_pem": b"not a key"}, "not a PEM private key"),
    ],
)
def test_malformed_settings_are_named(chain: Chain, changes: dict[str, Any], message: str) -> None:
    arguments: dict[str, Any] = {
        "pass_type_id": PASS_TYPE_ID,
        "team_id": TEAM_ID,
        "certificate_pem": pem(chain.pass_certificate),
        "private_key_pem": key_pem(chain.pass_key),
        "wwdr_pem": pem(chain.wwdr),
    }
    with pytest.raises(WalletConfigError, match=message):
        ApplePassConfig.from_pem(**(arguments | changes))


@pytest.mark.unit
def test_an_expired_certificate_is_refused_when_signing(config: ApplePassConfig) -> None:
    later = config.certificate.not_valid_after_utc + timedelta(days=1)
    with pytest.raises(WalletConfigError, match="renew it"):
        build_pkpass(store_card(), config, now=later)


# --- Cards and tokens ----------------------------------------------------------------------


@pytest.mark.unit
def test_store_card_checks_its_inputs() -> None:
    with pytest.raises(ValueError, match="serial number"):
        store_card(serial_number="m 42/..")
    with pytest.raises(ValueError, match="go together"):
        store_card(authentication_token=None)
    with pytest.raises(ValueError, match="HTTPS"):
        store_card(web_service_url="http://loyalty.example.de/apple")
    with pytest.raises(ValueError, match="16"):
        store_card(authentication_token="short")
    assert store_card(card_number=FORMATTED).card_number == CARD


@pytest.mark.unit
def test_authentication_tokens_are_derived_and_checked() -> None:
    token = authentication_token(SERVER_KEY, PASS_TYPE_ID, "m-42")
    assert len(token) == 64
    assert token == authentication_token(SERVER_KEY, PASS_TYPE_ID, "m-42")
    assert token != authentication_token(SERVER_KEY, PASS_TYPE_ID, "m-43")
    assert token != authentication_token("another-key", PASS_TYPE_ID, "m-42")
    assert token != authentication_token(SERVER_KEY, "pass.de.example.other", "m-42")
    assert check_authentication_token(SERVER_KEY, PASS_TYPE_ID, "m-42", token)
    assert not check_authentication_token(SERVER_KEY, PASS_TYPE_ID, "m-43", token)
    assert not check_authentication_token(SERVER_KEY, PASS_TYPE_ID, "m-42", token[:-1] + "ä")
    assert not check_authentication_token(SERVER_KEY, PASS_TYPE_ID, "../m-42", token)
    with pytest.raises(ValueError, match="empty"):
        authentication_token("", PASS_TYPE_ID, "m-42")
