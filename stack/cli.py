"""`visionlog` command line: the local stack and the platform's main job."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from processors.cli import models_app, processors_app
from producers import camera_cli
from producers import cli as producers_cli
from stack import manager
from stack.initialise import InitReport, initialise
from stack.process import StackError
from visionlog.settings import Settings, get_settings

app = typer.Typer(
    help="visionlog: event-sourced vision and OCR platform",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
stack_app = typer.Typer(help="The local stack of real servers on loopback.", no_args_is_help=True)
app.add_typer(stack_app, name="stack")
app.add_typer(processors_app, name="processors")
app.add_typer(models_app, name="models")
app.add_typer(camera_cli.app, name="cameras")
# upload, fetch and watch are top-level verbs: `visionlog upload FILES...`
app.add_typer(producers_cli.app)
# Logs and CI capture output without a terminal; keep the status table readable there.
console = Console(width=None if sys.stdout.isatty() else 140)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 140)

ServiceNames = Annotated[
    list[str] | None,
    typer.Argument(help=f"Services to act on (default: all of {', '.join(manager.SERVICE_NAMES)})"),
]


def _say(message: str) -> None:
    err.print(f"[dim]·[/dim] {message}")


def _fail(exc: Exception) -> typer.Exit:
    err.print(f"[bold red]error:[/bold red] {exc}")
    return typer.Exit(code=1)


def _status_table(rows: list[manager.ServiceStatus], settings: Settings) -> Table:
    table = Table(title=f"visionlog stack ({settings.environment}, state in {settings.state_dir})")
    for column in ("service", "health", "endpoint", "pid", "install s", "start s", "detail"):
        table.add_column(column)
    for row in rows:
        health = "[green]healthy[/green]" if row.health.ok else "[red]down[/red]"
        table.add_row(
            row.name + ("" if row.managed else " (external)"),
            health,
            row.endpoint,
            str(row.pid or "-"),
            f"{row.install_s:.1f}" if row.install_s is not None else "-",
            f"{row.start_s:.1f}" if row.start_s is not None else "-",
            row.health.detail,
        )
    return table


def _print_init(report: InitReport) -> None:
    topics = report.topics
    console.print(
        f"topics: {len(topics.created)} created, {len(topics.reconfigured)} reconfigured, "
        f"{len(topics.repartitioned)} repartitioned, {len(topics.unchanged)} unchanged; "
        f"schemas: {len(report.subjects)} subjects registered; "
        f"buckets created: {', '.join(report.buckets_created) or 'none'}"
    )
    for warning in topics.warnings:
        err.print(f"[yellow]warning:[/yellow] {warning}")


@stack_app.command("install")
def stack_install(names: ServiceNames = None) -> None:
    """Install or build what the servers need (cached; instant when done before)."""
    settings = get_settings()
    try:
        spent = manager.install(settings, names, _say)
    except StackError as exc:
        raise _fail(exc) from exc
    for name, seconds in spent.items():
        console.print(f"{name}: ready ({seconds:.1f}s)")


@stack_app.command("up")
def stack_up(
    names: ServiceNames = None,
    init: Annotated[bool, typer.Option(help="Apply topics, schemas and buckets")] = True,
) -> None:
    """Install what is missing, start what is not running, then apply the definitions."""
    settings = get_settings()
    began = time.monotonic()
    try:
        rows = manager.up(settings, names, _say)
        if init and not names:
            _print_init(initialise(settings))
    except StackError as exc:
        raise _fail(exc) from exc
    console.print(_status_table(rows, settings))
    console.print(f"stack ready in {time.monotonic() - began:.1f}s")


@stack_app.command("down")
def stack_down(names: ServiceNames = None) -> None:
    """Stop the local servers cleanly (their data stays in the state directory)."""
    stopped = manager.down(get_settings(), names, _say)
    console.print(f"stopped: {', '.join(stopped) or 'nothing was running'}")


@stack_app.command("status")
def stack_status(names: ServiceNames = None) -> None:
    """Health of each server; exit code 1 when any is unhealthy."""
    settings = get_settings()
    rows = manager.status(settings, names)
    console.print(_status_table(rows, settings))
    if not all(row.health.ok for row in rows):
        raise typer.Exit(code=1)


@stack_app.command("logs")
def stack_logs(
    name: Annotated[str, typer.Argument(help="Service whose log to show")],
    lines: Annotated[int, typer.Option("--lines", "-n")] = 50,
    follow: Annotated[bool, typer.Option("--follow", "-f")] = False,
) -> None:
    """Show (or follow) a server's log."""
    try:
        (service,) = manager.services(get_settings(), [name])
    except StackError as exc:
        raise _fail(exc) from exc
    if follow:
        subprocess.run(["tail", "-n", str(lines), "-F", str(service.log_file)], check=False)
    else:
        console.print(service.log_tail(lines), markup=False, highlight=False)


@app.command("init")
def init_command() -> None:
    """Apply the topic catalogue, register the event schemas and create the buckets."""
    try:
        _print_init(initialise(get_settings()))
    except Exception as exc:
        raise _fail(exc) from exc


@app.command("run")
def run_command() -> None:
    """The main job: bring the platform up on the local stack and show where it runs."""
    stack_up(None, init=True)
    console.print("services stay up; stop them with: visionlog stack down")


if __name__ == "__main__":
    app()
