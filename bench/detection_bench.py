"""Detection throughput: the stage's pipeline next to bare OpenVINO inference, in one run.

For each performance mode (latency: one request at a time; throughput: several requests in
flight) it measures frames per second of
- the pipeline: JPEG decode + preprocess + inference + decoding and NMS, and
- direct inference: the same preprocessed tensor fed to the compiled model,
and prints the ratios, so the cost of everything around the model and the gain of
asynchronous inference are read side by side on the same machine and load.

Run: .venv/bin/python bench/detection_bench.py [--frames 60] [--rounds 3] [--image bus.jpg]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import cv2
import numpy as np
import openvino

from processors.detection.engine import DetectorEngine, PerformanceMode, create_detector
from processors.modelstore import load
from visionlog.settings import get_settings

SCORE_THRESHOLD = 0.35


def frames_per_second(frames: int, run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return frames / (time.perf_counter() - started)


def decode(jpeg: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError("sample image does not decode")
    return np.asarray(image, np.uint8)


def pipeline_fps(engine: DetectorEngine, jpeg: bytes, frames: int) -> float:
    if engine.mode == "LATENCY":
        return frames_per_second(
            frames, lambda: [engine.detect(decode(jpeg), SCORE_THRESHOLD) for _ in range(frames)]
        )
    return frames_per_second(
        frames,
        lambda: engine.detect_batch([decode(jpeg) for _ in range(frames)], SCORE_THRESHOLD),
    )


def direct_fps(engine: DetectorEngine, tensor: np.ndarray, frames: int) -> float:
    if engine.mode == "LATENCY":
        request = engine.compiled.create_infer_request()
        return frames_per_second(
            frames, lambda: [request.infer({0: tensor}) for _ in range(frames)]
        )
    jobs = max(2, int(engine.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
    queue = openvino.AsyncInferQueue(engine.compiled, jobs)

    def run() -> None:
        for _ in range(frames):
            queue.start_async({0: tensor})
        queue.wait_all()

    return frames_per_second(frames, run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--image", default="bus.jpg", help="sample photo name")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    jpeg = load("sample-photos").path(args.image).read_bytes()
    settings = get_settings()
    modes: tuple[PerformanceMode, ...] = ("LATENCY", "THROUGHPUT")
    engines = {mode: create_detector(settings, mode) for mode in modes}
    tensor, _ = engines["LATENCY"].preprocess(decode(jpeg))
    for engine in engines.values():  # warm-up
        engine.detect(decode(jpeg), SCORE_THRESHOLD)
        engine.infer(tensor)
    # Measurements alternate in rounds and the best of each is kept, so a burst of load
    # from other processes on a shared machine does not favour one side.
    results: dict[str, dict[str, float]] = {m: {"pipeline": 0.0, "direct": 0.0} for m in modes}
    for _ in range(args.rounds):
        for mode, engine in engines.items():
            row = results[mode]
            row["pipeline"] = max(row["pipeline"], pipeline_fps(engine, jpeg, args.frames))
            row["direct"] = max(row["direct"], direct_fps(engine, tensor, args.frames))
    found = engines["LATENCY"].detect(decode(jpeg), SCORE_THRESHOLD)
    model = engines["LATENCY"].model_ref
    print(
        f"model {model['name']} ({model['version']}), {args.image}, "
        f"{args.frames} frames x best of {args.rounds} rounds,"
    )
    print(
        f"{model['runtime']}, inference threads {settings.processors.inference_threads}, "
        f"{len(found)} objects per frame"
    )
    print(f"{'mode':<11} {'pipeline f/s':>13} {'direct f/s':>11} {'pipeline/direct':>16}")
    for label, row in results.items():
        ratio = row["pipeline"] / row["direct"]
        print(f"{label:<11} {row['pipeline']:>13.1f} {row['direct']:>11.1f} {ratio:>16.2f}")
    gain_pipeline = results["THROUGHPUT"]["pipeline"] / results["LATENCY"]["pipeline"]
    gain_direct = results["THROUGHPUT"]["direct"] / results["LATENCY"]["direct"]
    print(f"throughput/latency: pipeline {gain_pipeline:.2f}, direct {gain_direct:.2f}")


if __name__ == "__main__":
    main()
