"""The staff page (``/admin/staff``): who works in the back office, with which role.

The whole back office reads the list (the admin API lets it); only owners see the controls to
create users, change roles and deactivate or reactivate them, and the API's guards refuse
everyone else anyway. Every signed-in user may change their own password here.
"""

from __future__ import annotations

from typing import Any, Final

from litestar import Request, get
from litestar.di import NamedDependency
from litestar.response import Template

from loyalty.services.context import Staff
from loyalty.services.staff import MIN_PASSWORD_LENGTH, StaffDirectory, StaffRole

from .shell import page_language, render

#: Roles in the order the page offers them (the most powerful first).
ROLES: Final = (StaffRole.OWNER, StaffRole.PROGRAM_MANAGER, StaffRole.SUPPORT, StaffRole.CASHIER)

TEXTS: Final = {
    "de": {
        "title": "Personal",
        "lead": "Wer in der Verwaltung und an der Kasse arbeitet, mit welcher Rolle. Nur "
        "Inhaber/innen legen Konten an und ändern Rollen.",
        "read_only": "Sie sehen die Liste nur lesend: Konten und Rollen ändern Inhaber/innen.",
        "name": "Name",
        "email_column": "E-Mail",
        "role": "Rolle",
        "status": "Status",
        "last_login": "Letzte Anmeldung",
        "created": "Angelegt",
        "actions": "Aktionen",
        "active": "aktiv",
        "inactive": "deaktiviert",
        "never": "noch nie",
        "you": "Sie",
        "change_role": "Rolle ändern",
        "deactivate": "Deaktivieren",
        "reactivate": "Reaktivieren",
        "confirm_deactivate": "{name} deaktivieren? Alle Sitzungen enden sofort.",
        "confirm_reactivate": "{name} wieder anmelden lassen?",
        "create_title": "Konto anlegen",
        "display_name": "Name",
        "initial_password": "Erstes Passwort",
        "password_hint": "Mindestens {n} Zeichen, nicht der Namensteil der E-Mail. Geben Sie "
        "es der Person auf sicherem Weg; sie ändert es nach der ersten Anmeldung hier.",
        "create": "Anlegen",
        "roles_title": "Was die Rollen dürfen",
        "role_help_owner": "alles, auch Personal, Kassenschlüssel und Postausgang",
        "role_help_program_manager": "Programme, Regeln, Stufen und Prämien konfigurieren; "
        "alles lesen",
        "role_help_support": "Mitgliedern helfen: Stufen zuweisen, Punkte korrigieren; alles lesen",
        "role_help_cashier": "nur die Kasse (/pos), keine Verwaltung",
        "password_title": "Eigenes Passwort ändern",
        "current_password": "Aktuelles Passwort",
        "new_password": "Neues Passwort",
        "change_password": "Passwort ändern",
        "password_changed": "Ihr Passwort ist geändert. Ihre anderen Sitzungen sind beendet.",
    },
    "en": {
        "title": "Staff",
        "lead": "Who works in the back office and at the till, with which role. Only owners "
        "create accounts and change roles.",
        "read_only": "You see this list read-only: owners manage accounts and roles.",
        "name": "Name",
        "email_column": "Email",
        "role": "Role",
        "status": "Status",
        "last_login": "Last sign-in",
        "created": "Created",
        "actions": "Actions",
        "active": "active",
        "inactive": "deactivated",
        "never": "never",
        "you": "you",
        "change_role": "Change role",
        "deactivate": "Deactivate",
        "reactivate": "Reactivate",
        "confirm_deactivate": "Deactivate {name}? All their sessions end at once.",
        "confirm_reactivate": "Let {name} sign in again?",
        "create_title": "Create an account",
        "display_name": "Name",
        "initial_password": "Initial password",
        "password_hint": "At least {n} characters, not the email's name part. Hand it over "
        "safely; the person changes it here after signing in.",
        "create": "Create",
        "roles_title": "What the roles may do",
        "role_help_owner": "everything, including staff, till keys and the mail outbox",
        "role_help_program_manager": "configure programs, rules, tiers and rewards; read "
        "everything",
        "role_help_support": "help members: assign tiers, adjust points; read everything",
        "role_help_cashier": "the till only (/pos), no back office",
        "password_title": "Change your password",
        "current_password": "Current password",
        "new_password": "New password",
        "change_password": "Change password",
        "password_changed": "Your password is changed. Your other sessions have ended.",
    },
}


@get("/admin/staff", include_in_schema=False)
async def staff_page(
    request: Request[Any, Any, Any],
    staff: NamedDependency[Staff],
    staff_directory: NamedDependency[StaffDirectory],
) -> Template:
    users = await staff_directory.list_staff(staff.merchant_id)
    return render(
        request,
        staff,
        template="admin/staff.html",
        texts=TEXTS,
        active="staff",
        title=TEXTS[page_language(request)]["title"],
        users=users,
        roles=[str(role) for role in ROLES],
        min_password_length=MIN_PASSWORD_LENGTH,
        password_changed=request.query_params.get("password") == "changed",
    )


STAFF_PAGES: Final = [staff_page]
