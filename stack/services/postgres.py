"""PostgreSQL from the Debian packages, one cluster under the state directory."""

from __future__ import annotations

import os
import pwd
import subprocess
import tempfile
from pathlib import Path

import psycopg
from psycopg import sql

from stack.process import StackError, pid_alive, read_pid, require_tool, run_checked
from stack.services.base import Health, Service

PG_ROOT = Path("/usr/lib/postgresql")


def find_pg_bin() -> Path | None:
    versions = sorted(
        (p for p in PG_ROOT.glob("*/bin") if (p / "initdb").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    return versions[-1] if versions else None


class PostgresService(Service):
    name = "postgres"
    process_marker = "postgres"

    @property
    def endpoint(self) -> str:
        pg = self.settings.postgres
        return f"{pg.host}:{pg.port}"

    @property
    def data_dir(self) -> Path:
        return self.state_dir / "data"

    def installed(self) -> bool:
        return find_pg_bin() is not None

    def install(self) -> None:
        if self.installed():
            return
        if os.geteuid() != 0:
            raise StackError(
                "PostgreSQL is not installed: run `sudo apt-get install -y postgresql`"
            )
        apt = require_tool("apt-get", "install the PostgreSQL server package by hand")
        env = {"DEBIAN_FRONTEND": "noninteractive"}
        run_checked([apt, "update", "-q"], what="apt-get update", env=env)
        run_checked(
            [apt, "install", "-y", "-q", "--no-install-recommends", "postgresql"],
            what="apt-get install postgresql",
            env=env,
        )

    # PostgreSQL refuses to run as root; as root it runs as the `postgres` system user.
    def _as_server_user(self, argv: list[str]) -> list[str]:
        if os.geteuid() != 0:
            return argv
        return ["runuser", "-u", "postgres", "--", *argv]

    def _chown(self, path: Path) -> None:
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _bin(self, tool: str) -> str:
        pg_bin = find_pg_bin()
        if pg_bin is None:
            raise StackError("PostgreSQL is not installed; run `visionlog install`")
        return str(pg_bin / tool)

    def prepare(self) -> None:
        super().prepare()
        self._chown(self.state_dir)
        (self.state_dir / "run").mkdir(exist_ok=True)
        self._chown(self.state_dir / "run")
        if not self.log_file.exists():
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            self.log_file.touch()
        self._chown(self.log_file)
        if (self.data_dir / "PG_VERSION").exists():
            return
        pg = self.settings.postgres
        with tempfile.NamedTemporaryFile("w", dir=self.state_dir, delete=False) as pwfile:
            pwfile.write(pg.password.get_secret_value())
        pwpath = Path(pwfile.name)
        try:
            self._chown(pwpath)
            run_checked(
                self._as_server_user(
                    [
                        self._bin("initdb"),
                        "-D",
                        str(self.data_dir),
                        "-U",
                        pg.user,
                        f"--pwfile={pwpath}",
                        "--auth=scram-sha-256",
                        "--encoding=UTF8",
                        "--locale=C.UTF-8",
                        "--no-sync",
                    ]
                ),
                what="initdb",
            )
        finally:
            pwpath.unlink(missing_ok=True)

    def command(self) -> tuple[list[str], dict[str, str]]:
        pg = self.settings.postgres
        options = (
            f"-c listen_addresses={pg.host} -p {pg.port} -k {self.state_dir / 'run'} "
            "-c max_connections=200 -c shared_buffers=128MB"
            # FerretDB's collections are tables that grow from empty by thousands of rows a
            # minute: until autovacuum first analyzes one, the planner reads the whole
            # table for every `_id` lookup (measured: 12 ms per lookup at 12,500 rows, 1 ms
            # after the analyze), so the MongoDB read model fell 19 s behind in the first
            # minutes of the sustained load. Looking every 5 s instead of every minute
            # analyzes a new table within seconds of its first rows.
            " -c autovacuum_naptime=5s"
        )
        return self._as_server_user(
            [
                self._bin("pg_ctl"),
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_file),
                "-o",
                options,
                "start",
            ]
        ), {}

    def start(self) -> None:
        self.prepare()
        argv, _ = self.command()
        # pg_ctl daemonises the server itself; its pid lives in postmaster.pid.
        run_checked(argv, what="pg_ctl start")

    def pid(self) -> int | None:
        pid = read_pid(self.data_dir / "postmaster.pid")
        return pid if pid_alive(pid, self.process_marker) else None

    def stop(self) -> bool:
        if self.pid() is None:
            return False
        subprocess.run(
            self._as_server_user(
                [self._bin("pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"]
            ),
            capture_output=True,
            check=False,
            timeout=60,
        )
        return True

    def health(self) -> Health:
        pg = self.settings.postgres
        try:
            with psycopg.connect(pg.conninfo("postgres"), connect_timeout=2) as conn:
                version = conn.execute("SHOW server_version").fetchone()
        except psycopg.Error as exc:
            return Health(False, str(exc).strip().splitlines()[0] if str(exc) else repr(exc))
        return Health(True, f"PostgreSQL {version[0] if version else '?'}")

    def after_healthy(self) -> None:
        pg = self.settings.postgres
        with psycopg.connect(pg.conninfo("postgres"), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (pg.database,)
            ).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(pg.database)))
