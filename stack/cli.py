"""`visionlog` command line: the local stack and the platform's main job."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from api import serve as api_serve
from api.auth.store import AUTH_SCHEMA
from processors.cli import add_reprocess_commands, deadletters_app, models_app, processors_app
from producers import camera_cli
from producers import cli as producers_cli
from projections import cli as projections_cli
from stack import manager
from stack.initialise import InitReport, initialise
from stack.migrate import MigrateError, migrate_platform
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
app.add_typer(deadletters_app, name="deadletters")
app.add_typer(camera_cli.app, name="cameras")
app.add_typer(projections_cli.projections_app, name="projections")
add_reprocess_commands(projections_cli.replay_app)
app.add_typer(projections_cli.replay_app, name="replay")
app.add_typer(api_serve.app, name="api")
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


@app.command("migrate")
def migrate_command(
    auth_schema: Annotated[
        str, typer.Option(help="Schema of the API's users and tokens")
    ] = AUTH_SCHEMA,
) -> None:
    """Apply the PostgreSQL migrations of the read model and of the API's auth schema."""
    try:
        outcomes = migrate_platform(get_settings(), auth_schema)
    except MigrateError as exc:
        raise _fail(exc) from exc
    for outcome in outcomes:
        target = outcome.target
        applied = ", ".join(outcome.applied) or "nothing (up to date)"
        console.print(f"{target.purpose} schema {target.schema}: applied {applied}")


@app.command("run")
def run_command(
    timeout_s: Annotated[
        float, typer.Option(help="How long to wait for every sample to complete")
    ] = 600.0,
    require_complete: Annotated[
        bool,
        typer.Option(help="Exit with an error when a sample did not complete in time or failed"),
    ] = False,
) -> None:
    """The main job: the whole platform on the local stack, fed with the bundled samples."""
    from stack.mainjob import run_main_job

    settings = get_settings()
    try:
        report = run_main_job(settings, _say, timeout_s=timeout_s)
    except (StackError, RuntimeError) as exc:
        raise _fail(exc) from exc
    table = Table(title="What the platform found in the samples")
    for column in ("sample", "media id", "status", "found"):
        table.add_column(column)
    for media in report.media:
        found: list[str] = []
        if media.pages:
            found.append(f"{media.pages} pages")
        if media.frames:
            found.append(f"{media.frames} frames, {media.tracks} track updates")
        if media.objects:
            found.append(", ".join(f"{n} x {name}" for name, n in media.objects.items()))
        if media.codes:
            found.append("; ".join(media.codes))
        if media.text:
            langs = "/".join(media.languages)
            found.append(f"text ({langs}): {media.text[:90]}…")
        found.append(f"{media.outputs} outputs")
        found.extend(f"[red]failed {failure}[/red]" for failure in media.failures)
        table.add_row(media.filename, media.media_id, media.progress(), "\n".join(found))
    console.print(table)
    url = report.api_url
    console.print(f"API:           {url}  (OpenAPI docs at {url}/docs)")
    console.print(f"admin login:   {report.admin_username} / {report.admin_password}")
    console.print(f"               (password file {report.password_file})")
    console.print(
        f"a media item:  GET {url}/v1/media/<media id> with a bearer token from POST {url}/v1/token"
    )
    console.print(f"its report:    GET {url}/v1/media/<media id>/report")
    console.print(f"blobs:         MinIO at http://{settings.minio.endpoint}")
    console.print(f"logs:          {settings.state_dir / 'logs'}")
    for media in report.media:
        console.print(f"final status:  {media.filename}: {media.progress()}")
    state = "every sample completed" if report.complete else "not every sample completed"
    console.print(
        f"{state} after {report.seconds:.0f}s; services keep running. "
        "Stop everything with: visionlog stop"
    )
    if not report.complete:
        from stack.diagnosis import diagnose

        for line in diagnose(settings):
            console.print(line, markup=False, highlight=False)
    if require_complete and (not report.complete or report.failed()):
        missing = [m.filename for m in report.media if not m.finished()]
        failed = [m.filename for m in report.failed()]
        if missing:
            console.print(f"[red]not completed within {timeout_s:.0f}s: {', '.join(missing)}[/red]")
        if failed:
            console.print(f"[red]completed with status failed: {', '.join(failed)}[/red]")
        raise typer.Exit(1)


@app.command("delete")
def delete_command(
    media_ids: Annotated[list[str], typer.Argument(help="Media ids to erase")],
    reason: Annotated[
        str, typer.Option(help="user_request or owner_erasure, recorded with the erasure")
    ] = "user_request",
) -> None:
    """Erase media items through the running platform's API, as the local admin: their
    results, read-model entries and blobs."""
    import httpx

    from stack.mainjob import admin_credentials, login
    from stack.platform import api_base_url

    settings = get_settings()
    username, password, password_file = admin_credentials(settings)
    if password is None:
        raise _fail(RuntimeError(f"no admin password in {password_file}: is the platform set up?"))
    try:
        token = login(settings, username, password)
    except httpx.HTTPError as exc:
        message = f"the API at {api_base_url(settings)} refused a login: {exc}"
        raise _fail(RuntimeError(message)) from exc
    failed = 0
    with httpx.Client(base_url=api_base_url(settings), timeout=60) as client:
        for media_id in media_ids:
            response = client.delete(
                f"/v1/media/{media_id}",
                params={"reason": reason},
                headers={"Authorization": f"Bearer {token}"},
            )
            if response.status_code == 202:
                body = response.json()
                console.print(f"{media_id}: erasing (event {body['event_id']})")
            else:
                failed += 1
                detail = response.json().get("detail", response.text)
                console.print(f"{media_id}: {response.status_code} {detail}", style="red")
    if failed:
        raise typer.Exit(code=1)


@app.command("stop")
def stop_command() -> None:
    """Stop the platform's processes (their supervisor first) and the local stack."""
    from stack.platform import stop_platform

    settings = get_settings()
    stopped = stop_platform(settings)
    console.print(f"stopped: {', '.join(stopped) or 'no platform processes were running'}")
    manager.down(settings)
    console.print("local stack stopped")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s" if minutes else f"{secs}s"


def _ago(at: float | None, now: float) -> str:
    return "" if at is None else f" ({_duration(now - at)} ago)"


def _platform_table(settings: Settings) -> Table:
    from stack.platform import platform_status, supervisor_status

    now = time.time()
    boss = supervisor_status(settings)
    if boss.running:
        state = f"[green]{boss.state or 'running'}[/green], pid {boss.pid}"
        state += f", up {_duration(None if boss.started_at is None else now - boss.started_at)}"
    elif boss.state == "died":
        state = "[red]died[/red]: nothing restarts a process that exits; `visionlog run` starts it"
    else:
        state = "[red]not running[/red]"
    table = Table(title=f"platform processes (supervisor {state})")
    for column in ("process", "state", "pid", "uptime", "restarts", "last exit", "log"):
        table.add_column(column)
    for row in platform_status(settings):
        table.add_row(
            row.name,
            "[green]running[/green]" if row.running else "[red]stopped[/red]",
            str(row.pid or "-"),
            _duration(row.uptime_s(now)),
            str(row.restarts),
            (row.last_exit or "-") + _ago(row.last_exit_at, now),
            str(row.log),
        )
    return table


def _lag_table(settings: Settings) -> Table | str:
    """Consumer lag per group of the platform; what cannot be read is said, not fatal."""
    from stack.diagnosis import platform_group_lags

    try:
        lags = platform_group_lags(settings, timeout=5.0)
    except Exception as error:  # status shows what it could not read
        return f"consumer lag unreadable: {type(error).__name__}: {error}"
    table = Table(title="consumer lag (messages not yet read)")
    for column in ("consumer group", "lag", "by topic"):
        table.add_column(column)
    for group, topics in sorted(lags.items()):
        behind = ", ".join(f"{t} {n}" for t, n in sorted(topics.items()) if n)
        total = str(sum(topics.values())) if topics else "nothing committed yet"
        table.add_row(group, total, behind or "-")
    return table


@app.command("status")
def status_command() -> None:
    """Health of the local stack, and of the platform's processes and their supervisor:
    pid, uptime, restarts, last exit, and each consumer group's lag."""
    settings = get_settings()
    rows = manager.status(settings)
    console.print(_status_table(rows, settings))
    console.print(_platform_table(settings))
    if any(row.name == "kafka" and row.health.ok for row in rows):
        console.print(_lag_table(settings))


if __name__ == "__main__":
    app()
