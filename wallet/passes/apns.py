"""Pushes that tell Apple Wallet a pass has changed (Apple Push Notification service, APNs).

A device that added an updatable pass registers its push token with the pass web service
(``wallet.passes_api``). When the pass changes, the server sends that token an empty
notification: ``POST <APNs>/3/device/<push token>`` over HTTP/2 with the header ``apns-topic``
set to the pass type identifier and the JSON payload ``{}``. Wallet then asks the web service
which of its passes changed and downloads them; what the lock screen says comes from the
fields' ``changeMessage`` in the new pass, never from the push.

The connection is authenticated with the pass type certificate itself as the TLS client
certificate (``client_ssl_context``): the same certificate and key that sign the passes. Wallet
passes are pushed to Apple's production service only (``DEFAULT_APNS_URL``); there is no
sandbox for them.

Answers (Apple's "Handling notification responses from APNs"): 200 delivered; 410 the token
is no longer active for the topic (``PushOutcome.unregistered``: the caller forgets that
registration); anything else is logged and kept (a 429 or 5xx may well work next time).
"""

from __future__ import annotations

import logging
import re
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

from loyalty.app.settings import DEFAULT_APNS_URL

if TYPE_CHECKING:
    from loyalty.app.settings import Settings

log = logging.getLogger("wallet.apns")

#: What a push token may look like: Wallet sends hex; anything else would not be a URL segment.
PUSH_TOKEN = re.compile(r"^[0-9A-Za-z]{8,255}$")
#: The payload of every pass update push.
EMPTY_PAYLOAD = b"{}"
#: A push that takes longer than this is given up (and logged).
TIMEOUT_SECONDS = 10.0

__all__ = ["DEFAULT_APNS_URL", "ApnsClient", "PushOutcome", "client_ssl_context"]


@dataclass(frozen=True, slots=True)
class PushOutcome:
    """What APNs answered for one token: ``status`` None when no answer came at all."""

    push_token: str
    status: int | None
    reason: str | None = None

    @property
    def delivered(self) -> bool:
        return self.status == 200

    @property
    def unregistered(self) -> bool:
        """410: the device no longer takes pushes for this pass type (the pass was removed, or
        the token changed). The registration is useless from now on."""
        return self.status == 410


def client_ssl_context(settings: Settings) -> ssl.SSLContext:
    """A TLS context that presents the pass type certificate (LOYALTY_APPLE_PASS_CERT and its
    key) to APNs and checks APNs' own certificate against the system's trusted roots."""
    if not settings.apple_pass_cert or not settings.apple_pass_key:
        raise ValueError("the pass certificate and key are needed to push to APNs")
    context = ssl.create_default_context()
    password = settings.apple_pass_key_password
    context.load_cert_chain(
        settings.apple_pass_cert, settings.apple_pass_key, password.encode() if password else None
    )
    return context


class ApnsClient:
    """Sends pass update pushes for one pass type over one HTTP/2 connection (kept open and
    reused, as Apple asks). ``transport`` replaces the network (tests)."""

    def __init__(
        self,
        topic: str,
        *,
        base_url: str = DEFAULT_APNS_URL,
        ssl_context: ssl.SSLContext | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = TIMEOUT_SECONDS,
    ) -> None:
        self.topic = topic
        self.base_url = base_url.rstrip("/")
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            http1=False,  # APNs speaks HTTP/2 only
            http2=True,
            verify=ssl_context if ssl_context is not None else True,
            transport=transport,
            timeout=timeout,
        )

    async def push(self, push_token: str) -> PushOutcome:
        """One empty push to ``push_token``; never raises for a network error or a refusal
        (the outcome says what happened, and it is logged)."""
        if not PUSH_TOKEN.match(push_token):
            log.warning("not pushing to a malformed push token")
            return PushOutcome(push_token, 400, "BadDeviceToken")
        try:
            response = await self._client.post(
                f"/3/device/{push_token}",
                content=EMPTY_PAYLOAD,
                headers={"apns-topic": self.topic, "content-type": "application/json"},
            )
        except httpx.HTTPError as exc:
            log.warning("APNs push to %s… failed: %s", push_token[:8], exc)
            return PushOutcome(push_token, None, type(exc).__name__)
        reason = _reason(response)
        if response.status_code != 200:
            log.warning(
                "APNs answered %s (%s) for %s…",
                response.status_code,
                reason or "no reason",
                push_token[:8],
            )
        return PushOutcome(push_token, response.status_code, reason)

    async def aclose(self) -> None:
        await self._client.aclose()


def _reason(response: httpx.Response) -> str | None:
    """APNs' ``{"reason": "..."}`` of a refusal, if there is one."""
    if response.status_code == 200 or not response.content:
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    reason = body.get("reason") if isinstance(body, dict) else None
    return str(reason)[:100] if reason else None
