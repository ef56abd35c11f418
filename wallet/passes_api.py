"""Apple Wallet and Google Wallet passes of a member's card, and Apple's pass web service.

Member routes (the wallet's cookie session, under /api/v1/wallet/{program_id}/passes):

- ``GET apple``: the member's signed store card (.pkpass) with the static card number as QR
  code, the available points and the current tier. The first download gives the member a row in
  ``wallet_passes`` with an opaque random serial number (never the card number, which would
  otherwise travel in every update URL). With an HTTPS ``LOYALTY_PUBLIC_URL`` the pass carries
  ``webServiceURL`` (``<public URL>/api/v1/wallet/apple``) and its ``authenticationToken``
  (``wallet.passes.apple.authentication_token`` of the server key, pass type and serial), so
  that Wallet keeps it up to date; without HTTPS Wallet would refuse the web service, and the
  pass is a static one.
- ``GET google``: ``{"save_url": "https://pay.google.com/gp/v/save/<jwt>"}``, the signed "save
  to Google Wallet" link of the member's loyalty object (and the program's class). Fetched by
  the wallet's own script only (a page navigation or another site is refused), never mailed.

Not configured: 404 ``apple_wallet_not_configured`` / ``google_wallet_not_configured``, and
the card page hides the buttons (``pass_buttons``).

Apple's pass web service (``apple_web_service_router``, under /api/v1/wallet/apple; not
cookie-authenticated, no same-origin or strict-body guard: Wallet's requests come from no
browser), as Apple's "Adding a Web Service to Update Passes" describes it:

- ``POST v1/devices/{device}/registrations/{passType}/{serial}`` with ``{"pushToken"}`` and
  ``Authorization: ApplePass <authenticationToken>``: 201 registered, 200 already registered
  (the push token is updated), 401 a wrong token.
- ``GET v1/devices/{device}/registrations/{passType}?passesUpdatedSince=<tag>``: 200
  ``{"serialNumbers", "lastUpdated"}`` of the device's passes changed after the tag, 204 none.
  The tag is the passes' ``updated_at`` in epoch milliseconds.
- ``DELETE v1/devices/{device}/registrations/{passType}/{serial}``: 200; 401 a wrong token.
- ``GET v1/passes/{passType}/{serial}``: the pass as it is now, with ``Last-Modified``;
  ``If-Modified-Since`` later than the last change answers 304; 401 a wrong token.
- ``POST v1/log`` with ``{"logs": [...]}``: Wallet's error messages, logged at info (20 at
  most, each cut to 500 characters).

Updates (``PassUpdates``, started by ``apple_pass_updates`` in the app's lifespan): every commit
that changes member balances is announced (``loyalty.db.balance_changes``); in the background,
never holding up the commit or the request, the members' pass rows (if they have one) get a new
``updated_at`` and every device registered for them gets an empty APNs push
(``wallet.passes.apns``). A push APNs answers with 410 (the token is gone) removes that
registration; other failures are logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Annotated, Any

import msgspec
from litestar import (
    Controller,
    HttpMethod,
    Litestar,
    Request,
    Response,
    Router,
    delete,
    get,
    post,
    route,
)
from litestar.di import NamedDependency, Provide
from litestar.exceptions import NotAuthorizedException
from litestar.params import HeaderParameter, JSONBody, PathParameter, QueryParameter
from sqlalchemy import delete as sql_delete
from sqlalchemy import select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from loyalty.app.settings import Settings
from loyalty.db.balance_changes import BalanceChange, listen
from loyalty.db.engine import in_transaction
from loyalty.db.tables import accounts, members, pass_registrations, programs, wallet_passes
from loyalty.domain.card_style import DEFAULT_STYLE, CardStyle, style_of
from loyalty.domain.cards import is_card_number
from loyalty.domain.errors import DomainError, ErrorCode
from loyalty.services.member_sign_in import WalletMember
from loyalty.services.tier_status import effective_tier

from .api import ProgramId, member_guard, provide_member
from .passes import WalletConfigError, WalletNotConfiguredError
from .passes.apns import PUSH_TOKEN, ApnsClient, PushOutcome, client_ssl_context
from .passes.apple import (
    PKPASS_MEDIA_TYPE,
    ApplePassConfig,
    StoreCard,
    authentication_token,
    build_pkpass,
    check_authentication_token,
    require_apple_pass_config,
)
from .passes.google import (
    GoogleWalletConfig,
    loyalty_class,
    loyalty_object,
    require_google_wallet_config,
    save_url,
)

log = logging.getLogger("wallet.passes")

#: Where Wallet finds the web service: ``<public URL>`` + this (pass.json ``webServiceURL``).
WEB_SERVICE_PATH = "/api/v1/wallet/apple"
#: Wallet's log messages: at most this many per request, each cut to this length.
MAX_LOG_ENTRIES = 20
MAX_LOG_LENGTH = 500
#: Bodies of the web service (a push token, a few log lines) are small.
MAX_BODY_BYTES = 64 * 1024
#: The background work waits this long for pushes in flight when the app stops.
SHUTDOWN_GRACE_SECONDS = 5.0

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# --- Configuration -----------------------------------------------------------------------------

# Loaded once per settings (reading and checking the PEM files on every request would be
# wasted work); a configuration error is not cached, so it is reported every time.
_apple_config = lru_cache(maxsize=8)(require_apple_pass_config)
_google_config = lru_cache(maxsize=8)(require_google_wallet_config)


def apple_config(settings: Settings) -> ApplePassConfig:
    """The Apple Wallet keys; 404 ``apple_wallet_not_configured`` without them."""
    try:
        return _apple_config(settings)
    except WalletNotConfiguredError as error:
        raise DomainError(ErrorCode(error.code), error.message) from error


def google_config(settings: Settings) -> GoogleWalletConfig:
    """The Google Wallet issuer and key; 404 ``google_wallet_not_configured`` without them."""
    try:
        return _google_config(settings)
    except WalletNotConfiguredError as error:
        raise DomainError(ErrorCode(error.code), error.message) from error


@dataclass(frozen=True, slots=True)
class PassButtons:
    """Which "add to wallet" buttons the card page shows."""

    apple: bool
    google: bool


def pass_buttons(settings: Settings) -> PassButtons:
    """A button for each wallet whose keys are configured and load. Keys that are set but wrong
    hide the button too (and are logged: the pass routes answer 500 until they are fixed)."""

    def usable(load: Callable[[Settings], object], name: str) -> bool:
        try:
            load(settings)
        except WalletNotConfiguredError:
            return False
        except WalletConfigError as error:
            log.error("%s passes are off: %s", name, error)
            return False
        return True

    return PassButtons(
        apple=usable(_apple_config, "Apple Wallet"), google=usable(_google_config, "Google Wallet")
    )


# --- What a pass shows -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PassContent:
    """One member's card as a wallet pass shows it."""

    program_id: int
    program_code: str
    program_name: str
    member_id: int
    display_name: str
    card_number: str
    balance: int
    tier: str | None
    style: CardStyle = DEFAULT_STYLE


def _ms(moment: datetime) -> datetime:
    """``moment`` cut to whole milliseconds: the resolution of the update tags."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def update_tag(moment: datetime) -> str:
    """The ``lastUpdated`` tag of a pass changed at ``moment``: epoch milliseconds."""
    return str((moment - _EPOCH) // timedelta(milliseconds=1))


def parse_update_tag(tag: str | None) -> datetime | None:
    """The moment of a tag from ``update_tag``; None for no tag or one that is not ours."""
    if not tag or not tag.isascii() or not tag.isdigit() or len(tag) > 15:
        return None
    return _EPOCH + timedelta(milliseconds=int(tag))


async def _pass_content(
    conn: AsyncConnection, program_id: int, member_id: int, at: datetime
) -> PassContent:
    """The member's card, balance and tier at ``at``: one read of the account with its member
    and program, and the tier under the rules in force."""
    row = (
        await conn.execute(
            select(
                accounts.c.id.label("account_id"),
                accounts.c.posted,
                accounts.c.held,
                members.c.display_name,
                members.c.card_number,
                members.c.locale,
                programs.c.code.label("program_code"),
                programs.c.name.label("program_name"),
                programs.c.card_background,
                programs.c.card_foreground,
                programs.c.card_accent,
            )
            .join(members, members.c.id == accounts.c.member_id)
            .join(programs, programs.c.id == accounts.c.program_id)
            .where(
                accounts.c.program_id == program_id,
                accounts.c.member_id == member_id,
                members.c.deleted_at.is_(None),
            )
        )
    ).first()
    if row is None:
        raise DomainError(ErrorCode.NOT_ENROLLED, "the member is not in this program")
    if not row.card_number or not is_card_number(row.card_number):
        raise DomainError(ErrorCode.CARD_NOT_FOUND, "this member has no card number")
    level = await effective_tier(conn, program_id, row.account_id, at)
    tier = None
    if level is not None:
        tier = (level.name.en if row.locale == "en" else level.name.de) or level.code
    return PassContent(
        program_id=program_id,
        program_code=row.program_code,
        program_name=row.program_name,
        member_id=member_id,
        display_name=row.display_name,
        card_number=row.card_number,
        balance=max(int(row.posted) - int(row.held), 0),
        tier=tier,
        style=style_of(row.card_background, row.card_foreground, row.card_accent),
    )


def _web_service_url(settings: Settings) -> str | None:
    """Where Wallet asks for updates: only over HTTPS (Wallet refuses anything else)."""
    base = settings.base_url
    return base + WEB_SERVICE_PATH if base.startswith("https://") else None


def _store_card(
    content: PassContent, serial: str, config: ApplePassConfig, settings: Settings
) -> StoreCard:
    url = _web_service_url(settings)
    token = (
        authentication_token(settings.secret_key, config.pass_type_id, serial)
        if url is not None
        else None
    )
    return StoreCard(
        serial_number=serial,
        card_number=content.card_number,
        program_name=content.program_name,
        display_name=content.display_name,
        balance=content.balance,
        tier=content.tier,
        style=content.style,
        web_service_url=url,
        authentication_token=token,
    )


async def _signed_pass(
    content: PassContent,
    serial: str,
    config: ApplePassConfig,
    settings: Settings,
    now: datetime,
) -> bytes:
    card = _store_card(content, serial, config, settings)
    # Drawing the icons and signing take a few tens of milliseconds: not on the event loop.
    return await asyncio.to_thread(build_pkpass, card, config, now=now)


def _pkpass_response(data: bytes, headers: dict[str, str]) -> Response[bytes]:
    return Response(
        content=data,
        media_type=PKPASS_MEDIA_TYPE,
        headers={
            "Content-Disposition": 'attachment; filename="card.pkpass"',
            "X-Content-Type-Options": "nosniff",
            **headers,
        },
    )


# --- The member's passes -----------------------------------------------------------------------


async def member_pass(
    engine: AsyncEngine, program_id: int, member_id: int, now: datetime
) -> tuple[PassContent, str, datetime]:
    """The member's pass content, serial number and last change, making the ``wallet_passes``
    row (a new random serial) on the first download."""

    async def work(conn: AsyncConnection) -> tuple[PassContent, str, datetime]:
        content = await _pass_content(conn, program_id, member_id, now)
        row = (
            await conn.execute(
                select(wallet_passes.c.serial, wallet_passes.c.updated_at).where(
                    wallet_passes.c.program_id == program_id,
                    wallet_passes.c.member_id == member_id,
                )
            )
        ).first()
        if row is not None:
            return content, row.serial, row.updated_at
        serial = secrets.token_hex(16)
        created = _ms(now)
        await conn.execute(
            wallet_passes.insert().values(
                program_id=program_id,
                member_id=member_id,
                serial=serial,
                created_at=created,
                updated_at=created,
            )
        )
        return content, serial, created

    try:
        return await in_transaction(engine, work)
    except IntegrityError:
        # Two first downloads at once: the other one made the row, this one finds it.
        return await in_transaction(engine, work)


class GoogleSaveLink(msgspec.Struct, frozen=True):
    """The "save to Google Wallet" link: open it in the member's browser."""

    save_url: str


def _refuse_other_fetches(request: Request[Any, Any, Any]) -> None:
    """The save link carries the member's card: for the wallet's own script only, not for a
    page navigation (a link from elsewhere) or another site."""
    site = request.headers.get("sec-fetch-site")
    mode = request.headers.get("sec-fetch-mode")
    if site in {"cross-site", "same-site"} or mode == "navigate":
        raise DomainError(
            ErrorCode.FORBIDDEN, "the save link is given to the wallet's card screen only"
        )


class WalletPassesController(Controller):
    path = "/{program_id:int}/passes"
    tags = ["Wallet"]
    guards = [member_guard]
    dependencies = {"member": Provide(provide_member, sync_to_thread=False)}

    @get(
        "/apple",
        summary="The member's Apple Wallet pass (.pkpass)",
        description=(
            "A store card with the static card number (QR code), the available points and "
            "the tier, signed with the installation's pass certificate; it updates itself when "
            "the balance changes (Apple's pass web service, /api/v1/wallet/apple). 404 "
            "`apple_wallet_not_configured` when the installation has no pass certificate."
        ),
        media_type=PKPASS_MEDIA_TYPE,
    )
    async def apple(
        self,
        request: Request[Any, Any, Any],
        program_id: ProgramId,
        member: NamedDependency[WalletMember],
    ) -> Response[bytes]:
        state = request.app.state
        settings: Settings = state.settings
        config = apple_config(settings)
        now = state.ledger.clock()
        content, serial, updated_at = await member_pass(
            state.engine, program_id, member.member_id, now
        )
        data = await _signed_pass(content, serial, config, settings, now)
        return _pkpass_response(
            data,
            {
                "Cache-Control": "no-store",
                "Last-Modified": _http_date(_last_modified(updated_at, now)),
            },
        )

    @get(
        "/google",
        summary='The member\'s "save to Google Wallet" link',
        description=(
            "`save_url`: https://pay.google.com/gp/v/save/<JWT signed with the service "
            "account's key> of the member's loyalty object (card number, points, tier) and the "
            "program's class. For the wallet's own script (navigations and other sites are "
            "refused). 404 `google_wallet_not_configured` without a Google Wallet issuer."
        ),
    )
    async def google(
        self,
        request: Request[Any, Any, Any],
        program_id: ProgramId,
        member: NamedDependency[WalletMember],
    ) -> Response[GoogleSaveLink]:
        _refuse_other_fetches(request)
        state = request.app.state
        settings: Settings = state.settings
        config = google_config(settings)
        now = state.ledger.clock()

        async def work(conn: AsyncConnection) -> PassContent:
            return await _pass_content(conn, program_id, member.member_id, now)

        content = await in_transaction(state.engine, work, read_only=True)
        # Program codes are unique per merchant only: the class is named by the program's id.
        class_code = f"program-{program_id}"
        document = loyalty_object(
            config,
            program_code=class_code,
            card_number=content.card_number,
            display_name=content.display_name,
            balance=content.balance,
            tier=content.tier,
        )
        classes = []
        base = settings.base_url
        if base.startswith("https://"):  # Google fetches the logo over HTTPS only
            classes.append(
                loyalty_class(
                    config,
                    program_code=class_code,
                    program_name=content.program_name,
                    style=content.style,
                    logo_url=f"{base}/wallet/{program_id}/icon-512.png",
                    homepage_url=f"{base}/wallet/{program_id}",
                )
            )
        link = save_url(config, loyalty_objects=[document], loyalty_classes=classes, issued_at=now)
        return Response(content=GoogleSaveLink(link), headers={"Cache-Control": "no-store"})


# --- Apple's pass web service ------------------------------------------------------------------

DeviceId = Annotated[
    str,
    PathParameter(
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9._-]+$",
        description="Wallet's deviceLibraryIdentifier",
    ),
]
PassTypeId = Annotated[
    str, PathParameter(min_length=1, max_length=255, description="The pass type identifier")
]
Serial = Annotated[
    str, PathParameter(min_length=1, max_length=64, description="The pass's serial number")
]
ApplePassAuthorization = Annotated[
    str | None,
    HeaderParameter(
        name="Authorization",
        required=False,
        description="`ApplePass <authenticationToken>` (the token in the pass)",
    ),
]


class PushTokenBody(msgspec.Struct):
    #: APNs device tokens are hex; the token becomes a segment of the push's URL.
    push_token: Annotated[str, msgspec.Meta(pattern=PUSH_TOKEN.pattern)] = msgspec.field(
        name="pushToken"
    )


class SerialNumbers(msgspec.Struct, frozen=True):
    serial_numbers: list[str] = msgspec.field(name="serialNumbers")
    last_updated: str = msgspec.field(name="lastUpdated")


class LogEntries(msgspec.Struct):
    logs: list[str] = msgspec.field(default_factory=list)


def _bearer(authorization: str | None) -> str | None:
    """The token of ``Authorization: ApplePass <token>``."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "applepass":
        return None
    return token.strip() or None


def _check_token(
    settings: Settings, config: ApplePassConfig, pass_type_id: str, serial: str, auth: str | None
) -> None:
    token = _bearer(auth)
    if (
        token is None
        or pass_type_id != config.pass_type_id
        or not check_authentication_token(settings.secret_key, pass_type_id, serial, token)
    ):
        raise NotAuthorizedException("not this pass's authentication token")


async def _pass_of(conn: AsyncConnection, serial: str) -> Any:
    """The pass row of ``serial`` whose member still exists; 401 otherwise (an erased member's
    pass stops updating)."""
    row = (
        await conn.execute(
            select(
                wallet_passes.c.program_id, wallet_passes.c.member_id, wallet_passes.c.updated_at
            )
            .join(members, members.c.id == wallet_passes.c.member_id)
            .where(wallet_passes.c.serial == serial, members.c.deleted_at.is_(None))
        )
    ).first()
    if row is None:
        raise NotAuthorizedException("no such pass")
    return row


def _http_date(moment: datetime) -> str:
    return email.utils.format_datetime(moment.astimezone(UTC), usegmt=True)


def _parse_http_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _last_modified(updated_at: datetime, now: datetime) -> datetime:
    """``Last-Modified`` of a pass served at ``now``: the whole second after its last change,
    but never later than the whole second of now. HTTP dates have whole seconds; a pass is "not
    modified since" a date only when it last changed before that date (``If-Modified-Since``),
    so a change in the same second as an earlier download is never mistaken for no change."""
    whole = updated_at.replace(microsecond=0) + timedelta(seconds=1)
    return min(whole, now.replace(microsecond=0))


class AppleWebServiceController(Controller):
    """Apple's PassKit web service: Wallet on the members' devices calls it."""

    path = "/v1"
    tags = ["Apple Wallet web service"]

    @post(
        "/devices/{device_id:str}/registrations/{pass_type_id:str}/{serial:str}",
        status_code=201,
        summary="Register a device for updates of a pass",
        description="201 registered, 200 already registered, 401 not the pass's token.",
        request_max_body_size=MAX_BODY_BYTES,
    )
    async def register(
        self,
        request: Request[Any, Any, Any],
        device_id: DeviceId,
        pass_type_id: PassTypeId,
        serial: Serial,
        data: JSONBody[PushTokenBody],
        authorization: ApplePassAuthorization = None,
    ) -> Response[None]:
        settings: Settings = request.app.state.settings
        config = apple_config(settings)
        _check_token(settings, config, pass_type_id, serial, authorization)
        push_token = data.push_token

        async def work(conn: AsyncConnection) -> bool:
            await _pass_of(conn, serial)
            key = (
                pass_registrations.c.device_library_id == device_id,
                pass_registrations.c.pass_type_id == pass_type_id,
                pass_registrations.c.serial == serial,
            )
            known = await conn.scalar(select(pass_registrations.c.push_token).where(*key))
            if known is None:
                await conn.execute(
                    pass_registrations.insert().values(
                        device_library_id=device_id,
                        pass_type_id=pass_type_id,
                        serial=serial,
                        push_token=push_token,
                        created_at=request.app.state.ledger.clock(),
                    )
                )
                return True
            if known != push_token:
                await conn.execute(
                    update(pass_registrations).where(*key).values(push_token=push_token)
                )
            return False

        try:
            created = await in_transaction(request.app.state.engine, work)
        except IntegrityError:
            created = False  # the same registration, twice at once
        return Response(content=None, status_code=201 if created else 200)

    @get(
        "/devices/{device_id:str}/registrations/{pass_type_id:str}",
        summary="The serial numbers of the device's passes changed since a tag",
        description="200 `{serialNumbers, lastUpdated}`, 204 when none changed.",
    )
    async def updatable(
        self,
        request: Request[Any, Any, Any],
        device_id: DeviceId,
        pass_type_id: PassTypeId,
        passes_updated_since: Annotated[
            str | None,
            QueryParameter(name="passesUpdatedSince", required=False, max_length=64),
        ] = None,
    ) -> Response[SerialNumbers | None]:
        apple_config(request.app.state.settings)
        since = parse_update_tag(passes_updated_since)

        async def work(conn: AsyncConnection) -> list[Any]:
            query = (
                select(wallet_passes.c.serial, wallet_passes.c.updated_at)
                .join(pass_registrations, pass_registrations.c.serial == wallet_passes.c.serial)
                .where(
                    pass_registrations.c.device_library_id == device_id,
                    pass_registrations.c.pass_type_id == pass_type_id,
                )
                .order_by(wallet_passes.c.serial)
            )
            if since is not None:
                query = query.where(wallet_passes.c.updated_at > since)
            return list((await conn.execute(query)).all())

        rows = await in_transaction(request.app.state.engine, work, read_only=True)
        if not rows:
            return Response(content=None, status_code=204)
        latest = max(row.updated_at for row in rows)
        return Response(
            content=SerialNumbers([row.serial for row in rows], update_tag(latest)),
            headers={"Cache-Control": "no-store"},
        )

    @delete(
        "/devices/{device_id:str}/registrations/{pass_type_id:str}/{serial:str}",
        status_code=200,
        summary="Unregister a device from updates of a pass",
        description="200 (also when it was not registered), 401 not the pass's token.",
    )
    async def unregister(
        self,
        request: Request[Any, Any, Any],
        device_id: DeviceId,
        pass_type_id: PassTypeId,
        serial: Serial,
        authorization: ApplePassAuthorization = None,
    ) -> Response[None]:
        settings: Settings = request.app.state.settings
        config = apple_config(settings)
        _check_token(settings, config, pass_type_id, serial, authorization)

        async def work(conn: AsyncConnection) -> None:
            await conn.execute(
                sql_delete(pass_registrations).where(
                    pass_registrations.c.device_library_id == device_id,
                    pass_registrations.c.pass_type_id == pass_type_id,
                    pass_registrations.c.serial == serial,
                )
            )

        await in_transaction(request.app.state.engine, work)
        return Response(content=None, status_code=200)

    @route(
        "/passes/{pass_type_id:str}/{serial:str}",
        http_method=[HttpMethod.GET, HttpMethod.HEAD],
        summary="The latest version of a pass",
        description=(
            "The signed .pkpass as it is now, with Last-Modified; 304 when If-Modified-Since "
            "is later than its last change; 401 not the pass's token. HEAD (some devices ask "
            "first) answers the same without the pass."
        ),
        media_type=PKPASS_MEDIA_TYPE,
    )
    async def latest(
        self,
        request: Request[Any, Any, Any],
        pass_type_id: PassTypeId,
        serial: Serial,
        authorization: ApplePassAuthorization = None,
        if_modified_since: Annotated[
            str | None, HeaderParameter(name="If-Modified-Since", required=False, max_length=64)
        ] = None,
    ) -> Response[bytes]:
        state = request.app.state
        settings: Settings = state.settings
        config = apple_config(settings)
        _check_token(settings, config, pass_type_id, serial, authorization)
        now = state.ledger.clock()

        async def work(conn: AsyncConnection) -> tuple[PassContent | None, datetime]:
            row = await _pass_of(conn, serial)
            since = _parse_http_date(if_modified_since)
            if since is not None and row.updated_at < since:
                return None, row.updated_at
            return await _pass_content(conn, row.program_id, row.member_id, now), row.updated_at

        content, updated_at = await in_transaction(state.engine, work, read_only=True)
        headers = {
            "Last-Modified": _http_date(_last_modified(updated_at, now)),
            "Cache-Control": "no-cache",
        }
        if content is None:
            return Response(content=b"", status_code=304, headers=headers)
        if request.method == HttpMethod.HEAD:
            return _pkpass_response(b"", headers)
        data = await _signed_pass(content, serial, config, settings, now)
        return _pkpass_response(data, headers)

    @post(
        "/log",
        status_code=200,
        summary="Wallet's error messages about this web service",
        request_max_body_size=MAX_BODY_BYTES,
    )
    async def log_messages(self, data: JSONBody[LogEntries]) -> None:
        for entry in data.logs[:MAX_LOG_ENTRIES]:
            text = "".join(c if c.isprintable() else " " for c in str(entry)[:MAX_LOG_LENGTH])
            log.info("Apple Wallet says: %s", text)


def apple_web_service_router() -> Router:
    """Apple's pass web service under /api/v1/wallet/apple (mounted by the app factory)."""
    return Router(path=WEB_SERVICE_PATH, route_handlers=[AppleWebServiceController])


# --- Keeping passes up to date -----------------------------------------------------------------


class PassUpdates:
    """Marks members' passes changed when their balance changes, and pushes the news to the
    devices registered for them; all in background tasks (``balances_changed`` is a
    ``loyalty.db.balance_changes`` listener and returns at once)."""

    def __init__(
        self, engine: AsyncEngine, apns: ApnsClient, clock: Callable[[], datetime]
    ) -> None:
        self.engine = engine
        #: Replaceable (tests put one with a fake transport here).
        self.apns = apns
        self.clock = clock
        self._tasks: set[asyncio.Task[None]] = set()

    def balances_changed(self, changes: list[BalanceChange]) -> None:
        members_changed = sorted({(change.program_id, change.member_id) for change in changes})
        try:
            task = asyncio.get_running_loop().create_task(self._update(members_changed))
        except RuntimeError:  # no event loop: nobody to push from (never in the app)
            log.warning("pass updates skipped: no event loop")
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _update(self, members_changed: list[tuple[int, int]]) -> None:
        try:
            tokens = await touch_passes(self.engine, members_changed, self.clock)
            if tokens:
                await self.push(tokens)
        except Exception:
            log.exception("updating wallet passes failed")

    async def push(self, push_tokens: list[str]) -> list[PushOutcome]:
        """Push to each token at once; forget the registrations APNs calls gone (410)."""
        apns = self.apns
        outcomes = await asyncio.gather(*(apns.push(token) for token in push_tokens))
        gone = [outcome.push_token for outcome in outcomes if outcome.unregistered]
        if gone:

            async def forget(conn: AsyncConnection) -> None:
                await conn.execute(
                    sql_delete(pass_registrations).where(
                        pass_registrations.c.push_token.in_(gone),
                        pass_registrations.c.pass_type_id == apns.topic,
                    )
                )

            await in_transaction(self.engine, forget)
            log.info("forgot %d pass registration(s) APNs called unregistered", len(gone))
        return list(outcomes)

    async def drain(self) -> None:
        """Wait until the work in flight is done (tests; shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self, grace: float = SHUTDOWN_GRACE_SECONDS) -> None:
        try:
            await asyncio.wait_for(self.drain(), grace)
        except TimeoutError:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        await self.apns.aclose()


async def touch_passes(
    engine: AsyncEngine, members_changed: list[tuple[int, int]], clock: Callable[[], datetime]
) -> list[str]:
    """Give the passes of these (program, member) pairs ``updated_at`` = now and answer the
    push tokens of the devices registered for them. Members without a pass cost one read.

    The time is read inside the writing transaction, so that passes are stamped in the order
    their updates commit (on SQLite exactly: writers take turns): a device that was told a tag
    is not told a later change under an earlier one."""
    pairs = tuple_(wallet_passes.c.program_id, wallet_passes.c.member_id)

    async def find(conn: AsyncConnection) -> list[tuple[int, int]]:
        rows = await conn.execute(
            select(wallet_passes.c.program_id, wallet_passes.c.member_id).where(
                pairs.in_(members_changed)
            )
        )
        return [(row.program_id, row.member_id) for row in rows]

    with_pass = await in_transaction(engine, find, read_only=True)
    if not with_pass:
        return []

    async def touch(conn: AsyncConnection) -> list[str]:
        moment = _ms(clock())
        serials: list[str] = []
        for program_id, member_id in with_pass:
            touched = await conn.execute(
                update(wallet_passes)
                .where(
                    wallet_passes.c.program_id == program_id,
                    wallet_passes.c.member_id == member_id,
                )
                .values(updated_at=moment)
                .returning(wallet_passes.c.serial)
            )
            serials += [row.serial for row in touched]
        if not serials:
            return []
        tokens = await conn.execute(
            select(pass_registrations.c.push_token)
            .where(pass_registrations.c.serial.in_(serials))
            .distinct()
        )
        return [row.push_token for row in tokens]

    return await in_transaction(engine, touch)


@contextlib.asynccontextmanager
async def apple_pass_updates(app: Litestar) -> AsyncIterator[None]:
    """The app's lifespan part that keeps Apple Wallet passes up to date (nothing to do when
    Apple Wallet is not configured). ``app.state.pass_updates`` is the ``PassUpdates``."""
    settings: Settings = app.state.settings
    try:
        config = _apple_config(settings)
    except WalletNotConfiguredError:
        config = None
    except WalletConfigError as error:
        log.error("Apple Wallet passes are off: %s", error)
        config = None
    if config is None:
        app.state.pass_updates = None
        yield
        return
    apns = ApnsClient(
        config.pass_type_id,
        base_url=settings.apple_apns_url,
        ssl_context=client_ssl_context(settings),
    )
    updates = PassUpdates(app.state.engine, apns, app.state.ledger.clock)
    app.state.pass_updates = updates
    stop = listen(app.state.engine, updates.balances_changed)
    try:
        yield
    finally:
        stop()
        await updates.close()
