"""Compare two model versions' results: counts, changed texts, added and removed boxes.

Reads the PostgreSQL read model, where results of every model version sit side by side,
keyed by media item and item label (`original`, `page-0003`, `frame-00000042`). Detections
of the two versions are matched per item greedily by class and IoU; what the new version
finds without a match is added, what only the old one found is removed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from psycopg import sql

from visionlog.stores import PgConnection

DiffStage = Literal["ocr", "detection", "codes"]
DIFF_STAGES: tuple[str, ...] = ("ocr", "detection", "codes")
MATCH_IOU = 0.5


@dataclass(frozen=True)
class Box:
    class_name: str
    confidence: float
    x_min: float
    y_min: float
    x_max: float
    y_max: float

    def iou(self, other: Box) -> float:
        width = min(self.x_max, other.x_max) - max(self.x_min, other.x_min)
        height = min(self.y_max, other.y_max) - max(self.y_min, other.y_min)
        if width <= 0 or height <= 0:
            return 0.0
        inter = width * height
        area = (self.x_max - self.x_min) * (self.y_max - self.y_min)
        other_area = (other.x_max - other.x_min) * (other.y_max - other.y_min)
        return inter / (area + other_area - inter)


def match_boxes(
    old: Sequence[Box], new: Sequence[Box], threshold: float = MATCH_IOU
) -> tuple[list[tuple[Box, Box]], list[Box], list[Box]]:
    """Greedy same-class matching by IoU: (matched pairs, added, removed)."""
    candidates = sorted(
        (
            (a.iou(b), i, j)
            for i, a in enumerate(old)
            for j, b in enumerate(new)
            if a.class_name == b.class_name
        ),
        reverse=True,
    )
    used_old: set[int] = set()
    used_new: set[int] = set()
    pairs: list[tuple[Box, Box]] = []
    for overlap, i, j in candidates:
        if overlap < threshold:
            break
        if i in used_old or j in used_new:
            continue
        used_old.add(i)
        used_new.add(j)
        pairs.append((old[i], new[j]))
    added = [b for j, b in enumerate(new) if j not in used_new]
    removed = [a for i, a in enumerate(old) if i not in used_old]
    return pairs, added, removed


@dataclass
class ItemChange:
    media_id: str
    item_label: str
    old_text: str | None = None
    new_text: str | None = None
    added: list[dict[str, Any]] = field(default_factory=list)
    removed: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class VersionDiff:
    stage: str
    old_version: str
    new_version: str
    old_results: int = 0
    new_results: int = 0
    # Items that only one of the versions has processed.
    only_old: list[str] = field(default_factory=list)
    only_new: list[str] = field(default_factory=list)
    compared_items: int = 0
    changed: list[ItemChange] = field(default_factory=list)
    old_count_by_class: dict[str, int] = field(default_factory=dict)
    new_count_by_class: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_TABLES: dict[str, str] = {"ocr": "text_results", "detection": "detections", "codes": "codes"}


def _rows(
    conn: PgConnection,
    schema: str,
    stage: str,
    version: str,
    media_ids: Sequence[str] | None,
) -> list[dict[str, Any]]:
    table = _TABLES[stage]
    columns = {
        "ocr": "media_id, item_label, full_text AS value, NULL::text AS class_name",
        "detection": "media_id, item_label, class_name, confidence, x_min, y_min, x_max, y_max",
        "codes": "media_id, item_label, symbology AS class_name, text AS value",
    }[stage]
    query = sql.SQL("SELECT {columns} FROM {table} WHERE model_version = %s").format(
        columns=sql.SQL(columns), table=sql.Identifier(schema, table)
    )
    params: list[Any] = [version]
    if media_ids:
        query = sql.SQL("{} AND media_id = ANY(%s)").format(query)
        params.append(list(media_ids))
    return list(conn.execute(query, params).fetchall())


def _items(rows: Sequence[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        grouped[(row["media_id"], row["item_label"])].append(row)
    return grouped


def _box(row: dict[str, Any]) -> Box:
    return Box(
        row["class_name"],
        float(row["confidence"]),
        float(row["x_min"]),
        float(row["y_min"]),
        float(row["x_max"]),
        float(row["y_max"]),
    )


def compare(
    stage: str,
    old_version: str,
    new_version: str,
    old_rows: Sequence[dict[str, Any]],
    new_rows: Sequence[dict[str, Any]],
) -> VersionDiff:
    """The diff of two versions' result rows (pure)."""
    diff = VersionDiff(stage, old_version, new_version, len(old_rows), len(new_rows))
    old_items, new_items = _items(old_rows), _items(new_rows)
    diff.only_old = sorted(f"{m}/{label}" for m, label in old_items.keys() - new_items.keys())
    diff.only_new = sorted(f"{m}/{label}" for m, label in new_items.keys() - old_items.keys())
    for rows, counts in ((old_rows, diff.old_count_by_class), (new_rows, diff.new_count_by_class)):
        for row in rows:
            name = row.get("class_name")
            if name:
                counts[name] = counts.get(name, 0) + 1
    for key in sorted(old_items.keys() & new_items.keys()):
        diff.compared_items += 1
        change = ItemChange(*key)
        if stage == "detection":
            _, added, removed = match_boxes(
                [_box(r) for r in old_items[key]], [_box(r) for r in new_items[key]]
            )
            change.added = [asdict(b) for b in added]
            change.removed = [asdict(b) for b in removed]
            if added or removed:
                diff.changed.append(change)
            continue
        old_values = sorted(str(r["value"]) for r in old_items[key])
        new_values = sorted(str(r["value"]) for r in new_items[key])
        if old_values != new_values:
            change.old_text = "\n".join(old_values)
            change.new_text = "\n".join(new_values)
            diff.changed.append(change)
    return diff


def diff_versions(
    conn: PgConnection,
    schema: str,
    stage: str,
    old: str,
    new: str,
    media_ids: Sequence[str] | None = None,
) -> VersionDiff:
    if stage not in _TABLES:
        raise ValueError(f"cannot diff stage {stage!r}; choose one of {sorted(_TABLES)}")
    if old == new:
        raise ValueError("old and new model versions are the same")
    return compare(
        stage,
        old,
        new,
        _rows(conn, schema, stage, old, media_ids),
        _rows(conn, schema, stage, new, media_ids),
    )
