"""Makes TensorFlow's compiled GraphDef protos importable for the detector conversion.

They ship in the pure-Python `tensorboard` wheel. Installing it would pull its server
dependencies, so provisioning fetches the wheel alone (``pip download --no-deps``) into the
model cache and imports the protos straight from the zip.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from processors.modelstore import models_dir, pip_download

TENSORBOARD_REQUIREMENT = "tensorboard==2.21.0"


def ensure_tensorflow_protos(cache: Path | None = None) -> None:
    if importlib.util.find_spec("tensorboard") is not None:
        return
    tools = cache or models_dir() / "_tools"
    wheels = sorted(tools.glob("tensorboard-*.whl"))
    if not wheels:
        tools.mkdir(parents=True, exist_ok=True)
        pip_download(TENSORBOARD_REQUIREMENT, tools)
        wheels = sorted(tools.glob("tensorboard-*.whl"))
    if not wheels:
        raise RuntimeError(f"pip download {TENSORBOARD_REQUIREMENT} left no wheel in {tools}")
    sys.path.insert(0, str(wheels[-1]))
