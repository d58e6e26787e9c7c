"""Rendering the Ansible playbook and reading the manifests it writes."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.ops.contract import REPO

ANSIBLE_DIR = REPO / "ops" / "ansible"
CHECKED_IN = REPO / "ops" / "k8s"
ENVIRONMENTS = ("development", "staging", "production")

Document = dict[str, Any]


def ansible_playbook() -> Path:
    # The venv's own ansible-playbook, so tests never pick up another installation.
    return Path(sys.executable).parent / "ansible-playbook"


def ansible_environment() -> dict[str, str]:
    # Ansible refuses to start under a non-UTF-8 locale (LC_ALL=C, as some CI shells set),
    # and ignores an ansible.cfg in a world-writable directory: both are pinned here.
    return {
        **os.environ,
        "LC_ALL": "C.UTF-8",
        "LANG": "C.UTF-8",
        "ANSIBLE_CONFIG": str(ANSIBLE_DIR / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
    }


def render_command(environment: str, build_dir: Path, *extra: str) -> list[str]:
    return [
        str(ansible_playbook()),
        "-i",
        f"inventories/{environment}",
        "site.yml",
        "-e",
        f"build_dir={build_dir}",
        *extra,
    ]


def run_playbook(
    environment: str, build_dir: Path, *extra: str, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        render_command(environment, build_dir, *extra),
        cwd=ANSIBLE_DIR,
        env=ansible_environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def render_all(build_dir: Path, environments: Sequence[str] = ENVIRONMENTS) -> dict[str, Path]:
    """Render every environment at once (one ansible-playbook each, side by side)."""
    running = {
        environment: subprocess.Popen(
            render_command(environment, build_dir),
            cwd=ANSIBLE_DIR,
            env=ansible_environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for environment in environments
    }
    failures = []
    for environment, process in running.items():
        output, _ = process.communicate(timeout=300)
        if process.returncode != 0:
            failures.append(f"{environment} (exit {process.returncode}):\n{output[-3000:]}")
    if failures:
        raise AssertionError("ansible-playbook failed for " + "\n".join(failures))
    return {environment: build_dir / environment for environment in environments}


@dataclass(frozen=True)
class Manifest:
    file: str
    document: Document

    @property
    def kind(self) -> str:
        return str(self.document["kind"])

    @property
    def api_version(self) -> str:
        return str(self.document["apiVersion"])

    @property
    def name(self) -> str:
        return str(self.document["metadata"]["name"])

    def __repr__(self) -> str:
        return f"{self.file}:{self.kind}/{self.name}"


class ManifestSet:
    """Every document of one environment's rendered files."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.items: list[Manifest] = []
        for path in sorted(directory.glob("*.yaml")):
            for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
                if document:
                    self.items.append(Manifest(path.name, document))

    def __iter__(self) -> Iterator[Manifest]:
        return iter(self.items)

    def of_kind(self, kind: str) -> list[Manifest]:
        return [item for item in self.items if item.kind == kind]

    def get(self, kind: str, name: str) -> Document:
        for item in self.items:
            if item.kind == kind and item.name == name:
                return item.document
        raise KeyError(f"no {kind} {name} in {self.directory}")

    def config(self) -> dict[str, str]:
        data: Mapping[str, str] = self.get("ConfigMap", "visionlog-config")["data"]
        return dict(data)


def pod_spec(document: Document) -> Document:
    spec: Document = document["spec"]["template"]["spec"]
    return spec


def containers(document: Document) -> list[Document]:
    return list(pod_spec(document)["containers"])
