"""Apicurio Registry 3 (Apache-2.0), the Confluent-compatible schema registry.

Maven Central publishes, beside the plain jar of io.apicurio:apicurio-registry-app, the
upstream Quarkus distribution (classifier `all`, a tar.gz): the build only unpacks it.
Schemas persist in an H2 database file under the state directory.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from stack.builders import maven, pom_property
from stack.services.base import STACK_DIR, Health, Service, find_java, host_port

POM = STACK_DIR / "maven" / "registry" / "pom.xml"


def apicurio_version() -> str:
    return pom_property(POM, "apicurio.version")


class RegistryService(Service):
    name = "registry"
    process_marker = "quarkus-run.jar"
    # Apicurio Registry 3.3 is compiled for Java 21.
    java_minimum = 21

    @property
    def endpoint(self) -> str:
        return self.settings.registry.url

    @property
    def build_dir(self) -> Path:
        return self.cache_dir / "apicurio-registry"

    @property
    def run_jar(self) -> Path:
        return self.build_dir / f"apicurio-registry-app-{apicurio_version()}" / "quarkus-run.jar"

    def installed(self) -> bool:
        return self.run_jar.exists()

    def install(self) -> None:
        if self.installed():
            return
        maven(
            POM,
            ["package"],
            repo=self.cache_dir / "m2",
            properties={"registry.build.dir": str(self.build_dir)},
        )

    def command(self) -> tuple[list[str], dict[str, str]]:
        host, port = host_port(self.endpoint, 18081)
        java = find_java(self.java_minimum, self.settings.stack.java_home)
        heap = self.settings.stack.registry_heap
        database = self.state_dir / "registry"
        return [
            java.binary,
            # Small initial heap and C1 only: ~190 MB resident instead of ~250 MB and a
            # faster start; peak throughput does not matter for a development registry.
            "-Xms32m",
            f"-Xmx{heap}",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            f"-Dquarkus.http.host={host}",
            f"-Dquarkus.http.port={port}",
            f"-Dquarkus.management.host={host}",
            f"-Dquarkus.management.port={self.settings.stack.registry_management_port}",
            "-Dapicurio.storage.kind=sql",
            "-Dapicurio.storage.sql.kind=h2",
            # WRITE_DELAY=0: without it a schema registered just before a crash was lost.
            f"-Dapicurio.datasource.url=jdbc:h2:file:{database};DB_CLOSE_ON_EXIT=FALSE;"
            "WRITE_DELAY=0",
            "-Dapicurio.datasource.username=sa",
            "-Dapicurio.datasource.password=sa",
            "-Dapicurio.datasource.jdbc.initial-size=2",
            "-Dapicurio.datasource.jdbc.min-size=2",
            "-Dapicurio.datasource.jdbc.max-size=10",
            '-Dquarkus.log.category."io.quarkus.http.access-log".level=WARN',
            '-Dquarkus.log.category."io.apicurio.registry.logging.audit".level=WARN',
            "-jar",
            str(self.run_jar),
        ], {}

    def health(self) -> Health:
        url = f"{self.endpoint.rstrip('/')}/subjects"
        try:
            response = httpx.get(url, timeout=2.0)
        except httpx.HTTPError as exc:
            return Health(False, f"{url}: {exc.__class__.__name__}: {exc}")
        if response.status_code != 200:
            return Health(False, f"{url} -> HTTP {response.status_code}")
        return Health(True, f"Apicurio {apicurio_version()}, {len(response.json())} subjects")
