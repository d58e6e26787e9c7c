"""Sustained mixed load on the whole platform, with the issue's targets beside the figures.

Runs a stack and platform of its own (in an empty state directory beside the default one,
removed at the end with whatever the load left queued; the platform's logs are kept with
the run's files), or with --on-running-platform the platform of the default state
directory, under, for --minutes:

- K live cameras: MJPEG-over-HTTP streams this script serves itself at --source-fps (the
  sample photos of a bus and of people moving across a street), captured by a
  `visionlog cameras run` process at --target-fps; one camera uses profile
  "live-anonymised";
- a multi-page English/German PDF every --document-every-s and --images-per-s unique
  images, uploaded through the API (POST /v1/ingest) with the admin's token.

The load is more than two cores finish in time, on purpose: when it stops, the script
keeps measuring until every uploaded item completed (MediaCompleted), every camera frame
is analysed or reported skipped, or --drain-timeout-s (or --drain-idle-s without a new
event) passes. It then prints one table: per camera capture → detection p50/p99/max per
minute and the frame balance (captured = dropped + skipped + analysed), document pages per
minute and upload → completed, image upload → completed, process restarts, crashes and
RSS, events lost, the drain time; each against its target with PASS or FAIL. The exit
status is 1 when a target is not met.

Run: .venv/bin/python -m bench.sustained_load [--minutes 10] [--cameras 4] [--json out.json]
     (a short check: --minutes 1 --cameras 1 --drain-timeout-s 300)
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make `bench` importable like with -m
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.load.collector import EventCollector
from bench.load.documents import document_pdf
from bench.load.mjpeg import MjpegCameras
from bench.load.model import Observations, RunConfig, Timeline
from bench.load.platform import (
    CameraSpec,
    StackBusyError,
    admin_login,
    camera_fields_supported,
    camera_set_toml,
    ensure_platform,
    isolated_platform,
    start_camera_producer,
    stop_camera_producer,
    stop_started,
)
from bench.load.processes import ProcessMonitor
from bench.load.readlag import ReadModelLagMonitor
from bench.load.report import build_report, render
from bench.load.scene import camera_loop, upload_image
from bench.load.uploads import ApiUploader, UploadLoad, now_ms
from processors import modelstore
from producers.cameras.identity import camera_media_id
from stack.platform import api_base_url
from visionlog.settings import Settings, get_settings

# The pre-encoded camera loop: long enough that tracking sees real motion.
LOOP_S = 12.0
# Minute 2 of the load is the RSS baseline (the middle of a shorter load).
BASELINE_S = 120.0


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the load")
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--source-fps", type=float, default=15.0)
    parser.add_argument("--target-fps", type=float, default=5.0)
    parser.add_argument("--anonymised-cameras", type=int, default=1)
    parser.add_argument("--max-age-s", type=float, default=2.0, help="cameras' staleness bound")
    parser.add_argument("--frame-size", default="1280x720", help="camera frames, WxH")
    parser.add_argument("--document-every-s", type=float, default=120.0)
    parser.add_argument("--document-pages", type=int, default=60)
    parser.add_argument("--images-per-s", type=float, default=1.0)
    parser.add_argument("--document-profile", default=None, help="default: the ingest default")
    parser.add_argument("--image-profile", default=None, help="default: the ingest default")
    parser.add_argument("--drain-timeout-s", type=float, default=1800.0)
    parser.add_argument(
        "--drain-idle-s",
        type=float,
        default=180.0,
        help="end the drain early when no event of the run arrived for this long",
    )
    parser.add_argument(
        "--warmup-timeout-s",
        type=float,
        default=180.0,
        help="how long to wait for each camera's first analysed frame before the load",
    )
    parser.add_argument(
        "--on-running-platform",
        action="store_true",
        help=(
            "load the platform of the default state directory (started when it is not "
            "running) instead of a stack of the benchmark's own; what stays queued at the "
            "end is then that platform's backlog"
        ),
    )
    parser.add_argument(
        "--keep-running",
        action="store_true",
        help="with --on-running-platform: leave what the run started running afterwards",
    )
    parser.add_argument("--json", type=Path, default=None, help="write the results here too")
    args = parser.parse_args()
    if args.cameras < 0 or args.minutes <= 0:
        parser.error("--cameras must be >= 0 and --minutes > 0")
    return args


def _say(message: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {message}", flush=True)


def _cameras(args: argparse.Namespace, server: MjpegCameras) -> list[CameraSpec]:
    anonymised = set(range(args.cameras - args.anonymised_cameras + 1, args.cameras + 1))
    return [
        CameraSpec(
            name=f"load-cam-{number}",
            url=server.url(number),
            target_fps=args.target_fps,
            profile="live-anonymised" if number in anonymised else "live",
            max_age_s=args.max_age_s,
        )
        for number in range(1, args.cameras + 1)
    ]


def main() -> int:
    args = _parse()
    settings = get_settings()
    width, height = (int(part) for part in args.frame_size.lower().split("x"))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    run_dir = settings.state_dir / "bench" / f"sustained-load-{stamp}"
    run_dir.mkdir(parents=True, exist_ok=True)
    if args.on_running_platform:
        started = ensure_platform(settings, _say)
        try:
            return _run(args, settings, run_dir, stamp, (width, height))
        finally:
            if started and not args.keep_running:
                _say(f"stopping what this run started: {', '.join(r.name for r in started)}")
                stop_started(settings, started)
    try:
        with isolated_platform(settings, run_dir, _say) as own:
            ensure_platform(own, _say)
            return _run(args, own, run_dir, stamp, (width, height))
    except StackBusyError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _run(
    args: argparse.Namespace,
    settings: Settings,
    run_dir: Path,
    stamp: str,
    frame_size: tuple[int, int],
) -> int:
    width, height = frame_size
    photos = [
        modelstore.load("sample-photos", settings).path(name) for name in ("bus.jpg", "zidane.jpg")
    ]
    uploader = ApiUploader(api_base_url(settings), admin_login(settings))
    document_count = math.ceil(args.minutes * 60 / args.document_every_s)
    _say(
        f"preparing {round(LOOP_S * args.source_fps)} camera frames and {document_count} "
        f"documents of {args.document_pages} pages"
    )
    frames = camera_loop(photos, width, height, round(LOOP_S * args.source_fps))
    documents = [
        document_pdf(int(stamp[-6:]) * 100 + n, args.document_pages) for n in range(document_count)
    ]
    profile = settings.ingest.default_profile
    load = UploadLoad(
        uploader,
        documents=documents,
        document_every_s=args.document_every_s,
        make_image=lambda number: upload_image(photos, int(stamp[-6:]) * 100_000 + number),
        images_per_s=args.images_per_s,
        document_profile=args.document_profile or profile,
        image_profile=args.image_profile or profile,
    )
    server = MjpegCameras(frames, max(1, args.cameras), args.source_fps)
    server.start()
    cameras = _cameras(args, server)
    supported = camera_fields_supported()
    notes = [
        f"the camera config has no {field!r} yet: the cameras ran without it"
        for field in ("profile", "max_age_s")
        if field not in supported and cameras
    ]
    config_path = run_dir / "cameras.toml"
    config_path.write_text(camera_set_toml(cameras, supported))
    collector = EventCollector(
        settings, {camera_media_id(settings.tenant_id, c.name): c.name for c in cameras}
    )
    collector.start()
    monitor = ProcessMonitor(settings)
    monitor.start()
    read_lag = ReadModelLagMonitor(settings)
    read_lag.start()
    cpu_start = time.process_time()
    producer = None
    try:
        if cameras:
            producer = start_camera_producer(config_path, run_dir / "cameras.log")
            monitor.add("camera producer", producer.pid)
            _say(f"cameras {', '.join(c.name for c in cameras)} from {config_path}")
            notes += _warm_up(args, collector, producer, {c.name for c in cameras})
        start_ms = now_ms()
        load.start()
        _say(f"load started for {args.minutes:g} min")
        _load_phase(args, collector, load, monitor, start_ms)
        load_end_ms = now_ms()
        monitor.mark_end()
        _say("load stopped: stopping the cameras, waiting for the uploads under way")
        # Cameras first: frames captured while a slow upload is still answered would
        # count to the last minute.
        load.request_stop()
        clean_stop = True
        if producer is not None:
            monitor.release("camera producer")
            code = stop_camera_producer(producer)
            if code != 0:
                clean_stop = False
                notes.append(f"the camera producer exited with {code} (see {run_dir}/cameras.log)")
        load.stop(wait_s=300)
        reason = _drain(args, collector, load, camera_status=clean_stop)
        drain_end_ms = now_ms()
    finally:
        if producer is not None and producer.poll() is None:
            stop_camera_producer(producer)
        server.stop()
        collector.stop()
        monitor.stop()
        read_lag.stop()
        uploader.close()
    seen: Observations = collector.observations()
    seen.uploads = load.records
    seen.processes = monitor.records()
    seen.read_lag = read_lag.series()
    if read_lag.errors:
        notes.append(f"{read_lag.errors} read-model lag samples failed ({read_lag.last_error})")
    seen.bench_cpu_s = time.process_time() - cpu_start
    if load.images_late:
        notes.append(f"{load.images_late} images not sent on time: every sender was busy")
    if collector.error is not None:
        notes.append(f"the event collector failed: {collector.error!r}")
    seen.notes = [*notes, *seen.notes]
    config = RunConfig(
        minutes=args.minutes,
        cameras=args.cameras,
        source_fps=args.source_fps,
        target_fps=args.target_fps,
        document_every_s=args.document_every_s,
        document_pages=args.document_pages,
        images_per_s=args.images_per_s,
        drain_timeout_s=args.drain_timeout_s,
        camera_profiles={c.name: c.profile for c in cameras},
    )
    report = build_report(config, Timeline(start_ms, load_end_ms, drain_end_ms, reason), seen)
    print(render(report), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(report.data, indent=2, default=str) + "\n")
        _say(f"results written to {args.json}")
    return 0 if report.passed else 1


def _warm_up(
    args: argparse.Namespace,
    collector: EventCollector,
    producer: subprocess.Popen[bytes],
    names: set[str],
) -> list[str]:
    """Wait until every camera has an analysed frame, so the first minute does not
    measure model loading; frames before the load are shown as warm-up, not judged."""
    deadline = time.monotonic() + args.warmup_timeout_s
    while time.monotonic() < deadline:
        if producer.poll() is not None:
            raise RuntimeError("the camera producer exited during warm-up; see cameras.log")
        if collector.error is not None:
            raise RuntimeError(f"the event collector failed: {collector.error!r}")
        if names <= collector.analysed_cameras():
            return []
        time.sleep(1.0)
    waiting = ", ".join(sorted(names - collector.analysed_cameras()))
    return [f"no analysed frame of {waiting} within {args.warmup_timeout_s:g} s of warm-up"]


def _load_phase(
    args: argparse.Namespace,
    collector: EventCollector,
    load: UploadLoad,
    monitor: ProcessMonitor,
    start_ms: int,
) -> None:
    end = time.monotonic() + args.minutes * 60
    baseline_at = time.monotonic() + min(BASELINE_S, args.minutes * 30)
    baseline_done = False
    next_progress = time.monotonic() + 60
    while (now := time.monotonic()) < end:
        if collector.error is not None:
            raise RuntimeError(f"the event collector failed: {collector.error!r}")
        if not baseline_done and now >= baseline_at:
            monitor.mark_baseline()
            baseline_done = True
        if now >= next_progress:
            _progress("load", collector, load, start_ms)
            next_progress += 60
        time.sleep(min(1.0, max(0.0, end - now)))
    if not baseline_done:
        monitor.mark_baseline()


def _progress(phase: str, collector: EventCollector, load: UploadLoad, start_ms: int) -> None:
    items, frames, _ = collector.outstanding(load.accepted_ids())
    records = load.records
    _say(
        f"{phase} +{(now_ms() - start_ms) / 60000:.1f} min: {len(records)} uploads "
        f"({sum(1 for r in records if r.media_id is None)} refused), {items} items not "
        f"completed, {frames} camera frames without result, {collector.events} events read"
    )


def _drain(
    args: argparse.Namespace, collector: EventCollector, load: UploadLoad, *, camera_status: bool
) -> str:
    """Wait until every uploaded item completed, every frame is accounted for and (when
    the camera producer stopped cleanly) its final status arrived."""
    began = time.monotonic()
    drain_ms = now_ms()
    next_progress = began + 30
    accepted = load.accepted_ids()
    while True:
        items, frames, cameras = collector.outstanding(accepted)
        if items == frames == 0 and (cameras == 0 or not camera_status):
            return "all done"
        now = time.monotonic()
        if collector.error is not None:
            return f"collector failed: {collector.error!r}"
        if now - began >= args.drain_timeout_s:
            return f"timeout after {args.drain_timeout_s:g} s"
        if now - collector.last_event_at >= args.drain_idle_s:
            return f"no new event for {args.drain_idle_s:g} s"
        if now >= next_progress:
            _progress("drain", collector, load, drain_ms)
            next_progress += 30
        time.sleep(1.0)


if __name__ == "__main__":
    sys.exit(main())
