"""From detections to a described scene: objects with distances, relations and sentences."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace

from processors.spatial.geometry import (
    BEHIND,
    IN_FRONT_OF,
    LEFT_OF,
    NEAR,
    RIGHT_OF,
    PlacedObject,
    Relation,
    estimate_distance_m,
    horizontal_position,
    relation_between,
    relations,
)
from processors.spatial.sentences import Group, ScenePlan, sentences

# Scenes list at most this many objects (most confident first); relations grow quadratically.
MAX_OBJECTS = 20
# Predicates tried in this order when summarising how a group relates to the anchor.
_SUMMARY_ORDER = (LEFT_OF, RIGHT_OF, IN_FRONT_OF, BEHIND, NEAR)


@dataclass(frozen=True)
class Scene:
    objects: list[PlacedObject]  # in the order the sentence mentions them
    positions: list[str]
    relations: list[Relation]
    sentences: dict[str, str]
    plan: ScenePlan


def with_distances(
    objects: Sequence[PlacedObject], image_height: float, focal_length_px: float | None
) -> list[PlacedObject]:
    """Objects with a distance estimate where none was given and one can be made."""
    placed = []
    for item in objects:
        if item.distance_m is None:
            distance = estimate_distance_m(
                item.class_name,
                item.height,
                focal_length_px,
                box_top_px=item.y_min,
                box_bottom_px=item.y_max,
                image_height_px=image_height,
            )
            item = replace(item, distance_m=distance)
        placed.append(item)
    return placed


def _group_position(members: Sequence[PlacedObject], image_width: float) -> str:
    positions = {horizontal_position(item.centre_x, image_width) for item in members}
    return positions.pop() if len(positions) == 1 else "mixed"


def _summary_relation(
    members: Sequence[PlacedObject],
    anchor: PlacedObject,
    image_width: float,
    focal_length_px: float | None,
) -> str | None:
    """The first predicate (in _SUMMARY_ORDER) that holds for most members of the group."""
    held = [relation_between(item, anchor, image_width, focal_length_px) for item in members]
    for predicate in _SUMMARY_ORDER:
        if sum(predicate in predicates for predicates in held) * 2 > len(held):
            return predicate
    return None


def _distance_range(members: Sequence[PlacedObject]) -> tuple[float, float] | None:
    known = [item.distance_m for item in members if item.distance_m is not None]
    if not known:
        return None
    return min(known), max(known)


def describe(
    objects: Sequence[PlacedObject],
    image_width: float,
    image_height: float,
    focal_length_px: float | None,
) -> Scene:
    """Distances, relations and the English and German sentence for a set of detections."""
    ranked = sorted(objects, key=lambda item: item.confidence, reverse=True)[:MAX_OBJECTS]
    placed = with_distances(ranked, image_height, focal_length_px)
    if not placed:
        plan = ScenePlan(subject=None, position="mixed")
        return Scene([], [], [], sentences(plan), plan)
    counts = Counter(item.class_name for item in placed)
    area = Counter[str]()
    for item in placed:
        area[item.class_name] += int(item.width * item.height)
    # Subject: the most frequent class; on a tie people first, then the larger total area.
    subject_class = max(counts, key=lambda name: (counts[name], name == "person", area[name]))
    subject_members = [item for item in placed if item.class_name == subject_class]
    others = [item for item in placed if item.class_name != subject_class]
    anchor = max(others, key=lambda item: item.width * item.height) if others else None

    ordered = list(subject_members)
    extras: list[Group] = []
    relation = None
    if anchor is not None:
        ordered.append(anchor)
        relation = _summary_relation(subject_members, anchor, image_width, focal_length_px)
        rest_of_anchor_class = [
            item for item in others if item.class_name == anchor.class_name and item is not anchor
        ]
        if rest_of_anchor_class:
            ordered.extend(rest_of_anchor_class)
            extras.append(Group(anchor.class_name, len(rest_of_anchor_class), more=True))
    mentioned = {id(item) for item in ordered}
    remaining = [item for item in others if id(item) not in mentioned]
    # More frequent classes first; among equals, the more confident one (stable order).
    classes = list(dict.fromkeys(item.class_name for item in remaining))
    for class_name in sorted(classes, key=lambda name: -counts[name]):
        members = [item for item in remaining if item.class_name == class_name]
        ordered.extend(members)
        extras.append(Group(class_name, len(members)))

    plan = ScenePlan(
        subject=Group(subject_class, len(subject_members)),
        position=_group_position(subject_members, image_width),
        relation=relation,
        anchor_class=anchor.class_name if anchor is not None else None,
        distance_range_m=_distance_range(subject_members),
        extras=tuple(extras),
    )
    return Scene(
        objects=ordered,
        positions=[horizontal_position(item.centre_x, image_width) for item in ordered],
        relations=relations(ordered, image_width, focal_length_px),
        sentences=sentences(plan),
        plan=plan,
    )
