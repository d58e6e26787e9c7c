"""URL checks, credential redaction and file names for fetch by URL (pure functions)."""

from __future__ import annotations

import pytest

from producers.fetch import check_url, filename_from
from producers.urls import redact_url
from visionlog.media.errors import MediaRejectedError, RejectReason


@pytest.mark.parametrize(
    "url",
    ["file:///etc/passwd", "ftp://example.org/a.jpg", "gopher://h/1", "data:image/png;base64,AA"],
)
def test_only_http_and_https_may_be_fetched(url: str) -> None:
    with pytest.raises(MediaRejectedError) as caught:
        check_url(url)
    assert caught.value.reason is RejectReason.FORBIDDEN_URL
    assert "only http and https" in caught.value.message


def test_url_without_scheme_or_host_is_forbidden() -> None:
    with pytest.raises(MediaRejectedError, match="no scheme"):
        check_url("example.org/a.jpg")
    with pytest.raises(MediaRejectedError, match="names no host") as caught:
        check_url("https://:secret@/a.jpg?token=t0k")
    assert "secret" not in str(caught.value) and "t0k" not in str(caught.value)


def test_credentials_are_removed_from_the_recorded_url() -> None:
    url = "https://alice:pa55@cdn.example.org:8443/img/a.jpg?size=big&token=abc&X-Amz-Signature=f"
    assert redact_url(url) == "https://cdn.example.org:8443/img/a.jpg?size=big"
    assert redact_url("http://[::1]:8080/x.png?api_key=1") == "http://[::1]:8080/x.png"
    # Kept parameters stay as written; the fragment never reaches the server and is dropped.
    assert (
        redact_url("https://h/a.jpg?q=a+b&Sig=1&n=%2F#access_token=x")
        == "https://h/a.jpg?q=a+b&n=%2F"
    )


def test_filename_comes_from_content_disposition_then_the_path() -> None:
    headers = {"content-disposition": 'attachment; filename="../../etc/scan 1.pdf"'}
    assert filename_from(headers, "https://h/download?id=7") == "scan 1.pdf"
    assert filename_from({}, "https://h/files/photo%20x.JPG?x=1") == "photo x.JPG"
    assert filename_from({}, "https://h/") is None
