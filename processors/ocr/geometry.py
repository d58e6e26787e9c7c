"""Polygon geometry for OCR: quad ordering, polygon offsetting, crops and transforms."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
# 8-bit grey or BGR pixels; OpenCV's stubs type its results loosely, hence Any.
Image = NDArray[Any]


def polygon_area(points: FloatArray) -> float:
    """Absolute area of a simple polygon (shoelace formula)."""
    x, y = points[:, 0], points[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2.0)


def polygon_perimeter(points: FloatArray) -> float:
    return float(np.linalg.norm(points - np.roll(points, -1, axis=0), axis=1).sum())


def offset_convex_polygon(points: FloatArray, distance: float) -> FloatArray:
    """Move every edge of a convex polygon outwards by `distance` (mitred corners).

    Each edge is shifted along its outward normal and neighbouring shifted edges are
    intersected, which for the rectangles the text detector produces is exact.
    """
    pts = np.asarray(points, dtype=np.float64)
    if len(pts) < 3:
        raise ValueError("a polygon needs at least 3 points")
    # Counter-clockwise in a y-down image means negative signed area; normalise the winding
    # so the outward normal is always on the same side of each edge.
    signed = np.dot(pts[:, 0], np.roll(pts[:, 1], -1)) - np.dot(pts[:, 1], np.roll(pts[:, 0], -1))
    if signed < 0:
        pts = pts[::-1]
    edges = np.roll(pts, -1, axis=0) - pts
    lengths = np.linalg.norm(edges, axis=1)
    keep = lengths > 1e-9
    pts, edges, lengths = pts[keep], edges[keep], lengths[keep]
    directions = edges / lengths[:, None]
    # With positive signed area in y-down coordinates the outward normal is (dy, -dx).
    normals = np.stack([directions[:, 1], -directions[:, 0]], axis=1)
    shifted = pts + normals * distance
    result = np.empty_like(pts)
    count = len(pts)
    for index in range(count):
        previous = (index - 1) % count
        result[index] = _intersect(
            shifted[previous], directions[previous], shifted[index], directions[index]
        )
    return np.asarray(result, dtype=np.float64)


def _intersect(p: FloatArray, r: FloatArray, q: FloatArray, s: FloatArray) -> FloatArray:
    cross = r[0] * s[1] - r[1] * s[0]
    if abs(cross) < 1e-9:  # parallel neighbours: the shifted start point is the corner
        return q.copy()
    t = float(((q[0] - p[0]) * s[1] - (q[1] - p[1]) * s[0]) / cross)
    return np.asarray(p + t * r, dtype=np.float64)


def unclip(points: FloatArray, ratio: float) -> FloatArray:
    """Grow a shrunk text kernel back to the full text region (DB's unclip rule)."""
    perimeter = polygon_perimeter(points)
    if perimeter <= 0:
        return np.asarray(points, dtype=np.float64)
    distance = polygon_area(points) * ratio / perimeter
    return offset_convex_polygon(points, distance)


def min_area_quad(points: FloatArray) -> tuple[FloatArray, float]:
    """The minimum-area rectangle around points as an ordered quad, and its short side."""
    rect = cv2.minAreaRect(np.asarray(points, dtype=np.float32))
    box = cv2.boxPoints(rect).astype(np.float64)
    return order_quad(box), float(min(rect[1]))


def order_quad(points: FloatArray) -> FloatArray:
    """Order 4 points clockwise starting top-left, for a quad whose long side is reading
    direction when it is wider than tall (the detector's usual output)."""
    pts = np.asarray(points, dtype=np.float64).reshape(4, 2)
    by_x = pts[np.argsort(pts[:, 0], kind="stable")]
    left, right = by_x[:2], by_x[2:]
    top_left, bottom_left = left[np.argsort(left[:, 1], kind="stable")]
    top_right, bottom_right = right[np.argsort(right[:, 1], kind="stable")]
    return np.array([top_left, top_right, bottom_right, bottom_left], dtype=np.float64)


def quad_size(quad: FloatArray) -> tuple[float, float]:
    """Width (along the top/bottom edges) and height (along the sides) of an ordered quad."""
    width = max(np.linalg.norm(quad[0] - quad[1]), np.linalg.norm(quad[3] - quad[2]))
    height = max(np.linalg.norm(quad[0] - quad[3]), np.linalg.norm(quad[1] - quad[2]))
    return float(width), float(height)


def crop_quad(image: Image, quad: FloatArray) -> Image:
    """Perspective-crop an ordered quad into an upright rectangle of its own size."""
    width, height = quad_size(quad)
    out_w, out_h = max(1, round(width)), max(1, round(height))
    target = np.array([[0, 0], [out_w, 0], [out_w, out_h], [0, out_h]], dtype=np.float32)
    matrix = cv2.getPerspectiveTransform(quad.astype(np.float32), target)
    crop: Image = cv2.warpPerspective(
        image, matrix, (out_w, out_h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE
    )
    return crop


def sub_quad(quad: FloatArray, start: float, end: float) -> FloatArray:
    """The part of an ordered quad between fractions `start` and `end` of its width."""
    top = quad[0] + (quad[1] - quad[0]) * np.array([[start], [end]])
    bottom = quad[3] + (quad[2] - quad[3]) * np.array([[end], [start]])
    return np.vstack([top, bottom])


def transform_points(points: FloatArray, homography: FloatArray) -> FloatArray:
    """Apply a 3x3 projective transform to N x 2 points."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    ones = np.ones((len(pts), 1))
    mapped = np.hstack([pts, ones]) @ homography.T
    return mapped[:, :2] / mapped[:, 2:3]


def bounding_quad(quads: list[FloatArray]) -> FloatArray:
    """Axis-aligned rectangle around several quads, ordered clockwise from top-left."""
    stacked = np.vstack(quads)
    x0, y0 = stacked.min(axis=0)
    x1, y1 = stacked.max(axis=0)
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)
