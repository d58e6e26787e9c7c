"""A batch's updates of one document fold into the fewest updates that do the same."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from projections.mongo.merge import first_of_each, fold_updates

T0 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def _touch(seconds: int, stage: str = "detection") -> dict[str, dict[str, object]]:
    at = T0 + timedelta(seconds=seconds)
    return {
        "$setOnInsert": {"media_id": "cam-1", "status": "stream"},
        "$max": {"last_event_at": at, f"progress.{stage}.last_at": at},
    }


def test_a_cameras_touches_fold_into_one_update_with_the_latest_times() -> None:
    folded = fold_updates([_touch(3), _touch(1), _touch(7), _touch(5)], upsert=True)
    assert len(folded) == 1
    assert folded[0].size == 4
    assert folded[0].update == {
        "$setOnInsert": {"media_id": "cam-1", "status": "stream"},
        "$max": {
            "last_event_at": T0 + timedelta(seconds=7),
            "progress.detection.last_at": T0 + timedelta(seconds=7),
        },
    }


def test_counters_add_up_and_the_later_set_wins() -> None:
    folded = fold_updates(
        [
            {"$inc": {"progress.ocr.done": 1}},
            {"$inc": {"progress.ocr.done": 1, "progress.ocr.failed": 1}, "$set": {"err": "a"}},
            {"$inc": {"progress.ocr.done": 1}, "$set": {"err": "b"}},
        ],
        upsert=False,
    )
    assert [f.update for f in folded] == [
        {"$inc": {"progress.ocr.done": 3, "progress.ocr.failed": 1}, "$set": {"err": "b"}}
    ]


def test_a_later_upserts_insert_defaults_are_dropped() -> None:
    # Applied in order, the first upsert inserts; the second's $setOnInsert never applies.
    folded = fold_updates(
        [
            {"$max": {"last_event_at": T0}},
            {"$setOnInsert": {"status": "pending"}, "$max": {"last_event_at": T0}},
        ],
        upsert=True,
    )
    assert [f.update for f in folded] == [{"$max": {"last_event_at": T0}}]


def test_overlapping_paths_start_a_new_update() -> None:
    updates: list[dict[str, dict[str, object]]] = [
        {"$set": {"pages.page-1.versions.v1": "text"}},
        {"$set": {"pages.page-1": {"page_number": 1}}},  # holds the first path
        {"$set": {"pages.page-2.versions.v1": "more"}},
    ]
    folded = fold_updates(updates, upsert=True)
    assert [f.size for f in folded] == [1, 2]
    assert folded[0].update == updates[0]
    assert folded[1].update == {
        "$set": {"pages.page-1": {"page_number": 1}, "pages.page-2.versions.v1": "more"}
    }


def test_the_same_path_under_two_operators_is_not_folded() -> None:
    folded = fold_updates(
        [{"$setOnInsert": {"status": "pending"}}, {"$set": {"status": "processing"}}],
        upsert=True,
    )
    assert [f.size for f in folded] == [1, 1]


def test_values_that_do_not_compare_are_left_to_the_server() -> None:
    folded = fold_updates(
        [{"$max": {"seen": T0}}, {"$max": {"seen": None}}, {"$max": {"seen": 3}}], upsert=False
    )
    assert [f.size for f in folded] == [1, 1, 1]


def test_set_members_are_added_in_order() -> None:
    folded = fold_updates(
        [{"$addToSet": {"models": "a@1"}}, {"$addToSet": {"models": "b@2"}}], upsert=True
    )
    assert folded[0].update == {"$addToSet": {"models": {"$each": ["a@1", "b@2"]}}}


def test_unknown_operators_are_never_folded() -> None:
    folded = fold_updates([{"$unset": {"a": ""}}, {"$unset": {"b": ""}}], upsert=False)
    assert [f.size for f in folded] == [1, 1]


def test_repeats_are_dropped_in_first_seen_order() -> None:
    assert first_of_each(["b", "a", "b", "c", "a"], key=lambda s: s) == ["b", "a", "c"]
