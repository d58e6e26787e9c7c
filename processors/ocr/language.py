"""A light language guess for OCR text blocks: German or English by stopwords and umlauts."""

from __future__ import annotations

import re
from collections.abc import Iterable

# Frequent function words that are not words of the other language.
_GERMAN_WORDS = """
der die das und ist nicht ein eine einen einem einer mit für auf den dem des zu von sich im
sie es wir ich auch bei oder wird werden sind nach über aus wie wenn noch nur aber kann hat
haben sein zum zur dass vom durch unter bitte sehr
"""
_ENGLISH_WORDS = """
the and is of to that it for with on as are was be this by at from or have not you your we
they he she which will would can has had been were their there what all if about into than
then these those please our its
"""
_GERMAN = frozenset(_GERMAN_WORDS.split())
_ENGLISH = frozenset(_ENGLISH_WORDS.split())
_GERMAN_LETTERS = re.compile(r"[äöüßÄÖÜ]")
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


def detect_language(text: str, min_evidence: int = 2) -> str | None:
    """Return "de", "en" or None when there is too little evidence or it is balanced."""
    words = [word.lower() for word in _WORD.findall(text)]
    german = sum(word in _GERMAN for word in words)
    english = sum(word in _ENGLISH for word in words)
    german += sum(bool(_GERMAN_LETTERS.search(word)) for word in words)
    if max(german, english) < min_evidence or german == english:
        return None
    return "de" if german > english else "en"


def languages_found(block_languages: Iterable[str | None]) -> tuple[str, ...]:
    """Distinct detected languages in order of first appearance."""
    found: list[str] = []
    for language in block_languages:
        if language is not None and language not in found:
            found.append(language)
    return tuple(found)
