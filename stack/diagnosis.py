"""Why has the platform not finished? What `visionlog run` prints when samples are late:
each process, each consumer group's backlog, and the latest warnings of the logs."""

from __future__ import annotations

import json
import os
import shutil
from collections import deque
from pathlib import Path

from stack.platform import platform_status
from visionlog.kafka import admin_client, consumer_lags
from visionlog.settings import Settings

_NOTABLE = ("WARNING", "ERROR", "CRITICAL")
# What a worker logs before it dumps its threads' stacks on a stuck stage.
STUCK_MARKER = "writing every thread's stack"


def diagnose(settings: Settings, *, log_lines: int = 12) -> list[str]:
    lines = ["diagnosis:", f"  {_resources(settings)}"]
    processes = platform_status(settings)
    for row in processes:
        state = f"running, pid {row.pid}" if row.running else "NOT RUNNING"
        lines.append(f"  process {row.name}: {state}")
    lines.extend(f"  {line}" for line in _backlogs(settings))
    for row in processes:
        notable = notable_lines(row.log, log_lines)
        if notable:
            lines.append(f"  latest warnings in {row.log}:")
            lines.extend(f"    {line}" for line in notable)
        dump = last_stall_dump(row.log)
        if dump:
            lines.append(
                f"  a worker stalled and was restarted; the stacks of its threads ({row.log}):"
            )
            lines.extend(f"    {line}" for line in dump)
    return lines


def _resources(settings: Settings) -> str:
    disk = shutil.disk_usage(settings.state_dir)
    memory = "unknown"
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                memory = f"{int(line.split()[1]) / 2**20:.1f} GiB"
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"disk free under {settings.state_dir}: {disk.free / 2**30:.1f} of "
        f"{disk.total / 2**30:.1f} GiB; memory available: {memory}; load: {load}"
    )


def platform_group_lags(settings: Settings, timeout: float = 10.0) -> dict[str, dict[str, int]]:
    """Per consumer group of the platform and topic: the messages it has yet to read."""
    prefix = f"{settings.kafka.topic_prefix}visionlog-"
    admin = admin_client(settings.kafka)
    groups = [
        g.group_id
        for g in admin.list_consumer_groups(request_timeout=timeout).result().valid
        if g.group_id.startswith(prefix)
    ]
    return consumer_lags(admin, sorted(groups), timeout=timeout)


def _backlogs(settings: Settings) -> list[str]:
    try:
        lags = platform_group_lags(settings)
    except Exception as error:  # a diagnosis reports what it could not read
        return [f"consumer groups unreadable: {type(error).__name__}: {error}"]
    lines = []
    for group, topics in sorted(lags.items()):
        behind = {topic: lag for topic, lag in topics.items() if lag}
        summary = ", ".join(f"{t} {n}" for t, n in sorted(behind.items()))
        if not topics:
            summary = "joined, nothing committed yet"
        lines.append(f"group {group}: {summary or 'current'}")
    lines.extend(
        f"group {group}: NOT JOINED (its worker is starting, or stuck before it consumes)"
        for group in _worker_groups(settings)
        if group not in lags
    )
    return lines


def _tail(log: Path, scan_bytes: int) -> str:
    with log.open("rb") as handle:
        handle.seek(max(0, log.stat().st_size - scan_bytes))
        return handle.read().decode(errors="replace")


def last_stall_dump(log: Path, *, max_lines: int = 40, scan_bytes: int = 4_000_000) -> list[str]:
    """The last stack dump of `processors.watchdog` in a log (its first lines), if any."""
    if not log.exists():
        return []
    text = _tail(log, scan_bytes)
    # The watchdog's dump starts with "Timeout (...)!"; a worker that gave up on a stuck
    # stage logs STUCK_MARKER, then the dump.
    timeout_at, stuck_at = text.rfind("Timeout ("), text.rfind(STUCK_MARKER)
    if stuck_at > timeout_at:
        threads = [text.find(head, stuck_at) for head in ("Thread 0x", "Current thread 0x")]
        found = [at for at in threads if at >= 0]
        return text[min(found) :].splitlines()[:max_lines] if found else []
    if timeout_at < 0:
        return []
    return text[timeout_at:].splitlines()[:max_lines]


def _worker_groups(settings: Settings) -> list[str]:
    from processors.bindings import ALL_KINDS
    from processors.worker import group_id

    return [group_id(kind, settings) for kind in ALL_KINDS]


def notable_lines(log: Path, count: int, *, scan_bytes: int = 4_000_000) -> list[str]:
    """The last `count` warnings and errors of a log (JSON lines or text), shortened."""
    if not log.exists():
        return []
    text = _tail(log, scan_bytes)
    kept: deque[str] = deque(maxlen=count)
    for raw in text.splitlines():
        line = _notable(raw)
        if line is not None:
            kept.append(line[:400])
    return list(kept)


def _notable(raw: str) -> str | None:
    if raw.startswith("{"):
        try:
            record = json.loads(raw)
        except ValueError:
            record = None
        if isinstance(record, dict):
            if record.get("level") not in _NOTABLE:
                return None
            return (
                f"{record.get('timestamp', '')} {record.get('level')} "
                f"[{record.get('process', '')}] {record.get('message', '')}"
            )
    return raw if any(f" {level} " in raw for level in _NOTABLE) else None
