"""Generation ids of the MongoDB and Qdrant read models: "g1", "g2", …

A rebuild writes the next generation beside the live one, then a single pointer or alias
update switches readers over (see projections/README.md)."""

from __future__ import annotations

import re

FIRST_GENERATION = "g1"

_GENERATION = re.compile(r"g([1-9][0-9]*)")


class InvalidGenerationError(ValueError):
    """A generation id that is not of the form g<positive integer>."""


def generation_number(generation: str) -> int:
    """The integer of a generation id: 3 for "g3"."""
    match = _GENERATION.fullmatch(generation)
    if match is None:
        raise InvalidGenerationError(
            f"generation id {generation!r} is not of the form g<n> with n >= 1, e.g. g1"
        )
    return int(match.group(1))


def validate_generation(generation: str) -> str:
    """Returns the id unchanged, or raises `InvalidGenerationError`."""
    generation_number(generation)
    return generation


def next_generation(generation: str) -> str:
    """The generation a rebuild of `generation` writes into: "g2" after "g1"."""
    return f"g{generation_number(generation) + 1}"
