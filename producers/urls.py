"""Redacting URLs before they are logged or recorded on events."""

from __future__ import annotations

import re
from urllib.parse import unquote_plus, urlsplit, urlunsplit

# Query parameter names that carry credentials: tokens, signatures, keys, passwords.
_SECRET_PARAM = re.compile(
    r"(token|signature|sig|secret|password|passwd|pwd|api[-_]?key|key|auth|credential|"
    r"x-amz-security-token|x-amz-credential|x-amz-signature)",
    re.IGNORECASE,
)


def is_secret_parameter(name: str) -> bool:
    return _SECRET_PARAM.search(name) is not None


def redact_url(url: str) -> str:
    """The URL without user info, fragment, and query parameters that look like secrets.

    Host, port and the kept parameters stay exactly as written (IPv6 brackets included);
    strings that are not URLs (file paths, ``device:0``) come back unchanged.
    """
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    kept = [
        pair
        for pair in parts.query.split("&")
        if pair and not is_secret_parameter(unquote_plus(pair.partition("=")[0]))
    ]
    return urlunsplit((parts.scheme, netloc, parts.path, "&".join(kept), ""))
