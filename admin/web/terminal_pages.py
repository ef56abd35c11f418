"""The tills page (``/admin/terminals``): POS terminals with their API keys, and the POS vendor
connections (Toast, Shopify) that act as one of those terminals.

The back office sees every terminal and key with its last use; owners create terminals, rotate
and revoke keys and manage vendor connections (the admin API's guards decide; the page only
hides the controls). A key or vendor secret the platform draws is in the API's answer only
once: ``operations.js`` shows it in a panel with a copy button and never stores it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Final

from litestar import Request, get
from litestar.di import NamedDependency
from litestar.response import Template

from loyalty.app.settings import Settings
from loyalty.services.context import Staff
from loyalty.services.queries import Queries
from loyalty.services.terminals import DEFAULT_ROTATION_GRACE, Terminals, TerminalView
from loyalty.services.vendor_connections import VendorConnections
from pos_adapter.vendors import VENDORS, route_path

from .shell import page_language, render

#: How long the older keys keep working after a rotation: the choices the page offers.
GRACE_CHOICES: Final = (
    timedelta(0),
    timedelta(hours=1),
    DEFAULT_ROTATION_GRACE,
    timedelta(days=7),
)

TEXTS: Final = {
    "de": {
        "title": "Kassen",
        "lead": "Kassen (Terminals) und ihre API-Schlüssel. Ein neuer Schlüssel wird genau "
        "einmal angezeigt; gespeichert wird nur sein Fingerabdruck.",
        "read_only": "Sie sehen Kassen und Schlüssel nur lesend: Anlegen, Rotieren und "
        "Sperren dürfen Inhaber/innen.",
        "no_terminals": "Noch keine Kassen.",
        "code": "Code",
        "location": "Standort",
        "name": "Name",
        "program": "Programm",
        "disabled": "stillgelegt",
        "keys": "Schlüssel",
        "prefix": "Präfix",
        "created": "Erstellt",
        "last_used": "Zuletzt benutzt",
        "expires": "Läuft ab",
        "revoked": "Gesperrt",
        "state": "Zustand",
        "key_active": "gültig",
        "key_expired": "abgelaufen",
        "key_revoked": "gesperrt",
        "never": "nie",
        "no_keys": "Keine Schlüssel.",
        "rotate": "Neuen Schlüssel ausgeben",
        "grace": "Alte Schlüssel gelten noch",
        "grace_0": "nicht mehr (sofort sperren)",
        "grace_3600": "1 Stunde",
        "grace_86400": "24 Stunden",
        "grace_604800": "7 Tage",
        "revoke": "Sperren",
        "confirm_revoke": "Schlüssel {prefix} der Kasse {code} sofort sperren? Die Kasse "
        "kann sich damit nicht mehr anmelden.",
        "create_title": "Kasse anlegen",
        "create": "Anlegen",
        "code_hint": "Kleinbuchstaben, Ziffern und Bindestriche, z. B. filiale-1",
        "location_hint": "Der Standortcode, den Warenkörbe tragen (Regeln können darauf "
        "beschränkt sein).",
        "no_programs": "Legen Sie zuerst ein Programm an.",
        "issued_title": "Neuer Schlüssel",
        "issued_warning": "Kopieren Sie ihn jetzt und tragen Sie ihn an der Kasse ein: Er "
        "wird nie wieder angezeigt.",
        "issued_older": "Die älteren Schlüssel dieser Kasse gelten bis",
        "issued_older_now": "Die älteren Schlüssel dieser Kasse sind gesperrt.",
        "copy_key": "Kopieren",
        "copied": "Kopiert",
        "copy_failed": "Bitte markieren und selbst kopieren.",
        "issued_done": "Gespeichert, weiter",
        "vendors_title": "Kassensysteme anderer Anbieter",
        "vendors_lead": "Ein Toast-Restaurant oder ein Shopify-Shop bucht über eine Ihrer "
        "Kassen: deren Programm und Standort gelten.",
        "no_connections": "Noch keine Verbindungen.",
        "vendor": "Anbieter",
        "account": "Konto",
        "terminal": "Kasse",
        "secret_hint": "Geheimnis",
        "endpoint": "Adresse für den Anbieter",
        "connection_disabled": "getrennt",
        "connection_active": "aktiv",
        "replace_secret": "Geheimnis ersetzen",
        "new_secret": "Neues Geheimnis",
        "new_secret_hint": "Shopify: das neue Client-Secret der App. Toast: leer lassen, "
        "dann wird ein neuer Schlüssel erzeugt.",
        "disable": "Trennen",
        "confirm_disable": "Verbindung {vendor} {account} trennen? Anfragen dieses Kontos "
        "werden abgelehnt.",
        "connect_title": "Anbieter verbinden",
        "connect": "Verbinden",
        "account_hint": "Toast: Restaurant External ID. Shopify: shop.myshopify.com",
        "secret": "Geheimnis",
        "secret_field_hint": "Shopify: Client-Secret der App (Pflicht). Toast: leer lassen, "
        "dann erzeugt die Plattform den Schlüssel.",
        "calling_code": "Ländervorwahl",
        "calling_code_hint": "Für Telefonnummern ohne Vorwahl, z. B. 49",
        "vendor_issued_title": "Neuer Schlüssel für den Anbieter",
    },
    "en": {
        "title": "Tills",
        "lead": "Tills (terminals) and their API keys. A new key is shown exactly once; only "
        "its fingerprint is stored.",
        "read_only": "You see tills and keys read-only: owners create, rotate and revoke.",
        "no_terminals": "No tills yet.",
        "code": "Code",
        "location": "Location",
        "name": "Name",
        "program": "Program",
        "disabled": "disabled",
        "keys": "Keys",
        "prefix": "Prefix",
        "created": "Created",
        "last_used": "Last used",
        "expires": "Expires",
        "revoked": "Revoked",
        "state": "State",
        "key_active": "valid",
        "key_expired": "expired",
        "key_revoked": "revoked",
        "never": "never",
        "no_keys": "No keys.",
        "rotate": "Issue a new key",
        "grace": "Older keys keep working for",
        "grace_0": "no time (revoke now)",
        "grace_3600": "1 hour",
        "grace_86400": "24 hours",
        "grace_604800": "7 days",
        "revoke": "Revoke",
        "confirm_revoke": "Revoke key {prefix} of till {code} now? The till can no longer "
        "sign in with it.",
        "create_title": "Create a till",
        "create": "Create",
        "code_hint": "Lower-case letters, digits and hyphens, e.g. store-1",
        "location_hint": "The location code baskets carry (rules may be limited to it).",
        "no_programs": "Create a program first.",
        "issued_title": "New key",
        "issued_warning": "Copy it now and enter it at the till: it is never shown again.",
        "issued_older": "The till's older keys keep working until",
        "issued_older_now": "The till's older keys are revoked.",
        "copy_key": "Copy",
        "copied": "Copied",
        "copy_failed": "Please select and copy it yourself.",
        "issued_done": "Saved it, continue",
        "vendors_title": "Other vendors' POS systems",
        "vendors_lead": "A Toast restaurant or a Shopify shop books through one of your tills: "
        "its program and location apply.",
        "no_connections": "No connections yet.",
        "vendor": "Vendor",
        "account": "Account",
        "terminal": "Till",
        "secret_hint": "Secret",
        "endpoint": "Address for the vendor",
        "connection_disabled": "disconnected",
        "connection_active": "active",
        "replace_secret": "Replace secret",
        "new_secret": "New secret",
        "new_secret_hint": "Shopify: the app's new client secret. Toast: leave empty to draw a "
        "new key.",
        "disable": "Disconnect",
        "confirm_disable": "Disconnect {vendor} {account}? Requests of this account will be "
        "refused.",
        "connect_title": "Connect a vendor",
        "connect": "Connect",
        "account_hint": "Toast: restaurant external id. Shopify: shop.myshopify.com",
        "secret": "Secret",
        "secret_field_hint": "Shopify: the app's client secret (required). Toast: leave empty "
        "and the platform draws the key.",
        "calling_code": "Country calling code",
        "calling_code_hint": "For phone numbers without one, e.g. 1 or 49",
        "vendor_issued_title": "New key for the vendor",
    },
}


def key_state(key: Any) -> str:
    """How a key stands: revoked (by hand), expired (its rotation grace ran out) or active."""
    if key.revoked_at is not None:
        return "revoked"
    return "active" if key.active else "expired"


@get("/admin/terminals", include_in_schema=False)
async def terminals_page(
    request: Request[Any, Any, Any],
    staff: NamedDependency[Staff],
    queries: NamedDependency[Queries],
    settings: NamedDependency[Settings],
) -> Template:
    state = request.app.state
    terminals: Terminals = state.terminals
    connections: VendorConnections = state.vendor_connections
    tills: list[TerminalView] = await terminals.list_terminals(staff)
    programs = await queries.programs(staff.caller)
    vendors = [
        {
            "name": adapter.name,
            "title": adapter.title,
            "signs": adapter.signs,
            "endpoint": settings.base_url + route_path(adapter),
        }
        for adapter in VENDORS.values()
    ]
    return render(
        request,
        staff,
        template="admin/terminals.html",
        texts=TEXTS,
        active="terminals",
        title=TEXTS[page_language(request)]["title"],
        terminals=tills,
        programs={program.program_id: program for program in programs},
        connections=await connections.list_connections(staff),
        vendors=vendors,
        vendor_endpoints={vendor["name"]: vendor["endpoint"] for vendor in vendors},
        key_state=key_state,
        grace_choices=[int(choice.total_seconds()) for choice in GRACE_CHOICES],
        default_grace=int(DEFAULT_ROTATION_GRACE.total_seconds()),
    )


TERMINAL_PAGES: Final = [terminals_page]
