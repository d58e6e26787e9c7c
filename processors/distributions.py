"""Which installed Python distribution provides a library, for the provenance in ModelRefs."""

from __future__ import annotations

import importlib.metadata
from functools import cache

# The wheels that install the `cv2` module; exactly one of them is expected.
OPENCV_DISTRIBUTIONS = (
    "opencv-python-headless",
    "opencv-python",
    "opencv-contrib-python-headless",
    "opencv-contrib-python",
)


def installed_distribution(*names: str) -> tuple[str, str]:
    """Name and version of the first of `names` that is installed."""
    for name in names:
        try:
            return name, importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    raise RuntimeError(f"none of the distributions {', '.join(names)} is installed")


@cache
def opencv_distribution() -> tuple[str, str]:
    """Name and version of the wheel that installed `cv2`."""
    return installed_distribution(*OPENCV_DISTRIBUTIONS)
