"""The wallet in German and English: its texts, and numbers, money and dates formatted the way
each language writes them (CLDR data through Babel: 1.250 P / 1,250 pts, 12,50 € / €12.50,
23.11.2026 / Nov 23, 2026)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Final
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime
from babel.numbers import format_currency, format_decimal

from loyalty.app.languages import DEFAULT_LANGUAGE, Language
from loyalty.app.languages import pick_language as best_language

LANGUAGES: Final[tuple[Language, ...]] = ("de", "en")
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
        "terms_link": "Teilnahmebedingungen und Datenschutzhinweise lesen",
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
        "profile_title": "Ihr Profil",
        "card_print": "Karte zum Ausdrucken",
        "terms_missing": "Ihre Karte wurde an der Kasse angelegt. Bitte prüfen Sie Ihre Angaben "
        "und nehmen Sie die Teilnahmebedingungen an.",
        "terms_accept": "Teilnahmebedingungen annehmen",
        "terms_missing_home": "Bitte vervollständigen Sie Ihr Profil.",
        "profile_saved": "Gespeichert.",
        "save": "Speichern",
        "language_choice": "Sprache der Wallet und der E-Mails",
        "consents_title": "Einwilligungen",
        "consent_terms": "Teilnahmebedingungen angenommen am {date} (Fassung {version})",
        "consent_marketing_on": "Angebote per E-Mail: erteilt am {date}",
        "consent_marketing_off": "Angebote per E-Mail: nicht erteilt",
        "consent_give": "Einwilligen",
        "consent_withdraw": "Widerrufen",
        "data_title": "Ihre Daten",
        "data_lead": "Laden Sie alles herunter, was wir über Sie gespeichert haben.",
        "download_json": "Als JSON herunterladen",
        "download_csv": "Als CSV herunterladen (ZIP)",
        "delete_title": "Konto löschen",
        "delete_lead": "Ihr Name, Ihre E-Mail-Adresse, Ihre Telefonnummer und Ihre Karte werden "
        "gelöscht. Ihre {points} verfallen. Die Buchungen bleiben ohne Namen erhalten, wie das "
        "Gesetz es für Belege verlangt.",
        "delete_confirm": "Tippen Sie LÖSCHEN zur Bestätigung",
        "delete_button": "Konto endgültig löschen",
        "feedback_question": "Wie wahrscheinlich ist es, dass Sie uns weiterempfehlen?",
        "feedback_scale": "0 = gar nicht, 10 = sehr wahrscheinlich",
        "feedback_comment": "Möchten Sie uns noch etwas sagen? (freiwillig)",
        "feedback_send": "Absenden",
        "feedback_later": "Nicht jetzt",
        "feedback_thanks": "Danke für Ihre Antwort!",
        "invite_title": "Freunde einladen",
        "invite_lead": "Wer über Ihren Link Mitglied wird und zum ersten Mal einkauft, bringt "
        "Ihnen beiden je {bonus}.",
        "invite_lead_plain": "Teilen Sie Ihren Link mit Freunden.",
        "invite_copy": "Link kopieren",
        "invite_share": "Teilen",
        "invite_copied": "Kopiert!",
        "invite_counts": "{joined} beigetreten · {converted} mit erstem Einkauf",
        "invited_note": "Sie wurden eingeladen: Nach Ihrem ersten Einkauf erhalten Sie und wer Sie "
        "eingeladen hat einen Bonus.",
        "updated": "Aktualisiert",
        "card_title": "Ihre Karte",
        "card_lead": "Zeigen Sie den Code an der Kasse vor.",
        "card_qr": "QR-Code Ihrer Karte",
        "card_countdown": "Neuer Code in {seconds} s",
        "card_number": "Kartennummer",
        "card_barcode": "Strichcode der Kartennummer",
        "card_fullscreen": "Vollbild",
        "card_fullscreen_close": "Schließen",
        "card_brightness": "Tipp: Stellen Sie die Bildschirmhelligkeit ganz hoch, dann liest der "
        "Scanner den Code am schnellsten.",
        "card_sign_in_again": "Der Schlüssel dieser Karte wurde in dieser Anmeldung schon an ein "
        "anderes Gerät gegeben. Melden Sie sich auf diesem Gerät neu an, um die Karte hier zu "
        "zeigen.",
        "card_sign_in_again_button": "Neu anmelden",
        "card_not_on_device": "Die Karte ist auf diesem Gerät noch nicht gespeichert. Öffnen Sie "
        "sie einmal mit Internetverbindung.",
        "card_unsupported": "Dieser Browser kann den wechselnden Code nicht berechnen. Zeigen Sie "
        "den Strichcode oder die Kartennummer vor.",
        "card_wallet_passes": "Karte in einer Wallet-App speichern",
        "card_add_apple_wallet": "Zu Apple Wallet hinzufügen",
        "card_add_google_wallet": "In Google Wallet speichern",
        "card_wallet_pass_failed": "Die Karte konnte gerade nicht für Google Wallet vorbereitet "
        "werden. Bitte versuchen Sie es später noch einmal.",
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
        "terms_link": "Read the programme terms and the privacy notice",
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
        "profile_title": "Your profile",
        "card_print": "Card to print",
        "terms_missing": "Your card was created at the till. Please check your details and "
        "accept the programme terms.",
        "terms_accept": "Accept the programme terms",
        "terms_missing_home": "Please complete your profile.",
        "profile_saved": "Saved.",
        "save": "Save",
        "language_choice": "Language of the wallet and the emails",
        "consents_title": "Consents",
        "consent_terms": "Programme terms accepted on {date} (version {version})",
        "consent_marketing_on": "Offers by email: given on {date}",
        "consent_marketing_off": "Offers by email: not given",
        "consent_give": "Give consent",
        "consent_withdraw": "Withdraw",
        "data_title": "Your data",
        "data_lead": "Download everything we have stored about you.",
        "download_json": "Download as JSON",
        "download_csv": "Download as CSV (ZIP)",
        "delete_title": "Delete account",
        "delete_lead": "Your name, email address, phone number and card are deleted. Your {points} "
        "are forfeited. The bookings stay without your name, as the law requires for records.",
        "delete_confirm": "Type DELETE to confirm",
        "delete_button": "Delete my account for good",
        "feedback_question": "How likely are you to recommend us to a friend?",
        "feedback_scale": "0 = not at all, 10 = extremely likely",
        "feedback_comment": "Anything else you would like to tell us? (optional)",
        "feedback_send": "Send",
        "feedback_later": "Not now",
        "feedback_thanks": "Thank you for your answer!",
        "invite_title": "Invite friends",
        "invite_lead": "When someone joins through your link and makes a first purchase, you "
        "both get {bonus}.",
        "invite_lead_plain": "Share your link with friends.",
        "invite_copy": "Copy link",
        "invite_share": "Share",
        "invite_copied": "Copied!",
        "invite_counts": "{joined} joined · {converted} made a first purchase",
        "invited_note": "You were invited: after your first purchase you and the person who "
        "invited you get a bonus.",
        "updated": "Updated",
        "card_title": "Your card",
        "card_lead": "Show the code at the till.",
        "card_qr": "Your card's QR code",
        "card_countdown": "New code in {seconds} s",
        "card_number": "Card number",
        "card_barcode": "Barcode of the card number",
        "card_fullscreen": "Full screen",
        "card_fullscreen_close": "Close",
        "card_brightness": "Tip: turn the screen brightness all the way up and the scanner reads "
        "the code fastest.",
        "card_sign_in_again": "This card's key was already given to another device in this "
        "session. Sign in again on this device to show the card here.",
        "card_sign_in_again_button": "Sign in again",
        "card_not_on_device": "The card is not stored on this device yet. Open it once with an "
        "internet connection.",
        "card_unsupported": "This browser cannot compute the changing code. Show the barcode or "
        "the card number instead.",
        "card_wallet_passes": "Keep the card in a wallet app",
        "card_add_apple_wallet": "Add to Apple Wallet",
        "card_add_google_wallet": "Save to Google Wallet",
        "card_wallet_pass_failed": "The card could not be prepared for Google Wallet just now. "
        "Please try again later.",
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
    return best_language(chosen, query, accept_language=accept_language)
