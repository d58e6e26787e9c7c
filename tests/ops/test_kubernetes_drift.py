"""The production manifests checked in under ops/k8s are exactly what the playbook renders:
a change to the templates or the production inventory must come with its re-render
(`make manifests`)."""

from __future__ import annotations

import difflib
from pathlib import Path

from tests.ops.manifests import CHECKED_IN


def test_checked_in_production_manifests_match_the_render(rendered: dict[str, Path]) -> None:
    fresh = {path.name: path for path in rendered["production"].glob("*.yaml")}
    committed = {path.name: path for path in CHECKED_IN.glob("*.yaml")}
    assert sorted(committed) == sorted(fresh), (
        "rendered and checked-in files differ; run make manifests"
    )
    drifted = []
    for name, path in sorted(fresh.items()):
        rendered_text = path.read_text(encoding="utf-8")
        committed_text = committed[name].read_text(encoding="utf-8")
        if rendered_text != committed_text:
            delta = difflib.unified_diff(
                committed_text.splitlines(),
                rendered_text.splitlines(),
                f"ops/k8s/{name}",
                f"rendered/{name}",
                lineterm="",
                n=1,
            )
            drifted.append("\n".join(list(delta)[:40]))
    assert not drifted, "run make manifests:\n" + "\n".join(drifted)
