"""Accuracy measures for OCR output."""

from __future__ import annotations

from collections.abc import Sequence


def levenshtein(reference: Sequence[str], hypothesis: Sequence[str]) -> int:
    """Edit distance (insertions, deletions, substitutions) between two sequences."""
    if len(reference) < len(hypothesis):
        reference, hypothesis = hypothesis, reference
    previous = list(range(len(hypothesis) + 1))
    for i, ref_item in enumerate(reference, start=1):
        current = [i]
        for j, hyp_item in enumerate(hypothesis, start=1):
            current.append(
                min(
                    previous[j] + 1,
                    current[j - 1] + 1,
                    previous[j - 1] + (ref_item != hyp_item),
                )
            )
        previous = current
    return previous[-1]


def normalise_text(text: str) -> str:
    """Collapse all whitespace runs to single spaces: layout is not what CER measures."""
    return " ".join(text.split())


def character_error_rate(reference: str, hypothesis: str) -> float:
    """Edit distance over reference length, after whitespace normalisation."""
    ref, hyp = normalise_text(reference), normalise_text(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    return levenshtein(ref, hyp) / len(ref)
