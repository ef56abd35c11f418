"""The wallet's JSON API under /api/v1/wallet/{program_id}: enrollment, passwordless sign-in,
the member's own session and consents.

Members are authenticated by a session cookie (HttpOnly, SameSite=Lax, Secure outside the
development environment), not by bearer keys. Because a browser sends cookies by itself, every
request that changes something must come from the wallet's own origin: a cross-site request is
refused (``forbidden``), and bodies are JSON (a cross-site HTML form cannot send JSON without
the browser asking first).

Sign-in requests are rate-limited per email address and per client address (codes are also
burned after 5 wrong tries, in the service): enumerating addresses or guessing codes gets
``rate_limited`` long before it gets anywhere.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import msgspec
from litestar import Controller, Request, Response, Router, get, post, put
from litestar.channels import ChannelsPlugin
from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie
from litestar.di import NamedDependency, Provide
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler
from litestar.params import JSONBody, PathParameter, QueryParameter
from litestar.response import Redirect, ServerSentEvent

from loyalty.app.api.params import IdempotencyKey, answer
from loyalty.app.api.strict_body import strict_body_guard
from loyalty.app.rate_limits import counter_for
from loyalty.app.settings import Settings
from loyalty.domain.errors import DomainError, ErrorCode
from loyalty.services.context import Caller
from loyalty.services.feedback import Feedback
from loyalty.services.member_enrollment import ConsentState, Enrollment
from loyalty.services.member_sign_in import (
    COMPLETE_PROFILE,
    MemberSession,
    MemberSignIn,
    WalletMember,
)
from loyalty.services.referrals import Referrals
from loyalty.services.rewards import RedemptionResult, Rewards

from . import live

COOKIE_NAME = "loyalty_wallet"
MEMBER_STATE_KEY = "wallet_member"
#: The store (of the app's registry) that counts sign-in attempts.
SIGN_IN_LIMIT_STORE = "wallet_sign_in_limits"
#: Per email address in a quarter of an hour: mails asked for (enrollments, code requests),
#: and code tries (a code also burns after 5 wrong tries).
MAILS_PER_ADDRESS = 5
TRIES_PER_ADDRESS = 10
#: Per client address: enrollments, code requests and tries in a quarter of an hour.
PER_CLIENT = 30
LIMIT_WINDOW_SECONDS = 15 * 60
#: The version of the program terms and privacy texts the wallet shows (docs/WALLET.md).
TERMS_VERSION = "2026-11-01"

ProgramId = Annotated[int, PathParameter(gt=0, le=2**63 - 1, description="Program id")]
Email = Annotated[str, msgspec.Meta(min_length=3, max_length=320)]
Locale = Literal["de", "en"]


class EnrollRequest(msgspec.Struct, forbid_unknown_fields=True):
    display_name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    email: Email
    #: The program terms and privacy notice of version ``TERMS_VERSION``; required.
    terms_accepted: bool
    phone: Annotated[str, msgspec.Meta(max_length=40)] | None = None
    #: News and offers by email; optional, withdrawable on its own.
    marketing: bool = False
    locale: Locale | None = None
    #: The invitation code of the link the person followed (referral), if any.
    invite: Annotated[str, msgspec.Meta(max_length=16)] | None = None


class CodeRequest(msgspec.Struct, forbid_unknown_fields=True):
    email: Email


class CodeSignIn(msgspec.Struct, forbid_unknown_fields=True):
    email: Email
    code: Annotated[str, msgspec.Meta(pattern=r"^\s*\d{3}\s?\d{3}\s*$")]


class ConsentChange(msgspec.Struct, forbid_unknown_fields=True):
    granted: bool


class FeedbackAnswer(msgspec.Struct, forbid_unknown_fields=True):
    #: 0-10; null: the member dismissed the question.
    score: Annotated[int, msgspec.Meta(ge=0, le=10)] | None
    comment: Annotated[str, msgspec.Meta(max_length=2000)] | None = None


class InvitationView(msgspec.Struct, frozen=True, kw_only=True):
    code: str
    link: str
    joined: int
    converted: int
    bonus_points: int


class Accepted(msgspec.Struct, frozen=True):
    """What enrollment and code requests answer, whether or not the address is known."""

    detail: str


class WalletSession(msgspec.Struct, frozen=True, kw_only=True):
    member_id: int
    program_id: int
    display_name: str
    locale: str | None
    consents: list[ConsentState]


def _session_cookie(settings: Settings, session: MemberSession | None) -> Cookie:
    return Cookie(
        key=COOKIE_NAME,
        value=session.token if session is not None else "",
        path="/",
        httponly=True,
        secure=settings.environment != "development",
        samesite="lax",
        expires=int(session.expires_at.timestamp()) if session is not None else 0,
        max_age=None if session is not None else 0,
    )


async def same_origin_guard(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    """Refuse requests that change something and come from another site."""
    if connection.scope.get("method", "GET") in {"GET", "HEAD", "OPTIONS"}:
        return
    origin = connection.headers.get("origin")
    if origin is None:
        fetch_site = connection.headers.get("sec-fetch-site")
        if fetch_site in {"cross-site", "same-site"}:
            raise DomainError(ErrorCode.FORBIDDEN, "requests from other sites are refused")
        return
    if urlsplit(origin).netloc != connection.headers.get("host"):
        raise DomainError(ErrorCode.FORBIDDEN, "requests from other sites are refused")


async def session_member(
    connection: ASGIConnection[Any, Any, Any, Any], program_id: int
) -> WalletMember | None:
    """The member whose session cookie came with the request, if it is for this program."""
    sign_in: MemberSignIn = connection.app.state.member_sign_in
    member = await sign_in.authenticate(connection.cookies.get(COOKIE_NAME))
    if member is None or member.program_id != program_id:
        return None
    return member


async def member_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    member = await session_member(connection, connection.path_params.get("program_id", 0))
    if member is None:
        raise NotAuthorizedException("sign in to the wallet first")
    connection.state[MEMBER_STATE_KEY] = member


def signed_out(request: Request[Any, Any, Any], content: Any = None) -> Response[Any]:
    """An answer that also removes the session cookie."""
    return Response(
        content=content,
        status_code=200,
        cookies=[_session_cookie(request.app.state.settings, None)],
    )


def provide_member(request: Request[Any, Any, Any]) -> WalletMember:
    member: WalletMember = request.state[MEMBER_STATE_KEY]
    return member


async def _limit(request: Request[Any, Any, Any], *keys: tuple[str, int]) -> None:
    """Count this attempt under each (key, limit); ``rate_limited`` past any limit."""
    counter = counter_for(request.app.stores.get(SIGN_IN_LIMIT_STORE))
    for key, limit in keys:
        digest = hashlib.sha256(key.encode()).hexdigest()[:32]
        if await counter.count(digest, LIMIT_WINDOW_SECONDS) > limit:
            raise DomainError(
                ErrorCode.RATE_LIMITED,
                "too many sign-in attempts; wait a quarter of an hour",
                retry_after=LIMIT_WINDOW_SECONDS,
            )


def _client(request: Request[Any, Any, Any]) -> tuple[str, int]:
    host = request.client.host if request.client else "unknown"
    return f"client:{host}", PER_CLIENT


def _mails_to(email: str) -> tuple[str, int]:
    return f"mail:{email.strip().lower()}", MAILS_PER_ADDRESS


def _tries_for(email: str) -> tuple[str, int]:
    return f"try:{email.strip().lower()}", TRIES_PER_ADDRESS


def _link_base(request: Request[Any, Any, Any], program_id: int) -> str:
    settings: Settings = request.app.state.settings
    return f"{settings.base_url}/api/v1/wallet/{program_id}/sign-in/link?token="


_SENT = (
    "if this address belongs to a member of the program, a sign-in code is on its way; "
    "look in the mailbox"
)


class WalletSignInController(Controller):
    path = "/{program_id:int}"
    tags = ["Wallet"]

    @post(
        "/enrollment",
        status_code=202,
        summary="Join the program: a sign-in code is mailed (also when the address is known)",
    )
    async def enroll(
        self, request: Request[Any, Any, Any], program_id: ProgramId, data: JSONBody[EnrollRequest]
    ) -> Accepted:
        await _limit(request, _client(request), _mails_to(data.email))
        enrollment: Enrollment = request.app.state.enrollment
        await enrollment.enroll_self(
            program_id,
            display_name=data.display_name,
            email=data.email,
            phone=data.phone,
            terms_version=TERMS_VERSION,
            terms_accepted=data.terms_accepted,
            marketing=data.marketing,
            locale=data.locale,
            link_base=_link_base(request, program_id),
            invite=data.invite,
        )
        return Accepted(_SENT)

    @post("/sign-in/code", status_code=202, summary="Mail a one-time sign-in code and link")
    async def request_code(
        self, request: Request[Any, Any, Any], program_id: ProgramId, data: JSONBody[CodeRequest]
    ) -> Accepted:
        await _limit(request, _client(request), _mails_to(data.email))
        sign_in: MemberSignIn = request.app.state.member_sign_in
        await sign_in.request_code(program_id, data.email, _link_base(request, program_id))
        return Accepted(_SENT)

    @post("/sign-in", status_code=200, summary="Sign in with the mailed code: sets the cookie")
    async def sign_in_with_code(
        self, request: Request[Any, Any, Any], program_id: ProgramId, data: JSONBody[CodeSignIn]
    ) -> Response[WalletSession]:
        await _limit(request, _client(request), _tries_for(data.email))
        sign_in: MemberSignIn = request.app.state.member_sign_in
        session = await sign_in.sign_in_with_code(program_id, data.email, data.code)
        return await _signed_in(request, session)

    @get(
        "/sign-in/link",
        summary="Sign in with the mailed link: sets the cookie and opens the wallet",
        status_code=303,
    )
    async def sign_in_with_link(
        self,
        request: Request[Any, Any, Any],
        program_id: ProgramId,
        token: Annotated[str, QueryParameter(max_length=256)],
    ) -> Response[Any]:
        await _limit(request, _client(request))
        sign_in: MemberSignIn = request.app.state.member_sign_in
        session = await sign_in.sign_in_with_link(token)
        if session.program_id != program_id:
            raise DomainError(ErrorCode.SIGN_IN_CODE_INVALID, "this link is for another program")
        settings: Settings = request.app.state.settings
        # A member the cashier enrolled completes the profile and accepts the terms first.
        landing = "/profile" if session.purpose == COMPLETE_PROFILE else ""
        return Redirect(
            path=f"/wallet/{program_id}{landing}",
            status_code=303,
            cookies=[_session_cookie(settings, session)],
        )


async def _signed_in(request: Request[Any, Any, Any], session: MemberSession) -> Response[Any]:
    settings: Settings = request.app.state.settings
    sign_in: MemberSignIn = request.app.state.member_sign_in
    member = await sign_in.authenticate(session.token)
    assert member is not None
    body = await _session_view(request, member)
    return Response(content=body, cookies=[_session_cookie(settings, session)])


async def _session_view(request: Request[Any, Any, Any], member: WalletMember) -> WalletSession:
    enrollment: Enrollment = request.app.state.enrollment
    return WalletSession(
        member_id=member.member_id,
        program_id=member.program_id,
        display_name=member.display_name,
        locale=member.locale,
        consents=await enrollment.consents(member.member_id, member.program_id),
    )


class WalletMemberController(Controller):
    path = "/{program_id:int}"
    tags = ["Wallet"]
    guards = [member_guard]
    dependencies = {"member": Provide(provide_member, sync_to_thread=False)}

    @get("/session", summary="Who is signed in, with their consents")
    async def session(
        self,
        request: Request[Any, Any, Any],
        program_id: ProgramId,
        member: NamedDependency[WalletMember],
    ) -> WalletSession:
        del program_id
        return await _session_view(request, member)

    @get(
        "/events",
        summary="The member's balance, live (server-sent events)",
        description=(
            "An event `balance` with `{posted, held, available}` whenever the member's balance "
            "changes (a sale at any till, a redemption, an expiry); a comment every 25 s."
        ),
        media_type="text/event-stream",
    )
    async def live_balance(
        self,
        request: Request[Any, Any, Any],
        program_id: ProgramId,
        member: NamedDependency[WalletMember],
    ) -> ServerSentEvent:
        channels = request.app.plugins.get(ChannelsPlugin)
        return live.events(channels, program_id, member.member_id)

    @post("/sign-out", status_code=200, summary="End this session")
    async def sign_out(
        self, request: Request[Any, Any, Any], program_id: ProgramId
    ) -> Response[Any]:
        del program_id
        sign_in: MemberSignIn = request.app.state.member_sign_in
        await sign_in.sign_out(request.cookies.get(COOKIE_NAME))
        return signed_out(request)

    @post("/sign-out-everywhere", status_code=200, summary="End every session of the member")
    async def sign_out_everywhere(
        self,
        request: Request[Any, Any, Any],
        program_id: ProgramId,
        member: NamedDependency[WalletMember],
    ) -> Response[Any]:
        del program_id
        sign_in: MemberSignIn = request.app.state.member_sign_in
        await sign_in.sign_out_everywhere(member.member_id)
        return signed_out(request)

    @post(
        "/rewards/{reward_code:str}/redeem",
        status_code=201,
        summary="Redeem a reward for a voucher code (the points are spent at once)",
        description="Needs the Idempotency-Key header: a retry answers the same voucher.",
    )
    async def redeem(
        self,
        request: Request[Any, Any, Any],
        program_id: ProgramId,
        member: NamedDependency[WalletMember],
        reward_code: Annotated[str, PathParameter(max_length=64)],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[RedemptionResult]:
        if not idempotency_key:
            raise DomainError(
                ErrorCode.IDEMPOTENCY_KEY_MISSING, "the Idempotency-Key header is required"
            )
        rewards: Rewards = request.app.state.rewards
        outcome = await rewards.redeem_reward(
            Caller(client_id=f"wallet:{member.member_id}", merchant_id=member.merchant_id),
            idempotency_key,
            program_id=program_id,
            member_id=member.member_id,
            reward_code=reward_code,
            mode="voucher",
            points=None,
            basket=None,
            reference=None,
        )
        return answer(outcome)

    @get("/invitation", summary="The member's invitation link and who joined through it")
    async def invitation(
        self,
        request: Request[Any, Any, Any],
        program_id: ProgramId,
        member: NamedDependency[WalletMember],
    ) -> InvitationView:
        referrals: Referrals = request.app.state.referrals
        found = await referrals.invitation(program_id, member.member_id)
        settings: Settings = request.app.state.settings
        return InvitationView(
            code=found.code,
            link=f"{settings.base_url}/wallet/{program_id}?invite={found.code}",
            joined=found.joined,
            converted=found.converted,
            bonus_points=found.bonus_points,
        )

    @post(
        "/feedback",
        status_code=204,
        summary="Answer (or dismiss) the Net Promoter question",
        description="Asked after a purchase, at most once per the program's interval "
        "(feedback_not_due otherwise).",
    )
    async def feedback(
        self,
        request: Request[Any, Any, Any],
        program_id: ProgramId,
        member: NamedDependency[WalletMember],
        data: JSONBody[FeedbackAnswer],
    ) -> None:
        feedback: Feedback = request.app.state.feedback
        await feedback.answer(program_id, member.member_id, data.score, data.comment)

    @put(
        "/consents/{kind:str}",
        summary="Give or withdraw a consent: marketing (either way) or terms (accept only)",
        description="The program terms can only be accepted (a member the cashier enrolled, "
        "or a new version): leaving the program is deleting the account (consent_required).",
    )
    async def consent(
        self,
        request: Request[Any, Any, Any],
        program_id: ProgramId,
        member: NamedDependency[WalletMember],
        kind: Annotated[Literal["marketing", "terms"], PathParameter(description="The consent")],
        data: JSONBody[ConsentChange],
    ) -> list[ConsentState]:
        enrollment: Enrollment = request.app.state.enrollment
        return await enrollment.set_consent(
            member.member_id, program_id, kind, data.granted, TERMS_VERSION
        )


def wallet_api_router() -> Router:
    from .card_api import WalletCardController  # it imports this module
    from .passes_api import WalletPassesController  # it imports this module
    from .privacy_api import WalletPrivacyController  # it imports this module

    return Router(
        path="/api/v1/wallet",
        route_handlers=[
            WalletSignInController,
            WalletMemberController,
            WalletPrivacyController,
            WalletCardController,
            WalletPassesController,
        ],
        guards=[same_origin_guard, strict_body_guard],
        security=[{"WalletCookie": []}],
    )
