"""The import page (``/admin/imports``): upload a CSV file of members or historical
transactions, read the report with its line numbers, see past imports (docs/IMPORT.md).

The page reads the runs through the service; the upload goes to the admin API with ``fetch``
(``imports.js``), so the API's role guard (owner, program_manager) decides. Other back-office
roles see the runs read-only.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from litestar import Request, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter
from litestar.response import Template

from admin.api.imports import MAX_UPLOAD_BYTES, RunId
from loyalty.app.api.schemas import INT64_MAX
from loyalty.domain.csv_rows import COLUMNS, ImportKind, ProblemCode
from loyalty.domain.errors import DomainError, ErrorCode
from loyalty.services.context import Staff
from loyalty.services.imports import ImportRunView, Imports
from loyalty.services.queries import Queries
from loyalty.services.results import ProgramView

from .shell import page_language, render

ProgramChoice = Annotated[int | None, QueryParameter(gt=0, le=INT64_MAX, required=False)]

TEXTS: Final = {
    "de": {
        "title": "Import",
        "lead": "Mitglieder und frühere Umsätze aus einer CSV-Datei übernehmen. Die ganze Datei "
        "wird zuerst geprüft; eine Datei mit fehlerhaften Zeilen wird gar nicht importiert, "
        "außer Sie wählen „fehlerhafte Zeilen überspringen“. Ein zweiter Import derselben "
        "Datei übernimmt nichts doppelt.",
        "program": "Programm",
        "show": "Anzeigen",
        "no_programs": "Noch kein Programm: Legen Sie zuerst ein Programm an.",
        "read_only": "Sie sehen die Importe nur lesend: Importieren dürfen Inhaber/innen und "
        "das Programm-Management.",
        "upload_title": "Datei importieren",
        "kind": "Inhalt",
        "kind_members": "Mitglieder",
        "kind_transactions": "Umsätze",
        "file": "CSV-Datei",
        "file_hint": "UTF-8, erste Zeile mit den Spaltennamen, Komma oder Semikolon "
        "(wie Excel „CSV UTF-8“ speichert). Höchstens {max} MB; größere Dateien mit "
        "„loyalty import“ auf der Kommandozeile.",
        "skip_bad_lines": "Fehlerhafte Zeilen überspringen und die übrigen importieren",
        "check": "Nur prüfen",
        "import": "Importieren",
        "choose_file": "Bitte wählen Sie eine Datei.",
        "too_large": "Die Datei ist größer als {max} MB.",
        "report_title": "Ergebnis",
        "status_imported": "importiert",
        "status_rejected": "abgelehnt",
        "status_failed": "fehlgeschlagen",
        "status_running": "läuft oder abgebrochen",
        "status_valid": "geprüft: fehlerfrei",
        "rows_total": "Zeilen",
        "rows_imported": "importiert",
        "rows_already_present": "schon vorhanden",
        "rows_invalid": "fehlerhaft",
        "dry_run_note": "Nur geprüft, nichts gespeichert.",
        "rejected_note": "Nichts wurde importiert. Korrigieren Sie die Zeilen oder "
        "importieren Sie mit „fehlerhafte Zeilen überspringen“.",
        "more_problems": "… und weitere: {count} fehlerhafte Zeilen insgesamt.",
        "line": "Zeile",
        "column": "Spalte",
        "problem": "Problem",
        "detail": "Einzelheiten",
        "open_run": "Bericht öffnen",
        "formats_title": "Spalten der Dateien",
        "column_name": "Spalte",
        "required": "Pflicht",
        "optional": "optional",
        "runs_title": "Bisherige Importe",
        "no_runs": "Noch keine Importe in diesem Programm.",
        "when": "Zeit",
        "filename": "Datei",
        "status": "Status",
        "by": "Von",
        "back": "Zurück zu den Importen",
        "run_title": "Import {id}",
        "checksum": "Prüfsumme (SHA-256)",
        "finished": "Beendet",
        "skipping": "Fehlerhafte Zeilen übersprungen",
        "no_problems": "Keine Probleme.",
        "col_external_id": "Ihre Kundennummer (eindeutig; ein zweiter Import erkennt sie wieder)",
        "col_display_name": "Name",
        "col_email": "E-Mail-Adresse",
        "col_phone": "Telefonnummer (ohne Vorwahl: Deutschland)",
        "col_card_number": "Vorhandene Kartennummer dieser Plattform; leer: neue Karte",
        "col_locale": "de oder en",
        "col_joined_at": "Beitritt (z. B. 01.03.2024); leer: jetzt",
        "col_marketing_consent": "Werbeeinwilligung: ja oder nein",
        "col_marketing_consent_at": "Wann sie erteilt wurde; leer: Beitritt",
        "col_opening_points": "Anfangsstand in Punkten",
        "col_reference": "Bonnummer (eindeutig im Programm)",
        "col_occurred_at": "Zeitpunkt des Einkaufs",
        "col_member": "Kundennummer (external_id); leer: Einkauf ohne Mitglied",
        "col_total": "Betrag, z. B. 12,34",
        "col_currency": "Währung des Programms; leer: die des Programms",
        "col_points": "Punkte dieses Einkaufs; leer: 0",
    },
    "en": {
        "title": "Import",
        "lead": "Bring members and past sales in from a CSV file. The whole file is checked "
        "first; a file with bad lines is not imported at all unless you choose to skip bad "
        "lines. Importing the same file again imports nothing twice.",
        "program": "Program",
        "show": "Show",
        "no_programs": "No program yet: create a program first.",
        "read_only": "You see imports read-only: owners and program managers import.",
        "upload_title": "Import a file",
        "kind": "Contents",
        "kind_members": "Members",
        "kind_transactions": "Sales",
        "file": "CSV file",
        "file_hint": "UTF-8, column names in the first line, comma or semicolon (as Excel "
        "saves 'CSV UTF-8'). At most {max} MB; larger files with 'loyalty import' on the "
        "command line.",
        "skip_bad_lines": "Skip bad lines and import the others",
        "check": "Check only",
        "import": "Import",
        "choose_file": "Please choose a file.",
        "too_large": "The file is larger than {max} MB.",
        "report_title": "Result",
        "status_imported": "imported",
        "status_rejected": "rejected",
        "status_failed": "failed",
        "status_running": "running or interrupted",
        "status_valid": "checked: no problems",
        "rows_total": "rows",
        "rows_imported": "imported",
        "rows_already_present": "already present",
        "rows_invalid": "invalid",
        "dry_run_note": "Checked only, nothing stored.",
        "rejected_note": "Nothing was imported. Correct the lines, or import with "
        "'skip bad lines'.",
        "more_problems": "… and more: {count} invalid lines in all.",
        "line": "Line",
        "column": "Column",
        "problem": "Problem",
        "detail": "Details",
        "open_run": "Open the report",
        "formats_title": "Columns of the files",
        "column_name": "Column",
        "required": "required",
        "optional": "optional",
        "runs_title": "Past imports",
        "no_runs": "No imports in this program yet.",
        "when": "Time",
        "filename": "File",
        "status": "Status",
        "by": "By",
        "back": "Back to the imports",
        "run_title": "Import {id}",
        "checksum": "Checksum (SHA-256)",
        "finished": "Finished",
        "skipping": "Bad lines skipped",
        "no_problems": "No problems.",
        "col_external_id": "Your customer number (unique; a re-run recognises it)",
        "col_display_name": "Name",
        "col_email": "Email address",
        "col_phone": "Phone number (national numbers: Germany)",
        "col_card_number": "An existing card number of this platform; empty: a new card",
        "col_locale": "de or en",
        "col_joined_at": "When the member joined (e.g. 2024-03-01); empty: now",
        "col_marketing_consent": "Marketing consent: yes or no",
        "col_marketing_consent_at": "When it was given; empty: joined_at",
        "col_opening_points": "Opening balance in points",
        "col_reference": "Receipt number (unique in the program)",
        "col_occurred_at": "When the sale happened",
        "col_member": "Customer number (external_id); empty: a sale without a member",
        "col_total": "Amount, e.g. 12.34",
        "col_currency": "The program's currency; empty: the program's",
        "col_points": "Points that sale earned; empty: 0",
    },
}

#: The problem codes in people's words; the report's detail (English) says what exactly.
PROBLEM_TEXTS: Final[dict[str, dict[str, str]]] = {
    "de": {
        ProblemCode.EMPTY_FILE: "Die Datei ist leer",
        ProblemCode.UNKNOWN_COLUMN: "Unbekannte Spalte",
        ProblemCode.DUPLICATE_COLUMN: "Spalte doppelt",
        ProblemCode.MISSING_COLUMN: "Pflichtspalte fehlt",
        ProblemCode.NOT_UTF8: "Kein UTF-8 (als „CSV UTF-8“ speichern)",
        ProblemCode.CSV_SYNTAX: "Zeile nicht lesbar",
        ProblemCode.FIELD_COUNT: "Falsche Anzahl Felder",
        ProblemCode.REQUIRED: "Pflichtfeld leer",
        ProblemCode.TOO_LONG: "Zu lang",
        ProblemCode.CONTROL_CHARACTER: "Steuerzeichen im Feld",
        ProblemCode.INVALID_MONEY: "Kein Betrag",
        ProblemCode.INVALID_POINTS: "Keine Punktzahl",
        ProblemCode.INVALID_TIME: "Kein Zeitpunkt",
        ProblemCode.TIME_IN_FUTURE: "Zeitpunkt in der Zukunft",
        ProblemCode.INVALID_CHOICE: "Unzulässiger Wert",
        ProblemCode.INVALID_CARD_NUMBER: "Keine Kartennummer",
        ProblemCode.INVALID_EMAIL: "Keine E-Mail-Adresse",
        ProblemCode.INVALID_PHONE: "Keine Telefonnummer",
        ProblemCode.CURRENCY_MISMATCH: "Falsche Währung",
        ProblemCode.DUPLICATE_IN_FILE: "Doppelt in der Datei",
        ProblemCode.EMAIL_TAKEN: "E-Mail gehört einem anderen Mitglied",
        ProblemCode.PHONE_TAKEN: "Telefonnummer gehört einem anderen Mitglied",
        ProblemCode.CARD_NUMBER_TAKEN: "Kartennummer ist vergeben",
        ProblemCode.EXTERNAL_ID_CONFLICT: "Mitglied hat eine andere Kundennummer",
        ProblemCode.UNKNOWN_MEMBER: "Unbekanntes Mitglied",
        ProblemCode.MEMBER_NOT_ENROLLED: "Mitglied nicht im Programm",
        ProblemCode.MEMBER_ERASED: "Mitglied wurde gelöscht",
    },
    "en": {
        ProblemCode.EMPTY_FILE: "The file is empty",
        ProblemCode.UNKNOWN_COLUMN: "Unknown column",
        ProblemCode.DUPLICATE_COLUMN: "Column twice",
        ProblemCode.MISSING_COLUMN: "Required column missing",
        ProblemCode.NOT_UTF8: "Not UTF-8 (save as 'CSV UTF-8')",
        ProblemCode.CSV_SYNTAX: "Line not readable",
        ProblemCode.FIELD_COUNT: "Wrong number of fields",
        ProblemCode.REQUIRED: "Required field empty",
        ProblemCode.TOO_LONG: "Too long",
        ProblemCode.CONTROL_CHARACTER: "Control character in the field",
        ProblemCode.INVALID_MONEY: "Not an amount",
        ProblemCode.INVALID_POINTS: "Not a number of points",
        ProblemCode.INVALID_TIME: "Not a time",
        ProblemCode.TIME_IN_FUTURE: "Time in the future",
        ProblemCode.INVALID_CHOICE: "Value not allowed",
        ProblemCode.INVALID_CARD_NUMBER: "Not a card number",
        ProblemCode.INVALID_EMAIL: "Not an email address",
        ProblemCode.INVALID_PHONE: "Not a phone number",
        ProblemCode.CURRENCY_MISMATCH: "Wrong currency",
        ProblemCode.DUPLICATE_IN_FILE: "Twice in the file",
        ProblemCode.EMAIL_TAKEN: "Email belongs to another member",
        ProblemCode.PHONE_TAKEN: "Phone number belongs to another member",
        ProblemCode.CARD_NUMBER_TAKEN: "Card number is taken",
        ProblemCode.EXTERNAL_ID_CONFLICT: "Member has another customer number",
        ProblemCode.UNKNOWN_MEMBER: "Unknown member",
        ProblemCode.MEMBER_NOT_ENROLLED: "Member not in the program",
        ProblemCode.MEMBER_ERASED: "Member was erased",
    },
}


def status_key(run: ImportRunView) -> str:
    """The text key of a run's state (a failed run without an end is running or interrupted)."""
    if run.status == "failed" and run.finished_at is None:
        return "status_running"
    return f"status_{run.status}"


def status_badge(run: ImportRunView) -> str:
    return {"imported": "good", "valid": "good", "rejected": "bad", "failed": "warn"}.get(
        run.status, ""
    )


async def _program(
    queries: Queries, staff: Staff, program_id: int | None
) -> tuple[list[ProgramView], ProgramView | None]:
    programs = await queries.programs(staff.caller)
    if program_id is None:
        return programs, programs[0] if programs else None
    chosen = next((p for p in programs if p.program_id == program_id), None)
    if chosen is None:
        raise DomainError(ErrorCode.PROGRAM_NOT_FOUND, "no such program", program_id=program_id)
    return programs, chosen


def _context(language: str) -> dict[str, Any]:
    texts = TEXTS[language]
    return {
        "kinds": [str(kind) for kind in ImportKind],
        "columns": {str(kind): columns for kind, columns in COLUMNS.items()},
        "problem_texts": {str(k): v for k, v in PROBLEM_TEXTS[language].items()},
        "max_mb": MAX_UPLOAD_BYTES // (1024 * 1024),
        "max_bytes": MAX_UPLOAD_BYTES,
        "status_key": status_key,
        "status_badge": status_badge,
        "file_hint": texts["file_hint"].replace("{max}", str(MAX_UPLOAD_BYTES // (1024 * 1024))),
    }


@get("/admin/imports", include_in_schema=False)
async def imports_page(
    request: Request[Any, Any, Any],
    staff: NamedDependency[Staff],
    queries: NamedDependency[Queries],
    program: ProgramChoice = None,
) -> Template:
    language = page_language(request)
    programs, chosen = await _program(queries, staff, program)
    imports: Imports = request.app.state.imports
    runs = [] if chosen is None else await imports.runs(staff, chosen.program_id)
    return render(
        request,
        staff,
        template="admin/imports.html",
        texts=TEXTS,
        active="imports",
        title=TEXTS[language]["title"],
        programs=programs,
        chosen=chosen,
        runs=runs,
        **_context(language),
    )


@get("/admin/imports/{run_id:int}", include_in_schema=False)
async def import_run_page(
    request: Request[Any, Any, Any],
    staff: NamedDependency[Staff],
    queries: NamedDependency[Queries],
    run_id: RunId,
    program: ProgramChoice = None,
) -> Template:
    language = page_language(request)
    _, chosen = await _program(queries, staff, program)
    if chosen is None:
        raise DomainError(ErrorCode.PROGRAM_NOT_FOUND, "no such program")
    imports: Imports = request.app.state.imports
    run = await imports.run(staff, chosen.program_id, run_id)
    return render(
        request,
        staff,
        template="admin/imports_run.html",
        texts=TEXTS,
        active="imports",
        title=TEXTS[language]["run_title"].replace("{id}", str(run_id)),
        chosen=chosen,
        run=run,
        **_context(language),
    )


IMPORT_PAGES: Final = [imports_page, import_run_page]
