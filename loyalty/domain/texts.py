"""Texts a member, cashier or manager reads, in every language the UI speaks (German, English)."""

from __future__ import annotations

from dataclasses import dataclass

LANGUAGES = ("de", "en")


@dataclass(frozen=True, slots=True)
class Texts:
    de: str
    en: str

    def in_language(self, language: str) -> str:
        return self.de if language == "de" else self.en


#: For optional texts (descriptions, perks) nobody has written yet.
NO_TEXT = Texts("", "")
