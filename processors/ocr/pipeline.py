"""The document OCR pipeline: clean-up, orientation and skew, reading, layout.

Geometric steps accumulate one matrix from the original image to the image that is read,
so every polygon in the result is expressed in original image pixels.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal, cast

import numpy as np
from numpy.typing import NDArray

from processors.ocr.detection import TextBox
from processors.ocr.engine import OcrEngine, ReadsDetectedLines, TextLineProbe
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
from processors.ocr.recognition import DecodedText
from processors.ocr.result import OcrResult


@dataclass(frozen=True)
class PipelineOptions:
    perspective_crop: bool = True
    denoise: Literal["median", "nlmeans"] | None = "median"
    contrast: Literal["clahe", "adaptive_threshold"] | None = "clahe"
    orientation: bool = True
    deskew: bool = True
    # The probe's detector input for judging orientation. None: the engine's own size, so
    # that on a page that needs no turn the read reuses the probe's text boxes instead of
    # detecting them again (a third of a page's time with the OpenVINO engine). A smaller
    # size makes the probe of turned pages cheaper (line directions survive scaling) but
    # then every page is detected twice.
    probe_max_side: int | None = None
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


class _VotesOnce:
    """The probe, remembering its line classifier's votes during one page: when the read
    reuses the probe's boxes, the crops the orientation vote classified (the same pixels)
    are not classified again."""

    def __init__(self, probe: TextLineProbe) -> None:
        self.probe = probe
        self._votes: dict[bytes, float] = {}

    def detect(self, image: Image, max_side: int | None = None) -> list[TextBox]:
        return self.probe.detect(image, max_side)

    def recognise(self, crops: Sequence[Image]) -> list[DecodedText]:
        return self.probe.recognise(crops)

    def upside_down_probability(self, crops: Sequence[Image]) -> list[float]:
        keys = [
            hashlib.blake2b(np.ascontiguousarray(crop).tobytes(), digest_size=16).digest()
            + repr(crop.shape).encode()
            for crop in crops
        ]
        missing = [index for index, key in enumerate(keys) if key not in self._votes]
        if missing:
            votes = self.probe.upside_down_probability([crops[index] for index in missing])
            for index, vote in zip(missing, votes, strict=True):
                self._votes[keys[index]] = vote
        return [self._votes[key] for key in keys]


class OcrPipeline:
    """Reads a photographed or scanned page in any of four orientations.

    Thread-safe when its engine is (the OpenVINO engine is): up to `parallel` pages are
    read at once, each on its caller's thread; further callers wait their turn, so a worker
    with more stage threads than cores does not hold more pages in memory than it can read.
    """

    def __init__(
        self,
        engine: OcrEngine,
        probe: TextLineProbe | None = None,
        options: PipelineOptions | None = None,
        parallel: int = 1,
    ) -> None:
        self.engine = engine
        self.probe = probe
        self.options = options or PipelineOptions()
        self.parallel = max(1, parallel)
        self._slots = threading.BoundedSemaphore(self.parallel)

    def read(self, image: Image) -> OcrResult:
        if image.size == 0 or image.ndim not in (2, 3):
            raise ValueError(f"expected a non-empty image, got shape {image.shape}")
        with self._slots:
            return self._read(image)

    def read_many(self, images: Sequence[Image]) -> list[OcrResult]:
        """Several pages, up to `parallel` at once; results in the order of `images`."""
        if self.parallel == 1 or len(images) < 2:
            return [self.read(image) for image in images]
        with ThreadPoolExecutor(min(self.parallel, len(images)), "ocr-page") as pages:
            return list(pages.map(self.read, images))

    def _read(self, image: Image) -> OcrResult:
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
        probe = None if self.probe is None else _VotesOnce(self.probe)
        orientation, skew, boxes = self._straighten(page, probe)
        if boxes is not None and probe is not None and isinstance(self.engine, ReadsDetectedLines):
            lines = self.engine.read_detected(page.image, boxes, probe.upside_down_probability)
        else:
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

    def _straighten(
        self, page: _Page, probe: TextLineProbe | None
    ) -> tuple[int, float, list[TextBox] | None]:
        """Undo quarter turns, 180-degree turns and skew; returns (orientation, skew) and,
        when the page was left as it was, the probe's text boxes for the engine to read."""
        options = self.options
        if probe is None or not options.orientation:
            if options.deskew:
                step = deskew(page.image, min_degrees=options.min_skew_degrees)
                page.apply(step)
                return 0, step.measure if step.applied else 0.0, None
            return 0, 0.0, None
        boxes = probe.detect(page.image, max_side=options.probe_max_side)
        direction = dominant_direction([box.quad for box in boxes])
        skew = direction.skew
        if not options.deskew or abs(skew) < options.min_skew_degrees:
            skew = 0.0
        quarter = direction.quarter_turns
        turn = rotate(page.image, 90.0 * quarter + skew)
        quads = [transform_points(box.quad, turn.matrix) for box in boxes]
        page.apply(turn, record=False)
        if upright_probability(probe, page.image, quads) < 0.5:
            page.apply(rotate(page.image, 180.0), record=False)
            quarter += 2
        if quarter:
            page.steps.append("orientation")
        if skew:
            page.steps.append("deskew")
        unchanged = not quarter and not skew and not turn.applied
        # The boxes are the engine's own only when the probe is the engine itself.
        same_detector = self.probe is cast(object, self.engine)
        reusable = unchanged and options.probe_max_side is None and same_detector
        return (90 * quarter) % 360, skew, boxes if reusable else None
