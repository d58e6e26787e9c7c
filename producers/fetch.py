"""Fetch by URL: http(s) only, streamed to a temp file under a size and a total time limit.

Every redirect hop is checked like the first URL (scheme, count, and unless private
networks are allowed, the addresses its host resolves to), so a redirect cannot lead to
``file://``, into the internal network, or loop forever. The URL recorded on the event has
its credentials removed: user info, and query parameters that carry secrets (tokens,
signatures).
"""

from __future__ import annotations

import ipaddress
import re
import socket
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from email.message import Message
from pathlib import Path, PurePosixPath
from typing import IO
from urllib.parse import unquote, urlsplit

import httpx

from producers.ingest import Ingestor, IngestResult, UploadSource
from producers.urls import redact_url
from visionlog.media.errors import MediaRejectedError, RejectReason

MAX_REDIRECTS = 5
_ALLOWED_SCHEMES = ("http", "https")
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]")


@dataclass(frozen=True)
class FetchedFile:
    path: Path
    filename: str | None
    source_uri: str
    size: int


def check_url(url: str) -> str:
    """Accept absolute http(s) URLs with a host; anything else is FORBIDDEN_URL."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in _ALLOWED_SCHEMES:
        shown = f"{scheme}://" if scheme else "no scheme"
        raise MediaRejectedError(
            RejectReason.FORBIDDEN_URL,
            f"only http and https URLs can be fetched, got {shown} ({redact_url(url)})",
        )
    if not parts.hostname:
        raise MediaRejectedError(
            RejectReason.FORBIDDEN_URL, f"URL {redact_url(url)!r} names no host"
        )
    return url.strip()


def check_public_host(url: str) -> None:
    """Refuse URLs whose host resolves to a loopback, private, link-local or reserved address."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        infos = socket.getaddrinfo(host, parts.port or None, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise _failed(f"{redact_url(url)}: cannot resolve host {host!r} ({exc})") from exc
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]))
        if not address.is_global:
            raise MediaRejectedError(
                RejectReason.FORBIDDEN_URL,
                f"{redact_url(url)}: host {host!r} resolves to the non-public address "
                f"{address}; set VISIONLOG_INGEST__FETCH_ALLOW_PRIVATE_NETWORKS=true to allow",
            )


def filename_from(headers: Mapping[str, str], url: str) -> str | None:
    """The name the server gives (Content-Disposition) or the last path segment."""
    disposition = headers.get("content-disposition")
    name: str | None = None
    if disposition:
        message = Message()
        message["content-disposition"] = disposition
        name = message.get_filename()
    if not name:
        name = unquote(PurePosixPath(urlsplit(url).path).name) or None
    if name is None:
        return None
    cleaned = _UNSAFE_NAME.sub("_", PurePosixPath(name.replace("\\", "/")).name).strip(" .")
    return cleaned[:200] or None


def _failed(message: str) -> MediaRejectedError:
    return MediaRejectedError(RejectReason.FETCH_FAILED, message)


def fetch_to_file(
    url: str,
    directory: Path,
    *,
    max_bytes: int,
    timeout_s: float,
    client: httpx.Client | None = None,
    allow_private_networks: bool = False,
) -> FetchedFile:
    """Download `url` into `directory`; raises MediaRejectedError with a precise reason."""
    current = check_url(url)
    shown = redact_url(current)
    deadline = time.monotonic() + timeout_s
    own_client = client is None
    http = client or httpx.Client(follow_redirects=False, timeout=timeout_s)
    try:
        for _hop in range(MAX_REDIRECTS + 1):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise MediaRejectedError(
                    RejectReason.TIMEOUT, f"{shown}: no answer within {timeout_s:g}s"
                )
            if not allow_private_networks:
                check_public_host(current)
            try:
                with http.stream("GET", current, timeout=remaining) as response:
                    if response.is_redirect:
                        location = response.headers.get("location")
                        if not location:
                            raise _failed(f"{shown}: redirect without a Location header")
                        current = check_url(str(response.url.join(location)))
                        continue
                    if response.status_code >= 400:
                        raise _failed(
                            f"{shown}: the server answered HTTP {response.status_code} "
                            f"{response.reason_phrase}"
                        )
                    fetched = _save(response, current, directory, max_bytes, deadline, timeout_s)
                    # The URL the caller asked for is the provenance, not the last hop.
                    return replace(fetched, source_uri=shown)
            except httpx.TimeoutException as exc:
                raise MediaRejectedError(
                    RejectReason.TIMEOUT, f"{shown}: timed out after {timeout_s:g}s ({exc})"
                ) from exc
            except httpx.HTTPError as exc:
                raise _failed(f"{shown}: {type(exc).__name__}: {exc}") from exc
        raise _failed(f"{shown}: more than {MAX_REDIRECTS} redirects")
    finally:
        if own_client:
            http.close()


def _save(
    response: httpx.Response,
    url: str,
    directory: Path,
    max_bytes: int,
    deadline: float,
    timeout_s: float,
) -> FetchedFile:
    shown = redact_url(url)
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise MediaRejectedError(
            RejectReason.TOO_LARGE,
            f"{shown}: the server announces {int(declared):,} bytes; the limit is {max_bytes:,}",
        )
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - kept open while streaming
        dir=directory, prefix="fetch-", delete=False
    )
    try:
        with handle:
            size = _stream_body(response, handle, shown, max_bytes, deadline, timeout_s)
    except BaseException:
        # A partial download is never handed on; the caller's directory keeps nothing of it.
        Path(handle.name).unlink(missing_ok=True)
        raise
    return FetchedFile(
        path=Path(handle.name),
        filename=filename_from(response.headers, url),
        source_uri=shown,
        size=size,
    )


def _stream_body(
    response: httpx.Response,
    handle: IO[bytes],
    shown: str,
    max_bytes: int,
    deadline: float,
    timeout_s: float,
) -> int:
    """Write the body to `handle` within the size and time limits; returns its size."""
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise MediaRejectedError(
                RejectReason.TOO_LARGE,
                f"{shown}: more than {max_bytes:,} bytes; download stopped",
            )
        if time.monotonic() > deadline:
            raise MediaRejectedError(
                RejectReason.TIMEOUT,
                f"{shown}: download not finished after {timeout_s:g}s ({size:,} bytes)",
            )
        handle.write(chunk)
    return size


def fetch_and_ingest(
    ingestor: Ingestor,
    url: str,
    *,
    profile: str | None = None,
    owner_id: str | None = None,
    labels: Mapping[str, str] | None = None,
    password: str | None = None,
    trust_content: bool = False,
    client: httpx.Client | None = None,
) -> IngestResult:
    """Fetch `url` and ingest it with source URL and the redacted URL as source_uri."""
    limits = ingestor.settings.ingest
    with tempfile.TemporaryDirectory(prefix="visionlog-fetch-") as directory:
        fetched = fetch_to_file(
            url,
            Path(directory),
            max_bytes=min(limits.fetch_max_bytes, limits.max_upload_bytes),
            timeout_s=limits.fetch_timeout_s,
            client=client,
            allow_private_networks=limits.fetch_allow_private_networks,
        )
        return ingestor.ingest_bytes(
            fetched.path,
            filename=fetched.filename,
            profile=profile,
            source=UploadSource.URL,
            source_uri=fetched.source_uri,
            owner_id=owner_id,
            labels=labels,
            password=password,
            trust_content=trust_content,
        )
