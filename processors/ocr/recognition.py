"""Pure pre- and post-processing of the line classifier and the CTC recogniser."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from processors.ocr.geometry import Image

REC_HEIGHT = 48
# Narrow lines are padded to at least this width/height ratio, as in training.
REC_MIN_RATIO = 320 / 48
CLS_HEIGHT, CLS_WIDTH = 48, 192


@dataclass(frozen=True)
class DecodedText:
    """A CTC-decoded line: text, a confidence per character and its position.

    `positions` are the characters' centres as fractions (0..1) of the line crop's width.
    """

    text: str
    confidences: tuple[float, ...]
    positions: tuple[float, ...]

    @property
    def confidence(self) -> float:
        return float(np.mean(self.confidences)) if self.confidences else 0.0


def charset_from_metadata(character_list: str) -> list[str]:
    """CTC classes from the model's newline-separated character list: blank first, space last."""
    characters = character_list.split("\n")
    if characters and characters[-1] == "":
        characters = characters[:-1]
    if not characters:
        raise ValueError("the recognition model's character list is empty")
    return ["", *characters, " "]


def _normalise(resized: Image) -> NDArray[np.float32]:
    scaled = resized.astype(np.float32) / 255.0
    chw: NDArray[np.float32] = ((scaled - 0.5) / 0.5).transpose(2, 0, 1)
    return chw


def recogniser_batch(
    crops: Sequence[Image],
) -> tuple[NDArray[np.float32], list[float]]:
    """N x 3 x 48 x W batch of line crops (right-padded) and each crop's used width fraction."""
    ratios = [crop.shape[1] / max(1, crop.shape[0]) for crop in crops]
    width = math.ceil(REC_HEIGHT * max(REC_MIN_RATIO, *ratios))
    batch = np.zeros((len(crops), 3, REC_HEIGHT, width), dtype=np.float32)
    used: list[float] = []
    for index, (crop, ratio) in enumerate(zip(crops, ratios, strict=True)):
        resized_w = max(1, min(width, math.ceil(REC_HEIGHT * ratio)))
        resized = cv2.resize(crop, (resized_w, REC_HEIGHT), interpolation=cv2.INTER_LINEAR)
        batch[index, :, :, :resized_w] = _normalise(resized)
        used.append(resized_w / width)
    return batch, used


def classifier_batch(crops: Sequence[Image]) -> NDArray[np.float32]:
    """N x 3 x 48 x 192 batch for the 0/180 degree line classifier."""
    batch = np.zeros((len(crops), 3, CLS_HEIGHT, CLS_WIDTH), dtype=np.float32)
    for index, crop in enumerate(crops):
        ratio = crop.shape[1] / max(1, crop.shape[0])
        resized_w = max(1, min(CLS_WIDTH, math.ceil(CLS_HEIGHT * ratio)))
        resized = cv2.resize(crop, (resized_w, CLS_HEIGHT), interpolation=cv2.INTER_LINEAR)
        batch[index, :, :, :resized_w] = _normalise(resized)
    return batch


def classifier_windows(crop: Image, max_windows: int = 3) -> list[Image]:
    """Pieces of a line crop at the classifier's own 4:1 aspect ratio.

    Squeezing a long line into 192 x 48 pixels blurs its glyphs until the upside-down
    vote is a coin toss; windows at natural scale keep them readable.
    """
    height, width = crop.shape[:2]
    window = max(1, round(height * CLS_WIDTH / CLS_HEIGHT))
    if width <= window * 1.5:
        return [crop]
    count = min(max_windows, math.ceil(width / window))
    starts = np.linspace(0, width - window, count).round().astype(int)
    return [crop[:, start : start + window] for start in starts]


def ctc_greedy_decode(
    probabilities: NDArray[np.float32], charset: Sequence[str], used_fraction: float = 1.0
) -> DecodedText:
    """Best path decoding of one T x C probability matrix.

    Repeated classes collapse and blanks (class 0) drop out; a character's confidence is its
    highest probability over its run and its position the run's centre, scaled from the
    padded input width back to the crop (`used_fraction` is the crop's share of it).
    """
    steps = probabilities.shape[0]
    best = probabilities.argmax(axis=1)
    scores = probabilities.max(axis=1)
    text: list[str] = []
    confidences: list[float] = []
    positions: list[float] = []
    run_start = 0
    for step in range(steps + 1):
        if step < steps and step > 0 and best[step] == best[step - 1]:
            continue
        if step > 0:
            index = int(best[run_start])
            if index != 0:
                if index >= len(charset):
                    raise ValueError(f"class {index} is outside the character set")
                text.append(charset[index])
                confidences.append(float(scores[run_start:step].max()))
                centre = (run_start + step) / 2 / steps
                positions.append(min(1.0, centre / max(used_fraction, 1e-6)))
        run_start = step
    return DecodedText("".join(text), tuple(confidences), tuple(positions))
