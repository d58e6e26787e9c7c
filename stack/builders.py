"""Builds servers from the registries this machine reaches: Go modules and Maven Central."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

from stack.process import StackError, require_tool, run_checked

GO_ENV = {"GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod", "CGO_ENABLED": "0"}


def build_go_module(
    module: str,
    version: str,
    package: str,
    output: Path,
    work_dir: Path,
    patch: Callable[[Path], None] | None = None,
) -> Path:
    """Download one pinned module version and build a binary from a writable copy of it.

    Building inside the module's own tree uses its go.mod and go.sum as its authors
    pinned them; the copy lets a patch (such as a version stamp) be applied first.
    """
    go = require_tool("go", "install Go (https://go.dev/doc/install) or Debian's golang")
    work_dir.mkdir(parents=True, exist_ok=True)
    info = json.loads(
        run_checked(
            [go, "mod", "download", "-json", f"{module}@{version}"],
            what=f"go mod download {module}@{version}",
            env=GO_ENV,
            cwd=work_dir.parent,
        )
    )
    if info.get("Error"):
        raise StackError(f"go mod download {module}@{version}: {info['Error']}")
    source = work_dir / "src"
    if source.exists():
        shutil.rmtree(source)
    shutil.copytree(info["Dir"], source)
    for path in [source, *source.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o200)
    if patch:
        patch(source)
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_suffix(".partial")
    run_checked(
        [go, "build", "-trimpath", "-o", str(partial), package],
        what=f"go build {module}",
        env=GO_ENV,
        cwd=source,
    )
    partial.rename(output)
    shutil.rmtree(source)
    return output


def pom_property(pom: Path, name: str) -> str:
    """A <properties> value of a POM, e.g. the pinned server version."""
    match = re.search(rf"<{re.escape(name)}>([^<]+)</{re.escape(name)}>", pom.read_text())
    if not match:
        raise StackError(f"{pom} does not declare the property {name}")
    return match.group(1).strip()


def maven(
    pom: Path,
    goals: list[str],
    repo: Path,
    properties: dict[str, str] | None = None,
) -> str:
    mvn = require_tool("mvn", "install Maven (Debian package maven)")
    argv = [mvn, "-B", "-q", f"-Dmaven.repo.local={repo}", "-f", str(pom), *goals]
    argv += [f"-D{key}={value}" for key, value in (properties or {}).items()]
    return run_checked(argv, what=f"mvn {' '.join(goals)} ({pom.parent.name})")
