"""Settings from environment variables, with safe defaults for the embedded mode.

- LOYALTY_DATABASE_URL: SQLAlchemy async URL (default sqlite+aiosqlite:///./var/loyalty.db)
- LOYALTY_REDIS_URL: redis://host:port/db (default unset: in-process stores)
- LOYALTY_API_KEYS: ``client=secret@merchant_id`` items, comma-separated
  (default demo=demo-secret-key@1, for the embedded demo only)
- LOYALTY_SECRET_KEY: server key the members' rotating-code secrets are derived from
- LOYALTY_ENV: development or production (default development)
- LOYALTY_HOST, LOYALTY_PORT: where ``loyalty serve`` listens (default 127.0.0.1:8000)
- LOYALTY_DB_POOL_SIZE: PostgreSQL connections per process (default 10)
- LOYALTY_SWEEP_INTERVAL_SECONDS: how often the app releases stale holds and expires due
  points in the background (default 60; 0 turns the background sweep off)
- LOYALTY_POS_RATE_LIMIT: requests per minute that one terminal key (or one staff login at
  one till) may send to the terminal API, /api/v1/pos (default 600; 0 turns the limit off).
  Counted in Redis when LOYALTY_REDIS_URL is set (shared by every app process), else in the
  process. See docs/POS.md.
- LOYALTY_PUBLIC_URL: the address members reach the platform at, for links in mail
  (default http://LOYALTY_HOST:LOYALTY_PORT)
- LOYALTY_SMTP_URL: smtps://user:pass@host:465, smtp://user:pass@host:587 (STARTTLS) or
  smtp://host:25?tls=none (default unset: mail stays in the outbox, read on the admin side)
- LOYALTY_MAIL_FROM: sender address of the platform's mail (default loyalty@localhost)
- LOYALTY_APPLE_PASS_TYPE_ID, LOYALTY_APPLE_TEAM_ID: the Apple Wallet pass type identifier
  (pass.com.example.loyalty) and the developer team's identifier (default unset: no Apple Wallet
  passes, the wallet hides the button)
- LOYALTY_APPLE_PASS_CERT, LOYALTY_APPLE_PASS_KEY: paths to the pass type certificate and its
  private key (PEM); LOYALTY_APPLE_PASS_KEY_PASSWORD: the key's password, if it has one
- LOYALTY_APPLE_WWDR_CERT: path to Apple's WWDR intermediate certificate that issued the pass
  certificate (PEM). Set all of the Apple settings or none; see wallet/passes/apple.py.
- LOYALTY_APPLE_APNS_URL: where pass update pushes go (default https://api.push.apple.com,
  Apple's production APNs, the only one Wallet passes use; tests point it at a fake)
- LOYALTY_GOOGLE_WALLET_ISSUER_ID: the Google Wallet issuer id (default unset: no Google Wallet
  passes, the wallet hides the button)
- LOYALTY_GOOGLE_WALLET_SERVICE_ACCOUNT: path to the service account key file (JSON, as Google
  issues it: client_email, private_key) that signs the "save to Google Wallet" links. Set both
  or neither; see wallet/passes/google.py.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import msgspec

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./var/loyalty.db"
DEFAULT_API_KEYS = "demo=demo-secret-key@1"
#: For the embedded demo only; production sets LOYALTY_SECRET_KEY.
DEFAULT_SECRET_KEY = "embedded-demo-secret-key-change-me"  # noqa: S105
#: Requests per minute per terminal key: a busy till sends a few a second at most.
DEFAULT_POS_RATE_LIMIT = 600
#: Apple's production push service: Wallet passes are pushed there only (no sandbox).
DEFAULT_APNS_URL = "https://api.push.apple.com"


class ApiClient(msgspec.Struct, frozen=True):
    """A caller of the JSON API: its id scopes idempotency keys, its merchant scopes all data."""

    client_id: str
    secret: str
    merchant_id: int


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str | None = None
    api_clients: tuple[ApiClient, ...] = ()
    environment: str = "development"
    host: str = "127.0.0.1"
    port: int = 8000
    db_pool_size: int = 10
    sweep_interval_seconds: float = 60.0
    #: Derives the members' rotating-code secrets (never stored). Changing it invalidates every
    #: wallet's code until the wallet fetches its secret again.
    secret_key: str = DEFAULT_SECRET_KEY
    #: Requests per minute per terminal key on /api/v1/pos; 0: no limit.
    pos_rate_limit: int = DEFAULT_POS_RATE_LIMIT
    #: Where members reach the platform (links in mail); None: http://host:port.
    public_url: str | None = None
    #: Outgoing mail server; None: mail stays in the outbox.
    smtp_url: str | None = None
    mail_from: str = "loyalty@localhost"

    @property
    def base_url(self) -> str:
        """The platform's address as members see it, without a trailing slash."""
        return self.public_url or f"http://{self.host}:{self.port}"

    #: Apple Wallet passes (wallet/passes/apple.py); unset: off. Paths to PEM files.
    apple_pass_type_id: str | None = None
    apple_team_id: str | None = None
    apple_pass_cert: str | None = None
    apple_pass_key: str | None = None
    apple_pass_key_password: str | None = None
    apple_wwdr_cert: str | None = None
    #: Apple's push service for pass updates (wallet/passes/apns.py).
    apple_apns_url: str = DEFAULT_APNS_URL
    #: Google Wallet passes (wallet/passes/google.py); unset: off. Path to the key file.
    google_wallet_issuer_id: str | None = None
    google_wallet_service_account: str | None = None

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        return cls(
            database_url=env.get("LOYALTY_DATABASE_URL", DEFAULT_DATABASE_URL),
            redis_url=env.get("LOYALTY_REDIS_URL") or None,
            api_clients=parse_api_keys(env.get("LOYALTY_API_KEYS", DEFAULT_API_KEYS)),
            environment=env.get("LOYALTY_ENV", "development"),
            host=env.get("LOYALTY_HOST", "127.0.0.1"),
            port=int(env.get("LOYALTY_PORT", "8000")),
            db_pool_size=int(env.get("LOYALTY_DB_POOL_SIZE", "10")),
            sweep_interval_seconds=float(env.get("LOYALTY_SWEEP_INTERVAL_SECONDS", "60")),
            secret_key=env.get("LOYALTY_SECRET_KEY") or DEFAULT_SECRET_KEY,
            pos_rate_limit=parse_rate_limit(
                env.get("LOYALTY_POS_RATE_LIMIT") or str(DEFAULT_POS_RATE_LIMIT)
            ),
            public_url=(env.get("LOYALTY_PUBLIC_URL") or "").rstrip("/") or None,
            smtp_url=env.get("LOYALTY_SMTP_URL") or None,
            mail_from=env.get("LOYALTY_MAIL_FROM") or "loyalty@localhost",
            apple_pass_type_id=env.get("LOYALTY_APPLE_PASS_TYPE_ID") or None,
            apple_team_id=env.get("LOYALTY_APPLE_TEAM_ID") or None,
            apple_pass_cert=env.get("LOYALTY_APPLE_PASS_CERT") or None,
            apple_pass_key=env.get("LOYALTY_APPLE_PASS_KEY") or None,
            apple_pass_key_password=env.get("LOYALTY_APPLE_PASS_KEY_PASSWORD") or None,
            apple_wwdr_cert=env.get("LOYALTY_APPLE_WWDR_CERT") or None,
            apple_apns_url=(env.get("LOYALTY_APPLE_APNS_URL") or "").rstrip("/")
            or DEFAULT_APNS_URL,
            google_wallet_issuer_id=env.get("LOYALTY_GOOGLE_WALLET_ISSUER_ID") or None,
            google_wallet_service_account=env.get("LOYALTY_GOOGLE_WALLET_SERVICE_ACCOUNT") or None,
        )


def parse_api_keys(spec: str) -> tuple[ApiClient, ...]:
    """Parse ``client=secret@merchant_id`` items separated by commas."""
    clients = []
    for item in filter(None, (part.strip() for part in spec.split(","))):
        client_id, sep, rest = item.partition("=")
        secret, at, merchant = rest.rpartition("@")
        if not sep or not at or not client_id or not secret or not merchant.isdigit():
            raise ValueError(f"LOYALTY_API_KEYS item {item!r} is not client=secret@merchant_id")
        clients.append(ApiClient(client_id=client_id, secret=secret, merchant_id=int(merchant)))
    return tuple(clients)


def parse_rate_limit(spec: str) -> int:
    """LOYALTY_POS_RATE_LIMIT: a whole number of requests per minute, 0 for no limit."""
    value = spec.strip()
    if not value.isdigit() or not value.isascii():
        raise ValueError(
            f"LOYALTY_POS_RATE_LIMIT {spec!r} is not a whole number of requests per minute "
            "(0: no limit)"
        )
    return int(value)
