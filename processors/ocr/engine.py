"""OCR engines: the protocol the pipeline needs, and the built-in OpenVINO engine.

The OpenVINO engine runs the packaged PP-OCRv6 detector and recogniser and the PP-LCNet
line orientation classifier. Models are compiled once per engine object; recognition runs
width-sorted batches through an asynchronous request queue so both CPU cores stay busy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol, runtime_checkable

import numpy as np
import openvino as ov

from processors.modelstore import ModelRef, ProvisionedModel, load
from processors.ocr.detection import (
    DetectorParams,
    TextBox,
    boxes_from_probability,
    detector_input,
    sort_boxes,
)
from processors.ocr.geometry import FloatArray, Image, crop_quad, quad_size
from processors.ocr.recognition import (
    DecodedText,
    charset_from_metadata,
    classifier_batch,
    classifier_windows,
    ctc_greedy_decode,
    recogniser_batch,
)

OCR_MODEL = "pp-ocrv6"
DETECTOR_FILE = "PP-OCRv6_det_small.onnx"
RECOGNISER_FILE = "PP-OCRv6_rec_small.onnx"
CLASSIFIER_FILE = "ch_ppocr_mobile_v2.0_cls_mobile.onnx"


@dataclass(frozen=True)
class RecognisedLine:
    """One text line as an engine reads it, before layout analysis.

    `quad` is ordered along the reading direction (top-left of the text first).
    `char_positions` are character centres as fractions of the quad's width, or None when
    the engine cannot tell (words are then spread by character count).
    """

    quad: FloatArray
    text: str
    confidence: float
    char_confidences: tuple[float, ...]
    char_positions: tuple[float, ...] | None


@runtime_checkable
class OcrEngine(Protocol):
    """What the OCR pipeline needs from an engine: lines with text, position and scores."""

    @property
    def version(self) -> str:
        """Identity of the models, part of derived event ids."""
        ...

    def model_refs(self) -> list[ModelRef]:
        """ModelRef records of every model the engine runs."""
        ...

    def read_lines(self, image: Image) -> list[RecognisedLine]:
        """All text lines of a BGR image."""
        ...


@runtime_checkable
class TextLineProbe(Protocol):
    """Cheap text-line detection and 0/180 classification, for finding page orientation."""

    def detect(self, image: Image, max_side: int | None = None) -> list[TextBox]: ...

    def upside_down_probability(self, crops: Sequence[Image]) -> list[float]: ...

    def recognise(self, crops: Sequence[Image]) -> list[DecodedText]: ...


class OpenVinoOcrEngine:
    """PP-OCRv6 detection + recognition and line orientation on OpenVINO (CPU).

    One caller at a time: the compiled models share one asynchronous request queue.
    """

    def __init__(
        self,
        model: ProvisionedModel | None = None,
        *,
        detector: DetectorParams | None = None,
        threads: int = 2,
        batch_size: int = 8,
        drop_score: float = 0.5,
        flip_threshold: float = 0.9,
        turn_tall_lines: bool = True,
    ) -> None:
        self.model = model or load(OCR_MODEL)
        self.detector_params = detector or DetectorParams()
        self.batch_size = batch_size
        self.drop_score = drop_score
        self.flip_threshold = flip_threshold
        self.turn_tall_lines = turn_tall_lines
        core = ov.Core()
        core.set_property("CPU", {"INFERENCE_NUM_THREADS": max(1, threads)})
        latency = {"PERFORMANCE_HINT": "LATENCY"}
        throughput = {"PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": max(1, threads)}
        recogniser = core.read_model(str(self.model.path(RECOGNISER_FILE)))
        self.charset = charset_from_metadata(
            str(recogniser.get_rt_info(["framework", "character"]).astype(str))
        )
        self._detector = core.compile_model(
            core.read_model(str(self.model.path(DETECTOR_FILE))), "CPU", latency
        )
        self._recogniser = core.compile_model(recogniser, "CPU", throughput)
        self._classifier = core.compile_model(
            core.read_model(str(self.model.path(CLASSIFIER_FILE))), "CPU", latency
        )
        self._rec_queue = ov.AsyncInferQueue(self._recogniser, max(1, threads))

    @property
    def version(self) -> str:
        return self.model.spec.version

    def model_refs(self) -> list[ModelRef]:
        base = self.model.model_ref()
        return [
            {**base, "name": "pp-ocrv6-det"},
            {**base, "name": "pp-ocrv6-rec"},
            {**base, "name": "pp-lcnet-textline-ori"},
        ]

    def detect(self, image: Image, max_side: int | None = None) -> list[TextBox]:
        """Text boxes in image pixels, top-to-bottom; `max_side` caps the detector's input."""
        params = self.detector_params
        if max_side is not None:
            params = replace(params, max_side=max_side)
        tensor = detector_input(image, params)
        probability = self._detector(tensor)[0][0, 0]
        height, width = image.shape[:2]
        return sort_boxes(boxes_from_probability(probability, width, height, params))

    def upside_down_probability(self, crops: Sequence[Image]) -> list[float]:
        """Per line crop, the classifier's probability that it is turned by 180 degrees,
        averaged over windows along the line."""
        windows: list[Image] = []
        owners: list[int] = []
        for index, crop in enumerate(crops):
            pieces = classifier_windows(crop)
            windows.extend(pieces)
            owners.extend([index] * len(pieces))
        votes = np.zeros(len(crops))
        counts = np.zeros(len(crops))
        for start in range(0, len(windows), self.batch_size):
            batch = classifier_batch(windows[start : start + self.batch_size])
            scores = self._classifier(batch)[0]
            for owner, row in zip(owners[start : start + self.batch_size], scores, strict=True):
                votes[owner] += float(row[1])
                counts[owner] += 1
        return [float(vote / max(1, count)) for vote, count in zip(votes, counts, strict=True)]

    def recognise(self, crops: Sequence[Image]) -> list[DecodedText]:
        """Decode line crops; similar widths are batched together to limit padding."""
        order = sorted(range(len(crops)), key=lambda i: crops[i].shape[1] / crops[i].shape[0])
        results: list[DecodedText | None] = [None] * len(crops)
        errors: list[Exception] = []

        def decode(request: ov.InferRequest, userdata: tuple[list[int], list[float]]) -> None:
            indices, used = userdata
            try:
                output = request.get_output_tensor(0).data
                for row, (index, fraction) in enumerate(zip(indices, used, strict=True)):
                    results[index] = ctc_greedy_decode(output[row], self.charset, fraction)
            except Exception as error:  # raised on the caller's thread once the queue is idle
                errors.append(error)

        self._rec_queue.set_callback(decode)
        try:
            for start in range(0, len(order), self.batch_size):
                indices = order[start : start + self.batch_size]
                batch, used = recogniser_batch([crops[i] for i in indices])
                self._rec_queue.start_async({0: batch}, (indices, used))
        finally:
            # Every started request finishes before anything is raised: the next call
            # reuses the queue with its own callback.
            self._rec_queue.wait_all()
        if errors:
            raise errors[0]
        decoded = [item for item in results if item is not None]
        if len(decoded) != len(crops):
            raise RuntimeError(f"the recogniser returned {len(decoded)} of {len(crops)} lines")
        return decoded

    def read_lines(self, image: Image) -> list[RecognisedLine]:
        if image.ndim != 3 or image.shape[2] != 3 or image.size == 0:
            raise ValueError(f"expected a BGR image (H x W x 3), got shape {image.shape}")
        quads = [self._reading_quad(box.quad) for box in self.detect(image)]
        if not quads:
            return []
        crops = [crop_quad(image, quad) for quad in quads]
        for index, flipped in enumerate(self.upside_down_probability(crops)):
            if flipped > self.flip_threshold:
                crops[index] = np.ascontiguousarray(crops[index][::-1, ::-1])
                quads[index] = np.roll(quads[index], 2, axis=0)
        lines: list[RecognisedLine] = []
        for quad, decoded in zip(quads, self.recognise(crops), strict=True):
            if not decoded.text.strip() or decoded.confidence < self.drop_score:
                continue
            lines.append(
                RecognisedLine(
                    quad=quad,
                    text=decoded.text,
                    confidence=decoded.confidence,
                    char_confidences=decoded.confidences,
                    char_positions=decoded.positions,
                )
            )
        return lines

    def _reading_quad(self, quad: FloatArray) -> FloatArray:
        # A tall box is a vertical line: start at its top-right so the crop reads it turned
        # upright (text rotated clockwise); the classifier flips the other direction.
        width, height = quad_size(quad)
        if self.turn_tall_lines and height >= 1.5 * width:
            return np.roll(quad, -1, axis=0)
        return quad
