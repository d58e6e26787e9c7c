"""Folding a batch's updates of one document into as few updates as apply the same.

Under a camera load most of a batch's writes land on a handful of documents: every frame's
result touches its camera's media document (`$max` of the last event time, `$inc` of a
stage counter). FerretDB rewrites the whole document and an entry in each of its indexes
per update, so sending one update per event cost about 10 ms of its CPU each and the
MongoDB read model fell behind by a minute per minute. Applied one after another, a run of
updates of one document equals a single update whenever no two of them touch overlapping
paths in ways that cannot be combined; `fold_updates` builds that single update and starts
a new one where they cannot.

Operators and how two of them on the same path combine, in log order:
`$set` the later value; `$inc` the sum; `$max` / `$min` the larger / smaller value;
`$addToSet` both values (`$each`, in order); `$setOnInsert` of a later upsert never applies
(the first upsert of the run already inserted the document), so it is dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Update = dict[str, dict[str, Any]]

_COMBINE: dict[str, Callable[[Any, Any], Any]] = {
    "$set": lambda _earlier, later: later,
    "$inc": lambda earlier, later: earlier + later,
    "$max": lambda earlier, later: later if later > earlier else earlier,
    "$min": lambda earlier, later: later if later < earlier else earlier,
    "$addToSet": lambda earlier, later: {"$each": _each(earlier) + _each(later)},
}
_FOLDABLE = frozenset(_COMBINE) | {"$setOnInsert"}


def _each(value: Any) -> list[Any]:
    if isinstance(value, Mapping) and set(value) == {"$each"}:
        return list(value["$each"])
    return [value]


def _related(first: str, second: str) -> bool:
    """Whether two field paths are the same or one holds the other (MongoDB refuses an
    update that names both)."""
    return first == second or first.startswith(second + ".") or second.startswith(first + ".")


class _Folding:
    """One update being built from a run of updates."""

    def __init__(self, first: Mapping[str, Mapping[str, Any]]) -> None:
        self.update: Update = {operator: dict(values) for operator, values in first.items()}
        self.paths: dict[str, str] = {
            path: operator for operator, values in first.items() for path in values
        }
        self.size = 1

    def absorb(self, later: Mapping[str, Mapping[str, Any]], *, upsert: bool) -> bool:
        """Fold `later` in; False (and nothing changed) where the two cannot be one update."""
        if not set(later) <= _FOLDABLE or not set(self.update) <= _FOLDABLE:
            return False
        combined: list[tuple[str, str, Any]] = []
        for operator, values in later.items():
            if operator == "$setOnInsert" and upsert:
                continue  # the run's first upsert inserted the document
            for path, value in values.items():
                if path in self.paths:
                    if self.paths[path] != operator or operator == "$setOnInsert":
                        return False
                    try:
                        value = _COMBINE[operator](self.update[operator][path], value)
                    except TypeError:
                        return False  # values of different kinds: leave the order to MongoDB
                elif any(_related(path, other) for other in self.paths):
                    return False
                combined.append((operator, path, value))
        for operator, path, value in combined:
            self.update.setdefault(operator, {})[path] = value
            self.paths[path] = operator
        return True


@dataclass(frozen=True)
class Folded:
    update: Update
    # How many consecutive input updates it stands for.
    size: int


def fold_updates(
    updates: Sequence[Mapping[str, Mapping[str, Any]]], *, upsert: bool
) -> list[Folded]:
    """The fewest updates that, applied in order, do what `updates` applied in order do."""
    folded: list[_Folding] = []
    for update in updates:
        if folded and folded[-1].absorb(update, upsert=upsert):
            folded[-1].size += 1
            continue
        folded.append(_Folding(update))
    return [Folded(each.update, each.size) for each in folded]


def first_of_each(items: Iterable[Any], key: Callable[[Any], Any]) -> list[Any]:
    """`items` without repeats of an equal key, in first-seen order."""
    seen: set[Any] = set()
    kept = []
    for item in items:
        identity = key(item)
        if identity not in seen:
            seen.add(identity)
            kept.append(item)
    return kept
