"""`visionlog projections ...` and `visionlog replay ...` commands."""

from __future__ import annotations

import logging
import signal
import threading
from datetime import datetime
from types import FrameType
from typing import Annotated

import typer
from prometheus_client import start_http_server
from rich.console import Console

from projections.host import ProjectionHost, default_projection_names
from projections.replay.diff import diff_versions
from projections.replay.reprocess import ReprocessError, ReprocessSelection, request_reprocess
from projections.replay.worker import run_reprocess_worker
from visionlog.codec import AvroCodec
from visionlog.health import Heartbeat, Readiness, serving_health
from visionlog.kafka import EventPublisher
from visionlog.registry import HttpSchemaRegistry
from visionlog.settings import get_settings
from visionlog.stores import postgres_connect

projections_app = typer.Typer(help="Projections: build the read models from the log.")
replay_app = typer.Typer(help="Replay the log: rebuild read models, reprocess, compare.")
console = Console()


def _configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(name)s %(message)s")
    # One line per registry lookup drowns what matters.
    for noisy in ("httpx", "httpx2"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def handler(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


@projections_app.command("run")
def run_projections(
    names: Annotated[
        list[str] | None,
        typer.Argument(help="postgres, mongo, qdrant (default: all this process may host)"),
    ] = None,
    loglevel: str = "INFO",
) -> None:
    """Run projections in this process until SIGTERM, exporting lag on the metrics port.

    With a health port set, the probes (and /metrics, of the same registry) are served
    there too; Kubernetes turns the loopback-only metrics port off.
    """
    _configure_logging(loglevel)
    settings = get_settings()
    stop = _stop_on_signals()
    if settings.projections.metrics_port:
        start_http_server(settings.projections.metrics_port, addr="127.0.0.1")
    host = ProjectionHost(settings, names or default_projection_names(settings))
    heartbeat = Heartbeat()
    with serving_health(
        settings.health, heartbeat, host.readiness_problem, alive=host.liveness_problem
    ):
        host.start()
        console.print(f"projections running: {', '.join(host.names)}")
        while not stop.wait(1.0) and not host.stop_event.is_set():
            heartbeat.beat()
        host.stop()
    host.raise_failures()


@replay_app.command("rebuild")
def rebuild_command(
    store: Annotated[str, typer.Argument(help="postgres, mongo, qdrant or all")],
) -> None:
    """Rebuild a read model from the start of the log, then switch over atomically."""
    from projections.replay.rebuild import RebuildError, rebuild

    settings = get_settings()
    client = None
    if store in ("qdrant", "all") and settings.qdrant.url:
        from visionlog.stores import qdrant_client

        client = qdrant_client(settings)
    try:
        rebuild(settings, store, qdrant=client, report=console.print)
    except RebuildError as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(2) from error


def _parse_versions(pairs: list[str]) -> dict[str, str]:
    versions: dict[str, str] = {}
    for pair in pairs:
        stage, sep, version = pair.partition("=")
        if not sep or not stage or not version:
            raise typer.BadParameter(f"expected STAGE=VERSION, got {pair!r}")
        versions[stage] = version
    return versions


@replay_app.command("reprocess")
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


@replay_app.command("worker")
def reprocess_worker(loglevel: str = "INFO") -> None:
    """Execute reprocess requests from the control topic until SIGTERM."""
    _configure_logging(loglevel)
    settings = get_settings()
    heartbeat, readiness = Heartbeat(), Readiness("the reprocess worker is starting")
    with serving_health(settings.health, heartbeat, readiness):
        run_reprocess_worker(settings, _stop_on_signals(), heartbeat=heartbeat, readiness=readiness)


@replay_app.command("diff")
def diff_command(
    stage: Annotated[str, typer.Option(help="ocr, detection or codes")],
    old: Annotated[str, typer.Option(help="Old model version")],
    new: Annotated[str, typer.Option(help="New model version")],
    media: Annotated[list[str] | None, typer.Option("--media", help="Media id")] = None,
) -> None:
    """Compare two model versions' results in the read model (JSON on stdout)."""
    settings = get_settings()
    with postgres_connect(settings) as conn:
        try:
            diff = diff_versions(conn, settings.projections.postgres_schema, stage, old, new, media)
        except ValueError as error:
            console.print(f"[red]{error}[/red]")
            raise typer.Exit(2) from error
    console.print_json(data=diff.to_dict())
