"""The OpenVINO runtime of a process: one `openvino.Core`, configured once, for every engine.

Every engine (detectors, the three OCR models, CenterFace, the image and text embedders)
reads and compiles its model here, so threads, precision, the compiled-model cache and the
performance hint are decided in one place instead of one `Core()` per engine with settings
of its own.

- **One Core per process.** A Core owns the CPU plugin and its thread pools; several Cores
  in one process each start their own, and the cores are oversubscribed.
- **Threads.** `processors.inference_threads` threads per compiled model
  (``INFERENCE_NUM_THREADS``); a THROUGHPUT engine splits them into streams of one thread,
  so several requests run side by side.
- **Precision.** `processors.inference_precision`, f32 by default: OpenVINO otherwise picks
  bf16 on CPUs that have it (AMX, AVX512-BF16; measured on the AMD EPYC machines of this
  workplace), which moves scores and embedding vectors at the 1e-3 level depending on the
  host. The Xeons without bf16 run f32 anyway, so pinning it costs nothing there.
- **Model cache.** Compiled models are cached under ``<cache_dir>/openvino``: a worker's
  engines compile 1.5-2.5 times faster on the second start (measured: PP-OCRv6 detector
  742 -> 278 ms, recogniser 590 -> 332 ms, MiniLM 779 -> 520 ms, NanoDet 325 -> 254 ms).
- **Pinning** is off: worker processes would each pin their threads to the same cores.
- **Requests.** `RequestPool` hands each calling thread an infer request of its own, so an
  engine may be called from several threads at once and they really run in parallel.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import openvino as ov

from visionlog.settings import Settings

PerformanceHint = Literal["LATENCY", "THROUGHPUT"]
Precision = Literal["f32", "bf16", "f16"]
DEVICE = "CPU"
CACHE_SUBDIR = "openvino"

_core: ov.Core | None = None
_core_lock = threading.Lock()


def shared_core() -> ov.Core:
    """The process's Core, created on first use (every engine of every worker shares it)."""
    global _core
    with _core_lock:
        if _core is None:
            _core = ov.Core()
        return _core


def runtime_name() -> str:
    """The `runtime` of ModelRefs: OpenVINO and its release."""
    return f"openvino/{ov.__version__.split('-')[0]}"


@dataclass(frozen=True)
class EngineTuning:
    """How one engine's model is compiled.

    LATENCY runs one request at a time on all inference threads (lowest single-call
    latency); THROUGHPUT splits the threads into `streams` (default: one per thread) so
    concurrent calls run side by side. `precision` overrides the runtime's for models
    whose results must not depend on the host at all (embeddings).
    """

    hint: PerformanceHint = "LATENCY"
    streams: int | None = None
    precision: Precision | None = None


class OpenVinoRuntime:
    """Reads and compiles models with one process-wide Core and one configuration."""

    def __init__(
        self,
        core: ov.Core,
        *,
        threads: int,
        precision: Precision = "f32",
        cache_dir: Path | None = None,
        shape_cache: int = 0,
    ) -> None:
        self.core = core
        self.shape_cache = max(0, shape_cache)
        self.threads = max(1, threads)
        self.precision: Precision = precision
        self.cache_dir = cache_dir
        if cache_dir is not None:
            cache_dir.mkdir(parents=True, exist_ok=True)

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenVinoRuntime:
        tuning = settings.processors
        return cls(
            shared_core(),
            threads=tuning.inference_threads,
            precision=tuning.inference_precision,
            cache_dir=settings.cache_dir / CACHE_SUBDIR if tuning.compiled_model_cache else None,
            shape_cache=tuning.inference_shape_cache,
        )

    def read_model(self, path: Path | str) -> ov.Model:
        return self.core.read_model(str(path))

    def compile_config(self, tuning: EngineTuning) -> dict[str, Any]:
        config: dict[str, Any] = {
            "PERFORMANCE_HINT": tuning.hint,
            "INFERENCE_NUM_THREADS": self.threads,
            "INFERENCE_PRECISION_HINT": tuning.precision or self.precision,
            # OpenVINO pins its stream threads to cores by default; worker processes do not
            # coordinate, so on a larger host each would pin to the same first cores.
            # Unpinned, the OS spreads them. Measured on 2 cores: no difference either way.
            "ENABLE_CPU_PINNING": False,
            "CPU_RUNTIME_CACHE_CAPACITY": self.shape_cache,
        }
        if tuning.hint == "THROUGHPUT":
            streams = tuning.streams or self.threads
            config["NUM_STREAMS"] = max(1, min(streams, self.threads))
        if self.cache_dir is not None:
            # Per compilation rather than on the shared Core, so two settings in one
            # process (tests) never write into each other's cache.
            config["CACHE_DIR"] = str(self.cache_dir)
        return config

    def compile(self, model: ov.Model, tuning: EngineTuning) -> ov.CompiledModel:
        return self.core.compile_model(model, DEVICE, self.compile_config(tuning))


def optimal_requests(compiled: ov.CompiledModel) -> int:
    """How many requests keep a compiled model's streams busy."""
    return max(1, int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))


class RequestPool:
    """Infer requests of one compiled model, lent to one thread at a time.

    A request is never shared: a caller borrows one (creating it when none is idle), runs
    it and gives it back. Requests are never dropped, so the pool grows to the number of
    threads that ever called at once and no further.
    """

    def __init__(self, compiled: ov.CompiledModel) -> None:
        self.compiled = compiled
        self._idle: list[ov.InferRequest] = []
        self._lock = threading.Lock()
        self.created = 0

    def _take(self) -> ov.InferRequest:
        with self._lock:
            if self._idle:
                return self._idle.pop()
            self.created += 1
        return self.compiled.create_infer_request()

    def _give(self, request: ov.InferRequest) -> None:
        with self._lock:
            self._idle.append(request)

    @contextmanager
    def borrow(self) -> Iterator[ov.InferRequest]:
        request = self._take()
        try:
            yield request
        finally:
            self._give(request)

    @contextmanager
    def borrow_many(self, count: int) -> Iterator[list[ov.InferRequest]]:
        """`count` requests at once, for a caller that keeps several in flight. A request
        given back here has finished: callers wait for what they started."""
        requests = [self._take() for _ in range(max(1, count))]
        try:
            yield requests
        finally:
            for request in requests:
                self._give(request)

    def infer(self, inputs: Mapping[Any, Any] | list[Any]) -> list[np.ndarray]:
        """Run one inference on a borrowed request; copies of every output, in order."""
        with self.borrow() as request:
            request.infer(inputs)
            return [
                np.array(request.get_output_tensor(index).data)
                for index in range(len(self.compiled.outputs))
            ]
