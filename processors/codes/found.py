"""The decoder-independent result of one decoded code, and its geometry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

Polygon = tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class FoundCode:
    """One decoded code: normalised symbology name, payload, outline and the decoder used."""

    symbology: str
    text: str
    polygon: Polygon
    decoder: str

    @property
    def centre(self) -> tuple[float, float]:
        points = np.asarray(self.polygon, dtype=np.float64)
        return float(points[:, 0].mean()), float(points[:, 1].mean())

    @property
    def extent(self) -> float:
        """The larger side of the polygon's bounding box, in pixels."""
        points = np.asarray(self.polygon, dtype=np.float64)
        return float(max(np.ptp(points[:, 0]), np.ptp(points[:, 1]), 1.0))

    def as_record(self) -> dict[str, Any]:
        return {
            "symbology": self.symbology,
            "text": self.text,
            "polygon": [{"x": x, "y": y} for x, y in self.polygon],
            "decoder": self.decoder,
        }


def polygon_from_array(points: Any) -> Polygon:
    """A polygon from an (N, 2) array-like of pixel coordinates."""
    array = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return tuple((float(x), float(y)) for x, y in array)
