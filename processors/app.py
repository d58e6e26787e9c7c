"""The faust-streaming app of one worker kind: one agent per input topic.

Agents stay thin: each message goes to `StageRunner.handle` in an executor thread, so
inference runs off the event loop that polls Kafka and sends heartbeats. Offsets are
acknowledged only after `handle` returned, which means every derived event and every
dead letter of that message was acknowledged by the brokers first (at-least-once; the
deterministic event ids let consumers drop the duplicates a restart can cause).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import ssl
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import faust

from processors.bindings import bindings_for, consumed_event_types
from processors.runtime import InboundMessage, StageRunner
from processors.stage import StageContext
from visionlog.blobstore import BlobStore
from visionlog.codec import AvroCodec
from visionlog.health import Heartbeat, Readiness
from visionlog.kafka import EventPublisher
from visionlog.registry import HttpSchemaRegistry
from visionlog.settings import KafkaSettings, Settings
from visionlog.topics import full_topic_name, topic_for_event

log = logging.getLogger(__name__)

# How often the event loop beats; far below the liveness limit (health.stale_after_s).
HEARTBEAT_INTERVAL_S = 5.0


def _credentials(kafka: KafkaSettings) -> Any:
    if kafka.security_protocol == "PLAINTEXT":
        return None
    context = ssl.create_default_context(cafile=kafka.ssl_ca_location)
    if kafka.security_protocol in ("SASL_SSL", "SASL_PLAINTEXT"):
        return faust.SASLCredentials(
            username=kafka.sasl_username,
            password=kafka.sasl_password.get_secret_value() if kafka.sasl_password else None,
            ssl_context=context if kafka.security_protocol == "SASL_SSL" else None,
            mechanism=kafka.sasl_mechanism or "PLAIN",
        )
    return context


def input_topics(kind: str, kafka: KafkaSettings) -> list[str]:
    names = {
        full_topic_name(topic_for_event(event_type), kafka)
        for event_type in consumed_event_types(kind)
    }
    return sorted(names)


def build_runner(kind: str, settings: Settings) -> StageRunner:
    codec = AvroCodec(HttpSchemaRegistry(settings.registry))
    publisher = EventPublisher(settings.kafka, codec)
    context = StageContext(settings=settings, blobs=BlobStore.from_settings(settings.minio))
    stages = [(binding, binding.load()) for binding in bindings_for(kind)]
    return StageRunner(kind, settings, stages, codec, publisher, context)


def group_id(kind: str, settings: Settings) -> str:
    return f"{settings.kafka.topic_prefix}visionlog-processors-{kind}"


def build_app(kind: str, settings: Settings, runner: StageRunner | None = None) -> faust.App:
    runner = runner or build_runner(kind, settings)
    datadir = settings.state_dir / "faust" / kind
    datadir.parent.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        group_id(kind, settings),
        broker=[f"kafka://{server}" for server in settings.kafka.bootstrap_servers.split(",")],
        broker_credentials=_credentials(settings.kafka),
        value_serializer="raw",
        key_serializer="raw",
        # Our topics come from the catalogue; faust must not create or reconfigure them.
        topic_allow_declare=False,
        topic_disable_leader=True,
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        datadir=str(datadir),
        # Inference runs in a thread, so polling goes on; this only bounds a stuck stage.
        broker_max_poll_interval=900.0,
    )
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{kind}-stage")

    def make_agent(topic_name: str) -> Callable[[Any], Coroutine[Any, Any, None]]:
        async def agent(stream: Any) -> None:
            loop = asyncio.get_running_loop()
            async for event in stream.events():
                message = event.message
                inbound = InboundMessage(
                    topic=message.topic,
                    partition=message.partition,
                    offset=message.offset,
                    key=message.key,
                    value=message.value,
                )
                try:
                    report = await loop.run_in_executor(executor, runner.handle, inbound)
                except Exception:
                    # Stage errors are dead-lettered inside handle(); what escapes is a
                    # failure to publish. Stop without acknowledging the message, so the
                    # restarted worker reads it again from the last committed offset.
                    log.exception(
                        "%s@%d/%d: publishing failed; stopping the worker",
                        message.topic,
                        message.partition,
                        message.offset,
                    )
                    os.kill(os.getpid(), signal.SIGTERM)
                    raise
                log.debug("%s: %s", topic_name, report)
                reason = runner.should_recycle()
                if reason:
                    log.warning("recycling the %s worker: %s", kind, reason)
                    # The worker's signal handler stops gracefully and commits offsets;
                    # the supervisor (`visionlog processors run`) starts a fresh process.
                    os.kill(os.getpid(), signal.SIGTERM)

        agent.__name__ = f"consume_{topic_name.replace('.', '_').replace('-', '_')}"
        return agent

    for topic_name in input_topics(kind, settings.kafka):
        topic = app.topic(topic_name, key_type=bytes, value_type=bytes)
        app.agent(topic, name=f"{kind}.{topic_name}")(make_agent(topic_name))
    return app


def watch_event_loop(app: faust.App, heartbeat: Heartbeat, readiness: Readiness) -> None:
    """Beats from the app's event loop, so a blocked loop turns liveness red.

    Faust starts app tasks and timers once the app has fully started (consumer and agents
    running): the one-shot task marks the worker ready, the timer keeps beating.
    """

    async def app_started() -> None:
        heartbeat.beat()
        readiness.mark_ready()

    async def event_loop_heartbeat() -> None:
        heartbeat.beat()

    # Registered by call: faust's decorators are untyped.
    app.task(app_started)
    app.timer(interval=HEARTBEAT_INTERVAL_S)(event_loop_heartbeat)
