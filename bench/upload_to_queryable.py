"""Upload → queryable latency on an idle platform, next to the direct inference time of the
same image.

Needs the platform running (`visionlog run`). Uploads N copies of the sample street photo
(each re-encoded with a different quality, so every upload is new content) through the
API, one at a time, and measures the time until its detections can be queried in
PostgreSQL; the next upload waits until the previous item has completed (the platform is
idle again). In the same run it times the detector called directly on the same decoded
image. The difference is the cost of everything between the client and the read model:
upload checks, MinIO, Kafka, the worker's decode, the projection's transaction.

Run: .venv/bin/python -m bench.upload_to_queryable [--uploads 10]
"""

from __future__ import annotations

import argparse
import statistics
import time

import cv2
import httpx
import numpy as np
from psycopg import sql

from processors.bindings import worker_kind
from processors.engines import Engines
from processors.modelstore import load
from processors.worker import kind_settings
from stack.mainjob import admin_credentials, login
from stack.platform import api_base_url
from visionlog.settings import get_settings
from visionlog.stores import postgres_connect


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uploads", type=int, default=10)
    args = parser.parse_args()
    settings = get_settings()
    username, password, _ = admin_credentials(settings)
    if password is None:
        raise SystemExit("no admin password: run `visionlog run` first")
    token = login(settings, username, password)
    read = cv2.imread(str(load("sample-photos", settings).path("bus.jpg")), cv2.IMREAD_COLOR)
    if read is None:
        raise SystemExit("the sample photo does not decode")
    image = np.asarray(read, np.uint8)
    # The engine as the worker that detects uploads (the live worker) configures it.
    engine = Engines(kind_settings(worker_kind("live"), settings)).detector()
    threshold = settings.processors.detection_score_threshold
    engine.detect_timed(image, threshold)  # compile and warm up
    query = sql.SQL("SELECT 1 FROM {} WHERE media_id = %s LIMIT 1").format(
        sql.Identifier(settings.projections.postgres_schema, "detections")
    )
    finished = sql.SQL("SELECT 1 FROM {} WHERE media_id = %s AND status = ANY(%s)").format(
        sql.Identifier(settings.projections.postgres_schema, "media")
    )
    final = ["completed", "completed_with_errors", "failed"]
    latencies: list[float] = []
    direct: list[float] = []
    headers = {"Authorization": f"Bearer {token}"}
    with (
        httpx.Client(base_url=api_base_url(settings), headers=headers, timeout=120) as client,
        postgres_connect(settings, autocommit=True) as conn,
    ):
        for index in range(args.uploads):
            ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95 - index])
            assert ok
            started = time.perf_counter()
            response = client.post(
                "/v1/ingest",
                files={"file": (f"bench-{index}.jpg", encoded.tobytes(), "image/jpeg")},
                data={"profile": "vision"},
            )
            if response.status_code != 202:
                raise SystemExit(f"upload failed: {response.status_code} {response.text}")
            media_id = response.json()["media_id"]
            while not conn.execute(query, (media_id,)).fetchall():
                if time.perf_counter() - started > 300:
                    raise SystemExit(f"{media_id} not queryable after 300 s")
                time.sleep(0.02)
            latencies.append(time.perf_counter() - started)
            # Idle again before the next upload: everything else the item asks is done.
            while not conn.execute(finished, (media_id, final)).fetchall():
                if time.perf_counter() - started > 600:
                    raise SystemExit(f"{media_id} not completed after 600 s")
                time.sleep(0.05)
            time.sleep(0.5)
            decoded = np.asarray(
                cv2.imdecode(np.frombuffer(encoded.tobytes(), np.uint8), cv2.IMREAD_COLOR), np.uint8
            )
            began = time.perf_counter()
            engine.detect(decoded, threshold)
            direct.append(time.perf_counter() - began)
    median_latency, median_direct = statistics.median(latencies), statistics.median(direct)
    p99 = sorted(latencies)[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))]
    p99_direct = sorted(direct)[min(len(direct) - 1, round(0.99 * (len(direct) - 1)))]
    print(f"{args.uploads} uploads of {image.shape[1]}x{image.shape[0]} JPEGs, one at a time")
    print(
        f"upload -> queryable: p50 {median_latency * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
        f"max {max(latencies) * 1000:.0f} ms"
    )
    print(f"direct detection:    p50 {median_direct * 1000:.0f} ms, p99 {p99_direct * 1000:.0f} ms")
    print(
        f"added by the platform: p50 +{(median_latency - median_direct) * 1000:.0f} ms, "
        f"p99 +{(p99 - p99_direct) * 1000:.0f} ms (targets +50 ms, +200 ms); "
        f"ratio (p50) {median_latency / median_direct:.1f}"
    )


if __name__ == "__main__":
    main()
