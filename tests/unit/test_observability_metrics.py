"""The processors' metrics facade: each call moves the right series, read back from a registry."""

from __future__ import annotations

import time

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from visionlog.errors import OutageError, PermanentError
from visionlog.observability.metrics import ProcessorMetrics
from visionlog.stream.retry import RetryPolicy, call_with_retries


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_stage_duration_lands_in_its_worker_stage_and_outcome(registry: CollectorRegistry) -> None:
    metrics = ProcessorMetrics("live", registry)
    metrics.stage_finished("detect", "done", 0.042)
    metrics.stage_finished("detect", "done", 0.3)
    metrics.stage_finished("detect", "failed", 1.2)

    name = "visionlog_processor_stage_duration_seconds"
    done = {"worker": "live", "stage": "detect", "outcome": "done"}
    assert _value(registry, f"{name}_count", **done) == 2
    assert _value(registry, f"{name}_sum", **done) == pytest.approx(0.342)
    assert _value(registry, f"{name}_bucket", **done, le="0.05") == 1
    assert _value(registry, f"{name}_bucket", **done, le="0.4") == 2
    failed = {"worker": "live", "stage": "detect", "outcome": "failed"}
    assert _value(registry, f"{name}_count", **failed) == 1
    # Buckets reach OCR pages of a minute and more.
    assert _value(registry, f"{name}_bucket", **failed, le="120.0") == 1


def test_stage_timer_records_done_failed_or_the_outcome_set(registry: CollectorRegistry) -> None:
    metrics = ProcessorMetrics("document", registry)
    with metrics.stage_timer("ocr") as timer:
        time.sleep(0.01)
    assert timer.seconds >= 0.01
    with pytest.raises(RuntimeError), metrics.stage_timer("ocr"):
        raise RuntimeError("engine crashed")
    with metrics.stage_timer("barcodes") as skipped:
        skipped.outcome = "not_applicable"

    name = "visionlog_processor_stage_duration_seconds_count"
    assert _value(registry, name, worker="document", stage="ocr", outcome="done") == 1
    assert _value(registry, name, worker="document", stage="ocr", outcome="failed") == 1
    labels = {"worker": "document", "stage": "barcodes", "outcome": "not_applicable"}
    assert _value(registry, name, **labels) == 1


def test_queue_age_from_publication_or_capture(registry: CollectorRegistry) -> None:
    metrics = ProcessorMetrics("live", registry)
    now = 1_700_000_000.0
    assert metrics.queue_age("media.frames", int((now - 0.120) * 1000), now_s=now) == (
        pytest.approx(0.120, abs=1e-3)
    )
    # A producer whose clock runs ahead gives no negative age.
    assert metrics.queue_age("media.frames", int((now + 5) * 1000), now_s=now) == 0.0
    # Unknown publication time: nothing recorded.
    assert metrics.queue_age("media.frames", 0, now_s=now) == 0.0

    name = "visionlog_processor_queue_age_seconds"
    labels = {"worker": "live", "topic": "media.frames"}
    assert _value(registry, f"{name}_count", **labels) == 2
    assert _value(registry, f"{name}_bucket", **labels, le="0.1") == 1
    assert _value(registry, f"{name}_bucket", **labels, le="0.25") == 2


def test_queue_age_uses_the_wall_clock(registry: CollectorRegistry) -> None:
    metrics = ProcessorMetrics("vision", registry, clock=lambda: 100.0)
    assert metrics.queue_age("media", 97_500) == pytest.approx(2.5)


def test_items_dead_letters_and_skipped_frames(registry: CollectorRegistry) -> None:
    metrics = ProcessorMetrics("live", registry)
    metrics.item("FrameCaptured", "done")
    metrics.item("FrameCaptured", "done")
    metrics.item("FrameCaptured", "skipped")
    metrics.dead_lettered("anonymise")
    metrics.dead_lettered("render", count=3)
    metrics.frame_skipped("detect", "stale")
    metrics.frame_skipped("detect", "superseded")
    metrics.frame_skipped("detect", "superseded")

    items = "visionlog_processor_items_total"
    assert _value(registry, items, worker="live", event_type="FrameCaptured", outcome="done") == 2
    labels = {"worker": "live", "event_type": "FrameCaptured", "outcome": "skipped"}
    assert _value(registry, items, **labels) == 1
    dead = "visionlog_processor_dead_letters_total"
    assert _value(registry, dead, worker="live", stage="anonymise") == 1
    assert _value(registry, dead, worker="live", stage="render") == 3
    skipped = "visionlog_processor_skipped_frames_total"
    assert _value(registry, skipped, worker="live", stage="detect", reason="stale") == 1
    assert _value(registry, skipped, worker="live", stage="detect", reason="superseded") == 2


def test_retry_hook_counts_retries_by_disposition(registry: CollectorRegistry) -> None:
    metrics = ProcessorMetrics("vision", registry)
    failures = [OutageError("minio down"), OutageError("minio down"), RuntimeError("race")]

    def flaky() -> str:
        if failures:
            raise failures.pop(0)
        return "ok"

    policy = RetryPolicy(max_attempts=5, backoff_s=0.0, outage_deadline_s=60)
    result = call_with_retries(
        flaky, policy, sleep=lambda _s: None, on_retry=metrics.retry_hook("detect")
    )
    assert result.ok and result.attempts == 4
    permanent = call_with_retries(
        lambda: (_ for _ in ()).throw(PermanentError("corrupt")),
        policy,
        sleep=lambda _s: None,
        on_retry=metrics.retry_hook("detect"),
    )
    assert not permanent.ok

    name = "visionlog_processor_retries_total"
    assert _value(registry, name, worker="vision", stage="detect", disposition="outage") == 2
    assert _value(registry, name, worker="vision", stage="detect", disposition="transient") == 1
    # A permanent failure is never retried, so never counted here.
    assert _value(registry, name, worker="vision", stage="detect", disposition="permanent") is None


def test_in_flight_gauge_follows_the_block(registry: CollectorRegistry) -> None:
    metrics = ProcessorMetrics("document", registry)
    name = "visionlog_processor_in_flight_messages"
    with metrics.in_flight(), metrics.in_flight():
        assert _value(registry, name, worker="document") == 2
    with pytest.raises(ValueError), metrics.in_flight():
        raise ValueError("stage failed")
    assert _value(registry, name, worker="document") == 0


def test_frame_analysed_records_latency_and_the_cameras_latest(
    registry: CollectorRegistry,
) -> None:
    metrics = ProcessorMetrics("live", registry)
    assert metrics.frame_analysed("cam-1", 10_000, now_s=10.4) == pytest.approx(0.4)
    metrics.frame_analysed("cam-1", 11_000, now_s=11.15)
    metrics.frame_analysed("cam-2", 11_000, now_s=12.0)

    gauge = "visionlog_processor_camera_latency_seconds"
    assert _value(registry, gauge, worker="live", camera_id="cam-1") == pytest.approx(0.15)
    assert _value(registry, gauge, worker="live", camera_id="cam-2") == pytest.approx(1.0)
    hist = "visionlog_processor_live_latency_seconds"
    assert _value(registry, f"{hist}_count", worker="live") == 3
    assert _value(registry, f"{hist}_bucket", worker="live", le="0.5") == 2
    assert _value(registry, f"{hist}_bucket", worker="live", le="1.0") == 3

    metrics.forget_camera("cam-2")
    assert _value(registry, gauge, worker="live", camera_id="cam-2") is None
    assert _value(registry, gauge, worker="live", camera_id="cam-1") is not None
    metrics.forget_camera("cam-never-seen")  # no error


def test_facades_of_several_workers_share_one_set_of_families(
    registry: CollectorRegistry,
) -> None:
    live, vision = ProcessorMetrics("live", registry), ProcessorMetrics("vision", registry)
    live.item("FrameCaptured", "done")
    vision.item("FrameCaptured", "done")
    ProcessorMetrics("live", registry).item("FrameCaptured", "done")  # a second facade, no clash

    name = "visionlog_processor_items_total"
    assert _value(registry, name, worker="live", event_type="FrameCaptured", outcome="done") == 2
    assert _value(registry, name, worker="vision", event_type="FrameCaptured", outcome="done") == 1
    text = generate_latest(registry).decode()
    assert text.count("# TYPE visionlog_processor_items_total counter") == 1


def test_default_registry_facades_can_be_made_twice() -> None:
    from prometheus_client import REGISTRY

    ProcessorMetrics("test-default").item("MediaUploaded", "done")
    ProcessorMetrics("test-default").item("MediaUploaded", "done")
    labels = {"worker": "test-default", "event_type": "MediaUploaded", "outcome": "done"}
    assert REGISTRY.get_sample_value("visionlog_processor_items_total", labels) == 2


def test_hot_path_calls_are_cheap(registry: CollectorRegistry) -> None:
    metrics = ProcessorMetrics("live", registry)
    calls = 20_000
    started = time.perf_counter()
    for _ in range(calls):
        metrics.stage_finished("detect", "done", 0.02)
        metrics.item("FrameCaptured", "done")
    per_pair_us = (time.perf_counter() - started) / calls * 1e6
    # A few microseconds on this machine; the bound leaves room for a loaded CI box.
    assert per_pair_us < 50, per_pair_us


def test_prime_shows_the_workers_series_at_zero_before_any_input(
    registry: CollectorRegistry,
) -> None:
    metrics = ProcessorMetrics("live", registry)
    assert _value(registry, "visionlog_processor_live_latency_seconds_count", worker="live") is None
    metrics.prime(
        stages=["detect"],
        event_types=["FrameCaptured"],
        topics=["media.frames"],
        live_stages=["detect"],
    )
    zero = {
        "visionlog_processor_stage_duration_seconds_count": {"stage": "detect", "outcome": "done"},
        "visionlog_processor_retries_total": {"stage": "detect", "disposition": "outage"},
        "visionlog_processor_dead_letters_total": {"stage": "detect"},
        "visionlog_processor_items_total": {"event_type": "FrameCaptured", "outcome": "failed"},
        "visionlog_processor_queue_age_seconds_count": {"topic": "media.frames"},
        "visionlog_processor_skipped_frames_total": {"stage": "detect", "reason": "stale"},
        "visionlog_processor_live_latency_seconds_count": {},
        "visionlog_processor_in_flight_messages": {},
    }
    for name, labels in zero.items():
        assert _value(registry, name, worker="live", **labels) == 0, name
    # Priming then counting: the primed series is the one that moves.
    metrics.dead_lettered("detect")
    assert (
        _value(registry, "visionlog_processor_dead_letters_total", worker="live", stage="detect")
        == 1
    )
