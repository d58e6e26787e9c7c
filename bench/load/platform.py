"""Starting what the run needs (stack, platform, camera producer) and stopping what the
benchmark started, and nothing else."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from processors import modelstore
from producers.cameras.config import CameraConfig
from stack import manager
from stack.initialise import initialise
from stack.mainjob import admin_credentials, login
from stack.platform import (
    ProcessStatus,
    api_base_url,
    platform_status,
    start_platform,
    stop_platform,
    wait_for_api,
)
from visionlog.settings import Settings, get_settings

Say = Callable[[str], None]


def _api_ready(settings: Settings) -> bool:
    try:
        return httpx.get(f"{api_base_url(settings)}/readyz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


class StackBusyError(RuntimeError):
    """The ports of the local stack are taken: an isolated run cannot start its own."""


@contextmanager
def isolated_platform(settings: Settings, keep_to: Path, say: Say) -> Iterator[Settings]:
    """A stack and platform of the benchmark's own, in an empty state directory beside the
    default one. What the load leaves queued when it ends (it is meant to overload) is
    removed with that directory instead of becoming a backlog that the user's next uploads
    wait behind. The platform's logs are copied to `keep_to` first."""
    # Embedded Qdrant is a directory, not a server: it takes no port.
    servers = [row for row in manager.status(settings) if row.managed]
    embedded = {"qdrant"} if settings.qdrant_embedded else set()
    taken = [row.name for row in servers if row.health.ok and row.name not in embedded]
    if taken:
        raise StackBusyError(
            f"the local stack is running ({', '.join(taken)}) on the ports the benchmark's own "
            "stack needs: stop it with `visionlog stop`, or pass --on-running-platform to load "
            "the running platform (what stays queued at the end is then its backlog)"
        )
    state_dir = settings.state_dir.with_name(f"{settings.state_dir.name}-bench")
    if state_dir.exists():
        shutil.rmtree(state_dir)
    previous = os.environ.get("VISIONLOG_STATE_DIR")
    # Every process the benchmark starts (stack, workers, camera producer) inherits it.
    os.environ["VISIONLOG_STATE_DIR"] = str(state_dir)
    get_settings.cache_clear()
    isolated = get_settings()
    say(f"the benchmark's own stack and platform run under {state_dir}")
    try:
        yield isolated
    finally:
        stopped = stop_platform(isolated)
        say(f"stopped the benchmark's platform ({', '.join(stopped) or 'nothing was running'})")
        manager.down(isolated)
        logs = isolated.state_dir / "logs"
        if logs.exists():
            shutil.copytree(logs, keep_to / "logs", dirs_exist_ok=True)
        shutil.rmtree(state_dir)
        say(f"removed {state_dir} and what it held queued; its logs are in {keep_to / 'logs'}")
        if previous is None:
            del os.environ["VISIONLOG_STATE_DIR"]
        else:
            os.environ["VISIONLOG_STATE_DIR"] = previous
        get_settings.cache_clear()


def ensure_platform(settings: Settings, say: Say) -> list[ProcessStatus]:
    """Start the stack and the platform's processes where they are not running, like
    `visionlog run`; returns the processes this call started."""
    if all(row.running for row in platform_status(settings)) and _api_ready(settings):
        return []
    say("starting the local stack (idempotent)")
    manager.up(settings, report=say)
    initialise(settings)
    say("provisioning models (a no-op when cached)")
    for spec in modelstore.catalogue().values():
        modelstore.provision(spec)
    rows = start_platform(settings)
    started = [row for row in rows if row.started]
    if started:
        say(f"started {', '.join(row.name for row in started)}; waiting for the API")
    wait_for_api(settings)
    return started


def stop_started(settings: Settings, started: list[ProcessStatus]) -> None:
    """Stop the platform when the benchmark started it. Its processes run under one
    supervisor, which would restart any stopped alone: stopping them means stopping it
    (and with it any process it adopted from an older layout)."""
    if started:
        stop_platform(settings)


def admin_login(settings: Settings) -> Callable[[], str]:
    """A function that logs the local admin in (again) and returns a bearer token."""
    username, password, password_file = admin_credentials(settings)
    if password is None:
        raise RuntimeError(
            f"the admin password is neither configured nor in {password_file}; "
            "set VISIONLOG_API__ADMIN_PASSWORD or run `visionlog run` once"
        )
    return lambda: login(settings, username, password)


@dataclass(frozen=True)
class CameraSpec:
    name: str
    url: str
    target_fps: float
    profile: str
    max_age_s: float


def camera_fields_supported() -> set[str]:
    """Which of the newer camera settings this version of the camera config accepts."""
    return {name for name in ("profile", "max_age_s") if name in CameraConfig.model_fields}


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def camera_set_toml(cameras: list[CameraSpec], supported: set[str]) -> str:
    """The camera set file: settings the config does not know (yet) are left out, since
    the config refuses unknown keys."""
    lines = ["# written by bench/sustained_load.py", "status_interval_s = 5", ""]
    for camera in cameras:
        lines += [
            "[[cameras]]",
            f"name = {_toml_string(camera.name)}",
            f"url = {_toml_string(camera.url)}",
            f"target_fps = {camera.target_fps:g}",
            "jpeg_quality = 85",
        ]
        if "profile" in supported:
            lines.append(f"profile = {_toml_string(camera.profile)}")
        if "max_age_s" in supported:
            lines.append(f"max_age_s = {camera.max_age_s:g}")
        lines.append("")
    return "\n".join(lines)


def start_camera_producer(config: Path, log_file: Path) -> subprocess.Popen[bytes]:
    """`visionlog cameras run CONFIG` as its own process, logging to a file."""
    with log_file.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "stack.cli", "cameras", "run", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(os.environ),
            start_new_session=True,
        )


def stop_camera_producer(process: subprocess.Popen[bytes], timeout_s: float = 60.0) -> int:
    """SIGTERM (it publishes every frame in flight and a final status), then SIGKILL."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    return int(process.returncode)
