"""Secrets the platform must read back (a vendor's HMAC key), encrypted at rest.

Hashing is not possible for these: checking a Shopify signature needs the key itself. They are
sealed with Fernet (AES-128-CBC + HMAC-SHA256, authenticated) under a key derived from the
server key (``LOYALTY_SECRET_KEY``) with HKDF, so a copy of the database alone reveals none.
Changing the server key makes sealed secrets unreadable: they must be entered again.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_PURPOSE = b"loyalty vendor secrets v1"


class UnreadableSecretError(Exception):
    """A sealed secret that this server key did not seal (or that was altered)."""


class SecretBox:
    def __init__(self, server_key: bytes) -> None:
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_PURPOSE).derive(
            server_key
        )
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def seal(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode("ascii")

    def open(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode("ascii")).decode()
        except (InvalidToken, UnicodeError) as error:
            raise UnreadableSecretError("the sealed secret does not open with this key") from error
