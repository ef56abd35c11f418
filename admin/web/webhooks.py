"""The webhooks pages: ``/admin/webhooks`` lists the merchant's endpoints (and adds one),
``/admin/webhooks/{id}`` shows one with its delivery log, every attempt and the message sent.

The whole back office reads; owners and program managers add, change, test, disable and enable
endpoints, rotate their secrets and replay deliveries (the admin API's guards decide, the page
only hides the controls). A signing secret is in the API's answer once: ``webhooks.js`` shows it
in a panel with a copy button and never stores it.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Final

from litestar import Request, get
from litestar.di import NamedDependency
from litestar.params import PathParameter, QueryParameter
from litestar.response import Template

from loyalty.app.api.schemas import INT64_MAX
from loyalty.domain.webhooks import SUBSCRIBABLE, DeliveryStatus
from loyalty.services.context import Staff
from loyalty.services.queries import Queries
from loyalty.services.webhooks import Webhooks

from .shell import page_language, render

PAGE_SIZE: Final = 25

TEXTS: Final = {
    "de": {
        "title": "Webhooks",
        "lead": "Ihre Systeme (CRM, Newsletter, Auswertung) erfahren, was im Programm geschieht: "
        "Die Plattform sendet jedem Empfänger die abonnierten Ereignisse, signiert nach "
        "Standard Webhooks, und versucht es bei Fehlern erneut (30 s, 2 min, 10 min, 1 h, 6 h, "
        "12 h, 24 h). Nachrichten enthalten keine Namen, E-Mail-Adressen oder Kartennummern.",
        "read_only": "Sie sehen Empfänger und Zustellungen nur lesend: Ändern dürfen "
        "Inhaber/innen und das Programm-Management.",
        "no_endpoints": "Noch keine Empfänger.",
        "url": "Adresse (URL)",
        "url_hint": "https://…; in der Entwicklung auch http:// an 127.0.0.1 oder localhost.",
        "description": "Beschreibung",
        "program": "Programm",
        "all_programs": "alle Programme",
        "events": "Ereignisse",
        "active": "aktiv",
        "disabled": "abgeschaltet",
        "pending": "wartend",
        "failed": "gescheitert",
        "delivered": "zugestellt",
        "created": "Angelegt",
        "log": "Zustellprotokoll",
        "send_test": "Testnachricht senden",
        "disable": "Abschalten",
        "enable": "Einschalten",
        "confirm_disable": "Empfänger {url} abschalten? Solange er abgeschaltet ist, wird "
        "ihm nichts gesendet und nichts für ihn vorgemerkt.",
        "rotate": "Neues Geheimnis",
        "confirm_rotate": "Jetzt ein neues Signatur-Geheimnis für {url} erzeugen? Ab sofort "
        "wird nur noch damit signiert: Tragen Sie es gleich beim Empfänger ein.",
        "create_title": "Empfänger hinzufügen",
        "create": "Hinzufügen",
        "choose_events": "Wählen Sie mindestens ein Ereignis.",
        "issued_title": "Signatur-Geheimnis",
        "issued_warning": "Kopieren Sie es jetzt und tragen Sie es beim Empfänger ein: Es wird "
        "nie wieder angezeigt. Damit prüft er die Kopfzeile webhook-signature.",
        "copy_secret": "Kopieren",
        "copied": "Kopiert",
        "copy_failed": "Bitte markieren und selbst kopieren.",
        "issued_done": "Gespeichert, weiter",
        "back": "Alle Empfänger",
        "edit_title": "Ändern",
        "save": "Speichern",
        "deliveries": "Zustellungen",
        "no_deliveries": "Noch keine Zustellungen.",
        "filter_all": "alle",
        "when": "Vorgemerkt",
        "event": "Ereignis",
        "status": "Zustand",
        "attempts": "Versuche",
        "next_attempt": "Nächster Versuch",
        "last_answer": "Letzte Antwort",
        "no_answer": "keine Antwort",
        "replay": "Erneut senden",
        "confirm_replay": "Zustellung {event} erneut senden? Der Empfänger bekommt sie mit "
        "derselben Ereignis-ID noch einmal.",
        "attempt_log": "Versuche",
        "duration": "Dauer",
        "message": "Nachricht",
        "older": "Ältere",
        "newest": "Neueste",
        "ms": "ms",
        "event_points.earned": "Punkte gutgeschrieben",
        "event_points.redeemed": "Punkte eingelöst",
        "event_points.expired": "Punkte verfallen",
        "event_points.reversed": "Erstattung oder Storno",
        "event_points.deducted": "Punkte abgezogen (Korrektur)",
        "event_points.transferred": "Punkte übertragen",
        "event_points.expiring_soon": "Punkte verfallen bald (14 Tage vorher)",
        "event_tier.changed": "Stufe geändert",
        "event_webhook.test": "Testnachricht",
    },
    "en": {
        "title": "Webhooks",
        "lead": "Your systems (CRM, newsletter, reporting) hear what happens in the program: "
        "the platform sends each receiver the events it subscribed to, signed as Standard "
        "Webhooks sign them, and retries on failure (30 s, 2 min, 10 min, 1 h, 6 h, 12 h, "
        "24 h). Messages carry no names, email addresses or card numbers.",
        "read_only": "You see receivers and deliveries read-only: owners and program managers "
        "make changes.",
        "no_endpoints": "No receivers yet.",
        "url": "Address (URL)",
        "url_hint": "https://…; in development also http:// to 127.0.0.1 or localhost.",
        "description": "Description",
        "program": "Program",
        "all_programs": "all programs",
        "events": "Events",
        "active": "active",
        "disabled": "disabled",
        "pending": "waiting",
        "failed": "failed",
        "delivered": "delivered",
        "created": "Added",
        "log": "Delivery log",
        "send_test": "Send a test message",
        "disable": "Disable",
        "enable": "Enable",
        "confirm_disable": "Disable receiver {url}? While it is disabled nothing is sent to it "
        "and nothing is queued for it.",
        "rotate": "New secret",
        "confirm_rotate": "Draw a new signing secret for {url} now? From now on only it signs: "
        "enter it at the receiver right away.",
        "create_title": "Add a receiver",
        "create": "Add",
        "choose_events": "Choose at least one event.",
        "issued_title": "Signing secret",
        "issued_warning": "Copy it now and enter it at the receiver: it is never shown again. "
        "The receiver checks the webhook-signature header with it.",
        "copy_secret": "Copy",
        "copied": "Copied",
        "copy_failed": "Please select and copy it yourself.",
        "issued_done": "Saved it, continue",
        "back": "All receivers",
        "edit_title": "Change",
        "save": "Save",
        "deliveries": "Deliveries",
        "no_deliveries": "No deliveries yet.",
        "filter_all": "all",
        "when": "Queued",
        "event": "Event",
        "status": "State",
        "attempts": "Attempts",
        "next_attempt": "Next attempt",
        "last_answer": "Last answer",
        "no_answer": "no answer",
        "replay": "Send again",
        "confirm_replay": "Send delivery {event} again? The receiver gets it once more under "
        "the same event id.",
        "attempt_log": "Attempts",
        "duration": "Duration",
        "message": "Message",
        "older": "Older",
        "newest": "Newest",
        "ms": "ms",
        "event_points.earned": "Points earned",
        "event_points.redeemed": "Points redeemed",
        "event_points.expired": "Points expired",
        "event_points.reversed": "Refund or reversal",
        "event_points.deducted": "Points deducted (correction)",
        "event_points.transferred": "Points transferred",
        "event_points.expiring_soon": "Points expiring soon (14 days ahead)",
        "event_tier.changed": "Tier changed",
        "event_webhook.test": "Test message",
    },
}

_EVENT_TYPES: Final = [str(event_type) for event_type in SUBSCRIBABLE]
_STATUS_BADGE: Final = {"delivered": "good", "pending": "warn", "failed": "bad"}


def _webhooks(request: Request[Any, Any, Any]) -> Webhooks:
    webhooks: Webhooks = request.app.state.webhooks
    return webhooks


@get("/admin/webhooks", include_in_schema=False)
async def webhooks_page(
    request: Request[Any, Any, Any],
    staff: NamedDependency[Staff],
    queries: NamedDependency[Queries],
) -> Template:
    endpoints = await _webhooks(request).list_endpoints(staff)
    programs = await queries.programs(staff.caller)
    return render(
        request,
        staff,
        template="admin/webhooks.html",
        texts=TEXTS,
        active="webhooks",
        title=TEXTS[page_language(request)]["title"],
        endpoints=endpoints,
        programs={program.program_id: program for program in programs},
        event_types=_EVENT_TYPES,
    )


@get("/admin/webhooks/{endpoint_id:int}", include_in_schema=False)
async def webhook_page(
    request: Request[Any, Any, Any],
    staff: NamedDependency[Staff],
    queries: NamedDependency[Queries],
    endpoint_id: Annotated[int, PathParameter(gt=0, le=INT64_MAX)],
    status: Annotated[DeliveryStatus | None, QueryParameter()] = None,
    before_id: Annotated[int | None, QueryParameter(gt=0, le=INT64_MAX)] = None,
) -> Template:
    webhooks = _webhooks(request)
    detail = await webhooks.get(staff, endpoint_id)
    page = await webhooks.deliveries(
        staff, endpoint_id, status=status, before_id=before_id, limit=PAGE_SIZE
    )
    programs = await queries.programs(staff.caller)
    return render(
        request,
        staff,
        template="admin/webhooks_endpoint.html",
        texts=TEXTS,
        active="webhooks",
        title=detail.endpoint.description or detail.endpoint.url,
        endpoint=detail.endpoint,
        deliveries=page.deliveries,
        next_before_id=page.next_before_id,
        status=None if status is None else str(status),
        statuses=[str(s) for s in DeliveryStatus],
        programs={program.program_id: program for program in programs},
        event_types=_EVENT_TYPES,
        status_badge=_STATUS_BADGE,
        pretty=_pretty,
    )


def _pretty(payload: Any) -> str:
    return json.dumps(payload, indent=2, ensure_ascii=False)


WEBHOOK_PAGES: Final = [webhooks_page, webhook_page]
