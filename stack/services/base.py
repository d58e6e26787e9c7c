"""What every server of the local stack provides: install, start, health, stop."""

from __future__ import annotations

import os
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from stack.process import StackError, pid_alive, read_pid, spawn, terminate
from visionlog.settings import Settings

STACK_DIR = Path(__file__).resolve().parents[1]
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


@dataclass(frozen=True)
class Health:
    ok: bool
    detail: str


def host_port(address: str, default_port: int) -> tuple[str, int]:
    """host and port from 'host:port' or a URL."""
    parts = urlsplit(address if "//" in address else f"//{address}")
    return parts.hostname or "127.0.0.1", parts.port or default_port


@dataclass(frozen=True)
class Java:
    home: Path
    major: int

    @property
    def binary(self) -> str:
        return str(self.home / "bin" / "java")


def _java_major(home: Path) -> int | None:
    release = home / "release"
    if not (home / "bin" / "java").exists() or not release.exists():
        return None
    match = re.search(r'JAVA_VERSION="(\d+)', release.read_text())
    return int(match.group(1)) if match else None


def find_java(minimum: int, preferred: Path | None = None) -> Java:
    """A JDK of at least the given major version: configured, JAVA_HOME, then /usr/lib/jvm."""
    candidates: list[Path] = []
    if preferred:
        candidates.append(preferred)
    if os.environ.get("JAVA_HOME"):
        candidates.append(Path(os.environ["JAVA_HOME"]))
    jvm = Path("/usr/lib/jvm")
    if jvm.is_dir():
        candidates.extend(sorted(p for p in jvm.iterdir() if p.is_dir() and not p.is_symlink()))
    found = [(major, home) for home in candidates if (major := _java_major(home))]
    suitable = [item for item in found if item[0] >= minimum]
    if not suitable:
        seen = ", ".join(f"{h} ({m})" for m, h in found) or "none"
        raise StackError(
            f"need a JDK >= {minimum}; found {seen}. Install one or set VISIONLOG_STACK__JAVA_HOME."
        )
    # Prefer the exact configured one, else the newest.
    major, home = suitable[0] if preferred and suitable[0][1] == preferred else max(suitable)
    return Java(home=home, major=major)


class Service(ABC):
    """One server of the local stack. Subclasses say how to install, run and probe it."""

    name: str
    # Text that must appear in the server's command line, to tell it from a recycled pid.
    process_marker: str = ""
    # CPU priority: servers the live path waits on keep 0; read-side stores run lower.
    nice: int = 0

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.state_dir = settings.state_dir / self.name
        self.cache_dir = settings.cache_dir
        self.log_file = settings.state_dir / "logs" / f"{self.name}.log"
        self.pid_file = settings.state_dir / "run" / f"{self.name}.pid"

    # --- configuration ---------------------------------------------------------------
    @property
    @abstractmethod
    def endpoint(self) -> str:
        """Where clients reach the server, as shown by `status`."""

    @property
    def managed(self) -> bool:
        """Only servers configured on loopback are run by the stack; others are external."""
        return host_port(self.endpoint, 0)[0] in LOOPBACK

    # --- life cycle ------------------------------------------------------------------
    @abstractmethod
    def installed(self) -> bool: ...

    @abstractmethod
    def install(self) -> None:
        """Build or fetch what the server needs into the cache; idempotent."""

    @abstractmethod
    def command(self) -> tuple[list[str], dict[str, str]]:
        """argv and extra environment of the server process."""

    def prepare(self) -> None:
        """Create the data directory and anything else needed before the first start."""
        self.state_dir.mkdir(parents=True, exist_ok=True)

    @abstractmethod
    def health(self) -> Health: ...

    def after_healthy(self) -> None:  # noqa: B027 - an optional hook, empty by default
        """One-time setup that needs the running server (e.g. creating a database)."""

    def pid(self) -> int | None:
        pid = read_pid(self.pid_file)
        return pid if pid_alive(pid, self.process_marker or None) else None

    def running(self) -> bool:
        return self.pid() is not None

    def start(self) -> None:
        self.prepare()
        argv, env = self.command()
        spawn(
            argv,
            pid_file=self.pid_file,
            log_file=self.log_file,
            env=env,
            cwd=self.state_dir,
            nice=self.nice,
        )

    def stop(self) -> bool:
        """Stop the server if running; True when it was running."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        terminate(pid)
        self.pid_file.unlink(missing_ok=True)
        return True

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_file.exists():
            return f"(no log at {self.log_file})"
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
