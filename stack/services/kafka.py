"""Apache Kafka 4.x, single node in KRaft mode, run from its Maven Central jars."""

from __future__ import annotations

import base64
import logging
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from stack.builders import maven, pom_property
from stack.process import port_open, run_checked
from stack.services.base import STACK_DIR, Health, Service, find_java, host_port

POM = STACK_DIR / "maven" / "kafka" / "pom.xml"
_PROBE_LOG = logging.getLogger("visionlog.stack.kafka_probe")
_PROBE_LOG.addHandler(logging.NullHandler())
_PROBE_LOG.propagate = False
LOG4J = """\
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = OUT
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
logger.kafka.name = kafka
logger.kafka.level = WARN
logger.apache.name = org.apache.kafka
logger.apache.level = WARN
logger.started.name = kafka.server.KafkaRaftServer
logger.started.level = INFO
"""


def kafka_version() -> str:
    return pom_property(POM, "kafka.version")


def new_cluster_id() -> str:
    """A random cluster id as Kafka writes them: URL-safe base64 of 16 bytes, never starting
    with "-" (the storage tool would read that as an option)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


class KafkaService(Service):
    name = "kafka"
    process_marker = "kafka.Kafka"
    java_minimum = 17

    @property
    def endpoint(self) -> str:
        return self.settings.kafka.bootstrap_servers.split(",")[0]

    @property
    def libs(self) -> Path:
        return self.cache_dir / f"kafka-{kafka_version()}" / "libs"

    def installed(self) -> bool:
        return (self.libs / ".complete").exists()

    def install(self) -> None:
        if self.installed():
            return
        self.libs.mkdir(parents=True, exist_ok=True)
        maven(
            POM,
            ["dependency:copy-dependencies"],
            repo=self.cache_dir / "m2",
            properties={"outputDirectory": str(self.libs), "includeScope": "runtime"},
        )
        (self.libs / ".complete").write_text(kafka_version())

    def _java(self) -> str:
        return find_java(self.java_minimum, self.settings.stack.java_home).binary

    def _properties(self) -> str:
        host, port = host_port(self.endpoint, 19092)
        controller = self.settings.stack.kafka_controller_port
        return "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@{host}:{controller}",
                f"listeners=PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller}",
                f"advertised.listeners=PLAINTEXT://{host}:{port}",
                "controller.listener.names=CONTROLLER",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                "inter.broker.listener.name=PLAINTEXT",
                f"log.dirs={self.state_dir / 'data'}",
                # Every topic comes from the catalogue; a typo must fail, not create a topic.
                "auto.create.topics.enable=false",
                "num.partitions=1",
                "offsets.topic.replication.factor=1",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "share.coordinator.state.topic.replication.factor=1",
                "share.coordinator.state.topic.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
                # Lets a test's consumer groups settle quickly on a one-node cluster.
                "group.min.session.timeout.ms=1000",
                "log.cleaner.enable=true",
                "",
            ]
        )

    def prepare(self) -> None:
        super().prepare()
        (self.state_dir / "server.properties").write_text(self._properties())
        (self.state_dir / "log4j2.properties").write_text(LOG4J)
        data = self.state_dir / "data"
        if (data / "meta.properties").exists():
            return
        cluster_file = self.state_dir / "cluster.id"
        if not cluster_file.exists():
            cluster_file.write_text(new_cluster_id())
        run_checked(
            [
                self._java(),
                "-cp",
                f"{self.libs}/*",
                f"-Dlog4j2.configurationFile={self.state_dir / 'log4j2.properties'}",
                "kafka.tools.StorageTool",
                "format",
                "--ignore-formatted",
                f"--cluster-id={cluster_file.read_text().strip()}",
                "-c",
                str(self.state_dir / "server.properties"),
            ],
            what="format the Kafka log directory",
        )

    def command(self) -> tuple[list[str], dict[str, str]]:
        heap = self.settings.stack.kafka_heap
        return [
            self._java(),
            f"-Xms{heap}",
            f"-Xmx{heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.state_dir / 'log4j2.properties'}",
            "-cp",
            f"{self.libs}/*",
            "kafka.Kafka",
            str(self.state_dir / "server.properties"),
        ], {}

    def health(self) -> Health:
        host, port = host_port(self.endpoint, 19092)
        if not port_open(host, port):
            return Health(False, f"nothing listens on {host}:{port}")
        # The probe's failures are reported in the Health detail; librdkafka's own log
        # lines about a broker still starting would only repeat them.
        config: dict[str, Any] = {
            **self.settings.kafka.client_config(),
            "socket.timeout.ms": 2000,
            "logger": _PROBE_LOG,
        }
        admin = AdminClient(config)
        try:
            metadata = admin.list_topics(timeout=2)
        except KafkaException as exc:
            return Health(False, str(exc.args[0]) if exc.args else repr(exc))
        return Health(
            bool(metadata.brokers),
            f"{len(metadata.brokers)} broker(s), {len(metadata.topics)} topics, "
            f"cluster {metadata.cluster_id}",
        )
