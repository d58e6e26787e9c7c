"""API latency under 50 concurrent clients, next to the same queries sent to the stores.

Needs the platform running (`visionlog run`). For each query it measures, in one run,
- the API: N requests from C concurrent clients (httpx, keep-alive) with a bearer token,
- direct: the equivalent SQL on PostgreSQL from C threads, one connection each,
and prints p50 / p99 latency and throughput, and the API / direct ratios.

Run: .venv/bin/python -m bench.api_latency [--clients 50] [--requests 1000]

The clients here are Python; `bench/api_wrk.py` measures with wrk and pgbench instead, and
sends PostgreSQL the statements the API's routes actually run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import threading
import time
from collections.abc import Callable

import httpx
from psycopg import sql

from stack.mainjob import admin_credentials, login
from stack.platform import api_base_url
from visionlog.settings import Settings, get_settings
from visionlog.stores import postgres_connect

QUERIES: dict[str, tuple[str, str, tuple[object, ...]]] = {
    "media list": (
        "/v1/media?limit=20",
        "SELECT * FROM {s}.media ORDER BY uploaded_at DESC LIMIT 20",
        (),
    ),
    "full-text search": (
        "/v1/search/text?q=invoice&lang=en",
        "SELECT media_id, ts_rank(tsv_english, q) AS rank FROM {s}.text_results, "
        "websearch_to_tsquery('english', %s) q WHERE tsv_english @@ q ORDER BY rank DESC LIMIT 20",
        ("invoice",),
    ),
    "detections": (
        "/v1/detections?class_name=person&min_confidence=0.5&limit=50",
        "SELECT * FROM {s}.detections WHERE class_name = %s AND confidence >= %s "
        "ORDER BY observed_at DESC LIMIT 50",
        ("person", 0.5),
    ),
}


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def api_run(
    settings: Settings, token: str, path: str, clients: int, total: int
) -> list[float]:
    latencies: list[float] = []
    counter = iter(range(total))
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(
        base_url=api_base_url(settings), headers=headers, limits=limits, timeout=60
    ) as client:

        async def worker() -> None:
            for _ in counter:
                started = time.perf_counter()
                response = await client.get(path)
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    raise RuntimeError(f"{path}: {response.status_code} {response.text[:200]}")

        await asyncio.gather(*(worker() for _ in range(clients)))
    return latencies


def direct_run(
    settings: Settings, query: str, params: tuple[object, ...], clients: int, total: int
) -> list[float]:
    latencies: list[float] = []
    lock = threading.Lock()
    remaining = [total]
    statement = sql.SQL(query.replace("{s}", "{schema}")).format(
        schema=sql.Identifier(settings.projections.postgres_schema)
    )

    def take() -> bool:
        with lock:
            if remaining[0] <= 0:
                return False
            remaining[0] -= 1
            return True

    def worker() -> None:
        with postgres_connect(settings, autocommit=True) as conn:
            while take():
                started = time.perf_counter()
                conn.execute(statement, params).fetchall()
                with lock:
                    latencies.append(time.perf_counter() - started)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies


def timed(run: Callable[..., list[float]], *args: object) -> tuple[list[float], float]:
    started = time.perf_counter()
    latencies = run(*args)
    return latencies, time.perf_counter() - started


def api_sync(settings: Settings, token: str, path: str, clients: int, total: int) -> list[float]:
    return asyncio.run(api_run(settings, token, path, clients, total))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=1000)
    args = parser.parse_args()
    settings = get_settings()
    username, password, _ = admin_credentials(settings)
    if password is None:
        raise SystemExit("no admin password: run `visionlog run` first")
    token = login(settings, username, password)
    print(f"{args.clients} clients, {args.requests} requests per query")
    print("query             path    p50 ms  p99 ms   req/s   p99 API/direct")
    for name, (path, query, params) in QUERIES.items():
        api, api_s = timed(api_sync, settings, token, path, args.clients, args.requests)
        direct, direct_s = timed(direct_run, settings, query, params, args.clients, args.requests)
        ratio = percentile(api, 0.99) / percentile(direct, 0.99)
        for label, samples, seconds in (("api", api, api_s), ("direct", direct, direct_s)):
            print(
                f"{name:17} {label:6} {1000 * statistics.median(samples):7.1f} "
                f"{1000 * percentile(samples, 0.99):7.1f} {len(samples) / seconds:7.0f}"
                + (f"   {ratio:.1f}" if label == "direct" else "")
            )


if __name__ == "__main__":
    main()
