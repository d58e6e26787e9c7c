"""Results and downloads that scale: PostgreSQL-backed results paged in item order with OCR
geometry; downloads one per stored file (latest version), grouped by item, paged, with the
anonymised copies, and viewers limited to those."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from qdrant_client import QdrantClient

from tests.integration.api.conftest import Account, new_account
from tests.integration.api.seeding import (
    item_ref,
    media_redacted,
    media_uploaded,
    objects_detected,
    output_generated,
    project,
    text_recognized,
)
from visionlog.blobstore import EXPORTS, ORIGINALS, PROCESSED, BlobStore
from visionlog.settings import Settings

PAGES = 3


@dataclass(frozen=True)
class Document:
    media_id: str
    owner: Account
    original_bytes: bytes
    redacted_bytes: bytes
    # The event id of the combined report's latest announcement.
    report_event_id: str


def _blob(bucket: str, key: str, content_type: str = "application/json") -> dict[str, Any]:
    return {
        "bucket": bucket,
        "key": key,
        "sha256": "0" * 64,
        "size_bytes": 10,
        "content_type": content_type,
    }


def _seed_document(settings: Settings, qdrant: QdrantClient, owner: Account) -> Document:
    """A three-page PDF: OCR and detections per page, outputs announced more than once
    (the combined report three times), an anonymised copy of every page and masked text of
    page 1."""
    media_id = str(uuid.uuid4())
    blobs = BlobStore.from_settings(settings.minio)
    original_bytes = b"%PDF-" + uuid.uuid4().bytes
    redacted_bytes = b"redacted-" + uuid.uuid4().bytes
    original = blobs.put_bytes(
        ORIGINALS, f"tests/{media_id}/contract.pdf", original_bytes, "application/pdf"
    )
    redacted_first = blobs.put_bytes(
        PROCESSED, f"{media_id}/redacted/page-0001.jpg", redacted_bytes, "image/jpeg"
    )
    user = owner.user_id
    events = [media_uploaded(media_id, user, original, kind="PDF", filename="contract.pdf")]
    for page in range(1, PAGES + 1):
        ref = item_ref(media_id, page=page)
        label = f"page-{page:04d}"
        json_key = f"{media_id}/{label}/ocr.json"
        redacted = (
            redacted_first
            if page == 1
            else _blob(PROCESSED, f"{media_id}/redacted/{label}.jpg", "image/jpeg")
        )
        events += [
            text_recognized(media_id, user, f"Page {page} says hello", ref=ref, seconds=10 + page),
            objects_detected(media_id, user, [("person", 0.8)], ref=ref, seconds=20 + page),
            # The same file announced twice: listed once, the later announcement.
            output_generated(media_id, user, _blob(EXPORTS, json_key), ref=ref, seconds=30),
            output_generated(media_id, user, _blob(EXPORTS, json_key), ref=ref, seconds=31),
            media_redacted(media_id, user, redacted, ref=ref, seconds=40 + page),
        ]
    events.append(
        output_generated(
            media_id,
            user,
            _blob(EXPORTS, f"{media_id}/redacted-text/page-0001.txt", "text/plain"),
            ref=item_ref(media_id, page=1),
            kind="REDACTED_TEXT",
            seconds=45,
        )
    )
    reports = [
        output_generated(
            media_id,
            user,
            _blob(EXPORTS, f"{media_id}/report.html", "text/html"),
            kind="COMBINED_REPORT",
            seconds=50 + n,
        )
        for n in range(3)
    ]
    project(settings, qdrant, [*events, *reports])
    return Document(
        media_id, owner, original_bytes, redacted_bytes, reports[-1].record["envelope"]["event_id"]
    )


@pytest.fixture
def owner(client: TestClient, admin: Account) -> Account:
    return new_account(client, admin, "user", "doc-owner")


@pytest.fixture
def viewer(client: TestClient, admin: Account) -> Account:
    return new_account(client, admin, "viewer", "doc-viewer")


@pytest.fixture
def document(api_settings: Settings, qdrant: QdrantClient, owner: Account) -> Document:
    return _seed_document(api_settings, qdrant, owner)


def _all_pages(
    client: TestClient, url: str, headers: dict[str, str], key: str, **params: Any
) -> tuple[list[dict[str, Any]], int]:
    """Every entry across pages, and how many pages it took."""
    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    pages = 0
    while True:
        query = dict(params)
        if cursor is not None:
            query["cursor"] = cursor
        response = client.get(url, params=query, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        pages += 1
        assert len(body[key]) <= params.get("limit", 10**6)
        seen.extend(body[key])
        cursor = body["next_cursor"]
        if cursor is None:
            return seen, pages
        assert pages < 100


def _result_key(result: dict[str, Any]) -> tuple[str, str, str, str]:
    version = result["model_version"] or ""
    return (result["item_label"], result["stage"], version, result["event_id"])


def _page_order(label: str) -> tuple[int, int]:
    ranks = {"media": (0, 0), "original": (1, 0)}
    if label in ranks:
        return ranks[label]
    kind, _, number = label.partition("-")
    return (2 if kind == "page" else 3, int(number))


def test_results_page_in_item_order_with_every_result_once(
    client: TestClient, document: Document
) -> None:
    url = f"/v1/media/{document.media_id}/results"
    headers = document.owner.headers
    whole = client.get(url, params={"limit": 200}, headers=headers)
    assert whole.status_code == 200, whole.text
    body = whole.json()
    assert body["order"] == "oldest" and body["next_cursor"] is None
    everything = body["results"]
    # Per page: OCR, detection, anonymisation and one output file (announced twice); the
    # masked text of page 1; the whole item: the combined report once (announced 3 times).
    assert len(everything) == PAGES * 4 + 2
    keys = [_result_key(result) for result in everything]
    assert len(set(keys)) == len(keys)
    assert [_page_order(key[0]) for key in keys] == sorted(_page_order(key[0]) for key in keys)
    reports = [r for r in everything if (r["result"] or {}).get("kind") == "COMBINED_REPORT"]
    assert [r["event_id"] for r in reports] == [document.report_event_id]
    assert body["model_versions"]["ocr"] == ["ocr==1"]

    for order, expected in (("oldest", keys), ("newest", keys[::-1])):
        paged, pages = _all_pages(client, url, headers, "results", limit=3, order=order)
        assert [_result_key(result) for result in paged] == expected
        assert pages == -(-len(keys) // 3)

    only_ocr, _ = _all_pages(client, url, headers, "results", limit=2, stage="ocr")
    assert [r["item_label"] for r in only_ocr] == [f"page-{p:04d}" for p in range(1, PAGES + 1)]
    first = client.get(url, params={"limit": 1}, headers=headers).json()
    mismatch = client.get(
        url, params={"cursor": first["next_cursor"], "order": "newest"}, headers=headers
    )
    assert mismatch.status_code == 400 and mismatch.json()["reason"] == "bad_request"
    bad = client.get(url, params={"cursor": "not-a-cursor"}, headers=headers)
    assert bad.status_code == 400


def test_ocr_results_carry_lines_words_and_polygons(client: TestClient, document: Document) -> None:
    response = client.get(
        f"/v1/media/{document.media_id}/results",
        params={"stage": "ocr", "limit": 1},
        headers=document.owner.headers,
    )
    assert response.status_code == 200, response.text
    [ocr] = response.json()["results"]
    assert ocr["event_type"] == "TextRecognized" and ocr["status"] == "done"
    assert ocr["item"]["page_number"] == 1 and ocr["item_label"] == "page-0001"
    result = ocr["result"]
    assert result["full_text"] == "Page 1 says hello"
    [block] = result["blocks"]
    assert block["polygon"] == [{"x": 0.0, "y": 0.0}, {"x": 10.0, "y": 10.0}]
    [line] = block["lines"]
    assert line["text"] == "Page 1 says hello" and len(line["polygon"]) == 2
    assert [word["text"] for word in line["words"]] == ["Page", "1", "says", "hello"]
    assert line["words"][2]["polygon"] == [{"x": 2.0, "y": 0.0}, {"x": 3.0, "y": 5.0}]
    assert result["word_count"] == 4


def test_camera_results_default_to_newest_first(
    client: TestClient, api_settings: Settings, qdrant: QdrantClient, owner: Account
) -> None:
    camera = str(uuid.uuid4())
    events = [media_uploaded(camera, owner.user_id, _blob(ORIGINALS, f"{camera}/v"), kind="VIDEO")]
    for frame in range(5):
        ref = item_ref(camera, frame=frame, camera_id="gate")
        events.append(
            objects_detected(camera, owner.user_id, [("car", 0.7)], ref=ref, seconds=10 + frame)
        )
    project(api_settings, qdrant, events)
    url = f"/v1/media/{camera}/results"
    newest, _ = _all_pages(client, url, owner.headers, "results", limit=2)
    assert [r["item"]["frame_index"] for r in newest] == [4, 3, 2, 1, 0]
    assert all(r["item"]["camera_id"] == "gate" for r in newest)
    assert newest[0]["result"]["detections"][0]["class_name"] == "car"
    oldest = client.get(url, params={"order": "oldest"}, headers=owner.headers).json()
    assert oldest["order"] == "oldest"
    assert [r["item"]["frame_index"] for r in oldest["results"]] == [0, 1, 2, 3, 4]


def _download_kinds(entries: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(entry["item_label"], entry["kind"]) for entry in entries]


def test_downloads_list_each_file_once_grouped_and_paged(
    client: TestClient, document: Document
) -> None:
    url = f"/v1/media/{document.media_id}/downloads"
    headers = document.owner.headers
    whole = client.get(url, headers=headers)
    assert whole.status_code == 200, whole.text
    body = whole.json()
    assert body["next_cursor"] is None and body["anonymised_only"] is False
    expected = [("media", "original"), ("media", "COMBINED_REPORT")]
    expected += [("page-0001", "ANONYMISED_IMAGE"), ("page-0001", "REDACTED_TEXT")]
    expected += [("page-0001", "JSON")]
    for page in range(2, PAGES + 1):
        expected += [(f"page-{page:04d}", "ANONYMISED_IMAGE"), (f"page-{page:04d}", "JSON")]
    assert _download_kinds(body["downloads"]) == expected
    ids = [entry["download_id"] for entry in body["downloads"]]
    assert len(set(ids)) == len(ids)
    # The combined report once, its latest announcement.
    assert f"o-{document.report_event_id}" in ids
    # Grouped by item, in page order.
    assert [group["item_label"] for group in body["items"]] == ["media"] + [
        f"page-{page:04d}" for page in range(1, PAGES + 1)
    ]
    assert [group["page_number"] for group in body["items"]] == [None, 1, 2, 3]
    assert sum(len(group["downloads"]) for group in body["items"]) == len(ids)

    paged, pages = _all_pages(client, url, headers, "downloads", limit=2)
    assert [entry["download_id"] for entry in paged] == ids
    assert pages == -(-len(ids) // 2)

    first_items = ("media", "page-0001")
    links = {e["kind"]: e for e in body["downloads"] if e["item_label"] in first_items}
    assert httpx.get(links["original"]["url"]).content == document.original_bytes
    assert httpx.get(links["ANONYMISED_IMAGE"]["url"]).content == document.redacted_bytes
    assert links["ANONYMISED_IMAGE"]["anonymised"] is True
    assert links["ANONYMISED_IMAGE"]["content_type"] == "image/jpeg"
    single = client.get(f"{url}/original", headers=headers)
    assert single.status_code == 200, single.text
    assert httpx.get(single.json()["url"]).content == document.original_bytes
    assert client.get(f"{url}/o-unknown", headers=headers).status_code == 404
    bad = client.get(url, params={"cursor": "bm90LWEtY3Vyc29y"}, headers=headers)
    assert bad.status_code == 400


def test_viewer_gets_the_anonymised_copy_and_never_the_original(
    client: TestClient,
    api_settings: Settings,
    qdrant: QdrantClient,
    admin: Account,
    viewer: Account,
) -> None:
    document = _seed_document(api_settings, qdrant, viewer)
    url = f"/v1/media/{document.media_id}/downloads"
    listed = client.get(url, headers=viewer.headers)
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert body["anonymised_only"] is True
    entries = body["downloads"]
    assert _download_kinds(entries) == [
        ("page-0001", "ANONYMISED_IMAGE"),
        ("page-0001", "REDACTED_TEXT"),
        ("page-0002", "ANONYMISED_IMAGE"),
        ("page-0003", "ANONYMISED_IMAGE"),
    ]
    assert all(entry["anonymised"] for entry in entries)
    assert httpx.get(entries[0]["url"]).content == document.redacted_bytes
    copy = client.get(f"{url}/{entries[0]['download_id']}", headers=viewer.headers)
    assert copy.status_code == 200, copy.text
    assert httpx.get(copy.json()["url"]).content == document.redacted_bytes

    # The original, and outputs showing it, answer 403 however they are asked for.
    original = client.get(f"{url}/original", headers=viewer.headers)
    assert original.status_code == 403 and original.json()["reason"] == "forbidden"
    report_id = f"o-{document.report_event_id}"
    assert client.get(f"{url}/{report_id}", headers=viewer.headers).status_code == 403
    report = client.get(f"/v1/media/{document.media_id}/report", headers=viewer.headers)
    assert report.status_code == 403

    # An admin gets both: the original and the anonymised copies of the same item.
    as_admin = client.get(url, headers=admin.headers).json()
    kinds = {entry["kind"] for entry in as_admin["downloads"]}
    assert {"original", "ANONYMISED_IMAGE", "REDACTED_TEXT", "COMBINED_REPORT"} <= kinds
    assert as_admin["anonymised_only"] is False
    admin_original = client.get(f"{url}/original", headers=admin.headers)
    assert admin_original.status_code == 200
    assert httpx.get(admin_original.json()["url"]).content == document.original_bytes


def test_owner_gets_the_original_and_the_anonymised_copy(
    client: TestClient, document: Document
) -> None:
    url = f"/v1/media/{document.media_id}/downloads"
    entries = client.get(url, headers=document.owner.headers).json()["downloads"]
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        by_kind.setdefault(entry["kind"], []).append(entry)
    assert len(by_kind["original"]) == 1 and len(by_kind["ANONYMISED_IMAGE"]) == PAGES

    def check(download_id: str) -> int:
        return client.get(f"{url}/{download_id}", headers=document.owner.headers).status_code

    assert check("original") == 200
    assert check(by_kind["ANONYMISED_IMAGE"][0]["download_id"]) == 200
