"""The wallet's pages under /wallet/{program_id}: server-rendered (Litestar templates, Jinja),
German or English, a little vanilla JavaScript for the forms, no front-end framework.

Signed out, /wallet/{program_id} is the welcome page (sign in with a mailed code, or join).
Signed in: home (balance, tier, expiring points, recent activity, rewards), all activity, the
rewards catalogue. Every page is sent with a strict Content-Security-Policy: own scripts and
styles only, no inline script.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Final

from litestar import MediaType, Request, Response, Router, get
from litestar.datastructures import Cookie
from litestar.params import PathParameter, QueryParameter
from litestar.response import Redirect, Template
from litestar.static_files import create_static_files_router

from loyalty.app.languages import Language
from loyalty.services.member_sign_in import MemberSignIn, WalletMember
from loyalty.services.queries import Queries
from loyalty.services.results import ProgramView

from . import views
from .api import COOKIE_NAME
from .i18n import Formatter, pick_language

PACKAGE_DIR: Final = Path(__file__).resolve().parent
TEMPLATE_DIR: Final = PACKAGE_DIR / "templates"
STATIC_DIR: Final = PACKAGE_DIR / "static"
STATIC_PATH: Final = "/wallet/static"
LANGUAGE_COOKIE: Final = "wallet_lang"

CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; manifest-src 'self'; worker-src 'self'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
_HEADERS: Final = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

ProgramId = Annotated[int, PathParameter(gt=0, le=2**63 - 1, description="Program id")]
LangQuery = Annotated[str | None, QueryParameter(max_length=8, required=False)]


async def _member(request: Request[Any, Any, Any], program_id: int) -> WalletMember | None:
    sign_in: MemberSignIn = request.app.state.member_sign_in
    member = await sign_in.authenticate(request.cookies.get(COOKIE_NAME))
    if member is None or member.program_id != program_id:
        return None
    return member


def _language(
    request: Request[Any, Any, Any], member: WalletMember | None, lang: str | None
) -> Language:
    return pick_language(
        lang or request.cookies.get(LANGUAGE_COOKIE) or (member.locale if member else None),
        None,
        request.headers.get("accept-language"),
    )


def _page(
    request: Request[Any, Any, Any],
    template: str,
    fmt: Formatter,
    lang: str | None,
    **context: Any,
) -> Template:
    cookies = []
    if lang and lang[:2] in ("de", "en"):
        cookies.append(Cookie(key=LANGUAGE_COOKIE, value=lang[:2], path="/wallet", samesite="lax"))
    return Template(
        template_name=template,
        context={
            "t": fmt.texts(),
            "lang": fmt.language,
            "path": request.url.path,
            "static": STATIC_PATH,
            **context,
        },
        media_type=MediaType.HTML,
        headers=_HEADERS,
        cookies=cookies,
    )


async def _program(request: Request[Any, Any, Any], pid: int) -> ProgramView:
    queries: Queries = request.app.state.queries
    return await queries.public_program(pid)


@get("/wallet/{program_id:int}", include_in_schema=False)
async def wallet_home(
    request: Request[Any, Any, Any], program_id: ProgramId, lang: LangQuery = None
) -> Template:
    member = await _member(request, program_id)
    fmt = Formatter(_language(request, member, lang))
    program = await _program(request, program_id)
    fmt = Formatter(fmt.language, program.timezone)
    if member is None:
        invite = request.query_params.get("invite")
        if invite is not None and not (invite.isalnum() and len(invite) <= 16):
            invite = None
        return _page(
            request, "welcome.html", fmt, lang, program=program, member=None, invite=invite
        )
    home = await views.home(
        request.app.state,
        member.member_id,
        member.merchant_id,
        program_id,
        fmt,
        request.app.state.ledger.clock(),
    )
    return _page(request, "home.html", fmt, lang, program=program, member=member, home=home)


@get("/wallet/{program_id:int}/history", include_in_schema=False)
async def wallet_history(
    request: Request[Any, Any, Any],
    program_id: ProgramId,
    lang: LangQuery = None,
    cursor: Annotated[str | None, QueryParameter(max_length=64, required=False)] = None,
) -> Template | Response[Any]:
    member = await _member(request, program_id)
    if member is None:
        return Redirect(path=f"/wallet/{program_id}", status_code=303)
    fmt = Formatter(_language(request, member, lang))
    program = await _program(request, program_id)
    fmt = Formatter(fmt.language, program.timezone)
    lines, next_cursor = await views.history_page(
        request.app.state, member.member_id, member.merchant_id, program_id, cursor, fmt
    )
    return _page(
        request,
        "history.html",
        fmt,
        lang,
        program=program,
        member=member,
        lines=lines,
        next_cursor=next_cursor,
    )


@get("/wallet/{program_id:int}/rewards", include_in_schema=False)
async def wallet_rewards(
    request: Request[Any, Any, Any], program_id: ProgramId, lang: LangQuery = None
) -> Template | Response[Any]:
    member = await _member(request, program_id)
    if member is None:
        return Redirect(path=f"/wallet/{program_id}", status_code=303)
    fmt = Formatter(_language(request, member, lang))
    program = await _program(request, program_id)
    fmt = Formatter(fmt.language, program.timezone)
    rewards = await views.rewards_page(
        request.app.state, member.member_id, member.merchant_id, program_id, fmt
    )
    return _page(
        request, "rewards.html", fmt, lang, program=program, member=member, rewards=rewards
    )


def wallet_pages_router() -> Router:
    return Router(
        path="/",
        route_handlers=[
            wallet_home,
            wallet_history,
            wallet_rewards,
            create_static_files_router(
                path=STATIC_PATH, directories=[STATIC_DIR], include_in_schema=False
            ),
        ],
    )
