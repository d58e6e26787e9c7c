"""Probe endpoints of the platform's long-running processes, started for real.

Each process gets `VISIONLOG_HEALTH__PORT` as Kubernetes would set it, and must answer
/readyz, /healthz and /metrics while it runs, then stop cleanly on SIGTERM.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

from producers.cameras import camera_media_id
from projections.postgres.projection import PostgresProjection
from tests.integration.processors.workers import Workers
from tests.integration.projections.conftest import TopicsUnderTest
from tests.ports import free_port, free_port_pair
from visionlog.blobstore import PROCESSED, BlobStore
from visionlog.settings import Settings


def wait_until_ready(
    port: int, process: subprocess.Popen[bytes], workers: Workers, timeout: float = 180
) -> httpx.Response:
    """Polls /readyz until it answers 200; fails early when a process exits."""
    url = f"http://127.0.0.1:{port}/readyz"
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        workers.assert_running()
        try:
            answer = httpx.get(url, timeout=5.0)
        except httpx.TransportError as exc:
            last = f"{type(exc).__name__}: {exc}"
        else:
            if answer.status_code == 200:
                return answer
            # Not ready yet: 503 with the reason, never anything else.
            assert answer.status_code == 503, answer.text
            assert answer.json()["status"] == "not_ready"
            last = answer.text
        time.sleep(0.5)
    raise AssertionError(
        f"{process.args!r} not ready on {port} within {timeout}s ({last})\n{workers.logs()[-4000:]}"
    )


def assert_live_with_metrics(port: int, metric: str) -> None:
    base = f"http://127.0.0.1:{port}"
    live = httpx.get(f"{base}/healthz", timeout=5.0)
    assert (live.status_code, live.json()) == (200, {"status": "ok"})
    metrics = httpx.get(f"{base}/metrics", timeout=5.0)
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    assert metric in metrics.text
    assert httpx.get(f"{base}/nope", timeout=5.0).status_code == 404


def write_looping_clip(path: Path) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, (64, 48))
    for shade in range(0, 250, 25):
        writer.write(np.full((48, 64, 3), shade, dtype=np.uint8))
    writer.release()


@pytest.mark.timeout(420)
def test_every_long_running_process_answers_its_probes(
    topics_under_test: TopicsUnderTest, pg_schema: Settings, unique_name: str, tmp_path: Path
) -> None:
    settings = pg_schema.model_copy(update={"kafka": topics_under_test.settings.kafka})
    # The schema exists before the projections process starts (as the migrate Job does).
    PostgresProjection(settings).close()
    clip = tmp_path / "loop.avi"
    write_looping_clip(clip)
    camera_set = tmp_path / "cameras.json"
    camera_set.write_text(
        json.dumps({"cameras": [{"name": "door", "url": str(clip), "target_fps": 2}]})
    )
    ports = {name: free_port() for name in ("worker", "projections", "replay", "cameras")}
    workers = Workers(topics_under_test, tmp_path)
    try:
        processes = {
            "worker": workers.start(
                "processors", "worker", "outputs", HEALTH__PORT=str(ports["worker"])
            ),
            "projections": workers.start(
                "projections", "run", "postgres", "mongo",
                PROJECTIONS__POSTGRES_SCHEMA=settings.projections.postgres_schema,
                MONGO__DATABASE=unique_name,
                # Kubernetes turns the loopback metrics port off; /metrics moves to the probes.
                PROJECTIONS__METRICS_PORT="0",
                HEALTH__PORT=str(ports["projections"]),
            ),
            "replay": workers.start("replay", "worker", HEALTH__PORT=str(ports["replay"])),
            "cameras": workers.start(
                "cameras", "run", str(camera_set),
                TENANT_ID=unique_name,
                HEALTH__PORT=str(ports["cameras"]),
            ),
        }  # fmt: skip
        for name, process in processes.items():
            ready = wait_until_ready(ports[name], process, workers).json()
            if name == "projections":
                # Ready shows each projection's lag (at most the configured limit) and restarts.
                assert ready["restarts"] == {"postgres": 0, "mongo": 0}
                assert set(ready["lag"]) == {"postgres", "mongo"}
                limit = settings.projections.ready_max_lag
                assert all(lag is None or 0 <= lag <= limit for lag in ready["lag"].values())
                ready = {"status": ready["status"]}
            assert ready == {"status": "ready"}
        # Each process's own metrics next to the default process metrics.
        assert_live_with_metrics(ports["worker"], "process_resident_memory_bytes")
        assert_live_with_metrics(ports["projections"], "visionlog_projection_lag_messages")
        assert_live_with_metrics(ports["replay"], "process_resident_memory_bytes")
        assert_live_with_metrics(ports["cameras"], "process_resident_memory_bytes")
    finally:
        codes = workers.stop()
        blobs = BlobStore.from_settings(settings.minio)
        prefix = f"{camera_media_id(unique_name, 'door')}/"
        for stored in blobs.client.list_objects(PROCESSED, prefix=prefix, recursive=True):
            blobs.delete(PROCESSED, stored.object_name)
    assert codes == [0, 0, 0, 0], workers.logs()[-4000:]
    # The probe servers went away with their processes.
    for port in ports.values():
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2.0)


@pytest.mark.timeout(300)
def test_the_supervisor_gives_each_worker_its_own_health_port(
    topics_under_test: TopicsUnderTest, tmp_path: Path
) -> None:
    base = free_port_pair()
    workers = Workers(topics_under_test, tmp_path)
    try:
        supervisor = workers.start("processors", "run", "outputs", "vision", HEALTH__PORT=str(base))
        # Kinds in the order given: outputs on base, vision on base + 1.
        for port in (base, base + 1):
            wait_until_ready(port, supervisor, workers)
            assert_live_with_metrics(port, "process_resident_memory_bytes")
    finally:
        codes = workers.stop()
    assert codes == [0], workers.logs()[-4000:]
