"""Admin pages served by the app (server-rendered shells, a small script each, strict CSP).

For now the mail outbox (``/admin/outbox``): in the embedded default, mail to members stays in
the outbox instead of leaving through SMTP, and this is where it is read, so that signing in to
the wallet works end to end on a bare machine. Staff sign in with their admin account (the
demo's owner after ``make run``); the script talks to ``/api/v1/admin``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Final

from litestar import MediaType, Request, Router, get
from litestar.params import QueryParameter
from litestar.response import Template
from litestar.static_files import create_static_files_router

from loyalty.app.languages import pick_language

STATIC_DIR: Final = Path(__file__).resolve().parent / "static"
TEMPLATE_DIR: Final = Path(__file__).resolve().parent / "templates"
STATIC_PATH: Final = "/admin/static"

CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

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


def admin_pages_router() -> Router:
    return Router(
        path="/",
        route_handlers=[
            outbox_page,
            create_static_files_router(
                path=STATIC_PATH, directories=[STATIC_DIR], include_in_schema=False
            ),
        ],
    )
