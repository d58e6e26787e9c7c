"""Servers built from Go modules: FerretDB (MongoDB wire protocol) and MinIO (S3)."""

from __future__ import annotations

from pathlib import Path

import httpx

from stack.builders import build_go_module
from stack.services.base import Health, Service, host_port

FERRETDB_MODULE = "github.com/FerretDB/FerretDB"
FERRETDB_VERSION = "v1.24.0"
# MinIO publishes no semantic-version tags to the Go proxy; this pins a commit of Feb 2026.
MINIO_MODULE = "github.com/minio/minio"
MINIO_VERSION = "v0.0.0-20260212201848-7aac2a2c5b7c"


def _http_ok(url: str) -> Health:
    try:
        response = httpx.get(url, timeout=2.0)
    except httpx.HTTPError as exc:
        return Health(False, f"{url}: {exc.__class__.__name__}: {exc}")
    return Health(response.status_code == 200, f"{url} -> HTTP {response.status_code}")


class FerretDBService(Service):
    """FerretDB 1.x on its SQLite backend: a MongoDB wire-protocol server with no extras."""

    name = "ferretdb"
    process_marker = "ferretdb"
    # Only the MongoDB projection and result reads use it; under load it took half a core
    # from live camera analysis at nice 0.
    nice = 5

    @property
    def endpoint(self) -> str:
        host, port = host_port(self.settings.mongo.uri.get_secret_value(), 27018)
        return f"{host}:{port}"

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

    def prepare(self) -> None:
        super().prepare()
        (self.state_dir / "data").mkdir(exist_ok=True)

    def command(self) -> tuple[list[str], dict[str, str]]:
        data = self.state_dir / "data"
        return [
            str(self.binary),
            "--handler=sqlite",
            f"--sqlite-url=file:{data}/",
            f"--state-dir={self.state_dir}",
            f"--listen-addr={self.endpoint}",
            f"--debug-addr=127.0.0.1:{self.settings.stack.ferretdb_debug_port}",
            "--telemetry=disable",
            "--log-level=warn",
        ], {}

    def health(self) -> Health:
        port = self.settings.stack.ferretdb_debug_port
        return _http_ok(f"http://127.0.0.1:{port}/debug/readyz")


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
