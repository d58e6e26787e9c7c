"""The upload load: a document every N seconds and images at a steady rate, through the
API's ingest endpoint with the admin's bearer token, like any client.

Images go out on a fixed grid from a small pool of sender threads, so one slow ingest call
(a big PDF being rendered in its request) does not lower the image rate; a document is
sent from its own thread. Every attempt is recorded with its send time.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import httpx

from bench.load.model import Upload

Login = Callable[[], str]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class ApiUploader:
    """Posts files to /v1/ingest; logs in again when the access token expires."""

    def __init__(self, base_url: str, login: Login, timeout_s: float = 600.0) -> None:
        self._base_url = base_url
        self._login = login
        self._timeout_s = timeout_s
        self._token = login()
        self._token_lock = threading.Lock()
        self._local = threading.local()
        self._clients: list[httpx.Client] = []

    def _client(self) -> httpx.Client:
        client: httpx.Client | None = getattr(self._local, "client", None)
        if client is None:
            client = httpx.Client(base_url=self._base_url, timeout=self._timeout_s)
            self._local.client = client
            with self._token_lock:
                self._clients.append(client)
        return client

    def upload(self, kind: str, name: str, data: bytes, content_type: str, profile: str) -> Upload:
        sent = now_ms()
        error: str | None = None
        media_id: str | None = None
        for attempt in (1, 2):
            try:
                response = self._client().post(
                    "/v1/ingest",
                    headers={"Authorization": f"Bearer {self._token}"},
                    files={"file": (name, data, content_type)},
                    data={"profile": profile, "labels": json.dumps({"bench": "sustained-load"})},
                )
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
                break
            if response.status_code == 401 and attempt == 1:
                with self._token_lock:
                    self._token = self._login()
                continue
            if response.status_code == 202:
                media_id = str(response.json()["media_id"])
                error = None
            else:
                error = f"HTTP {response.status_code}: {response.text[:200]}"
            break
        return Upload(kind, name, sent, now_ms(), media_id, error)

    def close(self) -> None:
        with self._token_lock:
            for client in self._clients:
                client.close()


class UploadLoad:
    """Runs the document and image schedules from `start()` until `stop()`."""

    def __init__(
        self,
        uploader: ApiUploader,
        *,
        documents: list[bytes],
        document_every_s: float,
        make_image: Callable[[int], bytes],
        images_per_s: float,
        document_profile: str,
        image_profile: str,
        senders: int = 4,
    ) -> None:
        self._uploader = uploader
        self._documents = documents
        self._document_every_s = document_every_s
        self._make_image = make_image
        self._images_per_s = images_per_s
        self._document_profile = document_profile
        self._image_profile = image_profile
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._records: list[Upload] = []
        self._senders = senders
        self._pool = ThreadPoolExecutor(senders, thread_name_prefix="upload")
        self._started = time.monotonic()
        self._pending: list[Future[None]] = []
        self._threads: list[threading.Thread] = []
        # Images the pool could not start on time (all senders busy): the rate fell short.
        self.images_late = 0

    @property
    def records(self) -> list[Upload]:
        with self._lock:
            return list(self._records)

    def accepted_ids(self) -> set[str]:
        with self._lock:
            return {r.media_id for r in self._records if r.media_id is not None}

    def start(self) -> None:
        """Fix the schedules' origin (now) and start sending."""
        self._started = time.monotonic()
        if self._documents and self._document_every_s > 0:
            self._threads.append(
                threading.Thread(target=self._document_loop, name="documents", daemon=True)
            )
        if self._images_per_s > 0:
            self._threads.append(
                threading.Thread(target=self._image_loop, name="images", daemon=True)
            )
        for thread in self._threads:
            thread.start()

    def request_stop(self) -> None:
        """Send nothing more (returns at once)."""
        self._stop.set()

    def stop(self, wait_s: float = 600.0) -> None:
        """Send nothing more and wait (bounded) for the requests under way to be answered."""
        self._stop.set()
        deadline = time.monotonic() + wait_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        for future in list(self._pending):
            try:
                future.result(timeout=max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                break  # the rest stay unanswered: they are not in the records
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _record(self, upload: Upload) -> None:
        with self._lock:
            self._records.append(upload)

    def _document_loop(self) -> None:
        # Documents go out at 0, every, 2·every … of the load; the pre-made ones are used
        # in turn (there is one per slot).
        for number, pdf in enumerate(self._documents):
            self._record(
                self._uploader.upload(
                    "document",
                    f"load-document-{number:03d}.pdf",
                    pdf,
                    "application/pdf",
                    self._document_profile,
                )
            )
            if self._stop.wait(self._next_slot(number + 1, self._document_every_s)):
                return

    def _next_slot(self, number: int, period_s: float) -> float:
        return max(0.0, self._started + number * period_s - time.monotonic())

    def _image_loop(self) -> None:
        period = 1.0 / self._images_per_s
        busy = threading.Semaphore(self._senders)
        number = 0
        while not self._stop.is_set():
            if busy.acquire(blocking=False):
                self._pending.append(self._pool.submit(self._send_image, number, busy))
                self._pending = [f for f in self._pending if not f.done()]
            else:
                self.images_late += 1
            number += 1
            if self._stop.wait(self._next_slot(number, period)):
                return

    def _send_image(self, number: int, busy: threading.Semaphore) -> None:
        name = f"load-image-{number:05d}.jpg"
        try:
            data = self._make_image(number)
            self._record(
                self._uploader.upload("image", name, data, "image/jpeg", self._image_profile)
            )
        except Exception as exc:  # a failed upload is a figure of the run, not its end
            self._record(Upload("image", name, now_ms(), now_ms(), None, repr(exc)))
        finally:
            busy.release()
