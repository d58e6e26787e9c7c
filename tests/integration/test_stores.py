"""Round trips through PostgreSQL, the MongoDB-wire server, MinIO and Qdrant."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pymongo
import pytest
from minio import Minio
from minio.error import S3Error
from psycopg.types.json import Jsonb
from pydantic import SecretStr
from qdrant_client import QdrantClient, models

from stack import manager
from visionlog.blobstore import (
    BUCKETS,
    ORIGINALS,
    BlobIntegrityError,
    BlobNotFoundError,
    BlobStore,
)
from visionlog.settings import Settings


def test_postgres_round_trip(stack: list[manager.ServiceStatus], settings: Settings) -> None:
    table = f"t_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(settings.postgres.conninfo()) as conn:
        conn.execute(f"CREATE TABLE {table} (id uuid PRIMARY KEY, body jsonb, tsv tsvector)")
        row_id = uuid.uuid4()
        conn.execute(
            f"INSERT INTO {table} VALUES (%s, %s, to_tsvector('german', %s))",
            (row_id, Jsonb({"text": "Straße"}), "Die Straßen sind nass"),
        )
        found = conn.execute(
            f"SELECT id, body->>'text' FROM {table} WHERE tsv @@ to_tsquery('german', 'Straße')"
        ).fetchall()
        conn.execute(f"DROP TABLE {table}")
    assert found == [(row_id, "Straße")]


def test_postgres_rejects_a_wrong_password(
    stack: list[manager.ServiceStatus], settings: Settings
) -> None:
    wrong = settings.postgres.model_copy(update={"password": SecretStr("it's wrong")})
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(wrong.conninfo(), connect_timeout=5)


def test_mongo_wire_round_trip(stack: list[manager.ServiceStatus], settings: Settings) -> None:
    database = f"test_{uuid.uuid4().hex[:8]}"
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
        settings.mongo.uri.get_secret_value(), serverSelectionTimeoutMS=5000
    )
    with client:
        items = client[database].media_items
        items.create_index([("status", pymongo.ASCENDING), ("created", pymongo.DESCENDING)])
        items.insert_many(
            [
                {"_id": "a", "status": "done", "created": 1, "stages": {"ocr": "done"}},
                {"_id": "b", "status": "queued", "created": 2, "stages": {}},
            ]
        )
        items.update_one({"_id": "b"}, {"$set": {"status": "done", "stages.ocr": "done"}})
        done = list(items.find({"status": "done"}).sort("created", pymongo.ASCENDING))
        counts = list(items.aggregate([{"$group": {"_id": "$status", "n": {"$sum": 1}}}]))
        indexes = items.index_information()
        client.drop_database(database)
    assert [d["_id"] for d in done] == ["a", "b"]
    assert counts == [{"_id": "done", "n": 2}]
    assert "status_1_created_-1" in indexes


@pytest.fixture
def blobs(initialised: object, settings: Settings) -> BlobStore:
    return BlobStore.from_settings(settings.minio)


def test_buckets_of_the_layout_exist(blobs: BlobStore) -> None:
    for bucket in BUCKETS:
        assert blobs.client.bucket_exists(bucket)


def test_blob_round_trip_is_verified_by_digest(blobs: BlobStore, tmp_path: Path) -> None:
    data = uuid.uuid4().bytes * 1000
    key = f"tests/{uuid.uuid4()}.bin"
    ref = blobs.put_bytes(ORIGINALS, key, data, "application/octet-stream")
    assert ref["sha256"] == hashlib.sha256(data).hexdigest()
    assert ref["size_bytes"] == len(data)
    assert blobs.get_bytes(ref) == data
    tampered = {**ref, "sha256": "0" * 64}
    with pytest.raises(BlobIntegrityError, match="does not match reference"):
        blobs.get_bytes(tampered)
    path = tmp_path / "upload.bin"
    path.write_bytes(data[::-1])
    file_ref = blobs.put_file(ORIGINALS, key + ".file", path, "application/octet-stream")
    assert file_ref["sha256"] == hashlib.sha256(data[::-1]).hexdigest()
    presigned = blobs.presigned_url(file_ref, expires_s=60)
    assert httpx.get(presigned, timeout=10).content == data[::-1]
    for k in (key, key + ".file"):
        blobs.delete(ORIGINALS, k)
    assert not blobs.exists(ORIGINALS, key)
    with pytest.raises(BlobNotFoundError):
        blobs.get_bytes(ref)


@pytest.mark.parametrize(
    ("access_key", "secret_key", "code"),
    [
        (None, "not-the-secret", "SignatureDoesNotMatch"),
        ("nobody", "not-the-secret", "InvalidAccessKeyId"),
    ],
)
def test_minio_rejects_wrong_credentials(
    initialised: object, settings: Settings, access_key: str | None, secret_key: str, code: str
) -> None:
    client = Minio(
        settings.minio.endpoint,
        access_key=access_key or settings.minio.access_key,
        secret_key=secret_key,
        secure=settings.minio.secure,
        region=settings.minio.region,
    )
    with pytest.raises(S3Error) as excinfo:
        client.list_objects(ORIGINALS).__next__()
    assert excinfo.value.code == code


def test_qdrant_on_disk_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "qdrant"
    client = QdrantClient(path=str(path))
    client.create_collection(
        "images", vectors_config=models.VectorParams(size=4, distance=models.Distance.COSINE)
    )
    client.upsert(
        "images",
        points=[
            models.PointStruct(
                id=1, vector=[1.0, 0.0, 0.0, 0.0], payload={"camera": "gate", "class": "car"}
            ),
            models.PointStruct(
                id=2, vector=[0.9, 0.1, 0.0, 0.0], payload={"camera": "yard", "class": "car"}
            ),
            models.PointStruct(
                id=3, vector=[0.0, 1.0, 0.0, 0.0], payload={"camera": "gate", "class": "person"}
            ),
        ],
    )
    gate = models.Filter(
        must=[models.FieldCondition(key="camera", match=models.MatchValue(value="gate"))]
    )
    hits = client.query_points(
        "images", query=[1.0, 0.05, 0.0, 0.0], query_filter=gate, limit=2
    ).points
    assert [hit.id for hit in hits] == [1, 3]
    client.close()
    reopened = QdrantClient(path=str(path))
    assert reopened.count("images").count == 3
    reopened.close()
