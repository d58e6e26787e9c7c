"""Hot folder: every new file is ingested once, after it has been completely written.

A file counts as complete when its size and modification time have not changed for
`settle_s` seconds (writers give no other portable signal). Accepted files move to
``DIR/.done``; refused or failed ones to ``DIR/.failed`` with ``NAME.error.txt`` beside them
saying why. Filesystem events (watchdog) wake the loop early; a periodic scan catches
anything the events missed, including files present at start.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from producers.ingest import IngestResult
from visionlog.media.errors import MediaRejectedError

DONE_DIR = ".done"
FAILED_DIR = ".failed"


@dataclass(frozen=True)
class Outcome:
    source: Path
    moved_to: Path
    result: IngestResult | None
    error: str | None


class StabilityTracker:
    """Reports files whose (size, mtime) stayed the same for `settle_s` seconds."""

    def __init__(self, settle_s: float) -> None:
        self.settle_s = settle_s
        self._seen: dict[Path, tuple[int, float, float]] = {}

    def observe(self, path: Path, size: int, mtime: float, now: float) -> bool:
        previous = self._seen.get(path)
        if previous is None or previous[:2] != (size, mtime):
            self._seen[path] = (size, mtime, now)
            return False
        return now - previous[2] >= self.settle_s

    def forget(self, path: Path) -> None:
        self._seen.pop(path, None)

    def prune(self, present: set[Path]) -> None:
        for path in [p for p in self._seen if p not in present]:
            del self._seen[path]


def free_target(directory: Path, name: str) -> Path:
    """`directory/name`, or `name` with a counter when that is taken."""
    target = directory / name
    counter = 1
    while target.exists():
        target = directory / f"{Path(name).stem}.{counter}{Path(name).suffix}"
        counter += 1
    return target


class HotFolder:
    def __init__(
        self,
        directory: Path,
        ingest: Callable[[Path], IngestResult],
        *,
        settle_s: float = 1.0,
        scan_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not directory.is_dir():
            raise NotADirectoryError(f"{directory} is not a directory")
        self.directory = directory
        self.ingest = ingest
        self.scan_s = scan_s
        self.clock = clock
        self.done_dir = directory / DONE_DIR
        self.failed_dir = directory / FAILED_DIR
        self.done_dir.mkdir(exist_ok=True)
        self.failed_dir.mkdir(exist_ok=True)
        self.tracker = StabilityTracker(settle_s)
        self._wake = threading.Event()

    def candidates(self) -> list[Path]:
        """Regular, visible files directly in the folder (not the .done/.failed ones)."""
        return sorted(
            p for p in self.directory.iterdir() if p.is_file() and not p.name.startswith(".")
        )

    def process_ready(self) -> list[Outcome]:
        """Ingest every file that has settled since the last call; returns what happened."""
        outcomes = []
        present = set()
        for path in self.candidates():
            present.add(path)
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            if self.tracker.observe(path, stat.st_size, stat.st_mtime, self.clock()):
                self.tracker.forget(path)
                outcomes.append(self._process(path))
        self.tracker.prune(present)
        return outcomes

    def _process(self, path: Path) -> Outcome:
        try:
            result = self.ingest(path)
        except MediaRejectedError as exc:
            return self._fail(path, str(exc))
        except Exception as exc:
            return self._fail(path, f"{type(exc).__name__}: {exc}")
        target = free_target(self.done_dir, path.name)
        shutil.move(path, target)
        return Outcome(source=path, moved_to=target, result=result, error=None)

    def _fail(self, path: Path, message: str) -> Outcome:
        target = free_target(self.failed_dir, path.name)
        shutil.move(path, target)
        target.with_name(f"{target.name}.error.txt").write_text(message + "\n")
        return Outcome(source=path, moved_to=target, result=None, error=message)

    def run(
        self, stop: threading.Event, on_outcome: Callable[[Outcome], None] | None = None
    ) -> None:
        """Watch until `stop` is set."""
        folder = self

        class _Wake(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                folder._wake.set()

        observer: Any = Observer()
        observer.schedule(_Wake(), str(self.directory), recursive=False)
        observer.start()
        try:
            while not stop.is_set():
                for outcome in self.process_ready():
                    if on_outcome is not None:
                        on_outcome(outcome)
                self._wake.wait(self.scan_s)
                self._wake.clear()
        finally:
            observer.stop()
            observer.join(timeout=5)
