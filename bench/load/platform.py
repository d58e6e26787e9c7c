"""Starting what the run needs (stack, platform, camera producer) and stopping what the
benchmark started, and nothing else."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from processors import modelstore
from producers.cameras.config import CameraConfig
from stack import manager
from stack.initialise import initialise
from stack.mainjob import admin_credentials, login
from stack.platform import (
    PROCESSES,
    ProcessStatus,
    api_base_url,
    platform_status,
    start_platform,
    wait_for_api,
)
from stack.process import terminate
from visionlog.settings import Settings

Say = Callable[[str], None]


def _api_ready(settings: Settings) -> bool:
    try:
        return httpx.get(f"{api_base_url(settings)}/readyz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


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
    """Stop the platform processes the benchmark started (API first, processors last)."""
    pids = {row.name: row.pid for row in started}
    for process in reversed(PROCESSES):
        pid = pids.get(process.name)
        if pid is not None:
            terminate(pid, timeout=30)
            process.pid_file(settings).unlink(missing_ok=True)


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
