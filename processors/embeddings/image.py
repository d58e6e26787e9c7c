"""Image embeddings from a classical descriptor: colour histogram, colour layout and
gradient orientation histograms.

No learned weights: similar pictures (a crop, a brighter copy, the same scene) land close,
different scenes further apart, but it knows nothing of semantics. Vectors are unit length.
"""

from __future__ import annotations

import cv2
import numpy as np

DESCRIPTOR_NAME = "colour-gradient-descriptor"
# Bump when the descriptor changes: vectors of different versions are never compared.
DESCRIPTOR_VERSION = "1"
SIDE = 128
HUE_BINS, SATURATION_BINS, VALUE_BINS = 8, 4, 4
LAYOUT_GRID = 4
ORIENTATION_BINS = 9
PYRAMID_LEVELS = (1, 2, 4)
DIMENSION = (
    HUE_BINS * SATURATION_BINS * VALUE_BINS
    + LAYOUT_GRID * LAYOUT_GRID * 2
    + sum(level * level for level in PYRAMID_LEVELS) * ORIENTATION_BINS
)


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


def _colour_histogram(hsv: np.ndarray) -> np.ndarray:
    histogram = cv2.calcHist(
        [hsv], [0, 1, 2], None, [HUE_BINS, SATURATION_BINS, VALUE_BINS], [0, 180, 0, 256, 0, 256]
    ).ravel()
    # Square roots (Hellinger) keep one dominant colour from swamping the rest.
    return _unit(np.sqrt(histogram / max(float(histogram.sum()), 1.0)))


def _colour_layout(lab: np.ndarray) -> np.ndarray:
    # Chroma (a*, b*) only, so brightness changes leave the layout alone.
    cells = cv2.resize(lab, (LAYOUT_GRID, LAYOUT_GRID), interpolation=cv2.INTER_AREA)
    chroma = cells[:, :, 1:].astype(np.float32).ravel() - 128.0
    return _unit(chroma)


def _gradient_pyramid(gray: np.ndarray) -> np.ndarray:
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3)
    magnitude, angle = cv2.cartToPolar(gx, gy, angleInDegrees=True)
    bins = (np.mod(angle, 180.0) / (180.0 / ORIENTATION_BINS)).astype(np.int32)
    bins = np.minimum(bins, ORIENTATION_BINS - 1)
    parts = []
    for level in PYRAMID_LEVELS:
        step = SIDE // level
        for row in range(level):
            for column in range(level):
                window = np.s_[row * step : (row + 1) * step, column * step : (column + 1) * step]
                cell = np.bincount(
                    bins[window].ravel(),
                    weights=magnitude[window].ravel(),
                    minlength=ORIENTATION_BINS,
                )
                # Per-cell normalisation makes the histograms independent of contrast.
                parts.append(_unit(np.sqrt(cell.astype(np.float32))))
    return _unit(np.concatenate(parts))


def describe(image_bgr: np.ndarray) -> np.ndarray:
    """A unit-length float32 vector of DIMENSION values for a BGR image."""
    if image_bgr.ndim != 3 or image_bgr.shape[2] != 3 or min(image_bgr.shape[:2]) < 2:
        raise ValueError(f"expected a BGR image of at least 2x2 pixels, got {image_bgr.shape}")
    resized = cv2.resize(image_bgr, (SIDE, SIDE), interpolation=cv2.INTER_AREA)
    hsv = cv2.cvtColor(resized, cv2.COLOR_BGR2HSV)
    lab = cv2.cvtColor(resized, cv2.COLOR_BGR2LAB)
    gray = cv2.cvtColor(resized, cv2.COLOR_BGR2GRAY).astype(np.float32)
    vector = np.concatenate(
        [_colour_histogram(hsv), 0.5 * _colour_layout(lab), _gradient_pyramid(gray)]
    )
    return np.asarray(_unit(vector), dtype=np.float32)


def image_model_ref() -> dict[str, str | None]:
    """ModelRef naming the descriptor: it has no weights, so its version is its own."""
    return {
        "name": DESCRIPTOR_NAME,
        "version": f"visionlog-{DESCRIPTOR_VERSION}",
        "source": "processors.embeddings.image (classical descriptor, no learned weights)",
        "licence": "Apache-2.0",
        "runtime": f"opencv/{cv2.__version__}",
    }
