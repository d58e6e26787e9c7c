"""Qdrant: qdrant-client's embedded on-disk mode by default, a server when a URL is set.

No Qdrant server can be installed from the registries this machine reaches, so the local
stack has no Qdrant process; clients open the on-disk store under the state directory.
"""

from __future__ import annotations

import os

import httpx

from stack.services.base import Health, Service


class QdrantService(Service):
    name = "qdrant"

    @property
    def endpoint(self) -> str:
        return self.settings.qdrant.url or f"embedded:{self.settings.qdrant_path}"

    @property
    def managed(self) -> bool:
        return self.settings.qdrant.url is None

    def installed(self) -> bool:
        return True

    def install(self) -> None:
        """qdrant-client is a Python dependency; nothing else to install."""

    def command(self) -> tuple[list[str], dict[str, str]]:
        raise NotImplementedError("embedded Qdrant runs inside the client process")

    def prepare(self) -> None:
        self.settings.qdrant_path.mkdir(parents=True, exist_ok=True)

    def start(self) -> None:
        self.prepare()

    def running(self) -> bool:
        return self.settings.qdrant_path.is_dir()

    def pid(self) -> int | None:
        return None

    def stop(self) -> bool:
        return False

    def health(self) -> Health:
        url = self.settings.qdrant.url
        if url is None:
            path = self.settings.qdrant_path
            if path.is_dir() and os.access(path, os.W_OK):
                return Health(True, f"embedded on-disk store at {path}")
            return Health(False, f"{path} is missing or not writable")
        headers = {}
        if self.settings.qdrant.api_key:
            headers["api-key"] = self.settings.qdrant.api_key.get_secret_value()
        try:
            response = httpx.get(f"{url.rstrip('/')}/readyz", headers=headers, timeout=2.0)
        except httpx.HTTPError as exc:
            return Health(False, f"{url}: {exc}")
        return Health(response.status_code == 200, f"{url} -> HTTP {response.status_code}")
