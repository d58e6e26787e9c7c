"""Servers built from Go modules: FerretDB (MongoDB wire protocol) and MinIO (S3)."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import psycopg
from psycopg import sql

from stack.builders import build_go_module
from stack.process import StackError
from stack.services.base import Health, Service, host_port
from stack.services.ferretdb_lookup import ensure_id_lookup_indexes

FERRETDB_MODULE = "github.com/FerretDB/FerretDB"
FERRETDB_VERSION = "v1.24.0"
# MinIO publishes no semantic-version tags to the Go proxy; this pins a commit of Feb 2026.
MINIO_MODULE = "github.com/minio/minio"
MINIO_VERSION = "v0.0.0-20260212201848-7aac2a2c5b7c"
# FerretDB's database on the stack's PostgreSQL (handler "postgresql"): one schema per
# MongoDB database inside it.
FERRETDB_PG_DATABASE = "ferretdb"
# FerretDB 1.24 keeps one PostgreSQL connection per update of an update command until the
# command ends (handler/msg_update.go defers each query iterator's Close), and waits for a
# free one without a deadline: with its default pool of 50, one bulk write of about 50
# updates (the MongoDB projection's bulk-write chunk is 50) hangs FerretDB for good. The
# pool must stay above the largest update command any client sends.
FERRETDB_PG_POOL = 80


def _http_ok(url: str) -> Health:
    try:
        response = httpx.get(url, timeout=2.0)
    except httpx.HTTPError as exc:
        return Health(False, f"{url}: {exc.__class__.__name__}: {exc}")
    return Health(response.status_code == 200, f"{url} -> HTTP {response.status_code}")


class FerretDBService(Service):
    """FerretDB 1.x: a MongoDB wire-protocol server with no extras, storing in a database of
    the stack's PostgreSQL (the default) or in SQLite files (`stack.ferretdb_backend`)."""

    name = "ferretdb"
    process_marker = "ferretdb"
    # FerretDB's database on PostgreSQL (tests start a server of their own on another).
    pg_database = FERRETDB_PG_DATABASE
    # The read side keeps the live worker's priority. At nice 5 (which only took effect once
    # each session's scheduling group got its nice value too) the MongoDB projection's
    # writes took 10-35 s each under the sustained load and its read model fell 530 s
    # behind in 10 minutes; the batch workers, not the read side, are what yield.
    nice = 0

    @property
    def endpoint(self) -> str:
        host, port = host_port(self.settings.mongo.uri.get_secret_value(), 27018)
        return f"{host}:{port}"

    @property
    def backend(self) -> str:
        return self.settings.stack.ferretdb_backend

    @property
    def binary(self) -> Path:
        return self.cache_dir / "bin" / f"ferretdb-{FERRETDB_VERSION}"

    def installed(self) -> bool:
        return self.binary.exists()

    def install(self) -> None:
        if self.installed():
            return

        def stamp_version(source: Path) -> None:
            # The module zip lacks the version file the release build generates from git.
            (source / "build" / "version" / "version.txt").write_text(FERRETDB_VERSION)

        build_go_module(
            FERRETDB_MODULE,
            FERRETDB_VERSION,
            "./cmd/ferretdb",
            self.binary,
            self.cache_dir / "build" / "ferretdb",
            patch=stamp_version,
        )

    def postgresql_url(self) -> str:
        """FerretDB's PostgreSQL URL (with the password: pass it in the environment)."""
        pg = self.settings.postgres
        user = quote(pg.user, safe="")
        password = quote(pg.password.get_secret_value(), safe="")
        return (
            f"postgres://{user}:{password}@{pg.host}:{pg.port}/{self.pg_database}"
            f"?sslmode={quote(pg.sslmode, safe='')}&pool_max_conns={FERRETDB_PG_POOL}"
        )

    def _create_pg_database(self) -> None:
        pg = self.settings.postgres
        with psycopg.connect(pg.conninfo("postgres"), autocommit=True, connect_timeout=2) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (self.pg_database,)
            ).fetchone()
            if exists:
                return
            # Another `stack up` may create it meanwhile.
            with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.pg_database)))

    def ensure_pg_database(self) -> None:
        """Creates FerretDB's database on the stack's PostgreSQL, waiting for the server
        (started before ferretdb) for up to the stack's start timeout."""
        deadline = time.monotonic() + self.settings.stack.start_timeout_s
        while True:
            try:
                self._create_pg_database()
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    pg = self.settings.postgres
                    raise StackError(
                        f"ferretdb needs PostgreSQL at {pg.host}:{pg.port} "
                        f"(stack.ferretdb_backend=postgresql): {exc}"
                    ) from exc
                time.sleep(0.5)
            else:
                return

    def prepare(self) -> None:
        super().prepare()
        if self.backend == "postgresql":
            self.ensure_pg_database()
            # Before FerretDB creates a table: lookups by `_id` must not scan (see module).
            ensure_id_lookup_indexes(self.settings.postgres.conninfo(self.pg_database))
        else:
            (self.state_dir / "data").mkdir(exist_ok=True)

    def command(self) -> tuple[list[str], dict[str, str]]:
        argv = [
            str(self.binary),
            f"--handler={self.backend}",
            f"--state-dir={self.state_dir}",
            f"--listen-addr={self.endpoint}",
            f"--debug-addr=127.0.0.1:{self.settings.stack.ferretdb_debug_port}",
            "--telemetry=disable",
            "--log-level=warn",
        ]
        if self.backend == "postgresql":
            # In the environment, so the password is not on the command line.
            return argv, {"FERRETDB_POSTGRESQL_URL": self.postgresql_url()}
        return [*argv, f"--sqlite-url=file:{self.state_dir / 'data'}/"], {}

    def running_backend(self) -> str | None:
        """The handler of the running server, from its command line (None when not ours or
        not running): a server started before `stack.ferretdb_backend` changed keeps its own
        until restarted."""
        pid = self.pid()
        if pid is None:
            return None
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return None
        for arg in argv:
            if arg.startswith(b"--handler="):
                return arg.removeprefix(b"--handler=").decode()
        return "postgresql"  # FerretDB's default handler

    def health(self) -> Health:
        port = self.settings.stack.ferretdb_debug_port
        ready = _http_ok(f"http://127.0.0.1:{port}/debug/readyz")
        running = self.running_backend() or self.backend
        if running != self.backend:
            ready = Health(
                ready.ok,
                f"{ready.detail}; runs on {running}, configured {self.backend}: restart "
                "ferretdb and rebuild the mongo read model to switch",
            )
        if not ready.ok or running != "postgresql":
            return ready
        # FerretDB's readiness probe does not reach its backend: check that its database
        # on PostgreSQL answers too.
        pg = self.settings.postgres
        try:
            with psycopg.connect(pg.conninfo(self.pg_database), connect_timeout=2) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc) else repr(exc)
            return Health(False, f"PostgreSQL database {self.pg_database}: {first}")
        return Health(True, f"{ready.detail}; on PostgreSQL database {self.pg_database}")


class MinioService(Service):
    name = "minio"
    process_marker = "minio"

    @property
    def endpoint(self) -> str:
        return self.settings.minio.endpoint

    @property
    def binary(self) -> Path:
        return self.cache_dir / "bin" / f"minio-{MINIO_VERSION}"

    def installed(self) -> bool:
        return self.binary.exists()

    def install(self) -> None:
        if self.installed():
            return
        build_go_module(
            MINIO_MODULE, MINIO_VERSION, ".", self.binary, self.cache_dir / "build" / "minio"
        )

    def command(self) -> tuple[list[str], dict[str, str]]:
        minio = self.settings.minio
        host, _ = host_port(self.endpoint, 19000)
        return [
            str(self.binary),
            "server",
            str(self.state_dir / "data"),
            "--address",
            self.endpoint,
            "--console-address",
            f"{host}:{self.settings.stack.minio_console_port}",
            "--quiet",
        ], {
            "MINIO_ROOT_USER": minio.access_key,
            "MINIO_ROOT_PASSWORD": minio.secret_key.get_secret_value(),
            "MINIO_BROWSER": "off",
            "MINIO_UPDATE": "off",
        }

    def health(self) -> Health:
        scheme = "https" if self.settings.minio.secure else "http"
        return _http_ok(f"{scheme}://{self.endpoint}/minio/health/ready")
