"""The member's card in the wallet's JSON API: the secret the card screen computes rotating codes
with, and the static card number's Code 128 barcode.

``GET .../card`` gives the member's TOTP secret (``loyalty.services.member_cards.card_secret``)
to the device **once per session**: the session records when (``card_secret_delivered_at``), and
a second request with the same session answers 409 ``card_secret_already_delivered``. The device
keeps the secret (the card screen stores it as a non-extractable WebCrypto key in IndexedDB) and
computes the codes offline; someone who copies the session cookie later cannot copy the secret
too. Signing in again (a new session) delivers it again. Raising the member's
``card_secret_version`` revokes every device that holds the old secret.

Only the wallet's own script may fetch the secret: a request the browser marks as coming from
another site, or as a page navigation (a link, the address bar), is refused with ``forbidden``
before it can use up the session's one delivery.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass, replace
from datetime import datetime
from functools import lru_cache
from typing import Any

import msgspec
from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency, Provide
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from loyalty.db.engine import in_transaction
from loyalty.db.tables import member_sessions, members
from loyalty.domain.card_style import style_of
from loyalty.domain.cards import (
    MEMBER_NUMBER_WIDTH,
    TOTP_DIGITS,
    TOTP_STEP,
    format_card_number,
    is_card_number,
)
from loyalty.domain.errors import DomainError, ErrorCode
from loyalty.services.member_cards import card_secret
from loyalty.services.member_sign_in import WalletMember

from .api import ProgramId, member_guard, provide_member
from .card_images import CODE128_QUIET_ZONE, CardFace, card_png, card_svg, code128_modules

STEP_SECONDS = int(TOTP_STEP.total_seconds())
#: Height of the Code 128 bars in modules (the symbol is ~150 modules wide: about 4:1).
BARCODE_HEIGHT_MODULES = 40
#: The barcode may be kept by the browser for an hour (per session: ``Vary: Cookie``).
BARCODE_MAX_AGE = 3600


@dataclass(frozen=True, slots=True)
class MemberCard:
    """What the card screen shows of a member's card."""

    member_id: int
    #: The member number inside the rotating code: the member id, zero-padded to 10 digits.
    member_number: str
    #: The static card number (17 digits), or None for a member without one.
    card_number: str | None
    card_number_formatted: str | None
    #: ``members.card_secret_version``: the secret of this version is the valid one.
    version: int
    #: Whether the session asking has had the secret already (see ``member_card``).
    secret_delivered: bool = False


class CardSecret(msgspec.Struct, frozen=True, kw_only=True):
    """The member's card with the secret of its rotating codes (RFC 6238: HMAC-SHA1)."""

    member_number: str
    card_number: str | None
    card_number_formatted: str | None
    #: The TOTP secret, base32 (RFC 4648) without padding.
    secret: str
    step_seconds: int
    digits: int
    version: int


def _card(row: Any) -> MemberCard:
    number = row.card_number if row.card_number and is_card_number(row.card_number) else None
    return MemberCard(
        member_id=row.id,
        member_number=str(row.id).zfill(MEMBER_NUMBER_WIDTH),
        card_number=number,
        card_number_formatted=format_card_number(number) if number else None,
        version=row.card_secret_version,
    )


async def _member_card(conn: AsyncConnection, member_id: int) -> MemberCard:
    row = (
        await conn.execute(
            select(members.c.id, members.c.card_number, members.c.card_secret_version).where(
                members.c.id == member_id, members.c.deleted_at.is_(None)
            )
        )
    ).first()
    if row is None:
        raise DomainError(ErrorCode.MEMBER_NOT_FOUND, "no such member")
    return _card(row)


async def member_card(
    engine: AsyncEngine, member_id: int, session_digest: str | None = None
) -> MemberCard:
    """The member's card as the card screen shows it (no secret); with ``session_digest``, also
    whether that session has had the secret: the card screen then claims an unclaimed delivery
    even when its device holds the secret already, so that no copy of the cookie can."""

    async def work(conn: AsyncConnection) -> MemberCard:
        card = await _member_card(conn, member_id)
        if session_digest is None:
            return card
        delivered_at = await conn.scalar(
            select(member_sessions.c.card_secret_delivered_at).where(
                member_sessions.c.token_hash == session_digest
            )
        )
        return replace(card, secret_delivered=delivered_at is not None)

    return await in_transaction(engine, work)


async def deliver_card_secret(
    engine: AsyncEngine, member: WalletMember, server_key: bytes, now: datetime
) -> CardSecret:
    """The member's card with its secret, recorded as delivered to ``member``'s session;
    ``card_secret_already_delivered`` when this session had it before."""

    async def work(conn: AsyncConnection) -> CardSecret:
        marked = await conn.execute(
            update(member_sessions)
            .where(
                member_sessions.c.token_hash == member.session_digest,
                member_sessions.c.member_id == member.member_id,
                member_sessions.c.card_secret_delivered_at.is_(None),
            )
            .values(card_secret_delivered_at=now)
        )
        if marked.rowcount != 1:
            raise DomainError(
                ErrorCode.CARD_SECRET_ALREADY_DELIVERED,
                "this session has already received the card's secret; the device that asked "
                "first keeps it. Sign in again on this device to show the card here",
            )
        card = await _member_card(conn, member.member_id)
        secret = card_secret(server_key, member.member_id, card.version)
        return CardSecret(
            member_number=card.member_number,
            card_number=card.card_number,
            card_number_formatted=card.card_number_formatted,
            secret=base64.b32encode(secret).decode().rstrip("="),
            step_seconds=STEP_SECONDS,
            digits=TOTP_DIGITS,
            version=card.version,
        )

    return await in_transaction(engine, work)


@lru_cache(maxsize=256)
def code128_svg(value: str) -> str:
    """The Code 128 symbol of ``value`` as an SVG document: black bars on white, a quiet zone of
    10 modules either side, one unit per module (the image scales to any width)."""
    modules = code128_modules(value)
    width = len(modules) + 2 * CODE128_QUIET_ZONE
    height = BARCODE_HEIGHT_MODULES
    bars = []
    x = CODE128_QUIET_ZONE
    for run in _runs(modules):
        if run[0] == "1":
            bars.append(f"M{x} 0h{len(run)}v{height}h-{len(run)}z")
        x += len(run)
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" version="1.1" '
        f'width="{width * 3}" height="{height * 3}" viewBox="0 0 {width} {height}" '
        'preserveAspectRatio="none" shape-rendering="crispEdges">'
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>'
        f'<path fill="#000000" d="{"".join(bars)}"/>'
        "</svg>\n"
    )


def _runs(modules: str) -> list[str]:
    """``modules`` cut into runs of the same module ("1110100" -> ["111", "0", "1", "00"])."""
    runs: list[str] = []
    for module in modules:
        if runs and runs[-1][0] == module:
            runs[-1] += module
        else:
            runs.append(module)
    return runs


def _refuse_other_fetches(request: Request[Any, Any, Any]) -> None:
    """Only the wallet's own script may take the session's one delivery: not another site (a
    top-level link still carries a SameSite=Lax cookie), not a page navigation."""
    site = request.headers.get("sec-fetch-site")
    mode = request.headers.get("sec-fetch-mode")
    if site in {"cross-site", "same-site"} or mode == "navigate":
        raise DomainError(
            ErrorCode.FORBIDDEN, "the card's secret is given to the wallet's card screen only"
        )


class WalletCardController(Controller):
    path = "/{program_id:int}"
    tags = ["Wallet"]
    guards = [member_guard]
    dependencies = {"member": Provide(provide_member, sync_to_thread=False)}

    @get(
        "/card",
        summary="The member's card with the secret of its rotating codes (once per session)",
        description=(
            "The member number, the static card number and the TOTP secret (base32, RFC 6238 "
            "HMAC-SHA1, 30 s steps, 8 digits) the card screen computes the rotating code with: "
            "`08` + member number + TOTP. Given once per session: a second request with the "
            "same session answers 409 `card_secret_already_delivered` (sign in again to get it "
            "on another device)."
        ),
    )
    async def card(
        self,
        request: Request[Any, Any, Any],
        program_id: ProgramId,
        member: NamedDependency[WalletMember],
    ) -> Response[CardSecret]:
        del program_id
        _refuse_other_fetches(request)
        state = request.app.state
        delivered = await deliver_card_secret(
            state.engine, member, state.settings.secret_key.encode(), state.ledger.clock()
        )
        return Response(content=delivered, headers={"Cache-Control": "no-store"})

    @get(
        "/card/print.png",
        summary="The printable membership card (PNG, 300 dpi, credit-card size)",
        media_type="image/png",
    )
    async def printable_png(
        self,
        request: Request[Any, Any, Any],
        program_id: ProgramId,
        member: NamedDependency[WalletMember],
    ) -> Response[bytes]:
        face = await _printable(request, program_id, member)
        return Response(
            content=card_png(face), media_type="image/png", headers=_printable_headers("png")
        )

    @get(
        "/card/print.svg",
        summary="The printable membership card (SVG, credit-card size)",
        media_type="image/svg+xml",
    )
    async def printable_svg(
        self,
        request: Request[Any, Any, Any],
        program_id: ProgramId,
        member: NamedDependency[WalletMember],
    ) -> Response[str]:
        face = await _printable(request, program_id, member)
        return Response(
            content=card_svg(face),
            media_type="image/svg+xml",
            headers=_printable_headers("svg"),
        )

    @get(
        "/card/barcode.svg",
        summary="The static card number as a Code 128 barcode (SVG)",
        media_type="image/svg+xml",
    )
    async def barcode(
        self,
        request: Request[Any, Any, Any],
        program_id: ProgramId,
        member: NamedDependency[WalletMember],
    ) -> Response[str]:
        del program_id
        card = await member_card(request.app.state.engine, member.member_id)
        if card.card_number is None:
            raise DomainError(ErrorCode.CARD_NOT_FOUND, "this member has no card number")
        etag = '"' + hashlib.sha256(card.card_number.encode()).hexdigest()[:24] + '"'
        headers = {
            "Cache-Control": f"private, max-age={BARCODE_MAX_AGE}",
            "Vary": "Cookie",
            "ETag": etag,
            "Content-Security-Policy": "default-src 'none'",
            "X-Content-Type-Options": "nosniff",
        }
        if hmac.compare_digest(request.headers.get("if-none-match", ""), etag):
            return Response(content="", status_code=304, headers=headers)
        return Response(
            content=code128_svg(card.card_number), media_type="image/svg+xml", headers=headers
        )


async def _printable(
    request: Request[Any, Any, Any], program_id: int, member: WalletMember
) -> CardFace:
    """The member's card face in the program's colours."""
    program = await request.app.state.queries.public_program(program_id)
    card = await member_card(request.app.state.engine, member.member_id)
    if card.card_number is None:
        raise DomainError(ErrorCode.CARD_NOT_FOUND, "this member has no card number")
    return CardFace(
        program_name=program.name,
        card_number=card.card_number,
        display_name=member.display_name,
        style=style_of(program.card_background, program.card_foreground, program.card_accent),
    )


def _printable_headers(suffix: str) -> dict[str, str]:
    return {
        "Cache-Control": "private, no-store",
        "Content-Disposition": f'inline; filename="membership-card.{suffix}"',
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
        "X-Content-Type-Options": "nosniff",
    }
