"""The engines (loaded models) of one worker, created on first use and shared by its stages.

A worker builds one `Engines` and hands it to its stages through the `StageContext`; no
stage or engine module keeps a model in a module global. Creation is serialised per engine,
so two stages asking for the same model at once compile it once. Every engine compiles
through one `OpenVinoRuntime` (the process's single `openvino.Core`), and every engine is
safe to call from the worker's stage threads at once.

Performance hints, per engine (`ENGINE_TUNING`):
- detector: `processors.detection_performance_hint`, THROUGHPUT by default (one stream per
  inference thread): frames of several cameras and uploads run side by side;
- OCR (detector, recogniser, line classifier): THROUGHPUT, because pages run side by side
  (`processors.ocr_parallel_pages`) and a page's recogniser batches keep every stream busy;
- faces, image and text embedder: THROUGHPUT, for the same reason (several frames or
  text batches at once); embedders pin f32 whatever the runtime's precision, so vectors
  never depend on the host.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from processors.openvino_runtime import EngineTuning, OpenVinoRuntime
from visionlog.settings import Settings

if TYPE_CHECKING:
    from processors.anonymise.faces import FaceDetector
    from processors.detection.engine import DetectorEngine
    from processors.embeddings.images import ImageEmbedder
    from processors.embeddings.text import TextEmbedder
    from processors.ocr.pipeline import OcrPipeline

T = TypeVar("T")

ENGINE_TUNING: dict[str, EngineTuning] = {
    "ocr": EngineTuning(hint="THROUGHPUT"),
    "faces": EngineTuning(hint="THROUGHPUT"),
    "image-embedder": EngineTuning(hint="THROUGHPUT", precision="f32"),
    "text-embedder": EngineTuning(hint="THROUGHPUT", precision="f32"),
}


def parallel_pages(settings: Settings) -> int:
    """Pages the OCR engine reads at once: the setting, or the CPU count."""
    configured = settings.processors.ocr_parallel_pages
    return configured if configured > 0 else max(1, os.cpu_count() or 1)


# A small blank image: what every image engine's warm-up inference runs on.
_BLANK = np.full((96, 96, 3), 255, np.uint8)


class Engines:
    """Lazily built engines of one worker (or one test), sharing one OpenVINO runtime."""

    def __init__(self, settings: Settings, runtime: OpenVinoRuntime | None = None) -> None:
        self.settings = settings
        self._runtime = runtime
        self._built: dict[str, object] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    @property
    def runtime(self) -> OpenVinoRuntime:
        with self._guard:
            if self._runtime is None:
                self._runtime = OpenVinoRuntime.from_settings(self.settings)
            return self._runtime

    def _once(self, name: str, build: Callable[[], T], warm: Callable[[T], object]) -> T:
        with self._guard:
            lock = self._locks.setdefault(name, threading.Lock())
        with lock:
            if name not in self._built:
                engine = build()
                # One inference on this thread alone before any other thread may use the
                # engine: the OpenVINO bindings initialise internal statics on first use,
                # and first uses racing with threads that hold the GIL can deadlock.
                warm(engine)
                self._built[name] = engine
            return self._built[name]  # type: ignore[return-value]

    def prepare(self, stages: Iterable[str]) -> list[str]:
        """Builds (and warms up) the engines these stages use, ahead of their first input:
        a worker does it before it consumes, so its first message waits for nothing."""
        getters: dict[str, Callable[[], object]] = {
            "detection": self.detector,
            "ocr": self.ocr,
            "anonymise": self.faces,
            "image-embedding": self.image_embedder,
            "object-embedding": self.object_embedder,
            "text-embedding": self.text_embedder,
        }
        wanted = list(stages)
        for stage in wanted:
            getter = getters.get(stage)
            if getter is not None:
                getter()
        if self.settings.processors.warm_up_working_size:
            self._reach_working_size(wanted)
        return self.built()

    def _reach_working_size(self, stages: list[str]) -> None:
        """Runs full-size inputs through the engines whose memory grows with their inputs
        (OpenVINO sizes each infer request to the largest input it ran), on every slot
        that runs at once: the worker starts at the memory it works at."""
        from processors.embeddings.text import BATCH_SIZE
        from processors.memory import release_freed_memory
        from processors.ocr.warmup import warm_up_inputs, warm_up_texts

        if "ocr" in stages:
            pipeline = self.ocr()
            for inputs in warm_up_inputs(pipeline.parallel):
                pipeline.read_many(inputs)
        if "text-embedding" in stages:
            self.text_embedder().embed(warm_up_texts(BATCH_SIZE))
        release_freed_memory()

    def built(self) -> list[str]:
        """Names of the engines built so far (for health pages and tests)."""
        with self._guard:
            return sorted(self._built)

    def detector(self) -> DetectorEngine:
        from processors.detection.engine import create_detector

        return self._once(
            "detector",
            lambda: create_detector(self.settings, self.runtime),
            lambda engine: engine.detect(_BLANK, 0.99),
        )

    def ocr(self) -> OcrPipeline:
        from processors.ocr.engine import OpenVinoOcrEngine
        from processors.ocr.pipeline import OcrPipeline

        def build() -> OcrPipeline:
            engine = OpenVinoOcrEngine(
                self.runtime, tuning=ENGINE_TUNING["ocr"], settings=self.settings
            )
            return OcrPipeline(engine, probe=engine, parallel=parallel_pages(self.settings))

        return self._once("ocr", build, lambda pipeline: pipeline.read(_BLANK))

    def faces(self) -> FaceDetector:
        from processors.anonymise.faces import FaceDetector

        return self._once(
            "faces",
            lambda: FaceDetector(
                self.runtime,
                threshold=self.settings.processors.face_score_threshold,
                tuning=ENGINE_TUNING["faces"],
                settings=self.settings,
            ),
            lambda detector: detector.detect(_BLANK),
        )

    def image_embedder(self) -> ImageEmbedder:
        from processors.embeddings.images import create_image_embedder

        return self._once(
            "image-embedder",
            lambda: create_image_embedder(
                self.settings, self.runtime, ENGINE_TUNING["image-embedder"]
            ),
            lambda embedder: embedder.embed(_BLANK),
        )

    def object_embedder(self) -> ImageEmbedder:
        """The backbone at `processors.object_embedding_side`: detected objects are mostly
        far smaller than the detector's input, and a recorded item has several of them."""
        from processors.embeddings.images import create_image_embedder

        side = self.settings.processors.object_embedding_side
        return self._once(
            "object-embedder",
            lambda: create_image_embedder(
                self.settings, self.runtime, ENGINE_TUNING["image-embedder"], side or None
            ),
            lambda embedder: embedder.embed(_BLANK),
        )

    def text_embedder(self) -> TextEmbedder:
        from processors.embeddings.text import create_text_embedder

        return self._once(
            "text-embedder",
            lambda: create_text_embedder(
                self.settings, self.runtime, ENGINE_TUNING["text-embedder"]
            ),
            lambda embedder: embedder.embed(["warm up"]),
        )
