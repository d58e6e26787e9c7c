"""The rendered manifests of every environment, rendered once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ops.manifests import ENVIRONMENTS, ManifestSet, render_all


@pytest.fixture(scope="session")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return render_all(tmp_path_factory.mktemp("manifests"))


@pytest.fixture(scope="session")
def manifests(rendered: dict[str, Path]) -> dict[str, ManifestSet]:
    return {environment: ManifestSet(rendered[environment]) for environment in ENVIRONMENTS}
