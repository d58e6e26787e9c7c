"""The document OCR pipeline: clean-up, orientation and skew, reading, layout.

Geometric steps accumulate one matrix from the original image to the image that is read,
so every polygon in the result is expressed in original image pixels.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from processors.ocr.engine import OcrEngine, TextLineProbe
from processors.ocr.geometry import Image, transform_points
from processors.ocr.language import languages_found
from processors.ocr.layout import build_blocks
from processors.ocr.orientation import dominant_direction, upright_probability
from processors.ocr.preprocess import (
    StepResult,
    crop_page,
    denoise,
    deskew,
    enhance_contrast,
    rotate,
    to_bgr,
)
from processors.ocr.result import OcrResult


@dataclass(frozen=True)
class PipelineOptions:
    perspective_crop: bool = True
    denoise: Literal["median", "nlmeans"] | None = "median"
    contrast: Literal["clahe", "adaptive_threshold"] | None = "clahe"
    orientation: bool = True
    deskew: bool = True
    # Orientation is judged on a smaller detector input: line directions survive scaling.
    probe_max_side: int = 960
    min_skew_degrees: float = 0.3


@dataclass
class _Page:
    """The image being prepared and the matrix from original pixels to its pixels."""

    image: Image
    matrix: NDArray[np.float64]
    steps: list[str]

    def apply(self, step: StepResult, record: bool = True) -> None:
        if step.applied:
            self.image = step.image
            self.matrix = step.matrix @ self.matrix
            if record:
                self.steps.append(step.name)


class OcrPipeline:
    """Reads a photographed or scanned page in any of four orientations."""

    def __init__(
        self,
        engine: OcrEngine,
        probe: TextLineProbe | None = None,
        options: PipelineOptions | None = None,
    ) -> None:
        self.engine = engine
        self.probe = probe
        self.options = options or PipelineOptions()

    def read(self, image: Image) -> OcrResult:
        if image.size == 0 or image.ndim not in (2, 3):
            raise ValueError(f"expected a non-empty image, got shape {image.shape}")
        started = time.perf_counter()
        options = self.options
        original = to_bgr(image)
        page = _Page(original, np.eye(3), [])
        if options.perspective_crop:
            page.apply(crop_page(page.image))
        if options.denoise is not None:
            page.apply(denoise(page.image, options.denoise))
        if options.contrast is not None:
            page.apply(enhance_contrast(page.image, options.contrast))
        orientation, skew = self._straighten(page)
        lines = self.engine.read_lines(page.image)
        inverse = np.asarray(np.linalg.inv(page.matrix), dtype=np.float64)
        blocks = build_blocks(lines, lambda points: transform_points(points, inverse))
        return OcrResult(
            image_width=int(original.shape[1]),
            image_height=int(original.shape[0]),
            blocks=blocks,
            orientation_degrees=orientation,
            skew_degrees=round(skew, 2),
            preprocessing=tuple(page.steps),
            inference_ms=(time.perf_counter() - started) * 1000.0,
            languages=languages_found(block.language for block in blocks),
        )

    def _straighten(self, page: _Page) -> tuple[int, float]:
        """Undo quarter turns, 180-degree turns and skew; returns (orientation, skew)."""
        options = self.options
        if self.probe is None or not options.orientation:
            if options.deskew:
                step = deskew(page.image, min_degrees=options.min_skew_degrees)
                page.apply(step)
                return 0, step.measure if step.applied else 0.0
            return 0, 0.0
        boxes = self.probe.detect(page.image, max_side=options.probe_max_side)
        direction = dominant_direction([box.quad for box in boxes])
        skew = direction.skew
        if not options.deskew or abs(skew) < options.min_skew_degrees:
            skew = 0.0
        quarter = direction.quarter_turns
        turn = rotate(page.image, 90.0 * quarter + skew)
        quads = [transform_points(box.quad, turn.matrix) for box in boxes]
        page.apply(turn, record=False)
        if upright_probability(self.probe, page.image, quads) < 0.5:
            page.apply(rotate(page.image, 180.0), record=False)
            quarter += 2
        if quarter:
            page.steps.append("orientation")
        if skew:
            page.steps.append("deskew")
        return (90 * quarter) % 360, skew
