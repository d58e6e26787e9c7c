"""Document image clean-up before OCR: pure functions that say whether they changed anything.

Every step returns a `StepResult`; geometric steps also return the 3x3 matrix that maps
input pixels to output pixels, so polygons found later can be mapped back to the original.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np

from processors.ocr.geometry import FloatArray, Image, order_quad, quad_size


@dataclass(frozen=True)
class StepResult:
    image: Image
    applied: bool
    name: str
    # Maps input pixel coordinates to output pixel coordinates (identity when unchanged).
    matrix: FloatArray = field(default_factory=lambda: np.eye(3))
    # The measured quantity that decided the step (noise sigma, contrast range, angle, ...).
    measure: float = 0.0


def to_gray(image: Image) -> Image:
    if image.ndim == 2:
        return image
    gray: Image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    return gray


def to_bgr(image: Image) -> Image:
    """A 3-channel BGR image from grey, BGR or BGRA input."""
    if image.ndim == 2:
        converted: Image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        return converted
    if image.ndim == 3 and image.shape[2] == 4:
        converted = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
        return converted  # noqa: RET504
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    raise ValueError(f"unsupported image shape {image.shape}")


def background_colour(image: Image) -> tuple[int, int, int]:
    """Median colour of the image's outermost pixels, to fill areas a warp uncovers."""
    bgr = to_bgr(image)
    border = np.concatenate([bgr[0], bgr[-1], bgr[:, 0], bgr[:, -1]])
    b, g, r = np.median(border, axis=0)
    return int(b), int(g), int(r)


# --- noise -----------------------------------------------------------------------------


def estimate_noise(image: Image) -> float:
    """Standard deviation of additive noise, from a Laplacian-difference filter.

    The 3x3 mask cancels smooth image structure; text edges add little on pages because
    they cover a small share of pixels.
    """
    gray = to_gray(image).astype(np.float64)
    height, width = gray.shape
    if height < 3 or width < 3:
        return 0.0
    mask = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float64)
    response = cv2.filter2D(gray, -1, mask)[1:-1, 1:-1]
    return float(math.sqrt(math.pi / 2) * np.abs(response).mean() / 6.0)


def denoise(
    image: Image,
    method: Literal["median", "nlmeans"] = "median",
    min_sigma: float = 5.0,
) -> StepResult:
    """Remove sensor or scan noise when the estimated sigma is above `min_sigma`."""
    sigma = estimate_noise(image)
    if sigma < min_sigma:
        return StepResult(image, False, "denoise", measure=sigma)
    if method == "median":
        cleaned: Image = cv2.medianBlur(image, 3)
    else:
        strength = float(min(30.0, 0.8 * sigma))
        if image.ndim == 2:
            cleaned = cv2.fastNlMeansDenoising(image, None, strength, 7, 11)
        else:
            cleaned = cv2.fastNlMeansDenoisingColored(image, None, strength, strength, 7, 11)
    return StepResult(cleaned, True, "denoise", measure=sigma)


# --- contrast --------------------------------------------------------------------------


def contrast_range(image: Image) -> float:
    """Spread between the 1st and 99th grey-level percentiles (0..255)."""
    low, high = np.percentile(to_gray(image), [1, 99])
    return float(high - low)


def enhance_contrast(
    image: Image,
    method: Literal["clahe", "adaptive_threshold"] = "clahe",
    max_range: float = 120.0,
) -> StepResult:
    """Stretch a faded page (grey-level range below `max_range`) with CLAHE, or binarise it.

    Adaptive thresholding is applied whenever asked for; it helps uneven lighting but loses
    anti-aliasing, so it is an option rather than the default.
    """
    spread = contrast_range(image)
    gray = to_gray(image)
    if method == "adaptive_threshold":
        block = max(15, (min(gray.shape) // 40) | 1)
        binary = cv2.adaptiveThreshold(
            gray, 255, cv2.ADAPTIVE_THRESH_GAUSSIAN_C, cv2.THRESH_BINARY, block, 10
        )
        return StepResult(to_bgr(binary), True, "adaptive_threshold", measure=spread)
    if spread >= max_range:
        return StepResult(image, False, "clahe", measure=spread)
    # Stretch the range first: CLAHE's clip limit alone barely lifts very flat pages.
    low, high = np.percentile(gray, [1, 99])
    stretched = np.clip((gray.astype(np.float32) - low) * (255.0 / max(1.0, high - low)), 0, 255)
    clahe = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8))
    enhanced: Image = clahe.apply(stretched.astype(np.uint8))
    return StepResult(to_bgr(enhanced), True, "clahe", measure=spread)


# --- geometry --------------------------------------------------------------------------


def rotate(
    image: Image, degrees_ccw: float, fill: tuple[int, int, int] | None = None
) -> StepResult:
    """Rotate counter-clockwise by any angle on an enlarged canvas that keeps every pixel.

    Quarter turns are exact pixel permutations; other angles are interpolated and the
    uncovered corners filled with the page's background colour.
    """
    turns = degrees_ccw / 90.0
    height, width = image.shape[:2]
    if abs(turns - round(turns)) < 1e-9:
        quarter = round(turns) % 4
        if quarter == 0:
            return StepResult(image, False, "rotate")
        codes = {
            1: cv2.ROTATE_90_COUNTERCLOCKWISE,
            2: cv2.ROTATE_180,
            3: cv2.ROTATE_90_CLOCKWISE,
        }
        matrices = {
            1: np.array([[0, 1, 0], [-1, 0, width - 1], [0, 0, 1]], dtype=np.float64),
            2: np.array([[-1, 0, width - 1], [0, -1, height - 1], [0, 0, 1]], dtype=np.float64),
            3: np.array([[0, -1, height - 1], [1, 0, 0], [0, 0, 1]], dtype=np.float64),
        }
        turned: Image = cv2.rotate(image, codes[quarter])
        return StepResult(turned, True, "rotate", matrices[quarter], float(quarter * 90))
    radians = math.radians(degrees_ccw)
    cos, sin = abs(math.cos(radians)), abs(math.sin(radians))
    new_w = math.ceil(width * cos + height * sin)
    new_h = math.ceil(width * sin + height * cos)
    affine = cv2.getRotationMatrix2D(((width - 1) / 2, (height - 1) / 2), degrees_ccw, 1.0)
    affine[0, 2] += (new_w - width) / 2
    affine[1, 2] += (new_h - height) / 2
    colour = fill if fill is not None else background_colour(image)
    rotated: Image = cv2.warpAffine(
        image,
        affine,
        (new_w, new_h),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=colour,
    )
    return StepResult(rotated, True, "rotate", np.vstack([affine, [0, 0, 1]]), degrees_ccw)


def estimate_skew(image: Image, max_degrees: float = 15.0) -> float:
    """Skew of text lines in degrees (positive: lines fall to the right, i.e. clockwise).

    Dark text is smeared horizontally into line-shaped blobs whose minimum-area rectangles
    give one angle each; the length-weighted median is robust to stray blobs.
    """
    gray = to_gray(image)
    _, mask = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    reach = max(15, min(gray.shape) // 40)
    mask = cv2.morphologyEx(
        mask, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (reach, 3))
    )
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    angles: list[float] = []
    weights: list[float] = []
    for contour in contours:
        corners = cv2.boxPoints(cv2.minAreaRect(contour))
        first, second = corners[1] - corners[0], corners[2] - corners[1]
        long_edge, short_edge = sorted((first, second), key=lambda e: -float(np.hypot(*e)))
        long_side, short_side = float(np.hypot(*long_edge)), float(np.hypot(*short_edge))
        if short_side < 2 or long_side < 3 * short_side:
            continue
        # Direction of the long edge, folded into (-90, 90]: OpenCV's own angle convention
        # changed between versions, the edge vector's does not.
        line_angle = math.degrees(math.atan2(float(long_edge[1]), float(long_edge[0])))
        if line_angle > 90:
            line_angle -= 180
        elif line_angle <= -90:
            line_angle += 180
        if abs(line_angle) <= max_degrees:
            angles.append(line_angle)
            weights.append(long_side)
    if not angles:
        return 0.0
    order = np.argsort(angles)
    cumulative = np.cumsum(np.asarray(weights)[order])
    median_index = int(np.searchsorted(cumulative, cumulative[-1] / 2))
    return float(np.asarray(angles)[order][median_index])


def deskew(image: Image, angle: float | None = None, min_degrees: float = 0.3) -> StepResult:
    """Undo a small rotation; the angle is estimated from the text when not given."""
    skew = estimate_skew(image) if angle is None else angle
    if abs(skew) < min_degrees:
        return StepResult(image, False, "deskew", measure=skew)
    turned = rotate(image, skew)
    return StepResult(turned.image, True, "deskew", turned.matrix, skew)


def find_page_quad(image: Image, min_area_share: float = 0.2) -> FloatArray | None:
    """Corners of the largest convex four-sided outline (a photographed page), if any."""
    gray = to_gray(image)
    height, width = gray.shape
    scale = min(1.0, 800.0 / max(height, width))
    small = cv2.resize(gray, None, fx=scale, fy=scale) if scale < 1 else gray
    blurred = cv2.GaussianBlur(small, (5, 5), 0)
    edges = cv2.Canny(blurred, 40, 120)
    edges = cv2.dilate(edges, np.ones((3, 3), np.uint8))
    contours, _ = cv2.findContours(edges, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    min_area = min_area_share * small.shape[0] * small.shape[1]
    for contour in sorted(contours, key=cv2.contourArea, reverse=True)[:5]:
        if cv2.contourArea(contour) < min_area:
            break
        hull = cv2.convexHull(contour)
        approx = cv2.approxPolyDP(hull, 0.02 * cv2.arcLength(hull, True), True)
        if len(approx) == 4 and cv2.isContourConvex(approx):
            return order_quad(approx.reshape(4, 2).astype(np.float64) / scale)
    return None


def crop_page(image: Image, min_area_share: float = 0.2, min_contrast: float = 25.0) -> StepResult:
    """Warp a photographed page to a flat rectangle.

    Only a quad whose inside differs clearly in brightness from the surroundings counts as
    a page, so frames and tables printed on a scanned page are left alone.
    """
    quad = find_page_quad(image, min_area_share)
    if quad is None:
        return StepResult(image, False, "perspective_crop")
    gray = to_gray(image)
    inside = np.zeros(gray.shape, np.uint8)
    cv2.fillPoly(inside, [quad.round().astype(np.int32)], 255)
    outside_pixels = gray[inside == 0]
    if outside_pixels.size < 0.02 * gray.size:
        return StepResult(image, False, "perspective_crop")
    contrast = abs(float(gray[inside > 0].mean()) - float(outside_pixels.mean()))
    if contrast < min_contrast:
        return StepResult(image, False, "perspective_crop", measure=contrast)
    width, height = quad_size(quad)
    out_w, out_h = max(1, round(width)), max(1, round(height))
    target = np.array([[0, 0], [out_w - 1, 0], [out_w - 1, out_h - 1], [0, out_h - 1]])
    matrix = cv2.getPerspectiveTransform(quad.astype(np.float32), target.astype(np.float32))
    warped: Image = cv2.warpPerspective(
        image, matrix, (out_w, out_h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE
    )
    return StepResult(warped, True, "perspective_crop", matrix.astype(np.float64), contrast)
