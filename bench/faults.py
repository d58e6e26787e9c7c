"""Faults under load: the stores and the platform's processes fail one after another while
images keep arriving through the API; how long until everything is current again, and
whether anything was lost or duplicated.

Runs a stack and platform of its own (like `bench.sustained_load`: an empty state directory
beside the default one, removed at the end) under --images-per-s unique images. After a
warm-up it applies each fault in turn:
- a store restart: Kafka, PostgreSQL, FerretDB and MinIO stopped for --outage-s each, then
  started again (`visionlog stack down/up` of that one server);
- a crash: each platform process (processors with its workers, projections, the reprocess
  worker, the API) killed with SIGKILL together with what it started; its supervisor
  restarts it.
After each fault's end it measures the time until the platform is current again: every
upload accepted before the fault's end has its final status in PostgreSQL and in MongoDB,
and no read model is more than --current-lag messages behind the log. It prints one row per
fault with that time against the 30 s target. At the end the load stops and the run drains;
then it counts uploads lost (accepted, never final in PostgreSQL) and duplicated (items in
the read model that no accepted upload made).

Run: .venv/bin/python -m bench.faults [--images-per-s 0.5] [--outage-s 20]
     [--faults kafka,postgres,ferretdb,minio,processors,projections,reprocess-worker,api]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import psutil
from confluent_kafka import KafkaException
from psycopg import sql

if __package__ in (None, ""):  # run as a file: make `bench` importable like with -m
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.load.platform import (
    StackBusyError,
    admin_login,
    ensure_platform,
    isolated_platform,
)
from bench.load.scene import upload_image
from bench.load.uploads import ApiUploader, UploadLoad
from processors import modelstore
from projections.generations import FIRST_GENERATION
from projections.lag import read_model_positions
from projections.mongo.projection import read_live_generation
from projections.stages import COMPLETION_STATUSES
from stack import manager
from stack.platform import api_base_url, platform_status
from visionlog.kafka import admin_client
from visionlog.settings import Settings, get_settings
from visionlog.stores import mongo_client, postgres_connect

STORES = ("kafka", "postgres", "ferretdb", "minio")
PROCESSES = ("processors", "projections", "reprocess-worker", "api")
RECOVERY_LIMIT_S = 30.0


@dataclass(frozen=True)
class FaultResult:
    fault: str
    kind: str  # "outage" or "crash"
    began_at: str
    fault_s: float  # how long the fault itself lasted (outage, or the kill)
    current_after_s: float | None  # None: not current within the timeout
    behind_at_end: str  # what was still missing when it gave up ("" when current)

    @property
    def passed(self) -> bool:
        return self.current_after_s is not None and self.current_after_s <= RECOVERY_LIMIT_S


def _say(message: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {message}", flush=True)


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--images-per-s", type=float, default=0.5)
    parser.add_argument("--outage-s", type=float, default=20.0)
    parser.add_argument("--warmup-s", type=float, default=30.0)
    parser.add_argument("--settle-timeout-s", type=float, default=240.0)
    parser.add_argument("--drain-timeout-s", type=float, default=600.0)
    parser.add_argument(
        "--current-lag", type=int, default=50, help="messages a read model may be behind"
    )
    parser.add_argument("--faults", default=",".join((*STORES, *PROCESSES)))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    unknown = set(args.faults.split(",")) - {*STORES, *PROCESSES}
    if unknown:
        parser.error(f"unknown faults {sorted(unknown)}; choose from {STORES + PROCESSES}")
    return args


class Currency:
    """Whether the platform is current: uploads final in both read models, lags small."""

    def __init__(self, settings: Settings, current_lag: int) -> None:
        self.settings = settings
        self.current_lag = current_lag
        # One client for the run: librdkafka crashed (SIGSEGV) destroying a fresh admin
        # client every second while the broker was away.
        self.admin = admin_client(settings.kafka)

    def missing(self, accepted: set[str]) -> str:
        """What is not current yet ("" when everything is); any store error counts as
        not current (the store may still be coming back)."""
        try:
            return self._missing(accepted)
        except Exception as error:  # a store that is still away: not current yet
            if isinstance(error, KafkaException):
                # A client that timed out across a broker restart kept timing out: the
                # next check asks through a new one.
                self.admin = admin_client(self.settings.kafka)
            return f"{type(error).__name__}: {str(error)[:120]}"

    def _missing(self, accepted: set[str]) -> str:
        settings = self.settings
        ids = sorted(accepted)
        schema = settings.projections.postgres_schema
        with postgres_connect(settings) as conn:
            rows = conn.execute(
                sql.SQL(
                    "SELECT count(*) AS n FROM {}.media"
                    " WHERE media_id = ANY(%s) AND status = ANY(%s)"
                ).format(sql.Identifier(schema)),
                (ids, list(COMPLETION_STATUSES)),
            ).fetchone()
            final_pg = int(rows["n"]) if rows else 0
            with mongo_client(settings) as mongo:
                generation = read_live_generation(settings, mongo)
                items = mongo[settings.mongo.database][f"media_items_{generation}"]
                final_mongo = items.count_documents(
                    {"_id": {"$in": ids}, "status": {"$in": list(COMPLETION_STATUSES)}}
                )
                lags = read_model_positions(
                    settings,
                    self.admin,
                    postgres=conn,
                    mongo=mongo,
                    qdrant_generation=FIRST_GENERATION,
                ).lags()
        parts = []
        if final_pg < len(ids):
            parts.append(f"{len(ids) - final_pg} uploads not final in PostgreSQL")
        if final_mongo < len(ids):
            parts.append(f"{len(ids) - final_mongo} not final in MongoDB")
        behind = {name: lag for name, lag in lags.items() if lag > self.current_lag}
        if behind:
            parts.append("lag " + ", ".join(f"{n} {lag}" for n, lag in sorted(behind.items())))
        return "; ".join(parts)

    def wait(self, accepted: Callable[[], set[str]], timeout_s: float) -> tuple[float | None, str]:
        """Seconds until current (None at the timeout) and what was still missing then."""
        started = time.monotonic()
        missing = "not checked"
        while time.monotonic() - started < timeout_s:
            missing = self.missing(accepted())
            if not missing:
                return time.monotonic() - started, ""
            time.sleep(1.0)
        return None, missing


def _fixed(ids: set[str]) -> Callable[[], set[str]]:
    return lambda: ids


def _outage(settings: Settings, name: str, outage_s: float) -> float:
    began = time.monotonic()
    manager.down(settings, [name])
    time.sleep(outage_s)
    manager.up(settings, [name])
    return time.monotonic() - began


def _crash(settings: Settings, name: str) -> float:
    """SIGKILL the process and every process under it at once (a container's crash): its
    process group, and the processors' workers, which run in sessions of their own."""
    began = time.monotonic()
    row = next(r for r in platform_status(settings) if r.name == name)
    if row.pid is None:
        raise RuntimeError(f"{name} is not running: nothing to crash")
    try:
        descendants = psutil.Process(row.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        descendants = []
    os.killpg(os.getpgid(row.pid), signal.SIGKILL)
    for process in descendants:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    return time.monotonic() - began


def _lost_and_duplicated(settings: Settings, accepted: set[str]) -> tuple[list[str], list[str]]:
    schema = settings.projections.postgres_schema
    with postgres_connect(settings) as conn:
        table = sql.Identifier(schema, "media")
        final = {
            row["media_id"]
            for row in conn.execute(
                sql.SQL(
                    "SELECT media_id FROM {} WHERE status = ANY(%s) AND camera_id IS NULL"
                ).format(table),
                (list(COMPLETION_STATUSES),),
            ).fetchall()
        }
        every = {
            row["media_id"]
            for row in conn.execute(
                sql.SQL("SELECT media_id FROM {} WHERE camera_id IS NULL").format(table)
            ).fetchall()
        }
    return sorted(accepted - final), sorted(every - accepted)


def _render(
    results: list[FaultResult], lost: list[str], duplicated: list[str], refused: int
) -> str:
    lines = [
        f"{'fault':18} {'kind':7} {'fault s':>8} {'current after':>14}  target ≤ "
        f"{RECOVERY_LIMIT_S:g} s  still missing",
    ]
    for r in results:
        after = "never" if r.current_after_s is None else f"{r.current_after_s:.1f} s"
        verdict = "PASS" if r.passed else "FAIL"
        lines.append(
            f"{r.fault:18} {r.kind:7} {r.fault_s:8.1f} {after:>14}  {verdict:13}  {r.behind_at_end}"
        )
    lines.append(f"uploads lost: {len(lost)} (target 0) {'PASS' if not lost else 'FAIL'}")
    lines.append(
        f"items duplicated: {len(duplicated)} (target 0) {'PASS' if not duplicated else 'FAIL'}"
    )
    lines.append(f"uploads refused while a fault lasted (the client was told): {refused}")
    return "\n".join(lines)


def main() -> int:
    args = _parse()
    settings = get_settings()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    run_dir = settings.state_dir / "bench" / f"faults-{stamp}"
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        with isolated_platform(settings, run_dir, _say) as own:
            ensure_platform(own, _say)
            return _run(args, own, stamp)
    except StackBusyError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace, settings: Settings, stamp: str) -> int:
    photos = [
        modelstore.load("sample-photos", settings).path(name) for name in ("bus.jpg", "zidane.jpg")
    ]
    uploader = ApiUploader(api_base_url(settings), admin_login(settings), timeout_s=60)
    seed = int(stamp[-6:]) * 100_000
    load = UploadLoad(
        uploader,
        documents=[],
        document_every_s=0,
        make_image=lambda number: upload_image(photos, seed + number),
        images_per_s=args.images_per_s,
        document_profile=settings.ingest.default_profile,
        image_profile=settings.ingest.default_profile,
    )
    currency = Currency(settings, args.current_lag)
    results: list[FaultResult] = []
    load.start()
    try:
        _say(f"warm-up {args.warmup_s:g} s at {args.images_per_s:g} images/s")
        time.sleep(args.warmup_s)
        settled, missing = currency.wait(load.accepted_ids, args.settle_timeout_s)
        refusals = [u.error for u in load.records if u.media_id is None]
        _say(
            f"{len(load.accepted_ids())} uploads accepted, {len(refusals)} refused "
            f"({refusals[:1]}); current before the faults after {settled} s "
            f"({missing or 'nothing missing'})"
        )
        for fault in args.faults.split(","):
            began_at = datetime.now(UTC).isoformat(timespec="seconds")
            if fault in STORES:
                _say(f"{fault}: stopped for {args.outage_s:g} s")
                kind, lasted = "outage", _outage(settings, fault, args.outage_s)
            else:
                _say(f"{fault}: killed with SIGKILL")
                kind, lasted = "crash", _crash(settings, fault)
            ended = load.accepted_ids()
            after, missing = currency.wait(_fixed(ended), args.settle_timeout_s)
            _say(f"{fault}: current again after {after} s {missing}")
            results.append(FaultResult(fault, kind, began_at, lasted, after, missing))
    finally:
        load.stop(wait_s=120)
        uploader.close()
    accepted = load.accepted_ids()
    drained, missing = currency.wait(lambda: accepted, args.drain_timeout_s)
    _say(f"drained after {drained} s {missing}")
    lost, duplicated = _lost_and_duplicated(settings, accepted)
    refused = sum(1 for u in load.records if u.media_id is None)
    print(_render(results, lost, duplicated, refused), flush=True)
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {
                    "faults": [asdict(r) | {"passed": r.passed} for r in results],
                    "accepted": len(accepted),
                    "refused": refused,
                    "lost": lost,
                    "duplicated": duplicated,
                },
                indent=2,
            )
            + "\n"
        )
    passed = all(r.passed for r in results) and not lost and not duplicated
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
