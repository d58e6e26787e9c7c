"""`visionlog projections ...` and `visionlog replay rebuild|diff` commands (the reprocess
commands are the processors': `processors.cli.add_reprocess_commands`)."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import Annotated

import typer
from prometheus_client import start_http_server
from rich.console import Console

from projections.host import ProjectionHost, default_projection_names
from projections.replay.diff import diff_versions
from visionlog.health import Heartbeat, serving_health
from visionlog.observability.logs import configure_logging
from visionlog.settings import get_settings
from visionlog.stores import postgres_connect

projections_app = typer.Typer(help="Projections: build the read models from the log.")
replay_app = typer.Typer(help="Replay the log: rebuild read models, reprocess, compare.")
console = Console()


def _configure_logging(level: str) -> None:
    configure_logging(get_settings(), "projections")
    logging.getLogger().setLevel(level.upper())
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
        settings.health,
        heartbeat,
        host.readiness_problem,
        alive=host.liveness_problem,
        details=lambda: {"lag": host.lags(), "restarts": host.restart_counts()},
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
