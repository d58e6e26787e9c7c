"""Applies the platform's definitions to running servers: topics, schemas, buckets."""

from __future__ import annotations

from dataclasses import dataclass, field

from visionlog.blobstore import BlobStore
from visionlog.kafka import admin_client
from visionlog.registry import HttpSchemaRegistry, SchemaRegistry, subject_for
from visionlog.schemas import SchemaCatalog, get_catalog
from visionlog.settings import Settings
from visionlog.topics import CATALOGUE, ApplyReport, apply_catalogue, full_topic_name


@dataclass
class InitReport:
    topics: ApplyReport
    subjects: dict[str, int] = field(default_factory=dict)
    buckets_created: list[str] = field(default_factory=list)


def register_schemas(
    registry: SchemaRegistry,
    settings: Settings,
    catalog: SchemaCatalog | None = None,
) -> dict[str, int]:
    """Register every event contract under each topic that carries it.

    The compatibility rule is set before registering, so a changed contract that breaks
    old readers is refused here rather than discovered during a replay.
    """
    catalog = catalog or get_catalog()
    ids = {}
    for spec in CATALOGUE:
        topic = full_topic_name(spec, settings.kafka)
        for event_type in spec.events:
            schema = catalog.event(event_type)
            subject = subject_for(topic, schema.fullname)
            if registry.compatibility(subject) != settings.registry.compatibility:
                registry.set_compatibility(subject, settings.registry.compatibility)
            ids[subject] = registry.register(subject, schema.schema_str)
    return ids


def initialise(settings: Settings) -> InitReport:
    topics = apply_catalogue(admin_client(settings.kafka), settings.kafka)
    subjects = register_schemas(HttpSchemaRegistry(settings.registry), settings)
    buckets = BlobStore.from_settings(settings.minio).ensure_buckets()
    return InitReport(topics=topics, subjects=subjects, buckets_created=buckets)
