"""The reprocess worker: executes each ReprocessRequested on the control topic, in order.

A failed request (unknown stage, wrong model version) is dead-lettered with its reason and
the worker goes on; the request's offset is committed only after it ran or was
dead-lettered, so a crash in the middle runs it again (its results deduplicate by id).
"""

from __future__ import annotations

import logging
import threading

from confluent_kafka import Consumer

from processors.reprocess.execute import ReprocessReport, execute
from processors.reprocess.request import ReprocessError
from processors.stage import StageContext
from visionlog.blobstore import BlobStore
from visionlog.codec import AvroCodec, MalformedEventError
from visionlog.health import Heartbeat, Readiness
from visionlog.kafka import EventPublisher, consumer_config
from visionlog.registry import HttpSchemaRegistry
from visionlog.settings import Settings
from visionlog.stream.deadletter import StageFailure, failure_record
from visionlog.stream.messages import InboundMessage
from visionlog.topics import full_topic_name, topic_for_event

log = logging.getLogger(__name__)


def reprocess_group(settings: Settings) -> str:
    return f"{settings.kafka.topic_prefix}visionlog-reprocess"


def run_reprocess_worker(
    settings: Settings,
    stop: threading.Event,
    *,
    max_requests: int | None = None,
    heartbeat: Heartbeat | None = None,
    readiness: Readiness | None = None,
) -> list[ReprocessReport]:
    """Runs requests until `stop`; beats `heartbeat` per poll and per reprocessed message,
    and marks `readiness` once the consumer polls."""
    # Unserved stand-ins keep the loop free of checks when nobody probes.
    heartbeat = heartbeat or Heartbeat()
    readiness = readiness or Readiness()
    codec = AvroCodec(HttpSchemaRegistry(settings.registry))
    publisher = EventPublisher(settings.kafka, codec)
    context = StageContext(settings=settings, blobs=BlobStore.from_settings(settings.minio))
    consumer = Consumer(consumer_config(settings.kafka, reprocess_group(settings)))
    consumer.subscribe([full_topic_name(topic_for_event("ReprocessRequested"), settings.kafka)])
    reports: list[ReprocessReport] = []
    try:
        while not stop.is_set() and (max_requests is None or len(reports) < max_requests):
            message = consumer.poll(0.5)
            heartbeat.beat()
            readiness.mark_ready()
            if message is None or message.error() is not None:
                continue
            inbound = InboundMessage.from_kafka(message)
            try:
                decoded = codec.decode(inbound.value)
                # A request may run for long: each reprocessed message is progress.
                report = execute(
                    settings,
                    codec,
                    publisher,
                    context,
                    decoded.record,
                    message=inbound,
                    progress=lambda _report: heartbeat.beat(),
                )
            except (ReprocessError, MalformedEventError) as error:
                record = failure_record(
                    worker="reprocess",
                    failure=StageFailure("reprocess", error, 1, retryable=False),
                    message=inbound,
                    source=None,
                    event_type="ReprocessRequested",
                    component="processors",
                )
                log.warning("reprocess request at offset %d failed: %s", inbound.offset, error)
                publisher.publish(
                    "ProcessingFailed", record, key=record["envelope"]["correlation_id"]
                )
                publisher.flush()
                report = ReprocessReport(reprocess_id="failed")
            else:
                log.info(
                    "reprocess %s: %d matched, %d results in %.1fs",
                    report.reprocess_id,
                    report.matched,
                    report.published,
                    report.seconds,
                )
            consumer.commit(message=message, asynchronous=False)
            reports.append(report)
    finally:
        consumer.close()
    return reports
