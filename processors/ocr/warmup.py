"""Inputs to bring the OCR engine and the text embedder to their working size at startup:
A4 pages at 150 dpi with lines of prose of varied widths, upright and turned, and texts as
long as the embedder reads.

OpenVINO sizes each infer request's buffers to the largest input it has run, so a worker's
memory grows over its first real pages to a working size and stays there (measured with
`MALLOC_ARENA_MAX=2`, two pages at a time: 0.4 GB after a blank warm-up, 2.3 GB after the
first 10 pages and 10 photos, the same after 40 more; 2.0 GB after these inputs). Reading
them on every parallel slot at startup reaches most of that before the first input: the
worker's memory is known from the start, and its first pages wait for no allocation.
"""

from __future__ import annotations

import cv2
import numpy as np

from processors.ocr.geometry import Image

# A4 at 150 dpi: the size documents are rendered at.
PAGE_SIZE = (1240, 1754)
_PROSE = (
    "The annual meeting of the board will take place on the second Tuesday of May",
    "Die Jahresversammlung des Vorstands findet am zweiten Dienstag im Mai statt",
)
_WORDS = [word for sentence in _PROSE for word in sentence.split()]


def warm_up_page(seed: int = 0) -> Image:
    """A white page with about forty lines of words, from short to full width."""
    width, height = PAGE_SIZE
    page = np.full((height, width, 3), 255, np.uint8)
    rng = np.random.default_rng(seed)
    y = 90
    while y < height - 60:
        count = int(rng.integers(2, 13))
        words = [_WORDS[int(i)] for i in rng.integers(0, len(_WORDS), count)]
        cv2.putText(page, " ".join(words), (80, y), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (0, 0, 0), 2)
        y += 40
    return page


def warm_up_inputs(parallel: int) -> list[list[Image]]:
    """Rounds of `parallel` images each: portrait pages, then a landscape page and a
    photo-sized crop."""
    slots = max(1, parallel)
    portrait = [warm_up_page(seed) for seed in range(slots)]
    landscape = np.ascontiguousarray(np.rot90(warm_up_page(slots)))
    photo = np.ascontiguousarray(warm_up_page(slots + 1)[:1024, :])
    turned = [landscape if index % 2 == 0 else photo for index in range(slots)]
    return [portrait, turned]


def warm_up_texts(count: int) -> list[str]:
    """`count` texts longer than the embedder's token limit."""
    return [" ".join(_WORDS[index % len(_WORDS) :] + _WORDS * 8) for index in range(count)]
