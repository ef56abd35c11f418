"""What every admin page shares: who is signed in, the navigation, texts, formats and headers.

A page handler declares ``staff: NamedDependency[Staff]`` (provided by :func:`provide_page_staff`
from the ``loyalty_staff`` session cookie) and answers :func:`render`. Without a session the
visitor is sent to the sign-in page; a signed-in cashier has no back office and gets a 403 page.
Pages only show or hide controls: every change goes through the admin API, whose role guards
decide (a hidden button is a courtesy, never the protection).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Final
from urllib.parse import quote
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime
from babel.numbers import format_currency, format_decimal, format_percent
from litestar import MediaType, Request, Response
from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie
from litestar.response import Redirect, Template

from admin.api.auth import MEMBER_SUPPORTERS, PROGRAM_CONFIGURATORS, READERS, STAFF_COOKIE
from loyalty.app.dependencies import provide_staff_directory
from loyalty.app.languages import pick_language
from loyalty.app.problems import STATUS_BY_CODE
from loyalty.domain.errors import DomainError, ErrorCode
from loyalty.services.context import Staff
from loyalty.services.staff import StaffRole

STATIC_PATH: Final = "/admin/static"
LOGIN_PATH: Final = "/admin/login"
LANGUAGE_COOKIE: Final = "loyalty_admin_lang"
#: Scripts and styles only from files of this app: no inline code, no CDN.
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    # Pages show personal data and one-time secrets: never from a cache.
    "Cache-Control": "no-store",
}
_LOCALES: Final = {"de": "de_DE", "en": "en_GB"}
DISPLAY_TIMEZONE: Final = "Europe/Berlin"

#: The navigation: (key, path, roles that see the entry).
NAVIGATION: Final[tuple[tuple[str, str, tuple[StaffRole, ...]], ...]] = (
    ("analytics", "/admin/analytics", READERS),
    ("programs", "/admin/programs", READERS),
    ("members", "/admin/members", READERS),
    ("approvals", "/admin/approvals", READERS),
    ("imports", "/admin/imports", READERS),
    ("webhooks", "/admin/webhooks", READERS),
    ("terminals", "/admin/terminals", READERS),
    ("staff", "/admin/staff", READERS),
    ("audit", "/admin/audit", READERS),
    ("outbox", "/admin/outbox", (StaffRole.OWNER,)),
)

COMMON_TEXTS: Final[Mapping[str, Mapping[str, str]]] = {
    "de": {
        "product": "loyalty · Verwaltung",
        "nav_analytics": "Kennzahlen",
        "nav_programs": "Programme",
        "nav_members": "Mitglieder",
        "nav_approvals": "Freigaben",
        "nav_imports": "Import",
        "nav_webhooks": "Webhooks",
        "nav_terminals": "Kassen",
        "nav_staff": "Personal",
        "nav_audit": "Protokoll",
        "nav_outbox": "Postausgang",
        "sign_in": "Anmelden",
        "sign_out": "Abmelden",
        "signed_in_as": "Angemeldet als",
        "email": "E-Mail",
        "password": "Passwort",
        "sign_in_title": "Anmeldung für Mitarbeitende",
        "sign_in_lead": "Melden Sie sich mit Ihrem Verwaltungskonto an.",
        "sign_in_failed": "E-Mail oder Passwort stimmen nicht.",
        "forbidden_title": "Kein Zugang",
        "forbidden_lead": "Ihre Rolle hat keinen Zugang zur Verwaltung. Kassenpersonal arbeitet "
        "an der Kasse.",
        "not_allowed": "Ihre Rolle darf das nicht.",
        "role_owner": "Inhaber/in",
        "role_program_manager": "Programm-Management",
        "role_support": "Kundenservice",
        "role_cashier": "Kasse",
        "save": "Speichern",
        "cancel": "Abbrechen",
        "working": "Einen Moment …",
        "error_generic": "Das hat nicht geklappt.",
        "other_language": "English",
        "none": "—",
        "yes": "ja",
        "no": "nein",
    },
    "en": {
        "product": "loyalty · Back office",
        "nav_analytics": "Analytics",
        "nav_programs": "Programs",
        "nav_members": "Members",
        "nav_approvals": "Approvals",
        "nav_imports": "Import",
        "nav_webhooks": "Webhooks",
        "nav_terminals": "Tills",
        "nav_staff": "Staff",
        "nav_audit": "Audit log",
        "nav_outbox": "Outbox",
        "sign_in": "Sign in",
        "sign_out": "Sign out",
        "signed_in_as": "Signed in as",
        "email": "Email",
        "password": "Password",
        "sign_in_title": "Staff sign-in",
        "sign_in_lead": "Sign in with your back-office account.",
        "sign_in_failed": "The email or password is not correct.",
        "forbidden_title": "No access",
        "forbidden_lead": "Your role has no access to the back office. Cashiers work at the till.",
        "not_allowed": "Your role may not do this.",
        "role_owner": "Owner",
        "role_program_manager": "Program manager",
        "role_support": "Support",
        "role_cashier": "Cashier",
        "save": "Save",
        "cancel": "Cancel",
        "working": "One moment …",
        "error_generic": "That did not work.",
        "other_language": "Deutsch",
        "none": "—",
        "yes": "yes",
        "no": "no",
    },
}


ERROR_TEXTS: Final[Mapping[str, Mapping[str, str]]] = {
    "de": {
        "not_found_title": "Nicht gefunden",
        "error_title": "Das geht so nicht",
        "back": "Zur Übersicht",
    },
    "en": {
        "not_found_title": "Not found",
        "error_title": "That cannot be done",
        "back": "To the overview",
    },
}
#: Where provide_page_staff keeps the page's staff user, for error pages rendered later.
PAGE_STAFF_STATE_KEY: Final = "loyalty_page_staff"


class SignInRequiredError(Exception):
    """No staff session came with a page request: the sign-in page, then back."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


class NoBackOfficeError(Exception):
    """A signed-in staff user whose role has no back office (a cashier)."""

    def __init__(self, staff: Staff) -> None:
        super().__init__(staff.role)
        self.staff = staff


class Formats:
    """Numbers, money and dates in the page's language (Babel), for templates and handlers."""

    def __init__(self, language: str, timezone: str = DISPLAY_TIMEZONE) -> None:
        self.language = language
        self.locale = _LOCALES[language]
        self.timezone = ZoneInfo(timezone)

    def number(self, value: int | Decimal) -> str:
        return format_decimal(value, locale=self.locale)

    def money(self, minor: int, currency: str) -> str:
        return format_currency(Decimal(minor).scaleb(-2), currency, locale=self.locale)

    def percent(self, ratio: Decimal | int, digits: int = 1) -> str:
        pattern = "#,##0." + "0" * digits + " %" if digits else "#,##0 %"
        return format_percent(ratio, format=pattern, locale=self.locale)

    def date(self, value: date | datetime) -> str:
        if isinstance(value, datetime):
            value = value.astimezone(self.timezone)
        return format_date(value, "medium", locale=self.locale)

    def datetime(self, value: datetime) -> str:
        return format_datetime(value.astimezone(self.timezone), "short", locale=self.locale)


def permissions(role: str) -> dict[str, bool]:
    """What the page may offer: the same role tuples the admin API's guards use."""
    return {
        "configure": role in PROGRAM_CONFIGURATORS,
        "support": role in MEMBER_SUPPORTERS,
        "manage_staff": role == StaffRole.OWNER,
        "read_mail": role == StaffRole.OWNER,
        "read": role in READERS,
    }


def page_language(request: Request[Any, Any, Any] | ASGIConnection[Any, Any, Any, Any]) -> str:
    """``?lang=`` (remembered in a cookie by :func:`render`), else the cookie, else the browser's
    Accept-Language."""
    chosen = request.query_params.get("lang") or request.cookies.get(LANGUAGE_COOKIE)
    return pick_language(chosen, accept_language=request.headers.get("accept-language"))


def page_texts(texts: Mapping[str, Mapping[str, str]] | None, language: str) -> dict[str, str]:
    merged = dict(COMMON_TEXTS[language])
    if texts:
        merged.update(texts.get(language, {}))
    return merged


async def provide_page_staff(request: Request[Any, Any, Any]) -> Staff:
    """The staff user of the page session cookie (sign-in page without one, 403 for cashiers)."""
    token = request.cookies.get(STAFF_COOKIE)
    if not token:
        raise SignInRequiredError(_here(request))
    directory = provide_staff_directory(request.app.state)
    try:
        staff = await directory.authenticate(token)
    except DomainError as error:
        if error.code is not ErrorCode.UNAUTHORIZED:
            raise
        raise SignInRequiredError(_here(request)) from None
    if staff.role not in READERS:
        raise NoBackOfficeError(staff)
    request.state[PAGE_STAFF_STATE_KEY] = staff
    return staff


def _here(request: Request[Any, Any, Any]) -> str:
    path = request.url.path
    return f"{path}?{request.url.query}" if request.url.query else path


def render(
    request: Request[Any, Any, Any],
    staff: Staff | None,
    *,
    template: str,
    texts: Mapping[str, Mapping[str, str]] | None,
    active: str,
    title: str,
    status_code: int = 200,
    **context: Any,
) -> Template:
    """A page of the back office: ``template`` (extending ``admin/base.html``) with the common
    context and the security headers."""
    language = page_language(request)
    role = staff.role if staff is not None else ""
    navigation = [
        {"key": key, "href": href, "active": key == active}
        for key, href, roles in NAVIGATION
        if role in roles
    ]
    return Template(
        template_name=template,
        context={
            **context,
            "t": page_texts(texts, language),
            "lang": language,
            "other_lang": "en" if language == "de" else "de",
            "staff": staff,
            "can": permissions(role),
            "static": STATIC_PATH,
            "active": active,
            "title": title,
            "navigation": navigation,
            "fmt": Formats(language),
            "path": request.url.path,
        },
        status_code=status_code,
        headers=SECURITY_HEADERS,
        media_type=MediaType.HTML,
        cookies=language_cookie(request, language),
    )


def language_cookie(
    request: Request[Any, Any, Any] | ASGIConnection[Any, Any, Any, Any], language: str
) -> list[Cookie]:
    """Remember a language chosen by ``?lang=`` for the next pages (not personal data)."""
    if request.query_params.get("lang") != language:
        return []
    return [
        Cookie(
            key=LANGUAGE_COOKIE,
            value=language,
            path="/admin",
            samesite="lax",
            max_age=365 * 24 * 3600,
        )
    ]


def sign_in_redirect(request: Request[Any, Any, Any], error: SignInRequiredError) -> Response[Any]:
    return Redirect(f"{LOGIN_PATH}?next={quote(error.path, safe='/')}", status_code=303)


def no_back_office_page(request: Request[Any, Any, Any], error: NoBackOfficeError) -> Response[Any]:
    language = page_language(request)
    texts = page_texts(None, language)
    return render(
        request,
        error.staff,
        template="admin/forbidden.html",
        texts=None,
        active="",
        title=texts["forbidden_title"],
        status_code=403,
    )


def page_error(request: Request[Any, Any, Any], error: DomainError) -> Response[Any]:
    """A refusal while building a page (an unknown or foreign program or member, a bad filter):
    a page of the shell with the problem's detail, not problem+json, since a person reads it."""
    status = STATUS_BY_CODE.get(error.code, 400)
    language = page_language(request)
    texts = page_texts(ERROR_TEXTS, language)
    title = texts["not_found_title"] if status == 404 else texts["error_title"]
    return render(
        request,
        request.scope.get("state", {}).get(PAGE_STAFF_STATE_KEY),
        template="admin/error.html",
        texts=ERROR_TEXTS,
        active="",
        title=title,
        status_code=status,
        detail=error.detail,
        code=str(error.code),
    )


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path of the back office, never another site."""
    if target and target.startswith("/admin") and not target.startswith("//"):
        return target
    return "/admin/analytics"
