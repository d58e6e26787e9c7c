"""Command line of the producers: ``upload``, ``watch`` and ``fetch``.

Exit status: 0 when every input was accepted, 1 when any was refused or failed, 2 for
usage errors.
"""

from __future__ import annotations

import threading
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from producers.fetch import fetch_and_ingest
from producers.idempotency import IdempotencyConflictError
from producers.ingest import (
    Ingestor,
    IngestResult,
    PublishFailedError,
    StorageFailedError,
    UploadSource,
)
from producers.watch import HotFolder, Outcome
from visionlog.media.errors import MediaRejectedError
from visionlog.settings import get_settings

app = typer.Typer(help="Put images, PDFs and videos into visionlog.", no_args_is_help=True)
# Soft wrap: one line per file, whole ids and paths, whatever the terminal width.
console = Console(stderr=True, soft_wrap=True)


class Profile(StrEnum):
    OCR = "ocr"
    VISION = "vision"
    FULL = "full"


ProfileOption = Annotated[
    Profile | None, typer.Option("--profile", help="Processing profile (default from settings).")
]
LabelOption = Annotated[
    list[str] | None, typer.Option("--label", help="Label as key=value; repeatable.")
]
IgnoreExtensionOption = Annotated[
    bool,
    typer.Option(
        "--ignore-extension", help="Accept content whose file extension names another type."
    ),
]


def parse_labels(items: list[str] | None) -> dict[str, str]:
    labels = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"label {item!r} is not key=value", param_hint="--label")
        labels[key.strip()] = value
    return labels


def expand_paths(paths: list[Path], recursive: bool) -> list[Path]:
    """Files named, plus the files in named folders (all levels with `recursive`)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            found.extend(
                sorted(
                    p
                    for p in path.glob(pattern)
                    if p.is_file() and not any(part.startswith(".") for part in p.parts[-1:])
                )
            )
        elif path.is_file():
            found.append(path)
        else:
            raise typer.BadParameter(f"{path} does not exist", param_hint="PATHS")
    return found


def _ingestor() -> Ingestor:
    return Ingestor.from_settings(get_settings())


def _describe(result: IngestResult) -> str:
    parts = [f"{result.media_id} {result.media_type}"]
    if result.duplicate_of:
        parts.append(f"duplicate of {result.duplicate_of}")
    if result.page_count:
        # Rendered later by the document worker; this is what the document holds.
        parts.append(f"{result.page_count} pages")
    if result.duration_ms is not None:
        parts.append(f"{result.duration_ms / 1000:.1f} s")
    if result.replayed:
        parts.append("already uploaded with this idempotency key")
    return ", ".join(parts)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=console,
    )


@app.command()
def upload(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders to upload.")],
    profile: ProfileOption = None,
    label: LabelOption = None,
    password: Annotated[
        bool, typer.Option("--password", help="Ask for the password of encrypted PDFs.")
    ] = False,
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Descend into folders.")] = (
        False
    ),
    ignore_extension: IgnoreExtensionOption = False,
    idempotency_key: Annotated[
        str | None,
        typer.Option(
            "--idempotency-key",
            help="Make a retry safe: the same key returns the first upload's media id "
            "instead of a second item (one file only).",
        ),
    ] = None,
) -> None:
    """Upload files; prints one line per file with its media id."""
    labels = parse_labels(label)
    files = expand_paths(paths, recursive)
    if idempotency_key is not None and len(files) != 1:
        raise typer.BadParameter(
            f"an idempotency key names one upload; {len(files)} files were given",
            param_hint="--idempotency-key",
        )
    secret = typer.prompt("PDF password", hide_input=True) if password else None
    ingestor = _ingestor()
    failures = 0
    try:
        with _progress() as progress:
            total = progress.add_task("uploading", total=sum(f.stat().st_size for f in files))
            for file in files:
                progress.update(total, description=file.name)
                try:
                    result = ingestor.ingest_bytes(
                        file,
                        profile=profile.value if profile else None,
                        source=UploadSource.CLI,
                        labels=labels,
                        password=secret,
                        trust_content=ignore_extension,
                        idempotency_key=idempotency_key,
                    )
                except (
                    MediaRejectedError,
                    StorageFailedError,
                    PublishFailedError,
                    IdempotencyConflictError,
                ) as exc:
                    failures += 1
                    progress.console.print(f"[red]✗ {file}: {exc}[/red]", soft_wrap=True)
                else:
                    progress.console.print(f"✓ {file}: {_describe(result)}", soft_wrap=True)
                progress.advance(total, file.stat().st_size)
    finally:
        ingestor.close()
    if failures:
        raise typer.Exit(code=1)


@app.command()
def fetch(
    url: Annotated[str, typer.Argument(help="http(s) URL to fetch and upload.")],
    profile: ProfileOption = None,
    label: LabelOption = None,
    ignore_extension: IgnoreExtensionOption = False,
) -> None:
    """Fetch a URL and upload what it returns."""
    ingestor = _ingestor()
    try:
        result = fetch_and_ingest(
            ingestor,
            url,
            profile=profile.value if profile else None,
            labels=parse_labels(label),
            trust_content=ignore_extension,
        )
    except (MediaRejectedError, StorageFailedError, PublishFailedError) as exc:
        console.print(f"[red]✗ {exc}[/red]")
        raise typer.Exit(code=1) from exc
    finally:
        ingestor.close()
    console.print(f"✓ {_describe(result)}")


@app.command()
def watch(
    directory: Annotated[Path, typer.Argument(help="Folder to watch.")],
    profile: ProfileOption = None,
    label: LabelOption = None,
    settle: Annotated[
        float, typer.Option(help="Seconds a file must stay unchanged before it is taken.")
    ] = 1.0,
    ignore_extension: IgnoreExtensionOption = False,
) -> None:
    """Upload every new file in DIRECTORY once written; moves it to .done or .failed."""
    labels = parse_labels(label)
    ingestor = _ingestor()

    def ingest(path: Path) -> IngestResult:
        return ingestor.ingest_bytes(
            path,
            profile=profile.value if profile else None,
            source=UploadSource.HOT_FOLDER,
            source_uri=str(directory.resolve()),
            labels=labels,
            trust_content=ignore_extension,
        )

    def report(outcome: Outcome) -> None:
        if outcome.result is not None:
            console.print(f"✓ {outcome.source.name}: {_describe(outcome.result)}")
        else:
            console.print(f"[red]✗ {outcome.source.name}: {outcome.error}[/red]")

    folder = HotFolder(directory, ingest, settle_s=settle)
    console.print(f"watching {directory} (Ctrl-C to stop)")
    stop = threading.Event()
    try:
        folder.run(stop, report)
    except KeyboardInterrupt:
        stop.set()
    finally:
        ingestor.close()
