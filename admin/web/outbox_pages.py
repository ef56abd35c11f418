"""The mail outbox pages (``/admin/outbox``, ``/admin/outbox/<id>``): what the platform mailed,
or (without SMTP, the embedded default) would have mailed, to members.

Mail holds sign-in codes and links, so only owners read it (as the admin API's outbox routes);
everyone else gets a clear refusal. A mail's body is plain text and shown as text: nothing in it
becomes markup except web addresses, which become links (http and https only). Links to this
platform (its public address, the address the page was opened at, or a loopback host in
development) open here as a relative link, so that a sign-in link works on whatever address
the back office was reached at.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Final
from urllib.parse import urlsplit

from litestar import Request, get
from litestar.di import NamedDependency
from litestar.params import PathParameter
from litestar.response import Template

from loyalty.app.settings import Settings
from loyalty.domain.errors import DomainError, ErrorCode
from loyalty.services.context import Staff
from loyalty.services.outbox import Outbox
from loyalty.services.staff import StaffRole

from .shell import page_language, render

PAGE_SIZE: Final = 50
#: Hosts that are this machine: a link to them is a link to this platform in development.
LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "localhost", "::1"})
_URL: Final = re.compile(r"https?://[^\s<>\"']+", re.IGNORECASE)
#: Punctuation that ends a sentence rather than the address it follows.
_TRAILING: Final = ".,;:!?)]}'\""

TEXTS: Final = {
    "de": {
        "title": "Postausgang",
        "lead": "E-Mails an Mitglieder. Ohne SMTP-Server (LOYALTY_SMTP_URL) bleiben sie hier: "
        "So kommen Anmeldecodes auch ohne Mailserver an.",
        "to": "An",
        "subject": "Betreff",
        "when": "Zeit",
        "kind": "Art",
        "state": "Zustand",
        "sent": "versendet",
        "queued": "im Postausgang",
        "failed": "Zustellung fehlgeschlagen ({n} Versuche)",
        "empty": "Noch keine E-Mails.",
        "older": "Ältere E-Mails",
        "newest": "Neueste E-Mails",
        "back": "Zurück zum Postausgang",
        "denied": "Nur Inhaber/innen sehen den Postausgang (er enthält Anmeldecodes).",
        "not_found": "Diese E-Mail gibt es nicht.",
        "last_error": "Letzter Fehler",
        "delivers": "Ein SMTP-Server ist eingerichtet: E-Mails werden versendet.",
        "keeps": "Kein SMTP-Server eingerichtet: E-Mails bleiben hier.",
    },
    "en": {
        "title": "Mail outbox",
        "lead": "Mail to members. Without an SMTP server (LOYALTY_SMTP_URL) it stays here, so "
        "sign-in codes arrive without a mail server.",
        "to": "To",
        "subject": "Subject",
        "when": "Time",
        "kind": "Kind",
        "state": "State",
        "sent": "sent",
        "queued": "in the outbox",
        "failed": "delivery failed ({n} attempts)",
        "empty": "No mail yet.",
        "older": "Older mail",
        "newest": "Newest mail",
        "back": "Back to the outbox",
        "denied": "Only owners see the outbox (it holds sign-in codes).",
        "not_found": "There is no such mail.",
        "last_error": "Last error",
        "delivers": "An SMTP server is configured: mail is sent.",
        "keeps": "No SMTP server configured: mail stays here.",
    },
}


@dataclass(frozen=True, slots=True)
class Segment:
    """A piece of a mail body: text, and where it links to if it is a web address."""

    text: str
    href: str | None = None
    #: True: a link to another site (opened without handing it this page's address).
    external: bool = False


def linkify(body: str, own_hosts: frozenset[str]) -> list[Segment]:
    """``body`` as text segments with its http(s) addresses as links. Addresses on
    ``own_hosts`` (host[:port]) or a loopback host become relative links to this site."""
    segments: list[Segment] = []
    last = 0
    for match in _URL.finditer(body):
        url = match.group(0).rstrip(_TRAILING)
        start, end = match.start(), match.start() + len(url)
        parts = urlsplit(url)
        if not parts.hostname:
            continue
        if start > last:
            segments.append(Segment(body[last:start]))
        if parts.netloc.lower() in own_hosts or parts.hostname.lower() in LOOPBACK_HOSTS:
            local = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            local += f"#{parts.fragment}" if parts.fragment else ""
            segments.append(Segment(url, href=local))
        else:
            segments.append(Segment(url, href=url, external=True))
        last = end
    if last < len(body):
        segments.append(Segment(body[last:]))
    return segments


def _own_hosts(request: Request[Any, Any, Any], settings: Settings) -> frozenset[str]:
    hosts = {urlsplit(settings.base_url).netloc.lower()}
    host = request.headers.get("host")
    if host:
        hosts.add(host.lower())
    return frozenset(hosts)


def _outbox(request: Request[Any, Any, Any]) -> Outbox:
    outbox: Outbox = request.app.state.outbox
    return outbox


def _denied(request: Request[Any, Any, Any], staff: Staff) -> Template | None:
    """The refusal page for anyone but an owner (None for an owner)."""
    if staff.role == StaffRole.OWNER:
        return None
    return render(
        request,
        staff,
        template="admin/outbox.html",
        texts=TEXTS,
        active="outbox",
        title=TEXTS[page_language(request)]["title"],
        status_code=403,
        denied=True,
        mails=[],
        older_link=None,
        newest_link=None,
        delivers=False,
    )


@get("/admin/outbox", include_in_schema=False)
async def outbox_page(request: Request[Any, Any, Any], staff: NamedDependency[Staff]) -> Template:
    refused = _denied(request, staff)
    if refused is not None:
        return refused
    before = request.query_params.get("before", "")
    before_id = int(before) if before.isascii() and before.isdigit() and before != "0" else None
    outbox = _outbox(request)
    mails = await outbox.list_mail(staff.merchant_id, limit=PAGE_SIZE + 1, before_id=before_id)
    more = len(mails) > PAGE_SIZE
    mails = mails[:PAGE_SIZE]
    return render(
        request,
        staff,
        template="admin/outbox.html",
        texts=TEXTS,
        active="outbox",
        title=TEXTS[page_language(request)]["title"],
        denied=False,
        mails=mails,
        older_link=f"/admin/outbox?before={mails[-1].mail_id}" if more else None,
        newest_link="/admin/outbox" if before_id else None,
        delivers=outbox.delivers,
    )


@get("/admin/outbox/{mail_id:int}", include_in_schema=False)
async def outbox_mail_page(
    request: Request[Any, Any, Any],
    staff: NamedDependency[Staff],
    settings: NamedDependency[Settings],
    mail_id: Annotated[int, PathParameter(gt=0, le=2**63 - 1)],
) -> Template:
    refused = _denied(request, staff)
    if refused is not None:
        return refused
    texts = TEXTS[page_language(request)]
    try:
        mail = await _outbox(request).get_mail(staff.merchant_id, mail_id)
    except DomainError as error:
        if error.code is not ErrorCode.NOT_FOUND:
            raise
        return render(
            request,
            staff,
            template="admin/outbox_mail.html",
            texts=TEXTS,
            active="outbox",
            title=texts["title"],
            status_code=404,
            mail=None,
            segments=[],
        )
    return render(
        request,
        staff,
        template="admin/outbox_mail.html",
        texts=TEXTS,
        active="outbox",
        title=mail.subject,
        mail=mail,
        segments=linkify(mail.body_text, _own_hosts(request, settings)),
    )


OUTBOX_PAGES: Final = [outbox_page, outbox_mail_page]
