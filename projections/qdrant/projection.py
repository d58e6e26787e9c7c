"""The Qdrant projection: one point per embedding, in per-generation collections behind the
live aliases `{prefix}_images`, `{prefix}_objects` and `{prefix}_texts`.

Collections are created on the first vector of their target, with that vector's size and
cosine distance; a later vector of another size cannot be stored there and is dead-lettered.
MediaDeleted deletes the item's points and leaves a tombstone in `{prefix}_erased_{gen}`, so
embeddings that arrive later on their own topic do not bring the item back.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from qdrant_client import QdrantClient, models

from projections.generations import FIRST_GENERATION, generation_number, validate_generation
from projections.qdrant.points import (
    TARGET_NAMES,
    PointSpec,
    UnmappableEmbeddingError,
    alias_name,
    generation_collection,
    point_for_embedding,
)
from projections.runtime import PoisonEventError, ProjectedEvent, TopicPartitionKey
from visionlog.contracts import EmbeddingComputed, MediaDeleted, typed_record
from visionlog.errors import ContractError
from visionlog.settings import Settings

log = logging.getLogger(__name__)

EVENT_TYPES: tuple[str, ...] = ("EmbeddingComputed", "MediaDeleted")

_KEYWORD_FIELDS = ("media_id", "tenant_id", "owner_id", "camera_id", "class_name", "model_version")
_INTEGER_FIELDS = ("observed_at_ms", "page_number", "frame_index")
_TOMBSTONE_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://visionlog/qdrant/erased")


def erased_collection(prefix: str, generation: str) -> str:
    return f"{prefix}_erased_{generation}"


def identities_collection(prefix: str) -> str:
    return f"{prefix}_identities"


def qdrant_store_identity(settings: Settings, client: QdrantClient, generation: str) -> str:
    """The identity of a generation's collections: created once, new after a wipe."""
    name = identities_collection(settings.projections.qdrant_collection_prefix)
    if not client.collection_exists(name):
        client.create_collection(
            name, vectors_config=models.VectorParams(size=1, distance=models.Distance.DOT)
        )
    point_id = generation_number(generation)
    found = client.retrieve(name, ids=[point_id], with_payload=True)
    if found and found[0].payload and found[0].payload.get("identity"):
        return str(found[0].payload["identity"])
    identity = uuid.uuid4().hex
    client.upsert(
        name,
        points=[models.PointStruct(id=point_id, vector=[1.0], payload={"identity": identity})],
        wait=True,
    )
    return identity


def _tombstone_id(media_id: str) -> str:
    return str(uuid.uuid5(_TOMBSTONE_NAMESPACE, media_id))


def _aliases(client: QdrantClient) -> dict[str, str]:
    return {a.alias_name: a.collection_name for a in client.get_aliases().aliases}


def _generation_of(prefix: str, target: str, collection: str) -> str:
    stem = alias_name(prefix, target) + "_"
    if not collection.startswith(stem):
        raise ValueError(
            f"alias {alias_name(prefix, target)} points at {collection}, "
            f"not at a generation collection {stem}<gen>"
        )
    return validate_generation(collection[len(stem) :])


def live_qdrant_generation(settings: Settings, client: QdrantClient) -> str | None:
    """The generation the aliases point at; None when no alias exists yet."""
    prefix = settings.projections.qdrant_collection_prefix
    aliases = _aliases(client)
    found = {
        _generation_of(prefix, target, aliases[alias_name(prefix, target)])
        for target in TARGET_NAMES
        if alias_name(prefix, target) in aliases
    }
    if len(found) > 1:
        raise ValueError(f"the {prefix} aliases point at different generations: {sorted(found)}")
    return found.pop() if found else None


def hnsw_config(settings: Settings) -> models.HnswConfigDiff:
    """The HNSW graph of a new collection, from settings (a Qdrant server builds it; the
    embedded store searches exhaustively and keeps its defaults)."""
    return models.HnswConfigDiff(
        m=settings.qdrant.hnsw_m, ef_construct=settings.qdrant.hnsw_ef_construct
    )


class QdrantProjection:
    name = "qdrant"
    event_types: tuple[str, ...] = EVENT_TYPES
    offsets_in_sink = False

    def __init__(
        self, settings: Settings, client: QdrantClient, generation: str | None = None
    ) -> None:
        self.settings = settings
        self.client = client
        self.prefix = settings.projections.qdrant_collection_prefix
        # Without an explicit generation the projection follows the aliases.
        self.follows_live = generation is None
        self.generation = (
            (live_qdrant_generation(settings, client) or FIRST_GENERATION)
            if generation is None
            else validate_generation(generation)
        )
        self._vector_sizes: dict[str, int] = {}
        self._identity = qdrant_store_identity(settings, client, self.generation)

    @property
    def consumer_group(self) -> str:
        return f"{self.settings.kafka.topic_prefix}visionlog-projection-qdrant-{self.generation}"

    def stored_offsets(self) -> dict[TopicPartitionKey, int]:
        return {}

    def store_identity(self) -> str | None:
        return self._identity

    def generation_changed(self) -> bool:
        if not self.follows_live:
            return False
        live = live_qdrant_generation(self.settings, self.client) or FIRST_GENERATION
        if live == self.generation:
            return False
        log.info("qdrant projection: live generation %s -> %s", self.generation, live)
        self.generation = live
        self._vector_sizes.clear()
        self._identity = qdrant_store_identity(self.settings, self.client, live)
        return True

    def collection(self, target: str) -> str:
        return generation_collection(self.prefix, target, self.generation)

    # ---------------------------------------------------------------- collections

    def _vector_size(self, target: str) -> int | None:
        if target in self._vector_sizes:
            return self._vector_sizes[target]
        name = self.collection(target)
        if not self.client.collection_exists(name):
            return None
        vectors = self.client.get_collection(name).config.params.vectors
        if not isinstance(vectors, models.VectorParams):
            raise TypeError(f"collection {name} has named vectors; expected one unnamed vector")
        self._vector_sizes[target] = vectors.size
        return vectors.size

    def _create_collection(self, target: str, size: int) -> None:
        name = self.collection(target)
        self.client.create_collection(
            name,
            vectors_config=models.VectorParams(size=size, distance=models.Distance.COSINE),
            hnsw_config=hnsw_config(self.settings),
        )
        if not self.settings.qdrant_embedded:
            # The embedded store ignores payload indexes (and warns); a server uses them.
            for field in _KEYWORD_FIELDS:
                self.client.create_payload_index(name, field, models.PayloadSchemaType.KEYWORD)
            for field in _INTEGER_FIELDS:
                self.client.create_payload_index(name, field, models.PayloadSchemaType.INTEGER)
        self._vector_sizes[target] = size
        live = live_qdrant_generation(self.settings, self.client) or FIRST_GENERATION
        alias = alias_name(self.prefix, target)
        if live == self.generation and alias not in _aliases(self.client):
            self.client.update_collection_aliases(
                change_aliases_operations=[
                    models.CreateAliasOperation(
                        create_alias=models.CreateAlias(collection_name=name, alias_name=alias)
                    )
                ]
            )

    def _erased(self, media_ids: set[str]) -> set[str]:
        name = erased_collection(self.prefix, self.generation)
        if not media_ids or not self.client.collection_exists(name):
            return set()
        found = self.client.retrieve(
            name, ids=[_tombstone_id(m) for m in sorted(media_ids)], with_payload=True
        )
        return {str(point.payload["media_id"]) for point in found if point.payload}

    # ---------------------------------------------------------------- apply

    def apply(
        self, events: Sequence[ProjectedEvent], next_offsets: Mapping[TopicPartitionKey, int]
    ) -> None:
        mapped: list[tuple[ProjectedEvent, PointSpec]] = []
        deleted: set[str] = set()
        for event in events:
            try:
                if event.event_type == "MediaDeleted":
                    erased = typed_record(MediaDeleted, event.event_type, event.record)
                    deleted.add(erased["media_id"])
                    continue
                record = typed_record(EmbeddingComputed, event.event_type, event.record)
                mapped.append((event, point_for_embedding(record)))
            except (UnmappableEmbeddingError, ContractError) as error:
                raise PoisonEventError(event, f"embedding cannot be stored: {error!r}") from error
        # Embeddings of an erased item are dropped: they may arrive after the erasure.
        skipped = self._erased({p.payload["media_id"] for _, p in mapped}) | deleted
        kept = [(e, p) for e, p in mapped if p.payload["media_id"] not in skipped]
        # Every size is checked before anything is written, so a poison event leaves no
        # partial batch behind (the runner retries the batch without it).
        planned_sizes: dict[str, int] = {}
        for event, point in kept:
            size = self._vector_size(point.target) or planned_sizes.get(point.target)
            if size is None:
                planned_sizes[point.target] = len(point.vector)
            elif size != len(point.vector):
                raise PoisonEventError(
                    event,
                    f"vector of {len(point.vector)} dimensions does not fit collection "
                    f"{self.collection(point.target)} of {size} dimensions",
                )
        for target, size in planned_sizes.items():
            self._create_collection(target, size)
        by_target: dict[str, list[models.PointStruct]] = defaultdict(list)
        for _, point in kept:
            by_target[point.target].append(
                models.PointStruct(id=point.point_id, vector=point.vector, payload=point.payload)
            )
        for target, structs in by_target.items():
            self.client.upsert(self.collection(target), points=structs, wait=True)
        if deleted:
            self._erase(deleted)

    def _erase(self, media_ids: set[str]) -> None:
        tombstones = erased_collection(self.prefix, self.generation)
        if not self.client.collection_exists(tombstones):
            self.client.create_collection(
                tombstones,
                vectors_config=models.VectorParams(size=1, distance=models.Distance.DOT),
            )
        self.client.upsert(
            tombstones,
            points=[
                models.PointStruct(id=_tombstone_id(m), vector=[1.0], payload={"media_id": m})
                for m in sorted(media_ids)
            ],
            wait=True,
        )
        selector = models.FilterSelector(
            filter=models.Filter(
                must=[
                    models.FieldCondition(
                        key="media_id", match=models.MatchAny(any=sorted(media_ids))
                    )
                ]
            )
        )
        for target in TARGET_NAMES:
            name = self.collection(target)
            if self.client.collection_exists(name):
                self.client.delete(name, points_selector=selector, wait=True)

    def close(self) -> None:
        # The client belongs to the caller (the embedded store allows one per process).
        self._vector_sizes.clear()


def promote_qdrant(settings: Settings, client: QdrantClient, generation: str) -> str | None:
    """Moves every alias to `generation` in one `update_collection_aliases` call; returns the
    generation they pointed at before (None when there were no aliases). An alias whose
    target has no collection in `generation` is removed, so it never shows stale points."""
    validate_generation(generation)
    prefix = settings.projections.qdrant_collection_prefix
    previous = live_qdrant_generation(settings, client)
    aliases = _aliases(client)
    targets = [
        t
        for t in TARGET_NAMES
        if client.collection_exists(generation_collection(prefix, t, generation))
    ]
    if not targets:
        raise ValueError(
            f"cannot promote generation {generation}: no {prefix}_*_{generation} collection exists"
        )
    operations: list[
        models.CreateAliasOperation | models.DeleteAliasOperation | models.RenameAliasOperation
    ] = []
    for target in TARGET_NAMES:
        alias = alias_name(prefix, target)
        if alias in aliases:
            operations.append(
                models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=alias))
            )
        if target in targets:
            operations.append(
                models.CreateAliasOperation(
                    create_alias=models.CreateAlias(
                        collection_name=generation_collection(prefix, target, generation),
                        alias_name=alias,
                    )
                )
            )
    client.update_collection_aliases(change_aliases_operations=operations)
    return previous


def qdrant_checksum(settings: Settings, client: QdrantClient, generation: str) -> dict[str, str]:
    """SHA-256 per target over its points sorted by id: vector rounded to 6 decimals and
    payload. A target without a collection hashes as empty."""
    validate_generation(generation)
    prefix = settings.projections.qdrant_collection_prefix
    checksums: dict[str, str] = {}
    for target in TARGET_NAMES:
        name = generation_collection(prefix, target, generation)
        rows: list[tuple[str, str]] = []
        if client.collection_exists(name):
            offset: Any = None
            while True:
                batch, offset = client.scroll(
                    name, limit=256, offset=offset, with_payload=True, with_vectors=True
                )
                for point in batch:
                    vector = point.vector
                    if not isinstance(vector, list):
                        raise TypeError(f"point {point.id} of {name} has no plain vector")
                    row = {
                        "id": str(point.id),
                        "vector": [round(float(v), 6) for v in vector],  # type: ignore[arg-type]
                        "payload": point.payload,
                    }
                    rows.append((str(point.id), json.dumps(row, sort_keys=True)))
                if offset is None:
                    break
        digest = hashlib.sha256()
        for _, row_json in sorted(rows):
            digest.update(row_json.encode())
            digest.update(b"\n")
        checksums[target] = digest.hexdigest()
    return checksums
