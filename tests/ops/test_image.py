"""The platform image (ops/image/Dockerfile), checked without Docker: what it runs, as whom,
where it puts the models and samples, and that those paths are the ones the compose file
and the Kubernetes configuration use."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import cv2
import numpy as np
import pytest
import yaml

from stack.samples import write_samples
from tests.ops.contract import REPO
from tests.ops.test_compose import load_compose

DOCKERFILE = REPO / "ops" / "image" / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
CONFIG_TEMPLATE = (
    REPO / "ops" / "ansible" / "roles" / "platform" / "templates" / "10-config.yaml.j2"
)
DEVELOPMENT_VARS = (
    REPO / "ops" / "ansible" / "inventories" / "development" / "group_vars" / "all.yml"
)
CAMERAS_EXAMPLE = REPO / "ops" / "compose" / "cameras.example.toml"

BASE_IMAGE = "python:3.11-slim-bookworm"
CACHE_DIR = "/opt/visionlog/cache"
STATE_DIR = "/var/lib/visionlog"
SAMPLES_DIR = "/opt/visionlog/samples"


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [arguments for instruction, arguments in self.instructions if instruction == keyword]

    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for arguments in self.all("ENV"):
            for pair in shlex.split(arguments):
                key, _, value = pair.partition("=")
                values[key] = value
        return values


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, with continuation lines joined and comments and
    the `# syntax` directive dropped. Heredocs are not supported (and not used)."""
    logical: list[str] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    assert not pending, "a continuation line ends the file"
    arguments: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        instruction, _, rest = line.partition(" ")
        instruction, rest = instruction.upper(), rest.strip()
        assert "<<" not in rest or instruction != "RUN", "heredocs are not parsed here"
        if instruction == "FROM":
            words = rest.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: arguments[m.group(1)], words[0])
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else str(len(stages))
            stages.append(Stage(name, base))
        elif not stages:
            assert instruction == "ARG", f"{instruction} before the first FROM"
            key, _, value = rest.partition("=")
            arguments[key] = value
        else:
            stages[-1].instructions.append((instruction, rest))
    return arguments, stages


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))[1]


@pytest.fixture(scope="module")
def runtime(stages: list[Stage]) -> Stage:
    return stages[-1]


def _stage(stages: list[Stage], name: str) -> Stage:
    (found,) = [stage for stage in stages if stage.name == name]
    return found


def test_parser_reads_stages_continuations_and_arguments() -> None:
    arguments, parsed = parse_dockerfile(
        "# syntax=docker/dockerfile:1\nARG BASE=img:1\nFROM ${BASE} AS one\n"
        "ENV A=1 \\\n    B='two words'\nRUN echo \\\n  hi\nFROM one\nUSER 5\n"
    )
    assert arguments == {"BASE": "img:1"}
    assert [(stage.name, stage.base) for stage in parsed] == [("one", "img:1"), ("1", "one")]
    assert parsed[0].env() == {"A": "1", "B": "two words"}
    assert parsed[0].all("RUN") == ["echo  hi"]
    assert parsed[1].all("USER") == ["5"]


def test_every_stage_builds_on_the_slim_python_base(stages: list[Stage]) -> None:
    names = set()
    for stage in stages:
        assert stage.base == BASE_IMAGE or stage.base in names, stage
        names.add(stage.name)
    # The virtual environment moves between stages: same Python at the same path.
    assert stages[0].base == stages[-1].base == BASE_IMAGE


def test_runtime_runs_visionlog_as_a_non_root_user(runtime: Stage) -> None:
    users = runtime.all("USER")
    assert users, "the runtime stage must set a USER"
    uid, _, gid = users[-1].partition(":")
    assert (uid, gid) == ("10001", "10001")
    assert json.loads(runtime.all("ENTRYPOINT")[-1]) == ["visionlog"]
    assert json.loads(runtime.all("CMD")[-1]) == ["--help"]
    assert "VOLUME" not in {instruction for instruction, _ in runtime.instructions}
    creates_state = [run for run in runtime.all("RUN") if "-o 10001 -g 10001" in run]
    assert any(STATE_DIR in run for run in creates_state), "the state dir belongs to 10001"


def test_runtime_environment(runtime: Stage) -> None:
    env = runtime.env()
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["HOME"] == "/tmp"
    assert env["VISIONLOG_CACHE_DIR"] == CACHE_DIR
    assert env["VISIONLOG_STATE_DIR"] == STATE_DIR
    assert env["PATH"].startswith("/opt/visionlog/venv/bin:")


def test_models_are_provisioned_at_build_time_into_the_runtime_cache(
    stages: list[Stage], runtime: Stage
) -> None:
    provisioning = [
        stage
        for stage in stages[:-1]
        if any("visionlog models provision" in run for run in stage.all("RUN"))
    ]
    assert len(provisioning) == 1
    (models,) = provisioning
    assert models.env()["VISIONLOG_CACHE_DIR"] == runtime.env()["VISIONLOG_CACHE_DIR"]
    copies = [copy.split() for copy in runtime.all("COPY")]
    assert [f"--from={models.name}", CACHE_DIR, CACHE_DIR] in copies
    assert [f"--from={models.name}", SAMPLES_DIR, SAMPLES_DIR] in copies
    # The bake step writes the samples where the runtime copies them from.
    assert any("bake_assets.py" in run and SAMPLES_DIR in run.split() for run in models.all("RUN"))
    # npm packs the detector's package; it stays out of the runtime image.
    assert any("npm" in run for run in models.all("RUN"))
    assert not any("npm" in run for run in runtime.all("RUN"))


def test_only_the_runtime_dependencies_are_installed(stages: list[Stage]) -> None:
    build = _stage(stages, "build")
    installs = [run for run in build.all("RUN") if "pip install" in run]
    assert any(re.search(r"pip install --no-deps \.(\s|$)", run) for run in installs)
    assert not any(re.search(r"\[(dev|ops)", run) for run in installs)
    assert any("['project']['dependencies']" in run for run in installs)


def _ignored(path: str, patterns: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Whether .dockerignore keeps `path` out of the context: the last matching pattern
    decides, and a pattern matching a folder matches everything in it."""
    parts = PurePosixPath(path).parts
    candidates = ["/".join(parts[:index]) for index in range(1, len(parts) + 1)]
    excluded = False
    for negated, pattern in patterns:
        if any(pattern.fullmatch(candidate) for candidate in candidates):
            excluded = not negated
    return excluded


def _dockerignore() -> list[tuple[bool, re.Pattern[str]]]:
    patterns = []
    for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        glob = line.removeprefix("!").strip("/")
        regex = ""
        index = 0
        while index < len(glob):
            if glob.startswith("**/", index):
                regex += "(?:.*/)?"
                index += 3
            elif glob.startswith("**", index):
                regex += ".*"
                index += 2
            elif glob[index] == "*":
                regex += "[^/]*"
                index += 1
            elif glob[index] == "?":
                regex += "[^/]"
                index += 1
            else:
                regex += re.escape(glob[index])
                index += 1
        patterns.append((negated, re.compile(regex)))
    return patterns


def test_dockerignore_matcher() -> None:
    patterns = [
        (False, re.compile("[^/]*")),
        (True, re.compile("src")),
        (False, re.compile("(?:.*/)?\\.env")),
    ]
    assert _ignored("notes.txt", patterns)
    assert not _ignored("src/main.py", patterns)
    assert _ignored("src/deep/.env", patterns)


def test_the_build_context_has_what_the_dockerfile_copies_and_no_secrets(
    stages: list[Stage],
) -> None:
    patterns = _dockerignore()
    sources = [
        source
        for stage in stages
        for copy in stage.all("COPY")
        if not copy.startswith("--from=")
        for source in copy.split()[:-1]
    ]
    assert sources
    copies = {copy for stage in stages for copy in stage.all("COPY")}
    for source in sources:
        assert (REPO / source).exists(), source
        assert not _ignored(source.rstrip("/"), patterns), f"{source} is not in the context"
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    for package in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]:
        folder = package.rstrip("*")
        assert f"{folder}/" in sources, f"the Dockerfile does not copy the package {folder}"
        assert f"{folder}/ {folder}/" in copies, f"{folder} must keep its name in /src"
    kept_out_paths = (".env", "ops/compose/.env", "api/.env", ".venv/bin/python", ".git/config")
    for kept_out in (*kept_out_paths, "tests", "visionlog/__pycache__/settings.cpython-311.pyc"):
        assert _ignored(kept_out, patterns), kept_out
    for kept_in in ("visionlog/settings.py", "schemas/avro", "pyproject.toml"):
        assert not _ignored(kept_in, patterns), kept_in


def test_the_paths_agree_with_compose_and_kubernetes(runtime: Stage) -> None:
    env = runtime.env()
    platform_env = load_compose()["x-env-base"]
    assert platform_env["VISIONLOG_CACHE_DIR"] == env["VISIONLOG_CACHE_DIR"]
    assert platform_env["VISIONLOG_STATE_DIR"] == env["VISIONLOG_STATE_DIR"]
    template = CONFIG_TEMPLATE.read_text(encoding="utf-8")
    for variable in ("VISIONLOG_CACHE_DIR", "VISIONLOG_STATE_DIR"):
        match = re.search(rf"'{variable}':\s*'([^']+)'", template)
        assert match is not None, f"{variable} is not in the ConfigMap template"
        assert match.group(1) == env[variable], variable


def _camera_files() -> dict[str, str]:
    """Every camera URL that names a file: compose's example and Kubernetes development."""
    urls: dict[str, str] = {}
    compose_set = tomllib.loads(CAMERAS_EXAMPLE.read_text(encoding="utf-8"))
    development = yaml.safe_load(DEVELOPMENT_VARS.read_text(encoding="utf-8"))
    kubernetes_set = tomllib.loads(development["cameras_toml"])
    for origin, camera_set in (("compose", compose_set), ("kubernetes", kubernetes_set)):
        for camera in camera_set["cameras"]:
            url = str(camera["url"])
            if "://" not in url and not url.startswith("device:"):
                urls[f"{origin}:{camera['name']}"] = url
    return urls


def test_the_sample_video_cameras_play_is_one_the_image_bakes(tmp_path: Path) -> None:
    photo = np.full((240, 320, 3), 90, np.uint8)
    cv2.rectangle(photo, (40, 60), (120, 200), (250, 250, 250), -1)
    cv2.imwrite(str(tmp_path / "photo.jpg"), photo)
    baked = {
        path.name for path in write_samples(tmp_path / "samples", tmp_path / "photo.jpg").files()
    }
    cameras = _camera_files()
    assert {"compose:sample-loop", "kubernetes:dev-loop"} <= set(cameras)
    for camera, url in cameras.items():
        path = PurePosixPath(url)
        assert str(path.parent) == SAMPLES_DIR, camera
        assert path.name in baked, camera


def test_compose_keeps_the_image_paths_writable_where_needed() -> None:
    services: dict[str, Any] = load_compose()["services"]
    api = services["api"]
    assert f"api-state:{STATE_DIR}" in api["volumes"]
    assert CACHE_DIR not in {volume.split(":")[1] for volume in api.get("volumes", [])}
