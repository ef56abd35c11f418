"""Wallet passes: Apple Wallet store cards and Google Wallet loyalty cards.

Each is off until its keys are configured (``LOYALTY_APPLE_*``, ``LOYALTY_GOOGLE_WALLET_*``, see
``loyalty.app.settings``): ``load_*_config(settings)`` answers ``None`` then, and the wallet hides
the button; ``require_*_config(settings)`` raises ``WalletNotConfiguredError`` with a ``code`` the
HTTP layer maps to a clear error. A configuration that is only partly set, or whose files cannot
be read or do not fit together, raises ``WalletConfigError`` naming the setting at fault.
"""

from __future__ import annotations

from pathlib import Path


class WalletConfigError(ValueError):
    """The wallet pass settings are set but wrong: missing partners, unreadable files, a key that
    does not belong to its certificate. The message names the setting, never a secret."""


class WalletNotConfiguredError(LookupError):
    """A pass was asked for, but its keys are not configured. ``code`` is
    ``apple_wallet_not_configured`` or ``google_wallet_not_configured``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def read_setting_file(variable: str, path: str) -> bytes:
    """The bytes of the file a setting points at; ``WalletConfigError`` naming the setting."""
    try:
        return Path(path).expanduser().read_bytes()
    except OSError as exc:
        raise WalletConfigError(f"{variable}: cannot read {path!r} ({exc.strerror})") from exc


def missing_settings(values: dict[str, str | None]) -> list[str]:
    """The names of the settings in ``values`` that are unset or empty."""
    return [name for name, value in values.items() if not value]
