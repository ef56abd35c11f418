"""The UI languages (German first, English) and which of them a request wants."""

from __future__ import annotations

from typing import Final, Literal

Language = Literal["de", "en"]
DEFAULT_LANGUAGE: Final[Language] = "de"
_BY_TAG: Final[dict[str, Language]] = {"de": "de", "en": "en"}


def language_named(value: str | None) -> Language | None:
    """``de``/``en`` (any case, a region tag allowed: ``en-GB``); None for anything else."""
    if not value:
        return None
    return _BY_TAG.get(value.strip().lower()[:2])


def pick_language(*chosen: str | None, accept_language: str | None = None) -> Language:
    """The first explicit choice that names a language (``?lang=``, a cookie, the member's
    setting), else the best of German and English in Accept-Language (q-values respected, the
    earlier wins a tie), else German."""
    for value in chosen:
        language = language_named(value)
        if language is not None:
            return language
    best: tuple[float, int, Language] | None = None
    for position, part in enumerate((accept_language or "").split(",")[:32]):
        tag, _, params = part.strip().partition(";")
        language = _BY_TAG.get(tag.strip().lower().split("-")[0])
        if language is None:
            continue
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality <= 0:
            continue
        candidate = (-quality, position, language)
        if best is None or candidate < best:
            best = candidate
    return best[2] if best else DEFAULT_LANGUAGE
