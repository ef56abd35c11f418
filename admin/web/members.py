"""Member support pages: search (``/admin/members``), the member 360-degree view
(``/admin/members/{id}``) and the approvals of manual adjustments (``/admin/approvals``).

The pages read through the services (server-side rendering); the adjust, merge, approve, reject
and cancel controls call the admin API with admin.js's declarative forms and buttons, so the
API decides (per-role limits, four eyes, roles). A page only hides what the staff member could
not do: the adjust form where their role has no limit in the program, the merge form for roles
other than owner and support, approve and reject on their own requests.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from litestar import Request, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter
from litestar.response import Template

from admin.api.auth import MEMBER_SUPPORTERS
from loyalty.app.api.params import MemberId
from loyalty.domain.adjustments import limits_in_force, may_adjust
from loyalty.domain.errors import DomainError
from loyalty.services.adjustments import Adjustments, AdjustmentStatus
from loyalty.services.audit import AuditEntry
from loyalty.services.context import Staff
from loyalty.services.ledger import Ledger
from loyalty.services.member_profile import LedgerPage, MemberProfiles
from loyalty.services.member_search import MAX_QUERY_LENGTH, MemberSearch, MemberSearchPage
from loyalty.services.programs import Programs

from .shell import page_language, page_texts, render

TEXTS: Final = {
    "de": {
        "search_title": "Mitglieder",
        "search_lead": "Suchen Sie nach Kartennummer, E-Mail-Adresse, Telefonnummer, Name oder "
        "Mitgliedsnummer.",
        "search_label": "Suche",
        "search_placeholder": "z. B. 07 1234 5678 9012 345, anna@example.de, 0151 …, Anna",
        "search": "Suchen",
        "no_hits": "Kein Mitglied gefunden.",
        "more": "Weitere Treffer",
        "col_member": "Mitglied",
        "col_contact": "Kontakt",
        "col_card": "Karte",
        "col_points": "Punkte",
        "col_status": "Status",
        "col_found_by": "Gefunden über",
        "found_card_number": "Kartennummer",
        "found_email": "E-Mail",
        "found_phone": "Telefon",
        "found_member_id": "Mitgliedsnummer",
        "found_name": "Name",
        "erased": "gelöscht",
        "erased_note": "Dieses Mitglied wurde gelöscht: Persönliche Daten gibt es nicht mehr, "
        "Buchungen bleiben erhalten.",
        "merged": "zusammengeführt",
        "merged_into": "zusammengeführt in",
        "merged_note": "Dieser Datensatz wurde in ein anderes Mitglied übernommen; Punkte und "
        "Karte gelten dort.",
        "active": "aktiv",
        "member_no": "Mitglied Nr.",
        "profile": "Profil",
        "email": "E-Mail",
        "email_verified": "bestätigt",
        "email_unverified": "nicht bestätigt",
        "phone": "Telefon",
        "card_number": "Kartennummer",
        "language": "Sprache",
        "joined": "Mitglied seit",
        "segments": "Segmente",
        "external_ref": "Externe Nummer",
        "consents": "Einwilligungen",
        "no_consents": "Keine Einwilligungen erfasst.",
        "consent_kind": "Art",
        "consent_granted": "erteilt",
        "consent_withdrawn": "widerrufen",
        "consent_version": "Textfassung",
        "consent_source": "Quelle",
        "when": "Zeit",
        "merges": "Zusammenführungen",
        "merge_from": "übernommen von Nr.",
        "merge_to": "übernommen in Nr.",
        "by": "durch",
        "moved_points": "Punkte übertragen",
        "not_enrolled": "In keinem Programm angemeldet.",
        "available": "Verfügbar",
        "posted": "Gebucht",
        "held": "Reserviert",
        "tier": "Stufe",
        "no_tier": "keine Stufen",
        "tier_since": "seit",
        "tier_manual_until": "manuell bis",
        "to_next": "bis zur nächsten Stufe",
        "tier_history": "Stufenverlauf",
        "tier_before": "vorher",
        "tier_after": "nachher",
        "reason": "Grund",
        "lots": "Punkte nach Ablaufdatum",
        "lot_original": "Ursprünglich",
        "lot_remaining": "Übrig",
        "lot_held": "Reserviert",
        "lot_expires": "Verfällt",
        "never": "nie",
        "no_lots": "Keine Punkte.",
        "holds": "Offene Reservierungen",
        "no_holds": "Keine offenen Reservierungen.",
        "reference": "Referenz",
        "expires": "Läuft ab",
        "ledger": "Buchungen",
        "no_ledger": "Noch keine Buchungen.",
        "older": "Ältere Buchungen",
        "newest": "Neueste Buchungen",
        "journal": "Nr.",
        "kind": "Art",
        "change": "Änderung",
        "actor": "Von",
        "kind_earn": "Gutschrift",
        "kind_redeem": "Einlösung",
        "kind_hold": "Reservierung",
        "kind_capture": "Einlösung (reserviert)",
        "kind_release": "Reservierung aufgehoben",
        "kind_hold_expiry": "Reservierung abgelaufen",
        "kind_refund": "Rückbuchung",
        "kind_reversal": "Storno",
        "kind_adjust": "Korrektur",
        "kind_transfer": "Übertragung",
        "kind_expire": "Verfall",
        "orders": "Einkäufe",
        "no_orders": "Keine Einkäufe.",
        "total": "Betrag",
        "points": "Punkte",
        "returns": "Rückgaben",
        "redemptions": "Prämien",
        "no_redemptions": "Keine Prämien eingelöst.",
        "reward": "Prämie",
        "voucher": "Gutschein",
        "status": "Status",
        "adjustments": "Korrekturen",
        "no_adjustments": "Keine Korrekturen.",
        "requested_by": "Beantragt von",
        "decided_by": "Entschieden von",
        "status_pending": "wartet auf Freigabe",
        "status_posted": "gebucht",
        "status_rejected": "abgelehnt",
        "status_cancelled": "zurückgezogen",
        "adjust_title": "Punkte korrigieren",
        "adjust_points": "Punkte (+ gutschreiben, − abziehen)",
        "adjust_reason": "Grund",
        "adjust_submit": "Korrektur buchen",
        "adjust_policy": "Bis {threshold} Punkte wird sofort gebucht; darüber muss eine zweite "
        "Person freigeben.",
        "adjust_limit": "Ihr Höchstbetrag je Korrektur: {limit} Punkte.",
        "adjust_unlimited": "Ihre Rolle hat keinen Höchstbetrag.",
        "withdraw": "Zurückziehen",
        "confirm_withdraw": "Diese Korrektur zurückziehen?",
        "merge_title": "Mit einem anderen Mitglied zusammenführen",
        "merge_lead": "Gehören zwei Datensätze zu einer Person, übernimmt das Zielmitglied alle "
        "Punkte dieses Mitglieds (mit ihren Ablaufdaten). Dieser Datensatz ist danach an der "
        "Kasse und in der Wallet nicht mehr nutzbar. Das lässt sich nicht rückgängig machen.",
        "merge_target": "Zielmitglied (Nr.)",
        "merge_reason": "Grund",
        "merge_submit": "Zusammenführen",
        "merge_confirm": "Wirklich zusammenführen? Das lässt sich nicht rückgängig machen.",
        "audit": "Protokoll",
        "no_audit": "Keine Einträge.",
        "action": "Aktion",
        "approvals_title": "Freigaben",
        "approvals_lead": "Korrekturen über der Freigabegrenze des Programms warten, bis eine "
        "zweite Person sie freigibt (Vier-Augen-Prinzip). Eigene Anträge können Sie nur "
        "zurückziehen.",
        "no_pending": "Keine Korrekturen warten auf Freigabe.",
        "program": "Programm",
        "member": "Mitglied",
        "requested_at": "Beantragt",
        "approve": "Freigeben",
        "confirm_approve": "{points} Punkte für {member} jetzt buchen?",
        "reject": "Ablehnen",
        "reject_note": "Begründung (optional)",
        "own_request": "Ihr Antrag",
        "over_your_limit": "über Ihrem Höchstbetrag",
        "recent": "Zuletzt entschieden",
        "no_recent": "Noch nichts entschieden.",
        "note": "Notiz",
    },
    "en": {
        "search_title": "Members",
        "search_lead": "Search by card number, email address, phone number, name or member number.",
        "search_label": "Search",
        "search_placeholder": "e.g. 07 1234 5678 9012 345, anna@example.com, +49 151 …, Anna",
        "search": "Search",
        "no_hits": "No member found.",
        "more": "More results",
        "col_member": "Member",
        "col_contact": "Contact",
        "col_card": "Card",
        "col_points": "Points",
        "col_status": "Status",
        "col_found_by": "Found by",
        "found_card_number": "card number",
        "found_email": "email",
        "found_phone": "phone",
        "found_member_id": "member number",
        "found_name": "name",
        "erased": "erased",
        "erased_note": "This member was erased: the personal data is gone, the bookings stay.",
        "merged": "merged",
        "merged_into": "merged into",
        "merged_note": "This record was merged into another member; the points and the card "
        "count there.",
        "active": "active",
        "member_no": "Member no.",
        "profile": "Profile",
        "email": "Email",
        "email_verified": "verified",
        "email_unverified": "not verified",
        "phone": "Phone",
        "card_number": "Card number",
        "language": "Language",
        "joined": "Member since",
        "segments": "Segments",
        "external_ref": "External number",
        "consents": "Consents",
        "no_consents": "No consents recorded.",
        "consent_kind": "Kind",
        "consent_granted": "given",
        "consent_withdrawn": "withdrawn",
        "consent_version": "Text version",
        "consent_source": "Source",
        "when": "Time",
        "merges": "Merges",
        "merge_from": "took over no.",
        "merge_to": "merged into no.",
        "by": "by",
        "moved_points": "points moved",
        "not_enrolled": "Not enrolled in any program.",
        "available": "Available",
        "posted": "Posted",
        "held": "Held",
        "tier": "Tier",
        "no_tier": "no tiers",
        "tier_since": "since",
        "tier_manual_until": "manual until",
        "to_next": "to the next tier",
        "tier_history": "Tier history",
        "tier_before": "before",
        "tier_after": "after",
        "reason": "Reason",
        "lots": "Points by expiry date",
        "lot_original": "Original",
        "lot_remaining": "Left",
        "lot_held": "Held",
        "lot_expires": "Expires",
        "never": "never",
        "no_lots": "No points.",
        "holds": "Open holds",
        "no_holds": "No open holds.",
        "reference": "Reference",
        "expires": "Expires",
        "ledger": "Ledger",
        "no_ledger": "No bookings yet.",
        "older": "Older bookings",
        "newest": "Newest bookings",
        "journal": "No.",
        "kind": "Kind",
        "change": "Change",
        "actor": "By",
        "kind_earn": "earned",
        "kind_redeem": "redeemed",
        "kind_hold": "held",
        "kind_capture": "redeemed (held)",
        "kind_release": "hold released",
        "kind_hold_expiry": "hold expired",
        "kind_refund": "refund",
        "kind_reversal": "reversal",
        "kind_adjust": "adjustment",
        "kind_transfer": "transfer",
        "kind_expire": "expired",
        "orders": "Orders",
        "no_orders": "No orders.",
        "total": "Total",
        "points": "Points",
        "returns": "Returns",
        "redemptions": "Rewards",
        "no_redemptions": "No rewards redeemed.",
        "reward": "Reward",
        "voucher": "Voucher",
        "status": "Status",
        "adjustments": "Adjustments",
        "no_adjustments": "No adjustments.",
        "requested_by": "Requested by",
        "decided_by": "Decided by",
        "status_pending": "waiting for approval",
        "status_posted": "posted",
        "status_rejected": "rejected",
        "status_cancelled": "withdrawn",
        "adjust_title": "Adjust points",
        "adjust_points": "Points (+ credit, − debit)",
        "adjust_reason": "Reason",
        "adjust_submit": "Book adjustment",
        "adjust_policy": "Up to {threshold} points post at once; above that a second person "
        "must approve.",
        "adjust_limit": "Your limit per adjustment: {limit} points.",
        "adjust_unlimited": "Your role has no limit.",
        "withdraw": "Withdraw",
        "confirm_withdraw": "Withdraw this adjustment?",
        "merge_title": "Merge into another member",
        "merge_lead": "When two records belong to one person, the target member takes over all "
        "of this member's points (with their expiry dates). This record can then no longer be "
        "used at the till or in the wallet. This cannot be undone.",
        "merge_target": "Target member (no.)",
        "merge_reason": "Reason",
        "merge_submit": "Merge",
        "merge_confirm": "Merge for good? This cannot be undone.",
        "audit": "Audit trail",
        "no_audit": "No entries.",
        "action": "Action",
        "approvals_title": "Approvals",
        "approvals_lead": "Adjustments above a program's approval threshold wait until a second "
        "person approves them (four eyes). Your own requests you can only withdraw.",
        "no_pending": "No adjustments are waiting for approval.",
        "program": "Program",
        "member": "Member",
        "requested_at": "Requested",
        "approve": "Approve",
        "confirm_approve": "Post {points} points for {member} now?",
        "reject": "Reject",
        "reject_note": "Reason (optional)",
        "own_request": "Your request",
        "over_your_limit": "above your limit",
        "recent": "Recently decided",
        "no_recent": "Nothing decided yet.",
        "note": "Note",
    },
}
#: How many decided requests the approvals page lists below the pending ones.
RECENT_DECISIONS = 20


def _ledger(request: Request[Any, Any, Any]) -> Ledger:
    ledger: Ledger = request.app.state.ledger
    return ledger


def _title(request: Request[Any, Any, Any], key: str) -> str:
    return page_texts(TEXTS, page_language(request))[key]


@get("/admin/members", include_in_schema=False)
async def members_page(
    request: Request[Any, Any, Any],
    staff: NamedDependency[Staff],
    q: Annotated[str | None, QueryParameter(max_length=MAX_QUERY_LENGTH, required=False)] = None,
    after_id: Annotated[int, QueryParameter(ge=0, le=2**63 - 1)] = 0,
) -> Template:
    results: MemberSearchPage | None = None
    error = None
    if q is not None and q.strip():
        try:
            results = await MemberSearch(_ledger(request).engine).search(
                staff, q, after_id=after_id
            )
        except DomainError as refused:
            error = refused.detail
    return render(
        request,
        staff,
        template="admin/members.html",
        texts=TEXTS,
        active="members",
        title=_title(request, "search_title"),
        query=q or "",
        results=results,
        error=error,
    )


@get("/admin/members/{member_id:int}", include_in_schema=False)
async def member_page(
    request: Request[Any, Any, Any],
    staff: NamedDependency[Staff],
    member_id: MemberId,
    program: Annotated[int | None, QueryParameter(ge=1, le=2**63 - 1, required=False)] = None,
    cursor: Annotated[str | None, QueryParameter(max_length=64, required=False)] = None,
) -> Template:
    ledger = _ledger(request)
    profiles = MemberProfiles(ledger, clock=ledger.clock)
    profile = await profiles.profile(staff, member_id)
    # A later ledger page of one program (the "older bookings" link).
    ledger_pages: dict[int, LedgerPage] = {}
    if program is not None and cursor:
        ledger_pages[program] = await profiles.ledger(staff, program, member_id, cursor=cursor)
    member = profile.member
    usable = not member.erased and member.merged_into_id is None
    sections = []
    for section in profile.programs:
        limits = section.adjustment_policy.limits
        sections.append(
            {
                "program": section,
                "ledger": ledger_pages.get(section.program_id, section.ledger),
                "later_page": section.program_id in ledger_pages,
                "may_adjust": usable and may_adjust(staff.role, limits),
                "limit": limits.get(staff.role),
            }
        )
    texts = page_texts(TEXTS, page_language(request))
    name = member.display_name or texts["erased"]
    return render(
        request,
        staff,
        template="admin/member.html",
        texts=TEXTS,
        active="members",
        title=f"{name} · {texts['member_no']} {member.member_id}",
        profile=profile,
        member=member,
        sections=sections,
        may_merge=usable and staff.role in MEMBER_SUPPORTERS,
        audit_summary=audit_summary,
    )


@get("/admin/approvals", include_in_schema=False)
async def approvals_page(
    request: Request[Any, Any, Any],
    staff: NamedDependency[Staff],
    programs: NamedDependency[Programs],
) -> Template:
    adjustments = Adjustments(_ledger(request))
    pending = await adjustments.list_requests(staff, status=AdjustmentStatus.PENDING, limit=200)
    latest = await adjustments.list_requests(staff, limit=RECENT_DECISIONS + len(pending.items))
    decided = [item for item in latest.items if item.status != AdjustmentStatus.PENDING]
    known = {p.program_id: p for p in await programs.managed_programs(staff.caller)}
    rows = []
    for item in pending.items:
        program = known.get(item.program_id)
        limits = limits_in_force(None if program is None else program.adjustment_limits)
        limit = limits.get(staff.role, 0)
        rows.append(
            {
                "request": item,
                "program": program,
                "own": item.requested_by == staff.staff_id,
                "covered": staff.role in limits and (limit is None or abs(item.points) <= limit),
                "may_reject": may_adjust(staff.role, limits),
            }
        )
    return render(
        request,
        staff,
        template="admin/approvals.html",
        texts=TEXTS,
        active="approvals",
        title=_title(request, "approvals_title"),
        rows=rows,
        decided=decided[:RECENT_DECISIONS],
        programs=known,
        program_name=program_name,
    )


def audit_summary(entry: AuditEntry) -> str:
    """One line of what an audit entry on a member changed (the API has the whole entry)."""
    after = entry.after if isinstance(entry.after, dict) else {}
    parts: list[str] = []
    if isinstance(after.get("points"), int):
        parts.append(f"{after['points']:+d}")
    for name in ("reason", "status", "decision_note"):
        if after.get(name):
            parts.append(str(after[name]))
    if after.get("source_member_id") and after.get("target_member_id"):
        parts.append(f"#{after['source_member_id']} → #{after['target_member_id']}")
    if "segments" in after:
        parts.append(", ".join(after["segments"]) or "—")
    if after.get("manual"):
        parts.append(str(after["manual"]))
    return " · ".join(parts)


def program_name(program: Any, lang: str) -> str:
    """A program's name in the page's language."""
    if program is None:
        return ""
    localized = program.name_de if lang == "de" else program.name_en
    return str(localized or program.name)


MEMBER_PAGES: Final = [members_page, member_page, approvals_page]
