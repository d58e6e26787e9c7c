"""One readable sentence about a scene, in English and German.

The sentence names the most frequent class (the subject), places it relative to the
largest object of another class (the anchor) with its distance, and lists what else is
visible: "Two people stand left of a bus, about 6 m away; also visible: a dog."
"""

from __future__ import annotations

from dataclasses import dataclass

from processors.spatial.geometry import BEHIND, IN_FRONT_OF, LEFT_OF, NEAR, RIGHT_OF
from processors.spatial.nouns import EnglishNoun, GermanNoun, nouns_for

_EN_NUMBERS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
               "ten", "eleven", "twelve"]  # fmt: skip
_DE_NUMBERS = ["null", "ein", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun",
               "zehn", "elf", "zwölf"]  # fmt: skip
_DE_INDEFINITE = {"nom": {"m": "ein", "f": "eine", "n": "ein"},
                  "dat": {"m": "einem", "f": "einer", "n": "einem"}}  # fmt: skip
_DE_ANOTHER = {"m": "ein weiterer", "f": "eine weitere", "n": "ein weiteres"}
_EN_RELATION = {LEFT_OF: "left of", RIGHT_OF: "right of", IN_FRONT_OF: "in front of",
                BEHIND: "behind", NEAR: "next to"}  # fmt: skip
_DE_RELATION = {LEFT_OF: "links von", RIGHT_OF: "rechts von", IN_FRONT_OF: "vor",
                BEHIND: "hinter", NEAR: "neben"}  # fmt: skip
_EN_POSITION = {"left": "on the left", "centre": "in the centre", "right": "on the right",
                "mixed": "across the picture"}  # fmt: skip
_DE_POSITION = {"left": "links", "centre": "in der Mitte", "right": "rechts",
                "mixed": "verteilt im Bild"}  # fmt: skip
# Classes whose members stand rather than just are somewhere.
_STANDING = {"person", "horse", "cow", "sheep", "elephant", "giraffe", "zebra", "bear"}


@dataclass(frozen=True)
class Group:
    """Objects of one class mentioned together; `more` marks extra members of the anchor's class."""

    class_name: str
    count: int
    more: bool = False


@dataclass(frozen=True)
class ScenePlan:
    """What the sentence says, independent of the language."""

    subject: Group | None
    position: str  # left, centre, right or mixed
    relation: str | None = None  # predicate of subject relative to the anchor
    anchor_class: str | None = None
    distance_range_m: tuple[float, float] | None = None
    extras: tuple[Group, ...] = ()


def _number_en(count: int) -> str:
    return _EN_NUMBERS[count] if count < len(_EN_NUMBERS) else str(count)


def _number_de(count: int) -> str:
    return _DE_NUMBERS[count] if count < len(_DE_NUMBERS) else str(count)


def english_phrase(group: Group) -> str:
    noun: EnglishNoun = nouns_for(group.class_name)[0]
    if group.more:
        if group.count == 1:
            return f"another {noun.singular}"
        return f"{_number_en(group.count)} more {noun.plural}"
    if group.count == 1:
        return f"{noun.article} {noun.singular}"
    return f"{_number_en(group.count)} {noun.plural}"


def german_phrase(group: Group, case: str = "nom") -> str:
    noun: GermanNoun = nouns_for(group.class_name)[1]
    if group.more:
        # Only used in the nominative list of what else is visible.
        if group.count == 1:
            return f"{_DE_ANOTHER[noun.gender]} {noun.singular}"
        return f"{_number_de(group.count)} weitere {noun.plural}"
    if group.count == 1:
        word = noun.dative_singular if case == "dat" else noun.singular
        return f"{_DE_INDEFINITE[case][noun.gender]} {word}"
    word = noun.dative_plural if case == "dat" else noun.plural
    return f"{_number_de(group.count)} {word}"


def _join(items: list[str], conjunction: str) -> str:
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {conjunction} {items[-1]}"


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


def _metres(value: float, decimal_comma: bool) -> str:
    text = f"{value:.1f}" if value < 2 else f"{round(value):d}"
    return text.replace(".", ",") if decimal_comma else text


def _distance_en(range_m: tuple[float, float]) -> str:
    low, high = range_m
    if high > 1.5 * low and _metres(low, False) != _metres(high, False):
        return f"between {_metres(low, False)} and {_metres(high, False)} m away"
    return f"about {_metres((low + high) / 2, False)} m away"


def _distance_de(range_m: tuple[float, float]) -> str:
    low, high = range_m
    if high > 1.5 * low and _metres(low, True) != _metres(high, True):
        return f"zwischen {_metres(low, True)} und {_metres(high, True)} m entfernt"
    return f"etwa {_metres((low + high) / 2, True)} m entfernt"


def english_sentence(plan: ScenePlan) -> str:
    if plan.subject is None:
        return "No objects were detected."
    subject = plan.subject
    plural = subject.count > 1
    standing = subject.class_name in _STANDING
    verb = ("stand" if plural else "stands") if standing else ("are" if plural else "is")
    clause = f"{_capitalise(english_phrase(subject))} {verb}"
    if plan.anchor_class is not None and plan.relation is not None:
        anchor = english_phrase(Group(plan.anchor_class, 1))
        clause += f" {_EN_RELATION[plan.relation]} {anchor}"
    elif plan.anchor_class is not None:
        anchor = english_phrase(Group(plan.anchor_class, 1))
        clause = f"{_capitalise(english_phrase(subject))} and {anchor} are in the picture"
    else:
        clause += f" {_EN_POSITION[plan.position]}"
    if plan.distance_range_m is not None:
        clause += f", {_distance_en(plan.distance_range_m)}"
    if plan.extras:
        clause += "; also visible: " + _join([english_phrase(g) for g in plan.extras], "and")
    return clause + "."


def german_sentence(plan: ScenePlan) -> str:
    if plan.subject is None:
        return "Es wurden keine Objekte erkannt."
    subject = plan.subject
    plural = subject.count > 1
    standing = subject.class_name in _STANDING
    verb = ("stehen" if plural else "steht") if standing else ("sind" if plural else "ist")
    clause = f"{_capitalise(german_phrase(subject))} {verb}"
    if plan.anchor_class is not None and plan.relation is not None:
        anchor = german_phrase(Group(plan.anchor_class, 1), "dat")
        clause += f" {_DE_RELATION[plan.relation]} {anchor}"
    elif plan.anchor_class is not None:
        anchor = german_phrase(Group(plan.anchor_class, 1))
        clause = f"{_capitalise(german_phrase(subject))} und {anchor} sind im Bild"
    else:
        clause += f" {_DE_POSITION[plan.position]}"
    if plan.distance_range_m is not None:
        clause += f", {_distance_de(plan.distance_range_m)}"
    if plan.extras:
        clause += "; außerdem zu sehen: " + _join([german_phrase(g) for g in plan.extras], "und")
    return clause + "."


def sentences(plan: ScenePlan) -> dict[str, str]:
    """The sentence per ISO 639-1 language code."""
    return {"de": german_sentence(plan), "en": english_sentence(plan)}
