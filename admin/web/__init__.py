"""The back-office pages under /admin: server-rendered, German and English, strict CSP.

Staff sign in at ``/admin/login`` (the demo's owner after ``make run``); :mod:`admin.web.shell`
holds what every page shares. Pages read through the services and act through the admin API.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Final

from litestar import MediaType, Request, Router, get
from litestar.datastructures import State
from litestar.di import Provide
from litestar.params import QueryParameter
from litestar.response import Template
from litestar.static_files import create_static_files_router

from loyalty.app.dependencies import (
    provide_programs,
    provide_queries,
    provide_rule_sets,
    provide_staff_directory,
    provide_tiers,
)
from loyalty.app.languages import pick_language
from loyalty.app.settings import Settings

from .sessions import SESSION_HANDLERS
from .shell import (
    CONTENT_SECURITY_POLICY,
    STATIC_PATH,
    NoBackOfficeError,
    SignInRequiredError,
    no_back_office_page,
    provide_page_staff,
    sign_in_redirect,
)

STATIC_DIR: Final = Path(__file__).resolve().parent / "static"
TEMPLATE_DIR: Final = Path(__file__).resolve().parent / "templates"

TEXTS: Final = {
    "de": {
        "title": "Postausgang",
        "lead": "E-Mails an Mitglieder. Ohne SMTP-Server (LOYALTY_SMTP_URL) bleiben sie hier: "
        "So kommen Anmeldecodes auch ohne Mailserver an.",
        "email": "E-Mail",
        "password": "Passwort",
        "sign_in": "Anmelden",
        "sign_out": "Abmelden",
        "to": "An",
        "subject": "Betreff",
        "when": "Zeit",
        "sent": "versendet",
        "queued": "im Postausgang",
        "empty": "Noch keine E-Mails.",
        "refresh": "Aktualisieren",
        "back": "Zurück",
        "denied": "Nur Inhaber sehen den Postausgang (er enthält Anmeldecodes).",
    },
    "en": {
        "title": "Mail outbox",
        "lead": "Mail to members. Without an SMTP server (LOYALTY_SMTP_URL) it stays here, so "
        "sign-in codes arrive without a mail server.",
        "email": "Email",
        "password": "Password",
        "sign_in": "Sign in",
        "sign_out": "Sign out",
        "to": "To",
        "subject": "Subject",
        "when": "Time",
        "sent": "sent",
        "queued": "in the outbox",
        "empty": "No mail yet.",
        "refresh": "Refresh",
        "back": "Back",
        "denied": "Only owners see the outbox (it holds sign-in codes).",
    },
}


@get("/admin/outbox", include_in_schema=False, media_type=MediaType.HTML)
async def outbox_page(
    request: Request[Any, Any, Any],
    lang: Annotated[str | None, QueryParameter(max_length=8, required=False)] = None,
) -> Template:
    language = pick_language(lang, accept_language=request.headers.get("accept-language"))
    return Template(
        template_name="outbox.html",
        context={"t": TEXTS[language], "lang": language, "static": STATIC_PATH},
        headers={
            "Content-Security-Policy": CONTENT_SECURITY_POLICY,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",
            "Cache-Control": "no-store",
        },
    )


def _provide_settings(state: State) -> Settings:
    settings: Settings = state.settings
    return settings


def admin_pages_router() -> Router:
    """Every page of the back office. A page handler gets ``staff`` (the signed-in staff user,
    see :mod:`admin.web.shell`) and the services below by name."""
    return Router(
        path="/",
        route_handlers=[
            *SESSION_HANDLERS,
            outbox_page,
            create_static_files_router(
                path=STATIC_PATH, directories=[STATIC_DIR], include_in_schema=False
            ),
        ],
        dependencies={
            "staff": Provide(provide_page_staff),
            "staff_directory": Provide(provide_staff_directory, sync_to_thread=False),
            "settings": Provide(_provide_settings, sync_to_thread=False),
            "programs": Provide(provide_programs, sync_to_thread=False),
            "queries": Provide(provide_queries, sync_to_thread=False),
            "rule_sets": Provide(provide_rule_sets, sync_to_thread=False),
            "tiers": Provide(provide_tiers, sync_to_thread=False),
        },
        exception_handlers={
            SignInRequiredError: sign_in_redirect,
            NoBackOfficeError: no_back_office_page,
        },
    )
