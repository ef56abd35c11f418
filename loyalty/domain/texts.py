"""Texts a member, cashier or manager reads, in every language the UI speaks (German, English)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Texts:
    de: str
    en: str


#: For optional texts (descriptions, perks) nobody has written yet.
NO_TEXT = Texts("", "")
