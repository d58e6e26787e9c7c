"""Detection throughput: what the detection stage does per frame next to bare OpenVINO.

Both sides use the worker's engine (`Engines(settings).detector()`, compiled through the
process's OpenVINO runtime) on the same JPEG frames, side by side in one run:

- **pipeline**: what `processors.detection.stage.detect_objects` does with a frame's blob
  bytes: decode (reduced when the frame is much larger than the model input), resize,
  inference, NanoDet/YOLO decoding, NMS, mapping to original pixels and the event's
  detection records with distances. In THROUGHPUT mode several frames run at once on a
  thread pool the size of the worker's stage pool, as the worker runs them.
- **direct**: the compiled model alone on the frame's prepared input tensor: an
  ``AsyncInferQueue`` with the optimal number of requests in THROUGHPUT mode (the issue's
  reference), one synchronous request at a time in LATENCY mode.

It prints frames per second, CPU milliseconds per frame (process CPU time / frames: less
sensitive to other processes than wall time) and the pipeline/direct ratio. Rounds
alternate and the best of each side is kept, so a burst of load from other processes on a
shared machine does not favour one side. Check `uptime` before running: the figures are
only comparable on a quiet machine.

Run: .venv/bin/python bench/detection_bench.py [--frames 120] [--rounds 5] [--image bus.jpg]
     [--size 1920x1080] [--full-decode] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np
import openvino

from processors.detection.engine import DetectorEngine, PerformanceMode, create_detector
from processors.detection.frames import decode_for
from processors.detection.stage import detect_in_frame, source_size_for
from processors.modelstore import load
from processors.openvino_runtime import OpenVinoRuntime, optimal_requests
from visionlog.settings import ProcessorSettings, get_settings


@dataclass
class Measure:
    fps: float = 0.0
    cpu_ms: float = 0.0

    def keep_best(self, fps: float, cpu_ms: float) -> None:
        if fps > self.fps:
            self.fps, self.cpu_ms = fps, cpu_ms


def timed(frames: int, run: Callable[[], object]) -> tuple[float, float]:
    """(frames per second, CPU ms per frame) of one run."""
    cpu = os.times()
    started = time.perf_counter()
    run()
    wall = time.perf_counter() - started
    after = os.times()
    used = (after.user - cpu.user) + (after.system - cpu.system)
    return frames / wall, used * 1000.0 / frames


def stage_frame(engine: DetectorEngine, jpeg: bytes, tuning: ProcessorSettings) -> int:
    """One frame as the detection stage handles it: blob bytes -> ObjectsDetected fields."""
    frame = decode_for(jpeg, source_size_for(engine, tuning))
    if frame is None:
        raise ValueError("sample image does not decode")
    return len(detect_in_frame(engine, frame, tuning)["detections"])


def pipeline_run(
    engine: DetectorEngine, jpeg: bytes, tuning: ProcessorSettings, frames: int, threads: int
) -> tuple[float, float]:
    if engine.mode == "LATENCY":
        return timed(frames, lambda: [stage_frame(engine, jpeg, tuning) for _ in range(frames)])
    with ThreadPoolExecutor(threads, "stage") as pool:
        return timed(
            frames,
            lambda: list(pool.map(lambda _: stage_frame(engine, jpeg, tuning), range(frames))),
        )


def direct_run(engine: DetectorEngine, tensor: np.ndarray, frames: int) -> tuple[float, float]:
    if engine.mode == "LATENCY":
        request = engine.compiled.create_infer_request()
        return timed(frames, lambda: [request.infer({0: tensor}) for _ in range(frames)])
    queue = openvino.AsyncInferQueue(engine.compiled, max(2, optimal_requests(engine.compiled)))

    def run() -> None:
        for _ in range(frames):
            queue.start_async({0: tensor})
        queue.wait_all()

    return timed(frames, run)


def sample_jpeg(name: str, size: str | None) -> bytes:
    data = load("sample-photos").path(name).read_bytes()
    if size is None:
        return data
    width, height = (int(side) for side in size.lower().split("x"))
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    ok, encoded = cv2.imencode(
        ".jpg", cv2.resize(image, (width, height), interpolation=cv2.INTER_CUBIC)
    )
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return encoded.tobytes()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--image", default="bus.jpg", help="sample photo name")
    parser.add_argument("--size", default=None, help="re-encode the photo at WxH first")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--full-decode", action="store_true", help="no reduced JPEG decode")
    parser.add_argument(
        "--threads", type=int, default=0, help="stage threads (default: as the worker, 2 x CPUs)"
    )
    args = parser.parse_args()
    settings = get_settings()
    if args.full_decode:
        settings = settings.model_copy(
            update={
                "processors": settings.processors.model_copy(
                    update={"detection_reduced_decode": False}
                )
            }
        )
    tuning = settings.processors
    threads = args.threads or max(4, 2 * (os.cpu_count() or 1))
    jpeg = sample_jpeg(args.image, args.size)
    runtime = OpenVinoRuntime.from_settings(settings)
    modes: tuple[PerformanceMode, ...] = ("LATENCY", "THROUGHPUT")
    engines = {mode: create_detector(settings, runtime, mode) for mode in modes}
    frame = decode_for(jpeg, source_size_for(engines["THROUGHPUT"], tuning))
    assert frame is not None
    tensor, _ = engines["THROUGHPUT"].preprocess(frame.image)
    for engine in engines.values():  # warm-up: first inferences allocate buffers
        stage_frame(engine, jpeg, tuning)
        engine.infer(tensor)
    results = {mode: {"pipeline": Measure(), "direct": Measure()} for mode in modes}
    for _ in range(args.rounds):
        for mode, engine in engines.items():
            row = results[mode]
            row["pipeline"].keep_best(*pipeline_run(engine, jpeg, tuning, args.frames, threads))
            row["direct"].keep_best(*direct_run(engine, tensor, args.frames))
    found = stage_frame(engines["THROUGHPUT"], jpeg, tuning)
    model = engines["THROUGHPUT"].model_ref
    load_average = " ".join(f"{value:.2f}" for value in os.getloadavg())
    print(
        f"model {model['name']} ({model['version']}), {args.image} "
        f"{frame.width}x{frame.height} decoded at {frame.image.shape[1]}x{frame.image.shape[0]}"
        f", {found} objects per frame"
    )
    print(
        f"{model['runtime']}, {runtime.threads} inference threads, precision "
        f"{runtime.precision}, {threads} stage threads, {args.frames} frames x best of "
        f"{args.rounds} rounds, load average {load_average} (after the run)"
    )
    print(
        f"{'mode':<11} {'pipeline f/s':>13} {'cpu ms/f':>9} {'direct f/s':>11} "
        f"{'cpu ms/f':>9} {'pipeline/direct':>16}"
    )
    for label, row in results.items():
        pipe, direct = row["pipeline"], row["direct"]
        print(
            f"{label:<11} {pipe.fps:>13.1f} {pipe.cpu_ms:>9.1f} {direct.fps:>11.1f} "
            f"{direct.cpu_ms:>9.1f} {pipe.fps / direct.fps:>16.2f}"
        )
    gain_pipeline = results["THROUGHPUT"]["pipeline"].fps / results["LATENCY"]["pipeline"].fps
    gain_direct = results["THROUGHPUT"]["direct"].fps / results["LATENCY"]["direct"].fps
    print(f"throughput/latency: pipeline {gain_pipeline:.2f}, direct {gain_direct:.2f}")


if __name__ == "__main__":
    main()
