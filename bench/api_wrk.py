"""The query API under `wrk`, next to `pgbench` running the SQL the API runs, same clients.

Both load generators are C programs, so neither side is limited by a Python client. For
each endpoint (the media list, one media item, full-text search, detections by class):

- `wrk -t2 -c50 -d20s --latency` with the bearer token, against the API;
- `pgbench -n -c50 -j2 -T20 -f <script> --log`, where the script holds the statements the
  route runs for that request, captured from the route's own code with the same
  parameters (rendered with their values by a recording cursor). The per-request auth
  lookup and, for the item, its MongoDB read are the API's own work and not in the script.
  pgbench's p50/p99 come from its per-transaction log.

It prints one table (`--json`: one JSON document) with the ratios and PASS/FAIL against
the targets: API throughput >= 0.25 x pgbench's, API p99 <= 4 x pgbench's.

It uses the data already in the read model (run the platform and upload something first:
`visionlog run`, then the demo or `bench/sustained_load.py`); it seeds nothing, as only the
processors and projections can put items into the read model. The API is the running
platform's when `/readyz` answers at the configured address (or `--api-url`); otherwise it
starts one `visionlog api serve` on a free port for the run (`--api-cwd`: from another
source tree, for a before/after comparison) and stops it afterwards.

Run: .venv/bin/python -m bench.api_wrk [--connections 50] [--duration 20] [--json]
Needs `wrk` (apt-get install wrk) and `pgbench` (postgresql-client).
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar, Self

import httpx
import psycopg
from psycopg.abc import Params, Query
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from api.auth.roles import Principal
from api.context import ApiContext
from stack.mainjob import admin_credentials
from stack.platform import api_base_url
from visionlog.settings import Settings, get_settings

# The targets, per endpoint: API throughput at least this share of pgbench's, API p99 at
# most this multiple of pgbench's.
MIN_THROUGHPUT_RATIO = 0.25
MAX_P99_RATIO = 4.0
# The endpoints the targets apply to; the media list is measured for reference.
TARGETED = ("media lookup", "full-text search", "detections")
SEARCH_TERM = "invoice"
DETECTION_CLASS = "person"


@dataclass(frozen=True)
class Endpoint:
    name: str
    path: str
    # Calls the route's handler in-process, so its SQL can be recorded.
    call: Callable[[ApiContext, Principal], object]


def endpoints(media_id: str) -> list[Endpoint]:
    from api.routes import media, search

    return [
        Endpoint(
            "media list",
            "/v1/media?limit=20",
            lambda c, p: media.list_media(p, c, None, None, None, None, None, 20, None),
        ),
        Endpoint(
            "media lookup",
            f"/v1/media/{media_id}",
            lambda c, p: media.get_media(media_id, p, c),
        ),
        Endpoint(
            "full-text search",
            f"/v1/search/text?q={SEARCH_TERM}&lang=en",
            lambda c, p: search.search_text(p, c, SEARCH_TERM, "en", 20),
        ),
        Endpoint(
            "detections",
            f"/v1/detections?class_name={DETECTION_CLASS}&min_confidence=0.5&limit=50",
            lambda c, p: search.list_detections(
                p, c, DETECTION_CLASS, None, None, None, 0.5, None, 50, None
            ),
        ),
    ]


# --- capturing the SQL a route runs ------------------------------------------------------


class RecordingCursor(psycopg.ClientCursor[Any]):
    """A client-side cursor that keeps every statement it runs, its values rendered in."""

    recorded: ClassVar[list[str]] = []

    def execute(
        self,
        query: Query,
        params: Params | None = None,
        *,
        prepare: bool | None = None,
        binary: bool | None = None,
    ) -> Self:
        RecordingCursor.recorded.append(self.mogrify(query, params))
        return super().execute(query, params, prepare=prepare, binary=binary)  # type: ignore[arg-type,misc]


def capture_sql(settings: Settings, token: str, targets: list[Endpoint]) -> dict[str, list[str]]:
    """The statements each route runs for its request, as the token's user."""
    from api.app import build_context

    context = build_context(settings)
    try:
        claims = context.tokens.decode(token, "access")
        user, _ = context.auth.user_for_access_token(claims.subject, claims.jti)
        if user is None:
            raise SystemExit("the token's user does not exist")
        principal = Principal(
            user_id=user.user_id, username=user.username, role=user.role, tenant_id=user.tenant_id
        )
        context.pool.close()
        context.pool = ConnectionPool(
            settings.postgres.conninfo(),
            min_size=1,
            max_size=1,
            kwargs={"row_factory": dict_row, "cursor_factory": RecordingCursor},
            open=True,
        )
        captured: dict[str, list[str]] = {}
        for endpoint in targets:
            RecordingCursor.recorded.clear()
            result = endpoint.call(context, principal)
            if inspect.isawaitable(result):
                asyncio.run(_awaited(result))
            captured[endpoint.name] = list(RecordingCursor.recorded)
        return captured
    finally:
        context.close(close_qdrant=False)


async def _awaited(result: Any) -> Any:
    return await result


# --- running the load generators ---------------------------------------------------------


@dataclass
class Measurement:
    rate: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def _duration_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text.strip())
    if match is None:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * _UNITS_MS[match.group(2)]


def parse_wrk(output: str) -> Measurement:
    percentiles = dict(re.findall(r"^\s+(50|99)(?:\.0+)?%\s+(\S+)\s*$", output, re.MULTILINE))
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in", output)
    if rate is None or total is None or "50" not in percentiles or "99" not in percentiles:
        raise RuntimeError(f"cannot read wrk's output:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    errors = int(non_2xx.group(1)) if non_2xx else 0
    if socket_errors:
        errors += sum(int(value) for value in socket_errors.groups())
    return Measurement(
        rate=float(rate.group(1)),
        p50_ms=_duration_ms(percentiles["50"]),
        p99_ms=_duration_ms(percentiles["99"]),
        requests=int(total.group(1)),
        errors=errors,
    )


def run_wrk(url: str, token: str, threads: int, connections: int, duration_s: int) -> Measurement:
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration_s}s",
        "--latency",
        "--timeout",
        "30s",
        "-H",
        f"Authorization: Bearer {token}",
        url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return parse_wrk(done.stdout)


def percentile(ordered: list[float], fraction: float) -> float:
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def parse_pgbench(output: str, log_files: list[Path]) -> Measurement:
    tps = re.search(r"tps = ([\d.]+)", output)
    processed = re.search(r"number of transactions actually processed: (\d+)", output)
    failed = re.search(r"number of failed transactions: (\d+)", output)
    if tps is None or processed is None:
        raise RuntimeError(f"cannot read pgbench's output:\n{output}")
    latencies: list[float] = []
    for path in log_files:
        for line in path.read_text().splitlines():
            fields = line.split()
            # client_id transaction_no time_us script_no time_epoch time_us [lag]
            if len(fields) >= 6 and fields[2].isdigit():
                latencies.append(int(fields[2]) / 1000.0)
    if not latencies:
        raise RuntimeError("pgbench wrote no per-transaction log")
    latencies.sort()
    return Measurement(
        rate=float(tps.group(1)),
        p50_ms=percentile(latencies, 0.50),
        p99_ms=percentile(latencies, 0.99),
        requests=int(processed.group(1)),
        errors=int(failed.group(1)) if failed else 0,
    )


def run_pgbench(
    settings: Settings,
    statements: list[str],
    workdir: Path,
    name: str,
    threads: int,
    connections: int,
    duration_s: int,
) -> Measurement:
    slug = re.sub(r"[^a-z0-9]+", "_", name.lower())
    script = workdir / f"{slug}.sql"
    script.write_text("".join(statement.rstrip().rstrip(";") + ";\n" for statement in statements))
    prefix = workdir / f"pgbench_{slug}"
    postgres = settings.postgres
    command = [
        "pgbench",
        "-n",
        f"-c{connections}",
        f"-j{threads}",
        f"-T{duration_s}",
        "-f",
        str(script),
        "--log",
        f"--log-prefix={prefix}",
        "-h",
        postgres.host,
        "-p",
        str(postgres.port),
        "-U",
        postgres.user,
        postgres.database,
    ]
    environment = {**os.environ, "PGPASSWORD": postgres.password.get_secret_value()}
    done = subprocess.run(
        command, capture_output=True, text=True, check=True, env=environment, cwd=workdir
    )
    logs = sorted(workdir.glob(f"{prefix.name}.*"))
    try:
        return parse_pgbench(done.stdout, logs)
    finally:
        for path in logs:
            path.unlink()


# --- the API -----------------------------------------------------------------------------


def _answers(url: str) -> bool:
    try:
        httpx.get(f"{url}/readyz", timeout=5)
    except httpx.TransportError:
        return False
    return True


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def api_server(settings: Settings, url: str | None, cwd: Path | None) -> Iterator[str]:
    """The running API's base URL, or one started for the run (`visionlog api serve`)."""
    url = url or api_base_url(settings)
    if _answers(url):
        yield url
        return
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = Path(tempfile.gettempdir()) / f"api_wrk_api_{port}.log"
    command = [sys.executable, "-m", "stack.cli", "api", "serve", "--port", str(port)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=cwd)
    print(
        f"# no API at {url}: started one on {base} (pid {process.pid}, log {log_path})",
        file=sys.stderr,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise SystemExit(f"the API exited ({process.returncode}); see {log_path}")
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"the API did not start in 120 s; see {log_path}")
            time.sleep(0.5)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def login(base: str, username: str, password: str) -> str:
    response = httpx.post(
        f"{base}/v1/token", data={"username": username, "password": password}, timeout=30
    )
    if response.status_code != 200:
        raise SystemExit(f"login failed: {response.status_code} {response.text[:200]}")
    token: str = response.json()["access_token"]
    return token


def pick_media(base: str, token: str) -> str:
    """A completed item to look up (one still processing changes under the load)."""
    headers = {"Authorization": f"Bearer {token}"}
    for status in ("completed", None):
        params = {"limit": "1", **({"status": status} if status else {})}
        response = httpx.get(f"{base}/v1/media", params=params, headers=headers, timeout=30)
        response.raise_for_status()
        items = response.json()["items"]
        if items:
            media_id: str = items[0]["media_id"]
            return media_id
    raise SystemExit("the read model has no media: run the platform and upload something first")


# --- the report --------------------------------------------------------------------------


@dataclass
class Row:
    endpoint: str
    path: str
    statements: int
    api: Measurement
    pgbench: Measurement

    @property
    def throughput_ratio(self) -> float:
        return self.api.rate / self.pgbench.rate if self.pgbench.rate else 0.0

    @property
    def p99_ratio(self) -> float:
        return self.api.p99_ms / self.pgbench.p99_ms if self.pgbench.p99_ms else float("inf")

    @property
    def passed(self) -> bool:
        return (
            self.api.errors == 0
            and self.throughput_ratio >= MIN_THROUGHPUT_RATIO
            and self.p99_ratio <= MAX_P99_RATIO
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "path": self.path,
            "statements": self.statements,
            "api": asdict(self.api),
            "pgbench": asdict(self.pgbench),
            "throughput_ratio": round(self.throughput_ratio, 4),
            "p99_ratio": round(self.p99_ratio, 3),
            "targeted": self.endpoint in TARGETED,
            "passed": self.passed,
        }


def print_table(rows: list[Row]) -> None:
    header = (
        f"{'endpoint':17} {'API req/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'err':>4} | "
        f"{'pgb tps':>8} {'p50 ms':>7} {'p99 ms':>7} | {'tput':>5} {'p99':>6}  verdict"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        verdict = "PASS" if row.passed else "FAIL"
        if row.endpoint not in TARGETED:
            verdict += " (reference)"
        print(
            f"{row.endpoint:17} {row.api.rate:9.0f} {row.api.p50_ms:7.1f} {row.api.p99_ms:7.1f}"
            f" {row.api.errors:4d} | {row.pgbench.rate:8.0f} {row.pgbench.p50_ms:7.2f}"
            f" {row.pgbench.p99_ms:7.2f} | {row.throughput_ratio:5.3f} {row.p99_ratio:6.1f}"
            f"  {verdict}"
        )
    print(
        f"targets: API req/s >= {MIN_THROUGHPUT_RATIO} x pgbench tps and API p99 <="
        f" {MAX_P99_RATIO:g} x pgbench p99 (tput and p99 columns are API / pgbench)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--duration", type=int, default=20, help="seconds per run")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of wrk before each run")
    parser.add_argument("--api-url", help="the API to measure (default: the configured one)")
    parser.add_argument("--api-cwd", type=Path, help="start the API from this source tree")
    parser.add_argument("--only", action="append", help="endpoint name(s) to run")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args()
    for tool in ("wrk", "pgbench"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed")
    settings = get_settings()
    username, password, _ = admin_credentials(settings)
    if password is None:
        raise SystemExit("no admin password: run `visionlog run` first")
    with (
        api_server(settings, args.api_url, args.api_cwd) as base,
        tempfile.TemporaryDirectory(prefix="api_wrk_") as scratch,
    ):
        token = login(base, username, password)
        targets = [
            endpoint
            for endpoint in endpoints(pick_media(base, token))
            if not args.only or endpoint.name in args.only
        ]
        captured = capture_sql(settings, token, targets)
        rows: list[Row] = []
        for endpoint in targets:
            url = base + endpoint.path
            check = httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
            if check.status_code != 200:
                raise SystemExit(f"{endpoint.path}: {check.status_code} {check.text[:200]}")
            if args.warmup:
                run_wrk(url, token, args.threads, args.connections, args.warmup)
            api = run_wrk(url, token, args.threads, args.connections, args.duration)
            direct = run_pgbench(
                settings,
                captured[endpoint.name],
                Path(scratch),
                endpoint.name,
                args.threads,
                args.connections,
                args.duration,
            )
            rows.append(
                Row(endpoint.name, endpoint.path, len(captured[endpoint.name]), api, direct)
            )
            if not args.json:
                print(f"# {endpoint.name}: done", file=sys.stderr)
    if args.json:
        document = {
            "connections": args.connections,
            "threads": args.threads,
            "duration_s": args.duration,
            "api": base,
            "targets": {
                "min_throughput_ratio": MIN_THROUGHPUT_RATIO,
                "max_p99_ratio": MAX_P99_RATIO,
            },
            "sql": captured,
            "rows": [row.as_dict() for row in rows],
        }
        print(json.dumps(document, indent=2))
        return
    print(
        f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s --latency | "
        f"pgbench -n -c{args.connections} -j{args.threads} -T{args.duration} --log; API {base}"
    )
    print_table(rows)


if __name__ == "__main__":
    main()
