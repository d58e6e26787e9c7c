"""Object-crop embeddings: cost and separation at the detector's input (416) and at the
crop input the vision worker uses (`processors.object_embedding_side`), in one run.

For the people and the bus of the packaged street photo it prints, per input side, the CPU
milliseconds per crop (one crop at a time, as the stage embeds them) and how much closer the
two people are to each other than either is to the bus (cosine margin; larger separates
better), then the cost ratio of the configured side to 416.

Run: .venv/bin/python -m bench.embedding_cost [--rounds 50]
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np

from processors.embeddings.backbone import BackboneEmbedder
from processors.modelstore import load
from processors.openvino_runtime import OpenVinoRuntime
from visionlog.settings import get_settings


def _crops() -> dict[str, np.ndarray]:
    bus = cv2.imread(str(load("sample-photos").path("bus.jpg")), cv2.IMREAD_COLOR)
    if bus is None:
        raise SystemExit("the sample photos are not provisioned: run `visionlog models provision`")
    return {
        "left person": bus[400:900, 50:250],
        "right person": bus[380:880, 670:810],
        "middle person": bus[400:880, 220:420],
        "bus": bus[230:760, 20:800],
    }


def _measure(
    embedder: BackboneEmbedder, crops: dict[str, np.ndarray], rounds: int
) -> tuple[float, float]:
    vectors = {name: embedder.embed(crop) for name, crop in crops.items()}
    started = time.process_time()
    for _ in range(rounds):
        for crop in crops.values():
            embedder.embed(crop)
    cpu_ms = (time.process_time() - started) * 1000 / (rounds * len(crops))
    left, right, bus = vectors["left person"], vectors["right person"], vectors["bus"]
    margin = float(left @ right - max(left @ bus, right @ bus))
    return cpu_ms, margin


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()
    settings = get_settings()
    runtime = OpenVinoRuntime.from_settings(settings)
    crops = _crops()
    configured = settings.processors.object_embedding_side or 416
    results: dict[int, tuple[float, float]] = {}
    print("input side  CPU ms/crop  people-vs-bus margin")
    for side in dict.fromkeys((416, configured, 224, 160, 128)):
        results[side] = _measure(BackboneEmbedder(runtime, input_side=side), crops, args.rounds)
        cpu_ms, margin = results[side]
        mark = "  (configured)" if side == configured else ""
        print(f"{side:>10}  {cpu_ms:>11.1f}  {margin:>20.3f}{mark}")
    ratio = results[configured][0] / results[416][0]
    print(f"configured / 416 CPU per crop: {ratio:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
