"""Motion JPEG over HTTP: splitting a multipart/x-mixed-replace stream into JPEG frames."""

from __future__ import annotations

from collections.abc import Iterator

import httpx

from producers.cameras.sources import RawFrame, SourceError, SourceSpec
from producers.urls import redact_url

# Frames larger than this are not JPEG camera frames but a broken stream.
MAX_FRAME_BYTES = 32 * 1024 * 1024


class MultipartJpegParser:
    """Splits a multipart/x-mixed-replace byte stream into its JPEG parts.

    Parts with a Content-Length header are cut by length; others end at the next boundary.
    """

    def __init__(self, boundary: str, max_part_bytes: int = MAX_FRAME_BYTES) -> None:
        if not boundary:
            raise ValueError("multipart boundary is empty")
        self._marker = b"--" + boundary.encode("latin-1")
        self._max = max_part_bytes
        self._buffer = bytearray()

    @staticmethod
    def boundary_of(content_type: str) -> str:
        kind, _, params = content_type.partition(";")
        if kind.strip().lower() not in ("multipart/x-mixed-replace", "multipart/mixed"):
            raise SourceError(f"not an MJPEG stream: content type {content_type!r}")
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.lower() == "boundary" and value:
                boundary = value.strip('"')
                # Some servers repeat the leading dashes in the header; the marker adds them.
                return boundary[2:] if boundary.startswith("--") else boundary
        raise SourceError(f"MJPEG stream without a boundary: {content_type!r}")

    def feed(self, chunk: bytes) -> list[bytes]:
        self._buffer += chunk
        parts: list[bytes] = []
        while (part := self._next_part()) is not None:
            parts.append(part)
        if len(self._buffer) > self._max + 4096:
            raise SourceError(f"MJPEG part exceeds {self._max} bytes without a boundary")
        return parts

    def _next_part(self) -> bytes | None:
        start = self._buffer.find(self._marker)
        if start < 0:
            return None
        headers_end = self._buffer.find(b"\r\n\r\n", start)
        if headers_end < 0:
            return None
        headers = bytes(self._buffer[start + len(self._marker) : headers_end])
        body_start = headers_end + 4
        length = _content_length(headers)
        if length is not None:
            if length > self._max:
                raise SourceError(f"MJPEG part of {length} bytes exceeds {self._max}")
            if len(self._buffer) < body_start + length:
                return None
            body = bytes(self._buffer[body_start : body_start + length])
            del self._buffer[: body_start + length]
            return body
        end = self._buffer.find(self._marker, body_start)
        if end < 0:
            return None
        body = bytes(self._buffer[body_start:end]).removesuffix(b"\r\n")
        del self._buffer[:end]
        return body


def _content_length(headers: bytes) -> int | None:
    for line in headers.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            try:
                return int(value.strip())
            except ValueError as exc:
                raise SourceError(f"bad Content-Length in MJPEG part: {value!r}") from exc
    return None


class MjpegReader:
    """Motion JPEG over HTTP (multipart/x-mixed-replace); parts stay JPEG until published."""

    def __init__(self, spec: SourceSpec, timeout_s: float) -> None:
        self.source_fps: float | None = None
        self._client = httpx.Client(timeout=httpx.Timeout(timeout_s), follow_redirects=True)
        try:
            request = self._client.build_request("GET", spec.location)
            self._response = self._client.send(request, stream=True)
        except httpx.HTTPError as exc:
            self._client.close()
            raise SourceError(f"cannot open {redact_url(spec.location)}: {exc!r}") from exc
        if self._response.status_code != 200:
            self.close()
            raise SourceError(
                f"{redact_url(spec.location)} answered HTTP {self._response.status_code}"
            )
        try:
            boundary = MultipartJpegParser.boundary_of(
                self._response.headers.get("content-type", "")
            )
        except SourceError:
            self.close()
            raise
        self._parts = self._iterate(MultipartJpegParser(boundary))

    def _iterate(self, parser: MultipartJpegParser) -> Iterator[bytes]:
        try:
            # No chunk size: httpx would hold bytes back until a whole chunk filled up.
            for chunk in self._response.iter_raw():
                yield from parser.feed(chunk)
        except httpx.HTTPError as exc:
            raise SourceError(f"MJPEG stream broke: {exc!r}") from exc

    def read(self) -> RawFrame | None:
        part = next(self._parts, None)
        return None if part is None else RawFrame(jpeg=part)

    def close(self) -> None:
        self._response.close()
        self._client.close()
