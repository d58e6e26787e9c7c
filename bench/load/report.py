"""The sustained-load table: measured figures next to the issue's targets, PASS or FAIL.

Pure: it reads an `Observations` record and renders text and a JSON-ready dict, so the
arithmetic (per-minute latency, the frame balance, growth, losses) is unit-tested on
synthetic runs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.load.model import FrameOutcome, Observations, RunConfig, Timeline, Upload
from bench.load.stats import (
    LatencyStats,
    MinuteLatency,
    counts_per_minute,
    growth_percent,
    per_minute,
)

# The targets.
P99_LIMIT_MS = 1500.0
READ_LAG_P99_LIMIT_MS = 5000.0
MAX_DRIFT_MS = 500.0
RSS_GROWTH_LIMIT_PERCENT = 10.0

PASS, FAIL, NO_DATA = "PASS", "FAIL", "NO DATA"
# Rows per line of the pages-per-minute figures.
_MINUTES_PER_ROW = 10


@dataclass(frozen=True)
class Row:
    what: str
    measured: str
    target: str = ""
    result: str = ""  # PASS, FAIL, NO DATA, or empty for a figure without a target


@dataclass
class Report:
    title: str
    rows: list[Row] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def judged(self) -> list[Row]:
        return [row for row in self.rows if row.result]

    @property
    def passed(self) -> bool:
        """Every target met; a target without data is not met."""
        return bool(self.judged) and all(row.result == PASS for row in self.judged)


def _s(ms: float) -> str:
    return f"{ms / 1000:.2f} s"


def _verdict(ok: bool | None) -> str:
    if ok is None:
        return NO_DATA
    return PASS if ok else FAIL


def _stats_text(stats: LatencyStats | None) -> str:
    if stats is None:
        return "no data"
    return (
        f"n {stats.count}  p50 {_s(stats.p50_ms)}  p99 {_s(stats.p99_ms)}  max {_s(stats.max_ms)}"
    )


def _stats_data(stats: LatencyStats | None) -> dict[str, Any] | None:
    return None if stats is None else asdict(stats)


def build_report(config: RunConfig, timeline: Timeline, seen: Observations) -> Report:
    drain_s = (timeline.drain_end_ms - timeline.load_end_ms) / 1000
    anonymised = [name for name, p in config.camera_profiles.items() if p == "live-anonymised"]
    report = Report(
        title=(
            f"sustained load: {config.cameras} cameras ({config.source_fps:g} fps MJPEG, "
            f"target {config.target_fps:g} fps"
            + (f", {', '.join(anonymised)} live-anonymised" if anonymised else "")
            + f"), a {config.document_pages}-page document every {config.document_every_s:g} s, "
            f"{config.images_per_s:g} image/s; load {config.minutes:g} min, "
            f"drain {drain_s:.0f} s ({timeline.drain_end_reason})"
        ),
        data={
            "config": asdict(config),
            "timeline": asdict(timeline),
            "missing_topics": seen.missing_topics,
            "undecodable_events": seen.undecodable,
        },
    )
    _camera_rows(report, config, timeline, seen)
    _upload_rows(report, timeline, seen)
    _loss_rows(report, timeline, seen)
    _process_rows(report, seen)
    _read_lag_rows(report, config, timeline, seen)
    load_s = max(1e-9, (timeline.drain_end_ms - timeline.start_ms) / 1000)
    report.rows.append(
        Row(
            "benchmark process",
            f"CPU {seen.bench_cpu_s:.0f} s = {seen.bench_cpu_s / load_s:.2f} cores over the run",
        )
    )
    for note in seen.notes:
        report.rows.append(Row("note", note))
    if seen.missing_topics:
        report.rows.append(Row("topics missing", ", ".join(seen.missing_topics)))
    if seen.undecodable:
        report.rows.append(Row("undecodable events", str(seen.undecodable)))
    report.data["targets"] = [asdict(row) for row in report.judged]
    report.data["passed"] = report.passed
    return report


# read models


def _read_lag_rows(
    report: Report, config: RunConfig, timeline: Timeline, seen: Observations
) -> None:
    """Per read model: seconds behind the log, per minute of the load (the drain's samples
    are left out: it ends when the read models have caught up anyway)."""
    data: dict[str, Any] = {}
    for store, samples in sorted(seen.read_lag.items()):
        during = [(at, lag) for at, lag in samples if at <= timeline.load_end_ms]
        minutes = per_minute(during, timeline.start_ms, config.whole_minutes)
        for minute in minutes:
            measured = _stats_text(minute.stats)
            if minute.minute == 0:
                report.rows.append(Row(f"{store} read-model lag warm-up", measured))
                continue
            ok = None if minute.stats is None else minute.stats.p99_ms <= READ_LAG_P99_LIMIT_MS
            report.rows.append(
                Row(
                    f"{store} read-model lag m{minute.minute}",
                    measured,
                    f"p99 ≤ {_s(READ_LAG_P99_LIMIT_MS)}",
                    _verdict(ok),
                )
            )
        data[store] = [{"minute": m.minute, "lag": _stats_data(m.stats)} for m in minutes]
    report.data["read_model_lag"] = data


# cameras


def _camera_rows(report: Report, config: RunConfig, timeline: Timeline, seen: Observations) -> None:
    by_camera: dict[str, list[FrameOutcome]] = {name: [] for name in config.camera_profiles}
    for frame in seen.frames:
        by_camera.setdefault(frame.camera, []).append(frame)
    cameras: dict[str, Any] = {}
    for camera, frames in sorted(by_camera.items()):
        label = f"{camera} ({config.camera_profiles.get(camera, '?')})"
        minutes = per_minute(
            (
                (
                    frame.captured_ms,
                    None if frame.detected_ms is None else frame.detected_ms - frame.captured_ms,
                )
                for frame in frames
            ),
            timeline.start_ms,
            config.whole_minutes,
        )
        for minute in minutes:
            report.rows.append(_minute_row(camera, minute))
        drift_row, drift = _drift_row(camera, minutes)
        report.rows.append(drift_row)
        balance_row, balance = _balance_row(camera, frames, seen)
        report.rows.append(balance_row)
        breakdown_row, breakdown = _breakdown_row(camera, frames, timeline)
        report.rows.append(breakdown_row)
        live = [counters for counters in seen.live if counters.camera == camera]
        for counters in live:
            report.rows.append(
                Row(
                    f"{camera} {counters.worker}/{counters.stage}",
                    f"received {counters.received}, analysed {counters.analysed}, skipped "
                    f"stale {counters.skipped_stale}, superseded {counters.skipped_superseded}"
                    f" (bound {_s(counters.max_age_ms)}; the worker's own count)",
                )
            )
        cameras[camera] = {
            "label": label,
            "minutes": [
                {
                    "minute": m.minute,
                    "latency": _stats_data(m.stats),
                    "unanalysed": m.unanalysed,
                }
                for m in minutes
            ],
            "max_drift_ms": drift,
            "frames": balance,
            "breakdown": breakdown,
            "worker_reports": [asdict(counters) for counters in live],
        }
    report.data["cameras"] = cameras


def _minute_row(camera: str, minute: MinuteLatency) -> Row:
    measured = _stats_text(minute.stats)
    if minute.unanalysed:
        measured += f"  (+{minute.unanalysed} skipped or missing)"
    if minute.minute == 0:
        return Row(f"{camera} warm-up", measured + "  (before the load; not judged)")
    ok = None if minute.stats is None else minute.stats.p99_ms <= P99_LIMIT_MS
    return Row(
        f"{camera} capture→detection m{minute.minute}",
        measured,
        f"p99 ≤ {_s(P99_LIMIT_MS)}",
        _verdict(ok),
    )


# Where an analysed frame's capture→detection time went, in order.
BREAKDOWN_PARTS = (
    "capture→published",
    "published→started",
    "inference",
    "rest of detection",
    "after detection",
)


def _breakdown_row(
    camera: str, frames: list[FrameOutcome], timeline: Timeline
) -> tuple[Row, dict[str, Any]]:
    """p50 / p99 of each part for the frames of the load (not the warm-up) the live worker
    analysed: the camera producer (capture to its event on Kafka), the wait for the
    camera's lane, the detector's inference, the rest of the detection stage (blob fetch,
    decode, waiting for the detector) and what follows it (tracking, encoding,
    publishing)."""
    parts: dict[str, list[float]] = {name: [] for name in BREAKDOWN_PARTS}
    for frame in frames:
        if (
            frame.captured_ms < timeline.start_ms
            or frame.detected_ms is None
            or frame.published_ms is None
            or frame.queue_ms is None
            or frame.stage_ms is None
            or frame.inference_ms is None
        ):
            continue
        published = frame.published_ms - frame.captured_ms
        total = frame.detected_ms - frame.captured_ms
        values = (
            published,
            frame.queue_ms - published,
            frame.inference_ms,
            frame.stage_ms - frame.inference_ms,
            total - frame.queue_ms - frame.stage_ms,
        )
        for name, value in zip(BREAKDOWN_PARTS, values, strict=True):
            parts[name].append(value)
    stats = {name: LatencyStats.of(values) for name, values in parts.items()}
    text = "; ".join(
        f"{name} " + ("no data" if s is None else f"p50 {_s(s.p50_ms)} p99 {_s(s.p99_ms)}")
        for name, s in stats.items()
    )
    return Row(f"{camera} where the time went", text), {
        name: _stats_data(s) for name, s in stats.items()
    }


def _drift_row(camera: str, minutes: list[MinuteLatency]) -> tuple[Row, float | None]:
    judged = [m for m in minutes if m.minute > 0]
    first, last = judged[0].stats, judged[-1].stats
    target = f"last max ≤ first max + {_s(MAX_DRIFT_MS)}"
    if first is None or last is None:
        return Row(f"{camera} max drift", "no data", target, NO_DATA), None
    drift = last.max_ms - first.max_ms
    return (
        Row(
            f"{camera} max drift",
            f"m{judged[-1].minute} {_s(last.max_ms)} - m{judged[0].minute} "
            f"{_s(first.max_ms)} = {drift / 1000:+.2f} s",
            target,
            _verdict(drift <= MAX_DRIFT_MS),
        ),
        drift,
    )


def _balance_row(
    camera: str, frames: list[FrameOutcome], seen: Observations
) -> tuple[Row, dict[str, Any]]:
    skipped = Counter(frame.skipped for frame in frames if frame.skipped and not frame.detected_ms)
    analysed = sum(1 for frame in frames if frame.detected_ms is not None)
    unaccounted = sum(1 for frame in frames if frame.detected_ms is None and not frame.skipped)
    source = seen.sources.get(camera)
    balance: dict[str, Any] = {
        "captured": None if source is None else source.captured,
        "dropped": None if source is None else source.dropped,
        "published": None if source is None else source.published,
        "in_kafka": len(frames),
        "skipped_stale": skipped.get("stale", 0),
        "skipped_superseded": skipped.get("superseded", 0),
        "analysed": analysed,
        "unaccounted": unaccounted,
    }
    total_skipped = sum(skipped.values())
    target = "captured = dropped + skipped + analysed"
    if source is None:
        measured = (
            f"no camera status; in Kafka {len(frames)}, skipped {total_skipped}, "
            f"analysed {analysed}, unaccounted {unaccounted}"
        )
        return Row(f"{camera} frames", measured, target, NO_DATA), balance
    accounted = source.dropped + total_skipped + analysed
    measured = (
        f"captured {source.captured} vs dropped {source.dropped} + skipped {total_skipped} "
        f"(stale {balance['skipped_stale']}, superseded {balance['skipped_superseded']}) + "
        f"analysed {analysed} = {accounted}; published {source.published}, in Kafka "
        f"{len(frames)}, unaccounted {unaccounted}, lost at source "
        f"{source.captured - source.dropped - source.published}"
    )
    balance["balance"] = source.captured - accounted
    return Row(f"{camera} frames", measured, target, _verdict(source.captured == accounted)), (
        balance
    )


# uploads


def _latencies(uploads: Iterable[Upload], done: dict[str, int]) -> list[float]:
    return [
        done[upload.media_id] - upload.sent_ms
        for upload in uploads
        if upload.media_id is not None and upload.media_id in done
    ]


def _upload_rows(report: Report, timeline: Timeline, seen: Observations) -> None:
    documents = [u for u in seen.uploads if u.kind == "document"]
    images = [u for u in seen.uploads if u.kind == "image"]
    completed = {media_id: c.at_ms for media_id, c in seen.completions.items()}
    doc_ids = {u.media_id for u in documents if u.media_id}
    page_times = [at for media_id in doc_ids for at in seen.pages.get(media_id, {}).values()]
    per_minute_pages = counts_per_minute(page_times, timeline.start_ms, timeline.drain_end_ms)
    for first in range(0, max(1, len(per_minute_pages)), _MINUTES_PER_ROW):
        chunk = per_minute_pages[first : first + _MINUTES_PER_ROW]
        label = f"m{first + 1}-{first + len(chunk)}" if chunk else ""
        report.rows.append(
            Row(
                f"documents pages/min {label}".rstrip(),
                "  ".join(str(n) for n in chunk) if page_times else "no data",
            )
        )
    expected_pages = sum(seen.page_counts.get(media_id, 0) for media_id in doc_ids)
    active_min = ((max(page_times) - timeline.start_ms) / 60_000 if page_times else 0.0) or float(
        "nan"
    )
    report.rows.append(
        Row(
            "documents pages read",
            f"{len(page_times)} of {expected_pages} announced"
            + (f", {len(page_times) / active_min:.1f}/min until the last" if page_times else ""),
        )
    )
    last_page = {
        media_id: max(pages.values())
        for media_id, pages in seen.pages.items()
        if media_id in doc_ids and pages and len(pages) >= seen.page_counts.get(media_id, 1)
    }
    doc_done = LatencyStats.of(_latencies(documents, completed))
    doc_read = LatencyStats.of(_latencies(documents, last_page))
    image_done = LatencyStats.of(_latencies(images, completed))
    image_detected = LatencyStats.of(_latencies(images, seen.detections))
    accepted_docs = sum(1 for u in documents if u.media_id)
    accepted_images = sum(1 for u in images if u.media_id)
    report.rows += [
        Row(
            "documents upload→completed",
            f"{doc_done.count if doc_done else 0}/{accepted_docs}: {_stats_text(doc_done)}",
        ),
        Row(
            "documents upload→last page read",
            f"{doc_read.count if doc_read else 0}/{accepted_docs}: {_stats_text(doc_read)}",
        ),
        Row(
            "images upload→completed",
            f"{image_done.count if image_done else 0}/{accepted_images}: {_stats_text(image_done)}",
        ),
        Row(
            "images upload→detected",
            f"{image_detected.count if image_detected else 0}/{accepted_images}: "
            f"{_stats_text(image_detected)}",
        ),
    ]
    refused = [u for u in seen.uploads if u.media_id is None]
    ingest = LatencyStats.of(u.answered_ms - u.sent_ms for u in seen.uploads if u.media_id)
    report.rows.append(
        Row(
            "uploads accepted / refused",
            f"{len(seen.uploads) - len(refused)} / {len(refused)}; ingest call "
            f"{_stats_text(ingest)}"
            + (f"; first refusal: {refused[0].name}: {refused[0].error}" if refused else ""),
        )
    )
    report.data["uploads"] = {
        "documents": len(documents),
        "documents_accepted": accepted_docs,
        "images": len(images),
        "images_accepted": accepted_images,
        "refused": [asdict(u) for u in refused],
        "ingest_call": _stats_data(ingest),
        "document_upload_to_completed": _stats_data(doc_done),
        "document_upload_to_last_page": _stats_data(doc_read),
        "image_upload_to_completed": _stats_data(image_done),
        "image_upload_to_detected": _stats_data(image_detected),
        "pages_per_minute": per_minute_pages,
        "pages_read": len(page_times),
        "pages_announced": expected_pages,
    }


# completion and loss


def _loss_rows(report: Report, timeline: Timeline, seen: Observations) -> None:
    accepted = [u for u in seen.uploads if u.media_id is not None]
    missing = [u for u in accepted if u.media_id not in seen.completions]
    statuses = Counter(
        seen.completions[u.media_id].status for u in accepted if u.media_id in seen.completions
    )
    by_kind = ", ".join(
        f"{kind}s {sum(1 for u in accepted if u.kind == kind and u.media_id in seen.completions)}"
        f"/{sum(1 for u in accepted if u.kind == kind)}"
        for kind in ("document", "image")
    )
    report.rows.append(
        Row(
            "items completed by end of drain",
            f"{len(accepted) - len(missing)} of {len(accepted)} ({by_kind})"
            + (
                "; " + ", ".join(f"{status} {n}" for status, n in sorted(statuses.items()))
                if statuses
                else ""
            ),
            "every uploaded item",
            _verdict(None if not accepted else not missing),
        )
    )
    lost_frames = sum(1 for f in seen.frames if f.detected_ms is None and not f.skipped)
    lost_pages = 0
    for upload in accepted:
        if upload.kind == "document" and upload.media_id in seen.page_counts:
            expected = seen.page_counts[upload.media_id]
            lost_pages += max(0, expected - len(seen.pages.get(upload.media_id, {})))
    lost = len(missing) + lost_frames + lost_pages
    examples = ", ".join(f"{u.kind} {u.media_id}" for u in missing[:3])
    report.rows.append(
        Row(
            "events lost",
            f"{lost}: items without MediaCompleted {len(missing)}, camera frames without "
            f"result {lost_frames}, pages without text {lost_pages}"
            + (f" (e.g. {examples})" if examples else ""),
            "0",
            _verdict(lost == 0),
        )
    )
    report.rows.append(
        Row(
            "drain after the load",
            f"{(timeline.drain_end_ms - timeline.load_end_ms) / 1000:.0f} s "
            f"({timeline.drain_end_reason})",
        )
    )
    report.data["completion"] = {
        "accepted": len(accepted),
        "completed": len(accepted) - len(missing),
        "statuses": dict(statuses),
        "missing": [u.media_id for u in missing],
        "lost_frames": lost_frames,
        "lost_pages": lost_pages,
        "lost": lost,
        "drain_s": (timeline.drain_end_ms - timeline.load_end_ms) / 1000,
    }


# processes


def _mb(value: float | None) -> str:
    return "?" if value is None else f"{value:.0f} MB"


def _process_rows(report: Report, seen: Observations) -> None:
    processes: list[dict[str, Any]] = []
    for record in seen.processes:
        growth = growth_percent(record.rss_baseline_mb, record.rss_end_mb)
        pids = ",".join(str(pid) for pid in record.pids) or "?"
        exits = ",".join(str(code) for code in record.exits)
        measured = (
            f"pid {pids}; restarts {record.restarts}, crashes {record.crashes}"
            + (f" (exits {exits})" if exits else "")
            + ("; vanished" if record.vanished else "")
            + f"; RSS m2 {_mb(record.rss_baseline_mb)} → end {_mb(record.rss_end_mb)}"
            + ("" if growth is None else f" ({growth:+.1f} %)")
            + f", peak {_mb(record.rss_peak_mb)}"
        )
        if not record.same_pid_for_rss:
            measured += " (restarted in between: growth not comparable)"
            rss_ok: bool | None = True
        else:
            rss_ok = None if growth is None else growth <= RSS_GROWTH_LIMIT_PERCENT
        ok = False if record.crashes else rss_ok
        report.rows.append(
            Row(
                f"process {record.role}",
                measured,
                f"0 crashes, RSS ≤ +{RSS_GROWTH_LIMIT_PERCENT:.0f} %",
                _verdict(ok),
            )
        )
        processes.append({**asdict(record), "rss_growth_percent": growth})
    crashes = sum(record.crashes for record in seen.processes)
    restarts = sum(record.restarts for record in seen.processes)
    report.rows.append(
        Row(
            "process crashes (restarts)",
            f"{crashes} ({restarts})",
            "0 crashes",
            _verdict(None if not seen.processes else crashes == 0),
        )
    )
    report.data["processes"] = processes


def render(report: Report) -> str:
    """The table as text, one row per figure: the verdict and the target before the
    measured figures, which come last because they are the longest."""
    header = Row("what", "measured", "target", "result")
    rows = [header, *report.rows]
    what = max(len(row.what) for row in rows)
    result = max(len(row.result) for row in rows)
    target = max(len(row.target) for row in rows)
    lines = [report.title]
    for index, row in enumerate(rows):
        lines.append(
            f"{row.what:<{what}}  {row.result:<{result}}  {row.target:<{target}}  "
            f"{row.measured}".rstrip()
        )
        if index == 0:
            lines.append("-" * (what + result + target + 6 + len("measured")))
    failed = [row for row in report.judged if row.result != PASS]
    lines.append(
        "ALL TARGETS MET"
        if report.passed
        else f"{len(failed)} of {len(report.judged)} targets not met"
    )
    return "\n".join(lines)
