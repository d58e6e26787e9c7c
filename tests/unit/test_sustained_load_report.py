"""The sustained-load benchmark's pure parts: percentiles, per-minute buckets, the frame
balance, losses, process verdicts and the table, on synthetic runs; and the camera set
file it writes, read back by the camera producer's own loader."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from bench.load.model import (
    Completion,
    FrameOutcome,
    LiveCounters,
    Observations,
    ProcessRecord,
    RunConfig,
    SourceCounters,
    Timeline,
    Upload,
)
from bench.load.platform import CameraSpec, camera_fields_supported, camera_set_toml
from bench.load.processes import exits_in, worker_kind
from bench.load.report import FAIL, NO_DATA, PASS, Report, build_report, render
from bench.load.stats import (
    LatencyStats,
    counts_per_minute,
    growth_percent,
    minute_of,
    per_minute,
    percentile,
)
from producers.cameras.config import load_camera_set

START = 1_700_000_000_000
MINUTE = 60_000


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50
    assert percentile(values, 0.99) == 99
    assert percentile(values, 1.0) == 100
    assert percentile([7.0], 0.99) == 7
    # Two values: the median is the lower one, p99 the higher (both really happened).
    assert (percentile([1.0, 9.0], 0.5), percentile([1.0, 9.0], 0.99)) == (1, 9)
    with pytest.raises(ValueError):
        percentile([], 0.5)
    assert LatencyStats.of([]) is None
    assert LatencyStats.of([3.0, 1.0, 2.0]) == LatencyStats(3, 2, 3, 3)


def test_minutes_bucket_by_capture_time_with_warm_up_and_tail() -> None:
    assert minute_of(START - 1, START, 3) == 0
    assert minute_of(START, START, 3) == 1
    assert minute_of(START + MINUTE - 1, START, 3) == 1
    assert minute_of(START + MINUTE, START, 3) == 2
    assert minute_of(START + 10 * MINUTE, START, 3) == 3  # the camera's tail: last minute
    samples = [
        (START - 500, 900.0),  # warm-up
        (START + 1_000, 100.0),
        (START + 2_000, 300.0),
        (START + 3_000, None),  # captured, never analysed
        (START + 2 * MINUTE + 5, 50.0),
    ]
    minutes = per_minute(samples, START, 3)
    assert [m.minute for m in minutes] == [0, 1, 2, 3]
    assert minutes[0].stats == LatencyStats(1, 900, 900, 900)
    assert minutes[1].stats == LatencyStats(2, 100, 300, 300)
    assert minutes[1].unanalysed == 1
    assert minutes[2].stats is None  # a minute without frames is "no data", not zero
    assert minutes[3].stats == LatencyStats(1, 50, 50, 50)
    assert per_minute([], START, 2)[0].minute == 1  # no warm-up row without warm-up frames


def test_counts_per_minute_and_growth() -> None:
    instants = [START - 5, START + 10, START + MINUTE + 1, START + 2 * MINUTE + 30_000]
    assert counts_per_minute(instants, START, START + 2 * MINUTE + 30_001) == [2, 1, 1]
    assert counts_per_minute(instants, START, START) == []
    assert growth_percent(100.0, 110.0) == pytest.approx(10.0)
    assert growth_percent(None, 110.0) is None
    assert growth_percent(0.0, 110.0) is None


# a synthetic run

CONFIG = RunConfig(
    minutes=3,
    cameras=2,
    source_fps=15,
    target_fps=5,
    document_every_s=120,
    document_pages=3,
    images_per_s=1,
    drain_timeout_s=600,
    camera_profiles={"cam-1": "live", "cam-2": "live-anonymised"},
)
TIMELINE = Timeline(START, START + 3 * MINUTE, START + 5 * MINUTE, "all done")


def _frames(camera: str, latency_ms: float, skipped_every: int = 0) -> list[FrameOutcome]:
    """Five frames a second for three minutes; every n-th one skipped as stale."""
    frames: list[FrameOutcome] = []
    for number in range(3 * 60 * 5):
        captured = START + number * 200
        if skipped_every and number % skipped_every == 0:
            frames.append(FrameOutcome(camera, captured, None, "stale"))
        else:
            frames.append(FrameOutcome(camera, captured, captured + round(latency_ms)))
    return frames


def _healthy() -> Observations:
    frames = _frames("cam-1", 200) + _frames("cam-2", 400, skipped_every=10)
    analysed = {
        c: sum(1 for f in frames if f.camera == c and f.detected_ms) for c in ("cam-1", "cam-2")
    }
    skipped = {c: sum(1 for f in frames if f.camera == c and f.skipped) for c in ("cam-1", "cam-2")}
    # The source captured 15 fps and dropped what the 5 fps publisher did not take.
    sources = {
        camera: SourceCounters(
            captured=2700,
            dropped=2700 - analysed[camera] - skipped[camera],
            published=900,
            state="STOPPED",
        )
        for camera in ("cam-1", "cam-2")
    }
    uploads = [
        Upload("document", "d0.pdf", START, START + 2_000, "doc-0"),
        Upload("document", "d1.pdf", START + 2 * MINUTE, START + 2 * MINUTE + 2_000, "doc-1"),
        *(
            Upload("image", f"i{n}.jpg", START + n * 1000, START + n * 1000 + 50, f"img-{n}")
            for n in range(180)
        ),
    ]
    completions = {
        u.media_id: Completion(u.sent_ms + 3_000, "COMPLETED") for u in uploads if u.media_id
    }
    return Observations(
        frames=frames,
        sources=sources,
        live=[LiveCounters("cam-1", "live", "detection", 900, 900, 0, 0, 2000)],
        uploads=uploads,
        completions=completions,
        page_counts={"doc-0": 3, "doc-1": 3},
        pages={
            "doc-0": {1: START + 20_000, 2: START + 40_000, 3: START + 70_000},
            "doc-1": {1: START + 2 * MINUTE + 10_000, 2: START + 3 * MINUTE, 3: START + 4 * MINUTE},
        },
        detections={f"img-{n}": START + n * 1000 + 500 for n in range(180)},
        processes=[
            ProcessRecord("api", (10,), (), 200.0, 210.0, 220.0),
            ProcessRecord("worker live", (11,), (), 500.0, 540.0, 560.0),
        ],
        bench_cpu_s=30.0,
    )


def _row(report: Report, what: str) -> tuple[str, str]:
    matches = [row for row in report.rows if row.what == what]
    assert len(matches) == 1, [row.what for row in report.rows]
    return matches[0].measured, matches[0].result


def test_a_healthy_run_meets_every_target() -> None:
    report = build_report(CONFIG, TIMELINE, _healthy())
    assert report.passed, render(report)
    assert _row(report, "cam-1 capture→detection m1") == (
        "n 300  p50 0.20 s  p99 0.20 s  max 0.20 s",
        PASS,
    )
    measured, result = _row(report, "cam-2 frames")
    assert result == PASS
    assert (
        "captured 2700 vs dropped 1800 + skipped 90 (stale 90, superseded 0) + analysed 810"
        in measured
    )
    assert _row(report, "items completed by end of drain")[1] == PASS
    assert _row(report, "events lost")[0].startswith("0:")
    assert _row(report, "documents pages/min m1-5")[0] == "2  1  1  1  1"
    data = report.data
    assert data["passed"] is True
    assert data["cameras"]["cam-2"]["frames"]["balance"] == 0
    assert data["uploads"]["image_upload_to_completed"]["p99_ms"] == 3000
    assert data["completion"]["lost"] == 0
    table = render(report)
    assert table.splitlines()[0].startswith("sustained load: 2 cameras")
    assert table.splitlines()[-1] == "ALL TARGETS MET"


def test_a_slow_minute_and_growing_latency_fail() -> None:
    seen = _healthy()
    slow = [
        replace(f, detected_ms=f.captured_ms + 2500)
        if f.camera == "cam-1" and f.captured_ms >= START + 2 * MINUTE
        else f
        for f in seen.frames
    ]
    report = build_report(CONFIG, TIMELINE, replace(seen, frames=slow))
    assert _row(report, "cam-1 capture→detection m2")[1] == PASS
    assert _row(report, "cam-1 capture→detection m3")[1] == FAIL
    measured, result = _row(report, "cam-1 max drift")
    assert (measured, result) == ("m3 2.50 s - m1 0.20 s = +2.30 s", FAIL)
    assert not report.passed
    assert render(report).splitlines()[-1].endswith("targets not met")


def test_frames_missing_from_the_balance_and_unfinished_items_are_lost() -> None:
    seen = _healthy()
    # Ten frames of cam-1 were published but neither analysed nor reported skipped.
    frames = [
        replace(f, detected_ms=None) if f.camera == "cam-1" and i < 10 else f
        for i, f in enumerate(seen.frames)
    ]
    completions = dict(seen.completions)
    del completions["doc-1"], completions["img-5"]
    pages = {**seen.pages, "doc-1": {1: START + 2 * MINUTE + 10_000}}
    report = build_report(
        CONFIG,
        TIMELINE,
        replace(seen, frames=frames, completions=completions, pages=pages),
    )
    measured, result = _row(report, "cam-1 frames")
    assert result == FAIL
    assert "unaccounted 10" in measured
    assert report.data["cameras"]["cam-1"]["frames"]["balance"] == 10
    assert _row(report, "items completed by end of drain") == (
        "180 of 182 (documents 1/2, images 179/180); COMPLETED 180",
        FAIL,
    )
    measured, result = _row(report, "events lost")
    assert result == FAIL
    assert measured.startswith(
        "14: items without MediaCompleted 2, camera frames without result 10, pages without text 2"
    )
    assert report.data["completion"]["missing"] == ["doc-1", "img-5"]


def test_crashes_and_memory_growth_fail_but_a_recycled_worker_is_not_compared() -> None:
    seen = _healthy()
    seen.processes = [
        ProcessRecord("api", (10,), (), 200.0, 230.0, 230.0),  # +15 %
        ProcessRecord("worker live", (11, 12), (-9,), 500.0, 300.0, 560.0, False),
        ProcessRecord("worker document", (13, 14), (0,), 900.0, 400.0, 950.0, False),
        ProcessRecord("projections", (15,), (), 100.0, 100.0, 100.0, vanished=True),
    ]
    report = build_report(CONFIG, TIMELINE, seen)
    assert _row(report, "process api")[1] == FAIL
    assert "(+15.0 %)" in _row(report, "process api")[0]
    live, verdict = _row(report, "process worker live")
    assert verdict == FAIL and "crashes 1 (exits -9)" in live
    recycled, verdict = _row(report, "process worker document")
    assert verdict == PASS and "restarts 1, crashes 0" in recycled
    assert "not comparable" in recycled
    assert _row(report, "process projections")[1] == FAIL
    assert _row(report, "process crashes (restarts)") == ("2 (2)", FAIL)


def test_events_the_platform_does_not_publish_yet_show_as_no_data() -> None:
    """Today's platform: no MediaCompleted, no skip reports, no camera status."""
    seen = _healthy()
    report = build_report(
        CONFIG,
        TIMELINE,
        replace(
            seen,
            completions={},
            sources={},
            live=[],
            frames=[],
            processes=[],
            missing_topics=["processing"],
            notes=["the camera config has no 'profile' yet: the cameras ran without it"],
        ),
    )
    assert _row(report, "cam-1 capture→detection m1") == ("no data", NO_DATA)
    assert _row(report, "cam-1 max drift")[1] == NO_DATA
    assert _row(report, "cam-2 frames")[1] == NO_DATA
    assert _row(report, "images upload→completed")[0] == "0/180: no data"
    assert _row(report, "images upload→detected")[0].startswith("180/180: n 180  p50 0.50 s")
    assert _row(report, "documents upload→last page read")[0].startswith("2/2:")
    assert _row(report, "process crashes (restarts)")[1] == NO_DATA
    assert _row(report, "topics missing")[0] == "processing"
    assert _row(report, "note")[0].startswith("the camera config has no 'profile'")
    assert not report.passed
    assert "NO DATA" in render(report)


def test_supervisor_exits_and_worker_command_lines_are_read() -> None:
    log = (
        "· live worker started (pid 10)\n"
        "live worker exited with -9; restarting\n"
        "document worker exited with 0; restarting\n"
    )
    assert exits_in(log) == [("live", -9), ("document", 0)]
    assert worker_kind(["/x/python", "-m", "stack.cli", "processors", "worker", "live"]) == "live"
    assert worker_kind(["/x/python", "-m", "stack.cli", "processors", "run"]) is None


def test_the_camera_set_file_is_valid_for_the_camera_producer(tmp_path: Path) -> None:
    cameras = [
        CameraSpec("load-cam-1", "http://127.0.0.1:8080/cam/1.mjpg", 5, "live", 2.0),
        CameraSpec('odd"name', "http://127.0.0.1:8080/cam/2.mjpg", 2.5, "live-anonymised", 1.5),
    ]
    supported = camera_fields_supported()
    path = tmp_path / "cameras.toml"
    path.write_text(camera_set_toml(cameras[:1], supported))
    camera_set = load_camera_set(path)
    assert [c.name for c in camera_set.cameras] == ["load-cam-1"]
    assert camera_set.cameras[0].url == cameras[0].url
    assert camera_set.cameras[0].target_fps == 5
    for field in supported:
        assert getattr(camera_set.cameras[0], field) == getattr(cameras[0], field)
    # Quotes are escaped (the name is then refused by the config's own pattern, not TOML).
    text = camera_set_toml(cameras, {"profile", "max_age_s"})
    assert 'name = "odd\\"name"' in text
    assert 'profile = "live-anonymised"' in text
    assert "max_age_s = 1.5" in text


def test_time_lag_is_the_age_of_the_oldest_message_a_read_model_has_yet_to_apply() -> None:
    from bench.load.readlag import TimeLag

    lag = TimeLag()
    part = ("media", 0)
    lag.add_ends(START, {part: 10})
    lag.add_ends(START + 1000, {part: 10})  # nothing new: the history keeps the first time
    lag.add_ends(START + 2000, {part: 15})
    # Everything applied: not behind, whenever asked.
    assert lag.behind_ms(START + 3000, part, 15) == 0
    # Offsets 10..14 arrived by the sample at +2 s: the oldest is 1 s old at +3 s.
    assert lag.behind_ms(START + 3000, part, 12) == 1000
    # Offset 5 was there at the first sample already.
    assert lag.behind_ms(START + 3000, part, 5) == 3000
    other = ("ocr.text", 0)
    lag.add_ends(START + 2500, {other: 3})
    # A store's lag is its worst partition; no position (or an invalid one) means the start.
    assert lag.store_behind_ms(START + 3000, [part, other], {part: 15}, {other: 0}) == 500
    assert lag.store_behind_ms(START + 3000, [part, other], {part: 12, other: -1001}, {}) == 1000
    assert lag.store_behind_ms(START + 3000, [], {}, {}) == 0


def test_read_model_lag_rows_judge_each_minute_of_the_load_only() -> None:
    quick = [(START + s * 1000, 200.0) for s in range(0, 180)]
    slow_second_minute = [
        (at, 9000.0 if START + MINUTE <= at < START + 2 * MINUTE else lag) for at, lag in quick
    ]
    drain = [(START + 3 * MINUTE + 5000, 60_000.0)]  # after the load: not judged
    seen = Observations(read_lag={"postgres": quick + drain, "mongo": slow_second_minute + drain})
    report = build_report(CONFIG, TIMELINE, seen)
    rows = {row.what: row for row in report.rows if "read-model lag" in row.what}
    assert [rows[f"postgres read-model lag m{m}"].result for m in (1, 2, 3)] == [PASS] * 3
    assert [rows[f"mongo read-model lag m{m}"].result for m in (1, 2, 3)] == [PASS, FAIL, PASS]
    assert rows["mongo read-model lag m2"].measured.startswith("n 60  p50 9.00 s")
    assert report.data["read_model_lag"]["postgres"][0]["lag"]["max_ms"] == 200.0


def test_breakdown_splits_an_analysed_frames_latency_into_its_parts() -> None:
    captured = START + 1_000
    timed = FrameOutcome(
        "cam-1",
        captured,
        captured + 900,
        published_ms=captured + 100,
        queue_ms=400.0,
        stage_ms=350.0,
        inference_ms=50.0,
    )
    untimed = FrameOutcome("cam-1", captured + 200, captured + 1_200)
    warm_up = replace(timed, captured_ms=START - 5_000)
    seen = replace(_healthy(), frames=[timed, untimed, warm_up])
    report = build_report(CONFIG, TIMELINE, seen)
    row = next(r for r in report.rows if r.what == "cam-1 where the time went")
    # 100 ms to Kafka, 300 ms waiting for the lane, 350 ms detecting (50 of them in the
    # detector), 150 ms after it.
    parts = report.data["cameras"]["cam-1"]["breakdown"]
    assert [parts[name]["p50_ms"] for name in parts] == [100, 300, 50, 300, 150]
    assert all(parts[name]["count"] == 1 for name in parts)  # untimed and warm-up left out
    assert "published→started p50 0.30 s" in row.measured
