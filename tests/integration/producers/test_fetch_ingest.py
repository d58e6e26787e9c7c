"""Fetch by URL from a local HTTP server in a thread, ingested into the real stack."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from producers.fetch import fetch_and_ingest
from tests.integration.producers import samples
from tests.integration.producers.conftest import EventLog, IngestorFactory, originals_on
from visionlog.blobstore import BlobStore
from visionlog.media.errors import MediaRejectedError, RejectReason

PHOTO = samples.jpeg(120, 80)
BIG = samples.png(400, 400)


class Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass  # keep test output quiet

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if path == "/photo.jpg":
            self._send(200, PHOTO, {"Content-Type": "image/jpeg"})
        elif path == "/download":
            self._send(200, PHOTO, {"Content-Disposition": 'attachment; filename="cam 3.jpg"'})
        elif path == "/hop":
            self._send(302, b"", {"Location": "/photo.jpg"})
        elif path == "/loop":
            self._send(302, b"", {"Location": "/loop"})
        elif path == "/to-file":
            self._send(302, b"", {"Location": "file:///etc/passwd"})
        elif path == "/big":
            self._send(200, BIG)
        elif path == "/big-unannounced":
            self.send_response(200)
            self.end_headers()  # no length: the body runs until the connection closes
            self.wfile.write(BIG)
            self.close_connection = True
        elif path == "/slow":
            self.send_response(200)
            self.send_header("Content-Length", str(len(PHOTO)))
            self.end_headers()
            for start in range(0, len(PHOTO), 64):
                self.wfile.write(PHOTO[start : start + 64])
                self.wfile.flush()
                time.sleep(0.05)
        else:
            self._send(404, b"not here")


# The test server listens on loopback, which fetching refuses unless allowed.
LOOPBACK_ALLOWED: dict[str, object] = {"fetch_allow_private_networks": True}


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_fetched_file_is_ingested_with_a_redacted_source_uri(
    make_ingestor: IngestorFactory, event_log: EventLog, server: str
) -> None:
    ingestor = make_ingestor(**LOOPBACK_ALLOWED)
    host = server.removeprefix("http://")
    result = fetch_and_ingest(
        ingestor, f"http://bob:hunter2@{host}/hop?token=s3cret&v=2", labels={"via": "url"}
    )
    (event,) = event_log.events_for(result.media_id, 1)
    record = event.record
    assert record["source"] == "URL"
    assert record["source_uri"] == f"{server}/hop?v=2"
    assert record["original_filename"] == "photo.jpg"  # named by the last hop
    assert record["original"]["sha256"] == result.original["sha256"]
    assert record["labels"] == {"via": "url"}
    assert (record["width"], record["height"]) == (120, 80)


def test_server_file_name_is_kept(make_ingestor: IngestorFactory, server: str) -> None:
    result = fetch_and_ingest(make_ingestor(**LOOPBACK_ALLOWED), f"{server}/download")
    assert result.media_type == "jpeg"


@pytest.mark.parametrize(
    ("path", "limits", "reason", "detail"),
    [
        ("/to-file", {}, RejectReason.FORBIDDEN_URL, "file://"),
        ("/loop", {}, RejectReason.FETCH_FAILED, "more than 5 redirects"),
        ("/missing", {}, RejectReason.FETCH_FAILED, "HTTP 404"),
        ("/big", {"fetch_max_bytes": 10_000}, RejectReason.TOO_LARGE, "announces"),
        ("/big-unannounced", {"fetch_max_bytes": 10_000}, RejectReason.TOO_LARGE, "stopped"),
        ("/slow", {"fetch_timeout_s": 0.3}, RejectReason.TIMEOUT, "0.3s"),
    ],
)
def test_bad_fetches_are_refused_precisely(
    make_ingestor: IngestorFactory,
    event_log: EventLog,
    blobs: BlobStore,
    upload_day: datetime,
    server: str,
    path: str,
    limits: dict[str, object],
    reason: RejectReason,
    detail: str,
) -> None:
    before = event_log.total()
    with pytest.raises(MediaRejectedError) as caught:
        fetch_and_ingest(make_ingestor(**LOOPBACK_ALLOWED, **limits), f"{server}{path}")
    assert caught.value.reason is reason
    assert detail in caught.value.message
    assert originals_on(blobs, upload_day) == []
    assert event_log.total() == before


def test_non_http_schemes_are_refused_before_any_request(make_ingestor: IngestorFactory) -> None:
    with pytest.raises(MediaRejectedError) as caught:
        fetch_and_ingest(make_ingestor(**LOOPBACK_ALLOWED), "ftp://127.0.0.1/photo.jpg")
    assert caught.value.reason is RejectReason.FORBIDDEN_URL


def test_private_addresses_are_refused_by_default(
    make_ingestor: IngestorFactory, event_log: EventLog, server: str
) -> None:
    before = event_log.total()
    with pytest.raises(MediaRejectedError) as caught:
        fetch_and_ingest(make_ingestor(), f"{server}/photo.jpg")
    assert caught.value.reason is RejectReason.FORBIDDEN_URL
    assert "non-public address 127.0.0.1" in caught.value.message
    assert event_log.total() == before
