"""OCR engines: the protocol the pipeline needs, and the built-in OpenVINO engine.

The OpenVINO engine runs the packaged PP-OCRv6 detector and recogniser and the PP-LCNet
line orientation classifier. Models are compiled once per engine object, through the process's
`OpenVinoRuntime`. The engine is safe to call from several threads at once, and several
pages really are read side by side: every call borrows infer requests of its own from
per-model pools (no shared request queue, no lock). Within one page, recognition runs
width-sorted batches on several requests in flight, so every stream stays busy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol, runtime_checkable

import numpy as np
import openvino as ov
from openvino.preprocess import PrePostProcessor

from processors.modelstore import ModelRef, ProvisionedModel, load
from processors.ocr.detection import (
    DETECTOR_MEAN,
    DETECTOR_STD,
    DetectorParams,
    TextBox,
    boxes_from_probability,
    detector_resized,
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
from processors.openvino_runtime import (
    EngineTuning,
    OpenVinoRuntime,
    RequestPool,
    optimal_requests,
)
from visionlog.settings import Settings

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


@runtime_checkable
class ReadsDetectedLines(Protocol):
    """An engine that can read lines a probe already found on the same image, so the
    pipeline does not detect them twice."""

    def read_detected(
        self,
        image: Image,
        boxes: Sequence[TextBox],
        classify: Callable[[Sequence[Image]], list[float]] | None = None,
    ) -> list[RecognisedLine]: ...


def _detector_with_preprocessing(model: ov.Model) -> ov.Model:
    """The text detector taking u8 NHWC BGR pixels: scaling to 0..1 and the ImageNet
    normalisation run in the graph, not as float copies of the whole page in numpy."""
    ppp = PrePostProcessor(model)
    ppp.input().tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC"))
    ppp.input().model().set_layout(ov.Layout("NCHW"))
    steps = ppp.input().preprocess()
    steps.convert_element_type(ov.Type.f32)
    steps.mean([float(value) * 255.0 for value in DETECTOR_MEAN])
    steps.scale([float(value) * 255.0 for value in DETECTOR_STD])
    return ppp.build()


def _check_bgr(image: Image) -> None:
    if image.ndim != 3 or image.shape[2] != 3 or image.size == 0:
        raise ValueError(f"expected a BGR image (H x W x 3), got shape {image.shape}")


class OpenVinoOcrEngine:
    """PP-OCRv6 detection + recognition and line orientation on OpenVINO (CPU).

    Thread-safe: each call borrows infer requests of its own, so concurrent pages run side
    by side on the compiled models' streams.
    """

    def __init__(
        self,
        runtime: OpenVinoRuntime,
        model: ProvisionedModel | None = None,
        *,
        tuning: EngineTuning | None = None,
        settings: Settings | None = None,
        detector: DetectorParams | None = None,
        batch_size: int = 8,
        drop_score: float = 0.5,
        flip_threshold: float = 0.9,
        turn_tall_lines: bool = True,
    ) -> None:
        self.model = model or load(OCR_MODEL, settings)
        self.detector_params = detector or DetectorParams()
        self.batch_size = batch_size
        self.drop_score = drop_score
        self.flip_threshold = flip_threshold
        self.turn_tall_lines = turn_tall_lines
        tuning = tuning or EngineTuning(hint="THROUGHPUT")
        recogniser = runtime.read_model(self.model.path(RECOGNISER_FILE))
        self.charset = charset_from_metadata(
            str(recogniser.get_rt_info(["framework", "character"]).astype(str))
        )
        detector_model = _detector_with_preprocessing(
            runtime.read_model(self.model.path(DETECTOR_FILE))
        )
        self._detector = RequestPool(runtime.compile(detector_model, tuning))
        self._recogniser = RequestPool(runtime.compile(recogniser, tuning))
        self._classifier = RequestPool(
            runtime.compile(runtime.read_model(self.model.path(CLASSIFIER_FILE)), tuning)
        )
        # Recognition batches of one page in flight at once: enough to fill every stream.
        self._rec_in_flight = max(2, optimal_requests(self._recogniser.compiled))

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
        tensor = np.ascontiguousarray(detector_resized(image, params)[None])
        with self._detector.borrow() as request:
            request.infer({0: tensor}, share_inputs=True)
            probability = np.array(request.get_output_tensor(0).data[0, 0])
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
        if windows:
            with self._classifier.borrow() as request:
                for start in range(0, len(windows), self.batch_size):
                    batch = classifier_batch(windows[start : start + self.batch_size])
                    request.infer({0: batch}, share_inputs=True)
                    scores = request.get_output_tensor(0).data
                    for owner, row in zip(
                        owners[start : start + self.batch_size], scores, strict=True
                    ):
                        votes[owner] += float(row[1])
                        counts[owner] += 1
        return [float(vote / max(1, count)) for vote, count in zip(votes, counts, strict=True)]

    def recognise(self, crops: Sequence[Image]) -> list[DecodedText]:
        """Decode line crops; similar widths are batched together to limit padding.

        Several batches are in flight at once, on requests borrowed for this call; the
        next batch is prepared while the model works on the previous ones.
        """
        order = sorted(range(len(crops)), key=lambda i: crops[i].shape[1] / crops[i].shape[0])
        batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        results: list[DecodedText | None] = [None] * len(crops)
        if not batches:
            return []
        in_flight = min(len(batches), self._rec_in_flight)
        with self._recogniser.borrow_many(in_flight) as requests:
            pending: list[tuple[list[int], list[float]] | None] = [None] * in_flight

            def finish(slot: int) -> None:
                job = pending[slot]
                if job is None:
                    return
                pending[slot] = None
                indices, used = job
                request = requests[slot]
                request.wait()
                output = request.get_output_tensor(0).data
                for row, (index, fraction) in enumerate(zip(indices, used, strict=True)):
                    results[index] = ctc_greedy_decode(output[row], self.charset, fraction)

            try:
                for number, indices in enumerate(batches):
                    slot = number % in_flight
                    finish(slot)
                    batch, used = recogniser_batch([crops[i] for i in indices])
                    requests[slot].start_async({0: batch})
                    pending[slot] = (indices, used)
                for slot in range(in_flight):
                    finish(slot)
            finally:
                # Every started request finishes before it goes back to the pool.
                for request in requests:
                    request.wait()
        decoded = [item for item in results if item is not None]
        if len(decoded) != len(crops):
            raise RuntimeError(f"the recogniser returned {len(decoded)} of {len(crops)} lines")
        return decoded

    def read_lines(self, image: Image) -> list[RecognisedLine]:
        _check_bgr(image)
        return self.read_detected(image, self.detect(image))

    def read_detected(
        self,
        image: Image,
        boxes: Sequence[TextBox],
        classify: Callable[[Sequence[Image]], list[float]] | None = None,
    ) -> list[RecognisedLine]:
        """The lines in `boxes`, which `detect` found on this same image; `classify` stands
        in for `upside_down_probability` (a caller that already classified some crops)."""
        _check_bgr(image)
        quads = [self._reading_quad(box.quad) for box in boxes]
        if not quads:
            return []
        crops = [crop_quad(image, quad) for quad in quads]
        for index, flipped in enumerate((classify or self.upside_down_probability)(crops)):
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
