"""Brings the local stack up and down and reports on it."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from stack.process import StackError
from stack.services.base import Health, Service
from stack.services.gobuilt import FerretDBService, MinioService
from stack.services.kafka import KafkaService
from stack.services.postgres import PostgresService
from stack.services.qdrant import QdrantService
from stack.services.registry import RegistryService
from visionlog.settings import Settings

# Start order: databases first, so their start overlaps the slower JVMs' least.
SERVICE_TYPES: tuple[type[Service], ...] = (
    PostgresService,
    KafkaService,
    RegistryService,
    FerretDBService,
    MinioService,
    QdrantService,
)
SERVICE_NAMES = tuple(t.name for t in SERVICE_TYPES)

Reporter = Callable[[str], None]


@dataclass
class ServiceStatus:
    name: str
    managed: bool
    running: bool
    health: Health
    endpoint: str
    pid: int | None
    install_s: float | None = None
    start_s: float | None = None
    started: bool = False


def services(settings: Settings, names: Sequence[str] | None = None) -> list[Service]:
    unknown = set(names or ()) - set(SERVICE_NAMES)
    if unknown:
        raise StackError(f"unknown service(s) {sorted(unknown)}; known: {', '.join(SERVICE_NAMES)}")
    return [t(settings) for t in SERVICE_TYPES if not names or t.name in names]


def _quiet(_: str) -> None:
    return None


def install(
    settings: Settings, names: Sequence[str] | None = None, report: Reporter = _quiet
) -> dict[str, float]:
    """Install what is missing; returns seconds spent per service (0 when cached)."""
    spent = {}
    for service in services(settings, names):
        if not service.managed:
            continue
        began = time.monotonic()
        if not service.installed():
            report(f"installing {service.name} (first time only, cached in {settings.cache_dir})")
            service.install()
        spent[service.name] = time.monotonic() - began
    return spent


def status(settings: Settings, names: Sequence[str] | None = None) -> list[ServiceStatus]:
    return [
        ServiceStatus(
            name=s.name,
            managed=s.managed,
            running=s.running() if s.managed else True,
            health=s.health(),
            endpoint=s.endpoint,
            pid=s.pid() if s.managed else None,
        )
        for s in services(settings, names)
    ]


def up(
    settings: Settings, names: Sequence[str] | None = None, report: Reporter = _quiet
) -> list[ServiceStatus]:
    """Install what is missing and start what is not healthy; idempotent.

    Servers start in order but are waited for together, so slow JVM starts overlap.
    """
    install_times = install(settings, names, report)
    chosen = services(settings, names)
    results: dict[str, ServiceStatus] = {}
    launched: dict[str, float] = {}
    pending: list[Service] = []
    for service in chosen:
        health = service.health()
        if health.ok or not service.managed:
            results[service.name] = ServiceStatus(
                service.name,
                service.managed,
                True,
                health,
                service.endpoint,
                service.pid(),
                install_times.get(service.name),
            )
            if not health.ok:
                raise StackError(
                    f"{service.name} at {service.endpoint} (external) is not "
                    f"healthy: {health.detail}"
                )
            continue
        if service.running():
            report(f"{service.name} is running but not healthy yet; waiting")
        else:
            report(f"starting {service.name} on {service.endpoint}")
            launched[service.name] = time.monotonic()
            service.start()
        pending.append(service)
    _wait_healthy(pending, settings, launched, results, install_times, report)
    return [results[s.name] for s in chosen]


def _wait_healthy(
    pending: list[Service],
    settings: Settings,
    launched: dict[str, float],
    results: dict[str, ServiceStatus],
    install_times: dict[str, float],
    report: Reporter,
) -> None:
    deadline = time.monotonic() + settings.stack.start_timeout_s
    waiting = list(pending)
    while waiting:
        for service in list(waiting):
            health = service.health()
            if health.ok:
                service.after_healthy()
                started_at = launched.get(service.name)
                elapsed = time.monotonic() - started_at if started_at else None
                results[service.name] = ServiceStatus(
                    service.name,
                    True,
                    True,
                    health,
                    service.endpoint,
                    service.pid(),
                    install_times.get(service.name),
                    elapsed,
                    started_at is not None,
                )
                if elapsed is not None:
                    report(f"{service.name} ready in {elapsed:.1f}s")
                waiting.remove(service)
            elif not service.running():
                raise StackError(
                    f"{service.name} exited during start-up ({health.detail}); last log lines "
                    f"of {service.log_file}:\n{service.log_tail()}"
                )
        if waiting and time.monotonic() > deadline:
            names = ", ".join(s.name for s in waiting)
            tails = "\n".join(f"--- {s.name}\n{s.log_tail(15)}" for s in waiting)
            raise StackError(
                f"not healthy after {settings.stack.start_timeout_s:.0f}s: {names}\n{tails}"
            )
        if waiting:
            time.sleep(0.25)


def down(
    settings: Settings, names: Sequence[str] | None = None, report: Reporter = _quiet
) -> list[str]:
    """Stop managed servers in reverse start order; returns the ones that were running."""
    stopped = []
    for service in reversed(services(settings, names)):
        if service.managed and service.stop():
            report(f"stopped {service.name}")
            stopped.append(service.name)
    return stopped
