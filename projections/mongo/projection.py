"""The MongoDB projection: media items, analysis results and OCR documents per generation.

Writes are idempotent upserts and the runner commits Kafka offsets after each batch
(`offsets_in_sink=False`). The live generation is named by the pointer document
`read_model_generations {_id: "current"}`; a rebuild fills the next generation's
collections and `promote_mongo` switches the pointer in one update.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, DeleteMany, ReplaceOne, ReturnDocument, UpdateOne
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import OperationFailure

from projections.generations import FIRST_GENERATION, validate_generation
from projections.mongo.documents import (
    ANALYSIS_RESULTS,
    COLLECTION_BASES,
    DOCUMENTS,
    EVENT_TYPES,
    MEDIA_ITEMS,
    PROJECTION_TIME_FIELDS,
    STATUS_DELETED,
    ConditionalUpdate,
    Erasure,
    EventWrites,
    GuardedUpdate,
    UnmappableEventError,
    collection_name,
    writes_for_event,
)
from projections.mongo.merge import first_of_each, fold_updates
from projections.runtime import PoisonEventError, ProjectedEvent, TopicPartitionKey
from visionlog.errors import ContractError
from visionlog.settings import Settings
from visionlog.stores import MongoClient, mongo_client

log = logging.getLogger(__name__)

POINTER_COLLECTION = "read_model_generations"
POINTER_ID = "current"
# One document per generation: the identity its collections were created with.
IDENTITY_COLLECTION = "read_model_identities"

# Every index is maintained on every write, and FerretDB on PostgreSQL stores a document
# as one jsonb value, so each update rewrites an entry in every index of its collection
# (media items are updated on every progress event). Kept: what the projection itself
# filters by (results by media id, for erasure) and one listing per tenant for downstream
# readers; the API reads MongoDB only by `_id`.
_INDEXES: dict[str, list[list[tuple[str, int]]]] = {
    MEDIA_ITEMS: [
        [("tenant_id", ASCENDING), ("owner_id", ASCENDING), ("uploaded_at", DESCENDING)],
        [("tenant_id", ASCENDING), ("status", ASCENDING)],
    ],
    ANALYSIS_RESULTS: [
        [("media_id", ASCENDING), ("stage", ASCENDING), ("model_version", ASCENDING)],
        [("tenant_id", ASCENDING), ("stage", ASCENDING), ("occurred_at", DESCENDING)],
    ],
    DOCUMENTS: [
        [("tenant_id", ASCENDING), ("owner_id", ASCENDING)],
    ],
}
# Indexes earlier layouts created that nothing queries (prefixes of the kept ones, or
# covered by PostgreSQL's detections table); dropped where they exist.
_RETIRED_INDEXES: dict[str, tuple[str, ...]] = {
    MEDIA_ITEMS: ("owner_id_1", "status_1", "uploaded_at_-1"),
    ANALYSIS_RESULTS: ("tenant_id_1_result.class_names_1",),
}
_TEXT_INDEXES: dict[str, list[tuple[str, str]]] = {
    ANALYSIS_RESULTS: [
        ("result.full_text", "text"),
        ("result.codes.text", "text"),
        ("result.sentences.en", "text"),
        ("result.sentences.de", "text"),
    ],
    # Page texts sit under per-page, per-version keys: only a wildcard text index reaches them.
    DOCUMENTS: [("$**", "text")],
}


def _database(settings: Settings, client: MongoClient) -> Database[dict[str, Any]]:
    return client[settings.mongo.database]


def read_live_generation(settings: Settings, client: MongoClient | None = None) -> str:
    """The generation readers use: the pointer document's, or "g1" when there is none."""
    with _borrowed(settings, client) as own:
        pointer = _database(settings, own)[POINTER_COLLECTION].find_one({"_id": POINTER_ID})
    if pointer is None:
        return FIRST_GENERATION
    return validate_generation(str(pointer["generation"]))


def mongo_store_identity(settings: Settings, generation: str, client: MongoClient) -> str:
    """The identity of a generation's collections: created once, new after a wipe."""
    found = _database(settings, client)[IDENTITY_COLLECTION].find_one_and_update(
        {"_id": generation},
        {"$setOnInsert": {"identity": uuid.uuid4().hex, "created_at": datetime.now(UTC)}},
        upsert=True,
        return_document=ReturnDocument.AFTER,
    )
    if found is None:
        raise RuntimeError(f"the identity of read model generation {generation} was not kept")
    return str(found["identity"])


@contextmanager
def _borrowed(settings: Settings, client: MongoClient | None) -> Iterator[MongoClient]:
    """The caller's client, or a new one closed on exit."""
    if client is not None:
        yield client
        return
    with mongo_client(settings) as own:
        yield own


def ensure_indexes(settings: Settings, generation: str, client: MongoClient) -> None:
    """Creates the generation's collections and the indexes the API queries by."""
    database = _database(settings, client)
    for base, indexes in _INDEXES.items():
        collection = database[collection_name(base, generation)]
        for keys in indexes:
            collection.create_index(keys)
        existing = set(collection.index_information())
        for retired in _RETIRED_INDEXES.get(base, ()):
            if retired in existing:
                collection.drop_index(retired)
    for base, text_keys in _TEXT_INDEXES.items():
        name = collection_name(base, generation)
        try:
            database[name].create_index(text_keys, name="text_search")
        except OperationFailure as error:
            # FerretDB has no text indexes; the API then falls back to $regex matching.
            log.warning(
                "MongoDB refused the text index of %s (%s); text search there is unindexed",
                name,
                error.details.get("errmsg") if error.details else error,
            )


# FerretDB on SQLite answers a bulk write of hundreds of updates minutes late (measured:
# a 200-event batch stalled for more than two minutes, 40-event batches ran at 86 events/s);
# bounded bulk writes keep every server fast.
BULK_WRITE_LIMIT = 50


def _chunks(operations: Sequence[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(operations), BULK_WRITE_LIMIT):
        yield list(operations[start : start + BULK_WRITE_LIMIT])


@dataclass(frozen=True)
class _MediaState:
    deleted: bool
    log_positions: dict[str, int]


class MongoProjection:
    name = "mongo"
    event_types: tuple[str, ...] = EVENT_TYPES
    offsets_in_sink = False

    def __init__(
        self,
        settings: Settings,
        generation: str | None = None,
        client: MongoClient | None = None,
    ) -> None:
        self.settings = settings
        self._owns_client = client is None
        self.client: MongoClient = client if client is not None else mongo_client(settings)
        self.database = _database(settings, self.client)
        # Without an explicit generation the projection follows the live pointer.
        self.follows_live = generation is None
        self.generation = (
            read_live_generation(settings, self.client)
            if generation is None
            else validate_generation(generation)
        )
        ensure_indexes(settings, self.generation, self.client)
        self._identity = mongo_store_identity(settings, self.generation, self.client)

    @property
    def consumer_group(self) -> str:
        return f"{self.settings.kafka.topic_prefix}visionlog-projection-mongo-{self.generation}"

    def collection(self, base: str) -> Collection[dict[str, Any]]:
        return self.database[collection_name(base, self.generation)]

    def stored_offsets(self) -> dict[TopicPartitionKey, int]:
        return {}

    def store_identity(self) -> str | None:
        return self._identity

    def generation_changed(self) -> bool:
        if not self.follows_live:
            return False
        live = read_live_generation(self.settings, self.client)
        if live == self.generation:
            return False
        log.info("mongo projection: live generation %s -> %s", self.generation, live)
        self.generation = live
        ensure_indexes(self.settings, self.generation, self.client)
        self._identity = mongo_store_identity(self.settings, live, self.client)
        return True

    def apply(
        self, events: Sequence[ProjectedEvent], next_offsets: Mapping[TopicPartitionKey, int]
    ) -> None:
        batch: list[EventWrites] = []
        for event in events:
            try:
                batch.append(writes_for_event(event))
            except (UnmappableEventError, ContractError) as error:
                raise PoisonEventError(event, str(error)) from error
        erased_now = {w.erasure.media_id: w.erasure for w in batch if w.erasure is not None}
        states = self._media_states(
            {w.media_id for w in batch if w.media_id is not None}
            | {counted.document_id for w in batch for counted in w.guarded}
        )
        tombstoned = {media_id for media_id, state in states.items() if state.deleted}
        # Writes for an erased item are dropped: events on other topics may arrive after
        # the erasure and must not bring the item back.
        skipped = tombstoned | set(erased_now)
        now = datetime.now(UTC)
        # In log order: per collection and document, the upserts; per document and
        # partition, the guarded updates.
        upserts: dict[str, dict[str, list[dict[str, dict[str, Any]]]]] = defaultdict(dict)
        conditional: dict[str, list[ConditionalUpdate]] = defaultdict(list)
        guarded: list[GuardedUpdate] = []
        for writes in batch:
            if writes.media_id in skipped:
                continue
            for upsert in writes.upserts:
                upserts[upsert.collection].setdefault(upsert.document_id, []).append(upsert.update)
            for moved in writes.conditional:
                conditional[moved.collection].append(moved)
            guarded.extend(writes.guarded)
        for base, by_document in upserts.items():
            operations = [
                UpdateOne({"_id": document_id}, _stamped(folded.update, now), upsert=True)
                for document_id, updates in by_document.items()
                for folded in fold_updates(updates, upsert=True)
            ]
            for chunk in _chunks(operations):
                self.collection(base).bulk_write(chunk, ordered=True)
        # Conditional moves run on the documents the upserts made sure of; each is monotone,
        # so their order does not matter, and a repeat of one changes nothing.
        for base, moves in conditional.items():
            operations = [
                UpdateOne(moved.filter(), moved.update, upsert=False)
                for moved in first_of_each(moves, _identity)
            ]
            for chunk in _chunks(operations):
                self.collection(base).bulk_write(chunk, ordered=False)
        self._apply_guarded(guarded, {k: state.log_positions for k, state in states.items()})
        self._erase(erased_now, tombstoned, now)

    def _apply_guarded(
        self, guarded: Sequence[GuardedUpdate], positions: Mapping[str, Mapping[str, int]]
    ) -> None:
        """Counted updates (in log order), each applied once past the offset its document
        last applied from its partition. The positions are read first, so that a batch's
        fresh updates of one document (of every partition) fold into one, guarded by each
        of its partitions' positions; the folded updates keep log order, so a `$set` ends
        with the value of the batch's last event, as one update per event would. Should a
        position have moved meanwhile (a consumer that lost the partition still writing),
        the batch is applied again one update per event, which its guards make exact."""
        if not guarded:
            return
        by_document: dict[str, list[tuple[int, GuardedUpdate]]] = {}
        for index, counted in enumerate(guarded):
            applied = positions.get(counted.document_id, {}).get(counted.position_key)
            if applied is None or counted.offset > applied:
                by_document.setdefault(counted.document_id, []).append((index, counted))
        ordered: list[tuple[int, UpdateOne]] = []
        for fresh in by_document.values():
            start = 0
            for folded in fold_updates([c.update for _i, c in fresh], upsert=False):
                run = fresh[start : start + folded.size]
                start += folded.size
                operation = _guarded_operation([c for _i, c in run], folded.update)
                ordered.append((run[-1][0], operation))
        operations = [operation for _index, operation in sorted(ordered, key=lambda o: o[0])]
        matched = 0
        for chunk in _chunks(operations):
            matched += self.collection(MEDIA_ITEMS).bulk_write(chunk, ordered=True).matched_count
        if matched < len(operations):
            log.warning(
                "mongo projection: %d of %d counted updates found their document moved on; "
                "applying the batch's counted updates one by one",
                len(operations) - matched,
                len(operations),
            )
            single = [_guarded_operation([c], c.update) for c in guarded]
            for chunk in _chunks(single):
                self.collection(MEDIA_ITEMS).bulk_write(chunk, ordered=True)

    def _media_states(self, media_ids: Iterable[str]) -> dict[str, _MediaState]:
        """Erasure and applied log positions of the batch's media documents, read before
        its writes. One lookup by `_id` each: FerretDB answers those from an index but
        filters an `$in` in its own process after reading the whole collection."""
        states: dict[str, _MediaState] = {}
        media = self.collection(MEDIA_ITEMS)
        for media_id in sorted(media_ids):
            found = media.find_one({"_id": media_id}, projection={"status": 1, "log_positions": 1})
            if found is not None:
                states[media_id] = _MediaState(
                    deleted=found.get("status") == STATUS_DELETED,
                    log_positions=dict(found.get("log_positions") or {}),
                )
        return states

    def _erase(self, erasures: Mapping[str, Erasure], tombstoned: set[str], now: datetime) -> None:
        media_ids = sorted(erasures)
        if not media_ids:
            return
        replacements = [
            ReplaceOne(
                {"_id": media_id},
                {**erasures[media_id].tombstone, "projected_at": now},
                upsert=True,
            )
            for media_id in media_ids
            # The first erasure's tombstone stays; a repeated request only repeats the deletes.
            if media_id not in tombstoned
        ]
        if replacements:
            self.collection(MEDIA_ITEMS).bulk_write(replacements, ordered=False)
        self.collection(ANALYSIS_RESULTS).bulk_write(
            [DeleteMany({"media_id": media_id}) for media_id in media_ids], ordered=False
        )
        self.collection(DOCUMENTS).bulk_write(
            [DeleteMany({"_id": media_id}) for media_id in media_ids], ordered=False
        )

    def close(self) -> None:
        if self._owns_client:
            self.client.close()


def _stamped(update: Mapping[str, Mapping[str, Any]], now: datetime) -> dict[str, dict[str, Any]]:
    stamped = {operator: dict(values) for operator, values in update.items()}
    stamped.setdefault("$set", {})["projected_at"] = now
    return stamped


def _guarded_operation(
    run: Sequence[GuardedUpdate], update: Mapping[str, Mapping[str, Any]]
) -> UpdateOne:
    """`update` (the folded updates of `run`, one document's, in log order) applied once:
    only while the document has applied nothing of each partition in the run at or past
    the run's first offset of that partition; it then records each partition's last."""
    first: dict[str, GuardedUpdate] = {}
    last: dict[str, int] = {}
    for counted in run:
        first.setdefault(counted.guard_field, counted)
        last[counted.guard_field] = counted.offset
    guards = {field: counted.filter()[field] for field, counted in first.items()}
    guarded = {operator: dict(values) for operator, values in update.items()}
    guarded.setdefault("$set", {}).update(last)
    return UpdateOne({"_id": run[0].document_id, **guards}, guarded, upsert=False)


def _identity(moved: ConditionalUpdate) -> str:
    return json.dumps([moved.filter(), moved.update], sort_keys=True, default=str)


def promote_mongo(
    settings: Settings, generation: str, client: MongoClient | None = None
) -> str | None:
    """Points readers at `generation` in one update; returns the previous generation (None
    when no pointer existed, i.e. readers used the default "g1")."""
    validate_generation(generation)
    with _borrowed(settings, client) as own:
        database = _database(settings, own)
        existing = set(database.list_collection_names())
        missing = [
            collection_name(base, generation)
            for base in COLLECTION_BASES
            if collection_name(base, generation) not in existing
        ]
        if missing:
            raise ValueError(
                f"cannot promote generation {generation}: collections {missing} do not exist "
                f"in database {settings.mongo.database}; run its projection first"
            )
        previous = database[POINTER_COLLECTION].find_one_and_update(
            {"_id": POINTER_ID},
            {"$set": {"generation": generation, "promoted_at": datetime.now(UTC)}},
            upsert=True,
            return_document=ReturnDocument.BEFORE,
        )
    return None if previous is None else str(previous["generation"])


def drop_generation(settings: Settings, generation: str, client: MongoClient | None = None) -> None:
    """Drops a retired or abandoned generation's collections; never the live one."""
    validate_generation(generation)
    with _borrowed(settings, client) as own:
        live = read_live_generation(settings, own)
        if live == generation:
            raise ValueError(f"generation {generation} is live; promote another one first")
        database = _database(settings, own)
        for base in COLLECTION_BASES:
            database.drop_collection(collection_name(base, generation))
        # Positions committed for the dropped collections must not be resumed by new ones.
        database[IDENTITY_COLLECTION].delete_one({"_id": generation})


def _canonical(value: Any) -> Any:
    if isinstance(value, datetime):
        # Millisecond precision is what BSON keeps; render it with an explicit UTC offset.
        return value.astimezone(UTC).isoformat(timespec="milliseconds")
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, Mapping):
        return {str(key): _canonical(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(item) for item in value]
    return value


def mongo_checksum(
    settings: Settings, generation: str, client: MongoClient | None = None
) -> dict[str, str]:
    """SHA-256 per collection over its documents sorted by _id, without projection-time
    fields and independent of field order: the same log gives the same checksums."""
    validate_generation(generation)
    checksums: dict[str, str] = {}
    with _borrowed(settings, client) as own:
        database = _database(settings, own)
        for base in COLLECTION_BASES:
            digest = hashlib.sha256()
            cursor = database[collection_name(base, generation)].find({}, sort=[("_id", ASCENDING)])
            for document in cursor:
                kept = {k: v for k, v in document.items() if k not in PROJECTION_TIME_FIELDS}
                digest.update(
                    json.dumps(_canonical(kept), sort_keys=True, separators=(",", ":")).encode()
                )
                digest.update(b"\n")
            checksums[base] = digest.hexdigest()
    return checksums
