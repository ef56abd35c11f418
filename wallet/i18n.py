"""The wallet in German and English: its texts, and numbers, money and dates formatted the way
each language writes them (CLDR data through Babel: 1.250 P / 1,250 pts, 12,50 € / €12.50,
23.11.2026 / Nov 23, 2026)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Final, Literal
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime
from babel.numbers import format_currency, format_decimal

Language = Literal["de", "en"]
LANGUAGES: Final[tuple[Language, ...]] = ("de", "en")
DEFAULT_LANGUAGE: Final[Language] = "de"
_LOCALES: Final = {"de": "de_DE", "en": "en_GB"}

TEXTS: Final[dict[Language, dict[str, str]]] = {
    "de": {
        "wallet": "Wallet",
        "nav_home": "Übersicht",
        "nav_card": "Karte",
        "nav_rewards": "Prämien",
        "nav_history": "Verlauf",
        "nav_profile": "Profil",
        "welcome_title": "Willkommen",
        "welcome_lead": "Sammeln Sie Punkte bei jedem Einkauf und lösen Sie sie gegen Prämien ein.",
        "sign_in_title": "Anmelden",
        "sign_in_lead": "Wir schicken Ihnen einen Code per E-Mail. Kein Passwort nötig.",
        "email": "E-Mail-Adresse",
        "send_code": "Code senden",
        "code": "Code aus der E-Mail",
        "code_sent": "Falls die Adresse zu einer Karte gehört, ist ein Code unterwegs. "
        "Sehen Sie in Ihr Postfach.",
        "sign_in": "Anmelden",
        "other_address": "Andere Adresse",
        "join_title": "Mitglied werden",
        "name": "Name",
        "phone": "Telefon (freiwillig)",
        "terms": "Ich akzeptiere die Teilnahmebedingungen und habe die Datenschutzhinweise "
        "gelesen.",
        "marketing": "Ich möchte Angebote und Neuigkeiten per E-Mail erhalten (jederzeit "
        "widerrufbar).",
        "join": "Karte anlegen",
        "joined": "Fast geschafft: Wir haben Ihnen einen Code geschickt. Geben Sie ihn oben ein.",
        "balance": "Ihr Punktestand",
        "points": "Punkte",
        "points_short": "P",
        "held": "reserviert",
        "worth": "Wert",
        "tier": "Status",
        "tier_next": "Noch {missing} bis {tier}",
        "tier_top": "Sie haben den höchsten Status erreicht.",
        "tier_keep": "Noch {missing} bis {date}, um {tier} zu behalten",
        "tier_kept": "{tier} ist Ihnen bis zur nächsten Prüfung am {date} sicher.",
        "expiring": "Bald verfallende Punkte",
        "expiring_none": "Keine Punkte verfallen in den nächsten 90 Tagen.",
        "expires_on": "verfallen am {date}",
        "history": "Letzte Buchungen",
        "history_all": "Alle Buchungen",
        "history_empty": "Noch keine Buchungen.",
        "older": "Ältere Buchungen",
        "rewards": "Prämien",
        "rewards_all": "Alle Prämien",
        "affordable": "einlösbar",
        "not_affordable": "noch {missing}",
        "redeem": "Einlösen",
        "redeem_confirm": "{reward} für {points} einlösen?",
        "voucher": "Ihr Gutscheincode",
        "voucher_hint": "Zeigen Sie den Code an der Kasse vor.",
        "rewards_empty": "Es gibt gerade keine Prämien.",
        "sign_out": "Abmelden",
        "sign_out_everywhere": "Auf allen Geräten abmelden",
        "language": "Sprache",
        "error": "Das hat nicht geklappt. Bitte versuchen Sie es noch einmal.",
        "kind_earn": "Punkte gesammelt",
        "kind_redeem": "Einlösung",
        "kind_hold": "Reservierung",
        "kind_capture": "Einlösung",
        "kind_release": "Reservierung aufgehoben",
        "kind_expire": "Verfallen",
        "kind_adjust": "Korrektur",
        "kind_reversal": "Storno",
        "kind_hold_expiry": "Reservierung abgelaufen",
        "kind_refund": "Rückgabe",
        "kind_transfer": "Übertrag",
        "kind_other": "Buchung",
        "offline": "Offline: zuletzt bekannter Stand",
        "updated": "Aktualisiert",
    },
    "en": {
        "wallet": "Wallet",
        "nav_home": "Home",
        "nav_card": "Card",
        "nav_rewards": "Rewards",
        "nav_history": "History",
        "nav_profile": "Profile",
        "welcome_title": "Welcome",
        "welcome_lead": "Collect points with every purchase and turn them into rewards.",
        "sign_in_title": "Sign in",
        "sign_in_lead": "We email you a code. No password needed.",
        "email": "Email address",
        "send_code": "Send code",
        "code": "Code from the email",
        "code_sent": "If the address belongs to a card, a code is on its way. Check your inbox.",
        "sign_in": "Sign in",
        "other_address": "Another address",
        "join_title": "Join",
        "name": "Name",
        "phone": "Phone (optional)",
        "terms": "I accept the programme terms and have read the privacy notice.",
        "marketing": "Send me offers and news by email (you can withdraw this at any time).",
        "join": "Create my card",
        "joined": "Almost there: we sent you a code. Enter it above.",
        "balance": "Your points",
        "points": "points",
        "points_short": "pts",
        "held": "held",
        "worth": "Worth",
        "tier": "Tier",
        "tier_next": "{missing} more to {tier}",
        "tier_top": "You have reached the top tier.",
        "tier_keep": "{missing} more by {date} to keep {tier}",
        "tier_kept": "{tier} is yours until the next review on {date}.",
        "expiring": "Points expiring soon",
        "expiring_none": "No points expire in the next 90 days.",
        "expires_on": "expire on {date}",
        "history": "Recent activity",
        "history_all": "All activity",
        "history_empty": "No activity yet.",
        "older": "Older activity",
        "rewards": "Rewards",
        "rewards_all": "All rewards",
        "affordable": "available",
        "not_affordable": "{missing} to go",
        "redeem": "Redeem",
        "redeem_confirm": "Redeem {reward} for {points}?",
        "voucher": "Your voucher code",
        "voucher_hint": "Show the code at the till.",
        "rewards_empty": "There are no rewards right now.",
        "sign_out": "Sign out",
        "sign_out_everywhere": "Sign out on all devices",
        "language": "Language",
        "error": "That did not work. Please try again.",
        "kind_earn": "Points earned",
        "kind_redeem": "Redemption",
        "kind_hold": "Held",
        "kind_capture": "Redemption",
        "kind_release": "Hold released",
        "kind_expire": "Expired",
        "kind_adjust": "Adjustment",
        "kind_reversal": "Reversal",
        "kind_hold_expiry": "Hold lapsed",
        "kind_refund": "Return",
        "kind_transfer": "Transfer",
        "kind_other": "Entry",
        "offline": "Offline: last known balance",
        "updated": "Updated",
    },
}


@dataclass(frozen=True, slots=True)
class Formatter:
    """Texts and formats of one language, in the program's time zone."""

    language: Language
    timezone: str = "Europe/Berlin"

    @property
    def locale(self) -> str:
        return _LOCALES[self.language]

    def t(self, key: str, **values: object) -> str:
        text = TEXTS[self.language].get(key) or TEXTS[DEFAULT_LANGUAGE][key]
        return text.format(**values) if values else text

    def number(self, value: int) -> str:
        return format_decimal(value, locale=self.locale)

    def points(self, value: int) -> str:
        return f"{self.number(value)}\u00a0{self.t('points_short')}"

    def money(self, minor: int, currency: str) -> str:
        return format_currency(Decimal(minor).scaleb(-2), currency, locale=self.locale)

    def date(self, value: datetime) -> str:
        return format_date(value.astimezone(ZoneInfo(self.timezone)), "medium", locale=self.locale)

    def datetime(self, value: datetime) -> str:
        local = value.astimezone(ZoneInfo(self.timezone))
        return format_datetime(local, "short", locale=self.locale)

    def texts(self) -> dict[str, str]:
        return {**TEXTS[DEFAULT_LANGUAGE], **TEXTS[self.language]}


def pick_language(chosen: str | None, query: str | None, accept_language: str | None) -> Language:
    """The member's own choice first, then ``?lang=``, then the best of Accept-Language
    (q-values respected), else German."""
    for wanted in (chosen, query):
        if wanted and wanted[:2].lower() in LANGUAGES:
            return "en" if wanted[:2].lower() == "en" else "de"
    best: tuple[float, int, Language] | None = None
    for position, part in enumerate((accept_language or "").split(",")[:32]):
        tag, _, params = part.strip().partition(";")
        primary = tag.strip().lower().split("-")[0]
        if primary not in LANGUAGES:
            continue
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0:
            language: Language = "en" if primary == "en" else "de"
            candidate = (-quality, position, language)
            best = candidate if best is None or candidate < best else best
    return best[2] if best else DEFAULT_LANGUAGE
