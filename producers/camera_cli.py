"""`cameras run CONFIG`: one producer process for a set of cameras."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from producers.cameras import CameraSetProducer, load_camera_set
from visionlog.health import Heartbeat, Readiness, serving_health
from visionlog.kafka import DeliveryError
from visionlog.observability.logs import configure_logging
from visionlog.settings import get_settings

app = typer.Typer(name="cameras", help="Live camera producers.", no_args_is_help=True)


@app.callback()
def cameras() -> None:
    """Live camera producers."""


@app.command("run")
def run(
    config: Annotated[
        Path,
        typer.Argument(
            exists=True, dir_okay=False, readable=True, help="Camera set (.toml or .json)."
        ),
    ],
    log_level: Annotated[str, typer.Option(help="Logging level.")] = "INFO",
) -> None:
    """Capture and publish every enabled camera of CONFIG until SIGINT or SIGTERM."""
    configure_logging(get_settings(), "camera-producer")
    logging.getLogger().setLevel(log_level.upper())
    try:
        camera_set = load_camera_set(config)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        typer.echo(f"invalid camera set {config}: {exc}", err=True)
        raise typer.Exit(2) from exc
    settings = get_settings()
    producer = CameraSetProducer.from_settings(camera_set, settings, base_dir=config.parent)
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        logging.getLogger(__name__).info("%s: stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    names = ", ".join(producer.workers)
    typer.echo(f"cameras {names}: run {producer.run_id}; stop with Ctrl-C")
    heartbeat, readiness = Heartbeat(), Readiness("the cameras are starting")
    with serving_health(settings.health, heartbeat, readiness):
        try:
            producer.run(stop, heartbeat=heartbeat, readiness=readiness)
        except DeliveryError as exc:
            typer.echo(f"events were not all delivered: {exc}", err=True)
            raise typer.Exit(1) from exc
    for name, worker in producer.workers.items():
        snapshot = worker.snapshot()
        typer.echo(
            f"{name}: {snapshot.state.value}, captured {snapshot.frames_captured}, "
            f"published {snapshot.frames_published}, dropped {snapshot.frames_dropped}, "
            f"reconnects {snapshot.reconnects}"
        )
