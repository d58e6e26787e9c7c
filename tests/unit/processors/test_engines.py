"""The engines of a worker: one OpenVINO Core, built per context, safe from many threads."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

import cv2
import numpy as np
import openvino
import pytest

import processors.openvino_runtime as openvino_runtime
from processors.detection.detections import Detections
from processors.detection.stage import detect_objects
from processors.engines import Engines
from processors.modelstore import load
from processors.openvino_runtime import EngineTuning, OpenVinoRuntime, RequestPool
from processors.stage import StageContext, image_key
from tests.factories import sample_event
from visionlog.blobstore import BlobStore
from visionlog.schemas import get_catalog
from visionlog.settings import Settings, get_settings

T = TypeVar("T")
THREADS = 4


def photo(name: str) -> np.ndarray:
    image = cv2.imread(str(load("sample-photos").path(name)), cv2.IMREAD_COLOR)
    assert image is not None
    return np.asarray(image, np.uint8)


def at_once(calls: list[Callable[[], T]]) -> list[T]:
    """Run the calls on their own threads, released together by a barrier."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], T]) -> T:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


@pytest.fixture(scope="module")
def engines() -> Engines:
    return Engines(get_settings())


def test_every_engine_compiles_through_one_core(monkeypatch: pytest.MonkeyPatch) -> None:
    created: list[object] = []

    class CountedCore(openvino.Core):  # type: ignore[misc]
        def __init__(self, *args: Any) -> None:
            created.append(self)
            super().__init__(*args)

    monkeypatch.setattr(openvino, "Core", CountedCore)
    monkeypatch.setattr(openvino_runtime, "_core", None)
    settings = get_settings()
    first, second = Engines(settings), Engines(settings)
    first.detector()
    first.ocr()
    first.faces()
    first.image_embedder()
    first.text_embedder()
    second.detector()
    assert first.built() == ["detector", "faces", "image-embedder", "ocr", "text-embedder"]
    assert len(created) == 1
    assert first.runtime.core is second.runtime.core is created[0]


def test_the_runtime_configures_every_compilation(tmp_path: Any) -> None:
    settings = Settings(cache_dir=tmp_path)
    runtime = OpenVinoRuntime.from_settings(settings)
    assert runtime.core is openvino_runtime.shared_core()
    assert runtime.cache_dir == tmp_path / "openvino"
    assert runtime.cache_dir is not None and runtime.cache_dir.is_dir()
    latency = runtime.compile_config(EngineTuning())
    assert latency["INFERENCE_PRECISION_HINT"] == "f32"
    assert latency["INFERENCE_NUM_THREADS"] == settings.processors.inference_threads
    assert latency["PERFORMANCE_HINT"] == "LATENCY" and "NUM_STREAMS" not in latency
    assert latency["ENABLE_CPU_PINNING"] is False
    assert latency["CPU_RUNTIME_CACHE_CAPACITY"] == settings.processors.inference_shape_cache
    throughput = runtime.compile_config(EngineTuning(hint="THROUGHPUT"))
    assert throughput["NUM_STREAMS"] == settings.processors.inference_threads
    # Models from the provisioned cache, compiled models into the test's own directory.
    engine = Engines(get_settings(), runtime).detector()
    assert engine.compiled.get_property("PERFORMANCE_HINT") == "THROUGHPUT"
    assert engine.compiled.get_property("INFERENCE_PRECISION_HINT") == openvino.Type.f32
    # The compiled model went into the cache: the next worker imports it.
    assert any((tmp_path / "openvino").iterdir())
    uncached = settings.model_copy(
        update={
            "processors": settings.processors.model_copy(update={"compiled_model_cache": False})
        }
    )
    assert "CACHE_DIR" not in OpenVinoRuntime.from_settings(uncached).compile_config(EngineTuning())


def test_each_context_has_its_own_engines() -> None:
    settings = get_settings()
    blobs = BlobStore.from_settings(settings.minio)
    one, two = StageContext(settings, blobs), StageContext(settings, blobs)
    assert one.engines is one.engines
    assert one.engines is not two.engines
    assert one.engines.detector() is one.engines.detector()
    assert one.engines.detector() is not two.engines.detector()


class RecordingEngines(Engines):
    """Engines that note which engine a stage asked for."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.asked: list[str] = []

    def detector(self) -> Any:
        self.asked.append("detector")
        return super().detector()


def test_the_detection_stage_takes_its_engine_from_the_context() -> None:
    settings = get_settings()
    recording = RecordingEngines(settings)
    ctx = StageContext(
        settings, BlobStore.from_settings(settings.minio), engines_factory=lambda: recording
    )
    data = cv2.imencode(".jpg", photo("bus.jpg"))[1].tobytes()
    ref = {
        "bucket": "originals",
        "key": "tests/engines/bus.jpg",
        "sha256": hashlib.sha256(data).hexdigest(),
        "size_bytes": len(data),
        "content_type": "image/jpeg",
    }
    # Decoded already, as after another stage of the worker: no blob store needed.
    ctx.images.put(image_key(ref), photo("bus.jpg"))
    event = sample_event(
        get_catalog(), "MediaUploaded", media_kind="IMAGE", profile="vision", original=ref
    )
    [out] = detect_objects(event, ctx)
    assert recording.asked == ["detector"]
    assert "bus" in [d["class_name"] for d in out.record["detections"]]


def test_detection_from_four_threads_matches_serial_detection(engines: Engines) -> None:
    detector = engines.detector()
    images = [photo("bus.jpg"), photo("zidane.jpg"), photo("bus.jpg")[::2, ::2].copy()]
    serial = [detector.detect(image, 0.35) for image in images]
    jobs = [images[i % len(images)] for i in range(THREADS * 3)]

    def detect(image: np.ndarray) -> Detections:
        return detector.detect(image, 0.35)

    for _ in range(2):
        parallel = at_once([partial(detect, image) for image in jobs])
        for index, found in enumerate(parallel):
            expected = serial[index % len(images)]
            assert found.labels() == expected.labels()
            np.testing.assert_allclose(found.boxes, expected.boxes, atol=1e-3)
            np.testing.assert_allclose(found.scores, expected.scores, atol=1e-5)
    # Requests are pooled: no more than the callers that ever ran at once.
    assert 1 <= detector.requests.created <= len(jobs)


def test_faces_and_embedders_from_four_threads_match_serial_calls(engines: Engines) -> None:
    zidane = photo("zidane.jpg")
    faces, images, texts = engines.faces(), engines.image_embedder(), engines.text_embedder()
    expected_faces = faces.detect(zidane)
    expected_vector = images.embed(zidane)
    sentences = ["Invoice 4711 is due.", "Die Straße ist übermäßig groß."]
    expected_text = texts.embed(sentences)
    for found in at_once([lambda: faces.detect(zidane)] * THREADS):
        assert len(found) == len(expected_faces) >= 2
        for box, reference in zip(found, expected_faces, strict=True):
            assert box.x_min == pytest.approx(reference.x_min, abs=1e-3)
            assert box.score == pytest.approx(reference.score, abs=1e-5)
    for vector in at_once([lambda: images.embed(zidane)] * THREADS):
        np.testing.assert_allclose(vector, expected_vector, atol=1e-6)
    for vectors in at_once([lambda: texts.embed(sentences)] * THREADS):
        np.testing.assert_allclose(vectors, expected_text, atol=1e-6)


def test_a_request_pool_lends_each_request_to_one_thread(engines: Engines) -> None:
    pool = RequestPool(engines.detector().compiled)

    def borrow() -> int:
        with pool.borrow() as request:
            barrier.wait()  # every thread holds its request at the same time
            return id(request)

    barrier = threading.Barrier(THREADS)
    ids = at_once([borrow] * THREADS)
    assert len(set(ids)) == THREADS and pool.created == THREADS
    # Given back and reused, not created again.
    with pool.borrow_many(THREADS) as requests:
        assert {id(request) for request in requests} == set(ids)
    assert pool.created == THREADS
