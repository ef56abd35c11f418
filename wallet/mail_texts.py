"""The wallet's mail to members, in German and English.

A sign-in mail carries the 6-digit code (typed on the phone that asked) and a link (tapped on
the phone that reads the mail); both work once and for 15 minutes.
"""

from __future__ import annotations

from loyalty.services.member_sign_in import COMPLETE_PROFILE, MailText

_SUBJECTS = {
    ("de", "sign_in"): "Ihr Anmeldecode für {program}: {code}",
    ("en", "sign_in"): "Your sign-in code for {program}: {code}",
    ("de", COMPLETE_PROFILE): "Willkommen bei {program}: Ihre Karte ist bereit",
    ("en", COMPLETE_PROFILE): "Welcome to {program}: your card is ready",
}

_BODIES = {
    ("de", "sign_in"): (
        "Guten Tag,\n\n"
        "Ihr Anmeldecode für {program} lautet: {code}\n\n"
        "Oder tippen Sie auf diesen Link, um sich anzumelden:\n{link}\n\n"
        "Code und Link gelten 15 Minuten und nur einmal. Wenn Sie sich nicht anmelden "
        "wollten, können Sie diese E-Mail ignorieren.\n"
    ),
    ("en", "sign_in"): (
        "Hello,\n\n"
        "Your sign-in code for {program} is: {code}\n\n"
        "Or tap this link to sign in:\n{link}\n\n"
        "The code and the link work once, for 15 minutes. If you did not ask to sign in, "
        "you can ignore this email.\n"
    ),
    ("de", COMPLETE_PROFILE): (
        "Guten Tag,\n\n"
        "an der Kasse wurde für Sie eine Kundenkarte von {program} angelegt. Tippen Sie auf "
        "diesen Link, um Ihr Profil zu vervollständigen und Ihre Karte aufs Handy zu holen:\n"
        "{link}\n\n"
        "Oder melden Sie sich im Wallet mit diesem Code an: {code}\n\n"
        "Code und Link gelten 15 Minuten; danach fordern Sie im Wallet einfach einen neuen "
        "Code an. Wenn Sie keine Karte wollten, ignorieren Sie diese E-Mail.\n"
    ),
    ("en", COMPLETE_PROFILE): (
        "Hello,\n\n"
        "a {program} membership card was created for you at the till. Tap this link to "
        "complete your profile and put your card on your phone:\n{link}\n\n"
        "Or sign in to the wallet with this code: {code}\n\n"
        "The code and the link work for 15 minutes; after that, ask for a new code in the "
        "wallet. If you did not want a card, ignore this email.\n"
    ),
}


def sign_in_mail(code: str, link: str, program: str, locale: str | None, purpose: str) -> MailText:
    language = "en" if locale == "en" else "de"
    kind = purpose if (language, purpose) in _SUBJECTS else "sign_in"
    values = {"code": code, "link": link, "program": program}
    return MailText(
        subject=_SUBJECTS[(language, kind)].format(**values),
        body=_BODIES[(language, kind)].format(**values),
    )
