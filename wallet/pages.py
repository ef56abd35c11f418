"""The wallet's pages under /wallet/{program_id}: server-rendered (Litestar templates, Jinja),
German or English, a little vanilla JavaScript for the forms, no front-end framework.

Signed out, /wallet/{program_id} is the welcome page (sign in with a mailed code, or join).
Signed in: home (balance, tier, expiring points, recent activity, rewards), all activity, the
rewards catalogue. Every page is sent with a strict Content-Security-Policy: own scripts and
styles only, no inline script.
"""

from __future__ import annotations

import hashlib
import io
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Final

from litestar import MediaType, Request, Response, Router, get
from litestar.datastructures import Cookie
from litestar.params import PathParameter, QueryParameter
from litestar.response import Redirect, Template
from litestar.static_files import create_static_files_router
from PIL import Image, ImageDraw

from loyalty.app.languages import Language
from loyalty.services.member_sign_in import WalletMember
from loyalty.services.queries import Queries
from loyalty.services.results import ProgramView

from . import views
from .api import TERMS_VERSION, session_member
from .card_api import member_card
from .card_images import drawable_text, font
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


async def _visit(
    request: Request[Any, Any, Any], program_id: int, lang: str | None
) -> tuple[WalletMember, ProgramView, Formatter] | None:
    """The signed-in member of a page, its program and their language; None: signed out."""
    member = await session_member(request, program_id)
    if member is None:
        return None
    program = await _program(request, program_id)
    return member, program, Formatter(_language(request, member, lang), program.timezone)


@get("/wallet/{program_id:int}", include_in_schema=False)
async def wallet_home(
    request: Request[Any, Any, Any], program_id: ProgramId, lang: LangQuery = None
) -> Template:
    member = await session_member(request, program_id)
    program = await _program(request, program_id)
    fmt = Formatter(_language(request, member, lang), program.timezone)
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
        program,
        fmt,
        request.app.state.ledger.clock(),
    )
    return _page(request, "home.html", fmt, lang, program=program, member=member, home=home)


@get("/wallet/{program_id:int}/terms", include_in_schema=False)
async def wallet_terms(
    request: Request[Any, Any, Any], program_id: ProgramId, lang: LangQuery = None
) -> Template:
    """The program terms and the privacy notice of the version members accept."""
    member = await session_member(request, program_id)
    program = await _program(request, program_id)
    fmt = Formatter(_language(request, member, lang), program.timezone)
    merchant = await request.app.state.queries.merchant_name(program_id)
    return _page(
        request,
        "terms.html",
        fmt,
        lang,
        program=program,
        member=member,
        merchant=merchant,
        version=TERMS_VERSION,
    )


@get("/wallet/{program_id:int}/history", include_in_schema=False)
async def wallet_history(
    request: Request[Any, Any, Any],
    program_id: ProgramId,
    lang: LangQuery = None,
    cursor: Annotated[str | None, QueryParameter(max_length=64, required=False)] = None,
) -> Template | Response[Any]:
    visit = await _visit(request, program_id, lang)
    if visit is None:
        return Redirect(path=f"/wallet/{program_id}", status_code=303)
    member, program, fmt = visit
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
    visit = await _visit(request, program_id, lang)
    if visit is None:
        return Redirect(path=f"/wallet/{program_id}", status_code=303)
    member, program, fmt = visit
    rewards = await views.rewards_page(
        request.app.state, member.member_id, member.merchant_id, program_id, fmt
    )
    return _page(
        request, "rewards.html", fmt, lang, program=program, member=member, rewards=rewards
    )


# --- The card screen and the installable app (PWA) --------------------------------------------

#: The wallet's colours (wallet.css ``--brand`` and ``--bg``), for the manifest and the icons.
THEME_COLOUR: Final = "#1c4fd6"
BACKGROUND_COLOUR: Final = "#f4f6f9"
ICON_SIZES: Final = (192, 512)
_SHORT_NAME_LENGTH: Final = 12


@get("/wallet/{program_id:int}/profile", include_in_schema=False)
async def wallet_profile(
    request: Request[Any, Any, Any], program_id: ProgramId, lang: LangQuery = None
) -> Template | Response[Any]:
    """Personal data, consents, the download of all data and deleting the account."""
    visit = await _visit(request, program_id, lang)
    if visit is None:
        return Redirect(path=f"/wallet/{program_id}", status_code=303)
    member, program, fmt = visit
    state = request.app.state
    profile = await state.member_privacy.profile(member.member_id, program_id)
    consents = {c.kind: c for c in await state.enrollment.consents(member.member_id, program_id)}
    terms = consents.get("terms")
    marketing = consents.get("marketing")
    granted = marketing is not None and marketing.granted
    balance = await state.queries.balance(
        views.caller_for(member.member_id, member.merchant_id), program_id, member.member_id
    )
    return _page(
        request,
        "profile.html",
        fmt,
        lang,
        program=program,
        member=member,
        profile=profile,
        terms=fmt.t("consent_terms", date=fmt.date(terms.at), version=terms.text_version)
        if terms
        else None,
        marketing=granted,
        marketing_text=fmt.t("consent_marketing_on", date=fmt.date(marketing.at))
        if granted and marketing is not None
        else fmt.t("consent_marketing_off"),
        delete_text=fmt.t("delete_lead", points=fmt.points(balance.posted)),
    )


@get("/wallet/{program_id:int}/card", include_in_schema=False)
async def wallet_card(
    request: Request[Any, Any, Any], program_id: ProgramId, lang: LangQuery = None
) -> Template | Response[Any]:
    """The membership card: the rotating code as a QR code (computed on the device by card.js),
    the static card number as text and as a Code 128 barcode, full-screen mode."""
    visit = await _visit(request, program_id, lang)
    if visit is None:
        return Redirect(path=f"/wallet/{program_id}", status_code=303)
    member, program, fmt = visit
    card = await member_card(request.app.state.engine, member.member_id, member.session_digest)
    from .passes_api import pass_buttons

    passes = pass_buttons(request.app.state.settings)
    return _page(
        request, "card.html", fmt, lang, program=program, member=member, card=card, passes=passes
    )


def _short_name(name: str) -> str:
    """A name for under the home-screen icon: the program's name, or its first word, cut."""
    if len(name) <= _SHORT_NAME_LENGTH:
        return name
    return name.split()[0][:_SHORT_NAME_LENGTH]


@get("/wallet/{program_id:int}/manifest.webmanifest", include_in_schema=False)
async def wallet_manifest(
    request: Request[Any, Any, Any], program_id: ProgramId, lang: LangQuery = None
) -> Response[dict[str, Any]]:
    """The web app manifest: the program's wallet installs as an app of its own (scope
    /wallet/{program_id}, which covers the home page itself), opening on its home page."""
    program = await _program(request, program_id)
    fmt = Formatter(_language(request, None, lang))
    base = f"/wallet/{program_id}"
    icons = [
        {"src": f"{base}/icon-{size}.png", "sizes": f"{size}x{size}", "type": "image/png",
         "purpose": purpose}
        for purpose in ("any", "maskable")
        for size in ICON_SIZES
    ]  # fmt: skip
    manifest = {
        "id": base,
        "name": program.name,
        "short_name": _short_name(program.name),
        "description": fmt.t("welcome_lead"),
        "lang": fmt.language,
        "start_url": base,
        "scope": base,
        "display": "standalone",
        "background_color": BACKGROUND_COLOUR,
        "theme_color": THEME_COLOUR,
        "icons": icons,
        "shortcuts": [{"name": fmt.t("card_title"), "url": f"{base}/card"}],
    }
    return Response(
        content=manifest,
        media_type="application/manifest+json",
        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
    )


@lru_cache(maxsize=64)
def app_icon(initial: str, size: int) -> bytes:
    """The home-screen icon: a white card with the program's initial on the wallet's blue,
    everything inside the middle 60 % (safe for masks that cut it round). Drawn at 4 times the
    size and scaled down, for smooth edges."""
    scale = 4
    side = size * scale
    image = Image.new("RGB", (side, side), THEME_COLOUR)
    draw = ImageDraw.Draw(image)
    width, height = round(side * 0.6), round(side * 0.4)
    left, top = (side - width) // 2, (side - height) // 2
    draw.rounded_rectangle(
        (left, top, left + width, top + height), radius=round(side * 0.05), fill="#ffffff"
    )
    stripe_top = top + round(height * 0.2)
    draw.rectangle(
        (left, stripe_top, left + width, stripe_top + round(height * 0.16)), fill="#d7e0f7"
    )
    if initial:
        letter = font(True, round(height * 0.62))
        draw.text(
            (side // 2, top + height * 0.6), initial, font=letter, fill=THEME_COLOUR, anchor="mm"
        )
    small = image.resize((size, size), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    small.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _initial(name: str) -> str:
    first = drawable_text(name.strip()[:1]) if name.strip() else None
    return first.upper() if first and first.isalnum() else ""


@get(
    ["/wallet/{program_id:int}/icon-192.png", "/wallet/{program_id:int}/icon-512.png"],
    include_in_schema=False,
)
async def wallet_icon(request: Request[Any, Any, Any], program_id: ProgramId) -> Response[bytes]:
    program = await _program(request, program_id)
    size = 512 if request.url.path.endswith("-512.png") else 192
    return Response(
        content=app_icon(_initial(program.name), size),
        media_type="image/png",
        headers={"Cache-Control": "public, max-age=86400"},
    )


@lru_cache(maxsize=1)
def static_version() -> str:
    """A digest of the wallet's static files: a new version of any makes a new service worker
    (the browser compares the worker's bytes), which drops the old cached app shell."""
    digest = hashlib.sha256()
    for file in sorted(STATIC_DIR.rglob("*")):
        if file.is_file():
            digest.update(file.relative_to(STATIC_DIR).as_posix().encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


@get("/wallet/{program_id:int}/sw.js", include_in_schema=False)
async def wallet_service_worker(
    request: Request[Any, Any, Any], program_id: ProgramId
) -> Response[str]:
    """The service worker of the program's wallet (static/sw.js with the static files'
    version), allowed the scope /wallet/{program_id}: above its own folder, so that it also
    controls the home page at /wallet/{program_id}."""
    await _program(request, program_id)
    source = (STATIC_DIR / "sw.js").read_text(encoding="utf-8")
    return Response(
        content=source.replace("__WALLET_VERSION__", static_version()),
        media_type="application/javascript; charset=utf-8",
        headers={
            "Service-Worker-Allowed": f"/wallet/{program_id}",
            "Cache-Control": "no-cache",
            "Content-Security-Policy": "default-src 'none'; connect-src 'self'",
            "X-Content-Type-Options": "nosniff",
        },
    )


def wallet_pages_router() -> Router:
    return Router(
        path="/",
        route_handlers=[
            wallet_home,
            wallet_history,
            wallet_terms,
            wallet_rewards,
            wallet_card,
            wallet_profile,
            wallet_manifest,
            wallet_icon,
            wallet_service_worker,
            create_static_files_router(
                path=STATIC_PATH, directories=[STATIC_DIR], include_in_schema=False
            ),
        ],
    )
