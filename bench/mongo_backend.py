"""FerretDB's SQLite backend against its PostgreSQL backend, under the MongoDB projection.

Starts FerretDB servers of its own (the stack's binary, on free loopback ports, state in a
temporary directory): one on the SQLite handler and one on the PostgreSQL handler, the
latter on a database of its own created on the stack's PostgreSQL and dropped at the end.
The stack's own servers are only used, never stopped. It publishes one synthetic log under
a topic prefix of its own (uploads, detections, OCR text, embeddings, work reports,
progress, completions), then for each backend and bulk-write chunk size runs the real
`MongoProjection` through `ProjectionRunner.catch_up` into a fresh generation, measuring
- events/s and wall time of the projection,
- CPU seconds of the FerretDB process (/proc/<pid>/stat) and, for the PostgreSQL handler,
  of the PostgreSQL backends serving FerretDB's connections (they do the storage work the
  SQLite handler does inside FerretDB), and FerretDB's peak RSS,
then times the API's reads (a media item by id; the results of a media id, sorted as the
API sorts them; a page of recent media; an unindexed $regex text match) on each backend.
Runs are interleaved (sqlite, pg, sqlite, pg, ...) so a noisy host hurts both alike.

Run: .venv/bin/python bench/mongo_backend.py [--media 1000] [--chunks 50,20,200] [--json]
(the local stack must be up: `visionlog stack up`)
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

if __package__ in (None, ""):  # run as a file: make `tests` and `projections` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import numpy as np
import psycopg
from psycopg import sql
from pydantic import SecretStr

import projections.mongo.projection as mongo_projection
from projections.mongo.projection import MongoProjection
from projections.runtime import ProjectionRunner
from stack.services.gobuilt import FerretDBService
from tests.factories import sample_event
from tests.processor_factories import blob, detections_event, item, text_event
from tests.unit.projections.completion_events import (
    event_processed,
    media_completed,
    media_progressed,
)
from visionlog.codec import AvroCodec
from visionlog.kafka import EventPublisher, admin_client
from visionlog.registry import HttpSchemaRegistry
from visionlog.schemas import get_catalog
from visionlog.settings import Settings, get_settings
from visionlog.stores import mongo_client
from visionlog.topics import CATALOGUE, apply_catalogue, full_topic_name

Backend = Literal["sqlite", "postgresql"]
BACKENDS: tuple[Backend, ...] = ("sqlite", "postgresql")
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
TENANT = "tests"  # what the sample factories stamp on every envelope


# ------------------------------------------------------------------------- the log


def publish_log(
    settings: Settings, codec: AvroCodec, media: int, boxes: int
) -> tuple[Counter[str], list[str]]:
    """Per media item: upload, detections, OCR text, an embedding, three work reports, three
    progress events and the completion. Returns the events per type and the media ids."""
    publisher = EventPublisher(settings.kafka, codec)
    rng = np.random.default_rng(7)
    counts: Counter[str] = Counter()
    media_ids: list[str] = []

    def publish(event_type: str, record: dict[str, Any]) -> None:
        publisher.publish(event_type, record)
        counts[event_type] += 1

    for index in range(media):
        media_id = str(uuid.uuid4())
        media_ids.append(media_id)
        uploaded = sample_event(get_catalog(), "MediaUploaded", media_id=media_id)
        uploaded["media_kind"] = "IMAGE"
        publish("MediaUploaded", uploaded)
        ref = item(media_id, image=blob(f"{media_id}.jpg", sha256=f"{index:064x}"))
        found: list[tuple[str, float, tuple[float, float, float, float], float | None]] = [
            ("person", 0.5 + 0.4 * float(rng.random()), (10.0 * b, 20.0, 10.0 * b + 40, 120.0), 4.0)
            for b in range(boxes)
        ]
        publish("ObjectsDetected", detections_event(media_id, ref, found, seconds=2))
        words = [
            (word, (60.0 * n, 10.0, 60.0 * n + 50, 30.0))
            for n, word in enumerate(f"Rechnung {index} für die Straßenbahn".split())
        ]
        publish("TextRecognized", text_event(media_id, ref, [[words]], seconds=3))
        embedding = sample_event(get_catalog(), "EmbeddingComputed", media_id=media_id)
        embedding["item"] = ref
        embedding["target"] = "IMAGE"
        embedding["target_index"] = None
        embedding["vector"] = [float(v) for v in rng.standard_normal(128)]
        publish("EmbeddingComputed", embedding)
        for step, stage in enumerate(("detection", "ocr", "embedding")):
            publish(
                "EventProcessed",
                event_processed(media_id, None, [(stage, "DONE", None)], seconds=4 + step),
            )
            publish(
                "MediaProgressed",
                media_progressed(
                    media_id,
                    100.0 * (step + 1) / 3,
                    completed=step + 1,
                    expected=3,
                    seconds=5 + step,
                ),
            )
        publish("MediaCompleted", media_completed(media_id, seconds=10))
    publisher.flush()
    return counts, media_ids


# ------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class FerretServer:
    backend: Backend
    process: subprocess.Popen[bytes]
    port: int
    debug_port: int
    log_path: Path
    pg_database: str | None = None

    @property
    def uri(self) -> str:
        # A server that never answers (see pg_url) fails the run instead of hanging it.
        return f"mongodb://127.0.0.1:{self.port}/?socketTimeoutMS=300000"

    def ready(self) -> bool:
        try:
            answer = httpx.get(f"http://127.0.0.1:{self.debug_port}/debug/readyz", timeout=2.0)
        except httpx.HTTPError:
            return False
        return answer.status_code == 200


def pg_url(settings: Settings, database: str, pool_max_conns: int | None) -> str:
    pg = settings.postgres
    password = quote(pg.password.get_secret_value(), safe="")
    url = f"postgres://{quote(pg.user, safe='')}:{password}@{pg.host}:{pg.port}/{database}"
    # FerretDB's default pool is 50 connections. An update command holds one connection per
    # update until the whole command ends (handler/msg_update.go defers every query
    # iterator's Close to the end of the command), so a bulk write of about 50 or more
    # updates waits for a connection forever.
    return url if pool_max_conns is None else f"{url}?pool_max_conns={pool_max_conns}"


def start_ferretdb(
    binary: Path,
    backend: Backend,
    workdir: Path,
    settings: Settings,
    pg_database: str | None,
    pool_max_conns: int | None = None,
) -> FerretServer:
    state = workdir / backend
    (state / "data").mkdir(parents=True)
    port, debug_port = free_port(), free_port()
    argv = [
        str(binary),
        f"--handler={backend}",
        f"--state-dir={state}",
        f"--listen-addr=127.0.0.1:{port}",
        f"--debug-addr=127.0.0.1:{debug_port}",
        "--telemetry=disable",
        "--log-level=warn",
    ]
    env = dict(os.environ)
    if backend == "sqlite":
        argv.append(f"--sqlite-url=file:{state / 'data'}/")
    else:
        assert pg_database is not None
        # In the environment, so the password is not on the command line.
        env["FERRETDB_POSTGRESQL_URL"] = pg_url(settings, pg_database, pool_max_conns)
    log_path = state / "ferretdb.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            argv, stdout=log_file, stderr=subprocess.STDOUT, env=env, cwd=state
        )
    server = FerretServer(backend, process, port, debug_port, log_path, pg_database)
    deadline = time.monotonic() + 60
    while not server.ready():
        if process.poll() is not None or time.monotonic() > deadline:
            stop_ferretdb(server)
            raise RuntimeError(
                f"FerretDB ({backend}) did not become ready:\n{log_path.read_text()[-2000:]}"
            )
        time.sleep(0.2)
    return server


def stop_ferretdb(server: FerretServer) -> None:
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


# ------------------------------------------------------------------------- CPU and memory


def proc_cpu_s(pid: int) -> float | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after the ")" that closes the command name; utime and stime are 14 and 15.
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_rss_mb(pid: int) -> float | None:
    try:
        resident = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return resident * PAGE_SIZE / 2**20


class ResourceSampler:
    """CPU and peak RSS of the FerretDB process and, for the PostgreSQL handler, the CPU of
    the PostgreSQL backends connected to its database (sampled, since pooled connections
    may come and go; a backend first seen mid-run counts from zero)."""

    def __init__(self, server: FerretServer, settings: Settings, interval_s: float = 0.25) -> None:
        self.server = server
        self.settings = settings
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._pg_first: dict[int, float] = {}
        self._pg_last: dict[int, float] = {}
        self._pg_conn: psycopg.Connection[Any] | None = None
        self.peak_rss_mb = 0.0
        self._cpu_start = 0.0
        self.ferret_cpu_s = 0.0

    def _backend_pids(self) -> list[int]:
        if self._pg_conn is None:
            return []
        rows = self._pg_conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s", (self.server.pg_database,)
        ).fetchall()
        return [int(row[0]) for row in rows]

    def _sample(self, first: bool) -> None:
        pid = self.server.process.pid
        rss = proc_rss_mb(pid)
        if rss is not None:
            self.peak_rss_mb = max(self.peak_rss_mb, rss)
        for backend_pid in self._backend_pids():
            cpu = proc_cpu_s(backend_pid)
            if cpu is None:
                continue
            self._pg_first.setdefault(backend_pid, cpu if first else 0.0)
            self._pg_last[backend_pid] = cpu

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample(first=False)

    def __enter__(self) -> ResourceSampler:
        if self.server.pg_database is not None:
            self._pg_conn = psycopg.connect(
                self.settings.postgres.conninfo("postgres"), autocommit=True
            )
        self._cpu_start = proc_cpu_s(self.server.process.pid) or 0.0
        self._sample(first=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample(first=False)
        self.ferret_cpu_s = (proc_cpu_s(self.server.process.pid) or 0.0) - self._cpu_start
        if self._pg_conn is not None:
            self._pg_conn.close()

    @property
    def pg_backend_cpu_s(self) -> float:
        return sum(self._pg_last[pid] - self._pg_first[pid] for pid in self._pg_last)


# ------------------------------------------------------------------------- runs


@dataclass
class ProjectionRun:
    backend: Backend
    chunk: int
    generation: str
    events: int
    dead_lettered: int
    wall_s: float
    events_per_s: float
    ferret_cpu_s: float
    pg_backend_cpu_s: float
    cpu_ms_per_event: float
    peak_rss_mb: float
    timed_out: bool
    documents: dict[str, int] = field(default_factory=dict)


def run_settings(base: Settings, prefix: str, server: FerretServer, database: str) -> Settings:
    return base.model_copy(
        update={
            "kafka": base.kafka.model_copy(update={"topic_prefix": prefix}),
            "mongo": base.mongo.model_copy(
                update={"uri": SecretStr(server.uri), "database": database}
            ),
        }
    )


def project(
    settings: Settings,
    server: FerretServer,
    codec: AvroCodec,
    chunk: int,
    generation: str,
    timeout_s: float,
) -> ProjectionRun:
    # The chunk size is a module constant `_chunks` reads at call time; set it for this run.
    mongo_projection.BULK_WRITE_LIMIT = chunk
    projection = MongoProjection(settings, generation=generation)
    runner = ProjectionRunner(projection, settings, codec, EventPublisher(settings.kafka, codec))
    try:
        timed_out = False
        with ResourceSampler(server, settings) as sampler:
            started = time.perf_counter()
            try:
                runner.catch_up(timeout_s=timeout_s)
            except TimeoutError:
                # Too slow to finish: report the rate of what it applied meanwhile.
                timed_out = True
            wall_s = time.perf_counter() - started
        stats = runner.stats
        database = projection.database
        documents = {
            name: database[name].count_documents({})
            for name in sorted(database.list_collection_names())
            if name.endswith(f"_{generation}")
        }
    finally:
        projection.close()
    events = stats.applied + stats.skipped + stats.dead_lettered
    cpu_s = sampler.ferret_cpu_s + sampler.pg_backend_cpu_s
    return ProjectionRun(
        backend=server.backend,
        chunk=chunk,
        generation=generation,
        events=events,
        dead_lettered=stats.dead_lettered,
        wall_s=wall_s,
        events_per_s=events / wall_s,
        ferret_cpu_s=sampler.ferret_cpu_s,
        pg_backend_cpu_s=sampler.pg_backend_cpu_s,
        cpu_ms_per_event=1000 * cpu_s / max(events, 1),
        peak_rss_mb=sampler.peak_rss_mb,
        timed_out=timed_out,
        documents=documents,
    )


@dataclass
class ReadTiming:
    backend: Backend
    query: str
    calls: int
    p50_ms: float
    mean_ms: float
    server_cpu_ms_per_call: float


def time_reads(
    settings: Settings, server: FerretServer, generation: str, media_ids: list[str], calls: int
) -> list[ReadTiming]:
    rng = np.random.default_rng(11)
    picks = [media_ids[int(i)] for i in rng.integers(0, len(media_ids), calls)]
    timings: list[ReadTiming] = []
    with mongo_client(settings) as client:
        database = client[settings.mongo.database]
        items = database[f"media_items_{generation}"]
        results = database[f"analysis_results_{generation}"]
        # As the API reads them (an admin principal: tenant scope, no owner): a media item
        # by id (api/routes/media.py); the sorted results of a media id are what the API
        # read from MongoDB before results moved to PostgreSQL; the others are typical.
        queries: dict[str, tuple[int, Callable[[int], object]]] = {
            "media item by id": (
                calls,
                lambda n: items.find_one({"_id": picks[n], "tenant_id": TENANT}),
            ),
            "results of a media id, sorted": (
                calls,
                lambda n: list(
                    results.find({"media_id": picks[n], "tenant_id": TENANT})
                    .sort([("stage", 1), ("model_version", 1), ("occurred_at", 1), ("_id", 1)])
                    .limit(5000)
                ),
            ),
            "50 newest media of a tenant": (
                max(calls // 10, 5),
                lambda n: list(
                    items.find({"tenant_id": TENANT}).sort([("uploaded_at", -1)]).limit(50)
                ),
            ),
            "text $regex over results": (
                max(calls // 40, 3),
                lambda n: list(
                    results.find(
                        {"tenant_id": TENANT, "result.full_text": {"$regex": f"Rechnung {n} "}}
                    ).limit(50)
                ),
            ),
        }
        for label, (count, query) in queries.items():
            query(0)  # warm-up: connection, plan cache
            durations = []
            with ResourceSampler(server, settings) as sampler:
                for n in range(count):
                    started = time.perf_counter()
                    query(n)
                    durations.append(1000 * (time.perf_counter() - started))
            cpu = sampler.ferret_cpu_s + sampler.pg_backend_cpu_s
            timings.append(
                ReadTiming(
                    server.backend,
                    label,
                    count,
                    statistics.median(durations),
                    statistics.fmean(durations),
                    1000 * cpu / count,
                )
            )
    return timings


# ------------------------------------------------------------------------- report


def _ratio(pg: float, sqlite: float) -> str:
    return f"{pg / sqlite:6.2f}" if sqlite else "     -"


def print_table(runs: list[ProjectionRun], reads: list[ReadTiming]) -> None:
    print("\nprojection (MongoProjection via ProjectionRunner.catch_up)")
    print(f"{'chunk':>5} {'metric':<26} {'sqlite':>10} {'postgresql':>11} {'pg/sqlite':>9}")
    by_key = {(r.backend, r.chunk): r for r in runs}
    for chunk in sorted({r.chunk for r in runs}):
        sqlite, pg = by_key.get(("sqlite", chunk)), by_key.get(("postgresql", chunk))
        if sqlite is None or pg is None:
            continue
        rows: list[tuple[str, float, float, str]] = [
            ("events (applied)", sqlite.events, pg.events, "{:10.0f}"),
            ("timed out (1 = yes)", sqlite.timed_out, pg.timed_out, "{:10.0f}"),
            ("wall s", sqlite.wall_s, pg.wall_s, "{:10.1f}"),
            ("events/s", sqlite.events_per_s, pg.events_per_s, "{:10.0f}"),
            ("FerretDB CPU s", sqlite.ferret_cpu_s, pg.ferret_cpu_s, "{:10.1f}"),
            ("PostgreSQL backends CPU s", sqlite.pg_backend_cpu_s, pg.pg_backend_cpu_s, "{:10.1f}"),
            ("server CPU ms/event", sqlite.cpu_ms_per_event, pg.cpu_ms_per_event, "{:10.2f}"),
            ("FerretDB peak RSS MB", sqlite.peak_rss_mb, pg.peak_rss_mb, "{:10.0f}"),
            ("dead-lettered", sqlite.dead_lettered, pg.dead_lettered, "{:10.0f}"),
        ]
        for label, a, b, fmt in rows:
            ratio = (
                _ratio(b, a)
                if label not in ("events (applied)", "timed out (1 = yes)", "dead-lettered")
                else "     -"
            )
            print(f"{chunk:5d} {label:<26} {fmt.format(a)} {fmt.format(b):>11} {ratio:>9}")
    print("\nAPI reads (ms per call; server CPU ms per call: FerretDB + PostgreSQL backends)")
    print(
        f"{'query':<32} {'calls':>5} {'sqlite p50':>10} {'pg p50':>8} {'pg/sqlite':>9}"
        f" {'sqlite cpu':>10} {'pg cpu':>7}"
    )
    sqlite_reads = {t.query: t for t in reads if t.backend == "sqlite"}
    for timing in (t for t in reads if t.backend == "postgresql"):
        base = sqlite_reads.get(timing.query)
        if base is None:
            continue
        print(
            f"{timing.query:<32} {timing.calls:5d} {base.p50_ms:10.2f} {timing.p50_ms:8.2f} "
            f"{_ratio(timing.p50_ms, base.p50_ms):>9} {base.server_cpu_ms_per_call:10.2f} "
            f"{timing.server_cpu_ms_per_call:7.2f}"
        )


# ------------------------------------------------------------------------- main


@contextmanager
def bench_pg_database(settings: Settings, name: str) -> Iterator[str]:
    with psycopg.connect(settings.postgres.conninfo("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield name
    finally:
        with psycopg.connect(settings.postgres.conninfo("postgres"), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--media", type=int, default=1000, help="media items (11 events each)")
    parser.add_argument("--boxes", type=int, default=6, help="detections per image")
    parser.add_argument(
        "--chunks",
        default=str(mongo_projection.BULK_WRITE_LIMIT),
        help="comma-separated bulk-write chunk sizes to try (first = the projection's)",
    )
    parser.add_argument(
        "--pg-pool",
        type=int,
        default=None,
        help="FerretDB's PostgreSQL pool size (default: the largest chunk + 10)",
    )
    parser.add_argument("--reads", type=int, default=50, help="calls per point read")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per projection run")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    chunks = [int(c) for c in args.chunks.split(",") if c]
    original_limit = mongo_projection.BULK_WRITE_LIMIT
    pool = args.pg_pool if args.pg_pool is not None else max(chunks) + 10

    def say(text: str) -> None:
        print(text, file=sys.stderr if args.json else sys.stdout, flush=True)

    base = get_settings()
    service = FerretDBService(base)
    if not service.installed():
        say(f"building FerretDB into {service.binary} (first time only)")
        service.install()
    name = f"ferretdb_bench_{secrets.token_hex(4)}"
    prefix = f"{name}."
    kafka = base.kafka.model_copy(update={"topic_prefix": prefix})
    admin = admin_client(kafka)
    apply_catalogue(admin, kafka, CATALOGUE)
    codec = AvroCodec(HttpSchemaRegistry(base.registry))
    workdir = Path(tempfile.mkdtemp(prefix="ferretdb-bench-"))
    servers: dict[Backend, FerretServer] = {}
    runs: list[ProjectionRun] = []
    reads: list[ReadTiming] = []
    try:
        with bench_pg_database(base, name) as pg_database:
            started = time.perf_counter()
            counts, media_ids = publish_log(
                base.model_copy(update={"kafka": kafka}), codec, args.media, args.boxes
            )
            say(
                f"published {sum(counts.values())} events for {args.media} media items in "
                f"{time.perf_counter() - started:.1f}s: {dict(sorted(counts.items()))}"
            )
            for backend in BACKENDS:
                servers[backend] = start_ferretdb(
                    service.binary,
                    backend,
                    workdir,
                    base,
                    pg_database if backend == "postgresql" else None,
                    pool,
                )
            try:
                # Every run gets a generation of its own: its own collections and its own
                # consumer group (the group name holds the generation).
                for chunk in chunks:
                    for backend in BACKENDS:
                        settings = run_settings(base, prefix, servers[backend], "visionlog")
                        generation = f"g{len(runs) + 1}"
                        run = project(
                            settings, servers[backend], codec, chunk, generation, args.timeout
                        )
                        say(
                            f"{backend:10} chunk {chunk:4d}: {run.events} events in "
                            f"{run.wall_s:.1f}s = {run.events_per_s:.0f}/s, FerretDB CPU "
                            f"{run.ferret_cpu_s:.1f}s, PostgreSQL backends CPU "
                            f"{run.pg_backend_cpu_s:.1f}s, peak RSS {run.peak_rss_mb:.0f} MB"
                            + (" (TIMED OUT)" if run.timed_out else "")
                        )
                        runs.append(run)
                # Reads go to each backend's first run (the projection's own chunk size).
                for backend in BACKENDS:
                    settings = run_settings(base, prefix, servers[backend], "visionlog")
                    first = next(r for r in runs if r.backend == backend)
                    reads.extend(
                        time_reads(
                            settings, servers[backend], first.generation, media_ids, args.reads
                        )
                    )
            finally:
                for server in servers.values():
                    stop_ferretdb(server)
    finally:
        mongo_projection.BULK_WRITE_LIMIT = original_limit
        names = [full_topic_name(spec, kafka) for spec in CATALOGUE]
        for future in admin.delete_topics(names).values():
            try:
                future.result(timeout=30)
            except Exception as error:  # clean up what can be cleaned
                print(f"could not delete a topic: {error}", file=sys.stderr)
        shutil.rmtree(workdir, ignore_errors=True)

    if args.json:
        print(
            json.dumps(
                {
                    "events_per_type": dict(counts),
                    "runs": [asdict(r) for r in runs],
                    "reads": [asdict(t) for t in reads],
                },
                indent=2,
            )
        )
    else:
        print_table(runs, reads)


if __name__ == "__main__":
    main()
