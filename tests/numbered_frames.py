"""Video frames that carry their own number, so tests can tell which frames arrived."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class NumberedFrames:
    """Draws a number as binary cells (read back after JPEG) and as text (for eyes)."""

    width: int
    height: int
    bits: int

    @property
    def cell(self) -> int:
        return self.width // self.bits

    def frame(self, number: int) -> np.ndarray:
        image = np.zeros((self.height, self.width, 3), np.uint8)
        for bit in range(self.bits):
            if number >> bit & 1:
                image[:32, bit * self.cell : (bit + 1) * self.cell] = 255
        cv2.putText(image, str(number), (8, 84), cv2.FONT_HERSHEY_SIMPLEX, 1.3, (0, 200, 255), 2)
        return image

    def number_in(self, jpeg: bytes) -> int:
        image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_GRAYSCALE)
        assert image is not None
        # Sample inside each cell, away from the edges that JPEG blurs.
        cells = [
            image[4:28, bit * self.cell + 3 : (bit + 1) * self.cell - 3].mean()
            for bit in range(self.bits)
        ]
        return sum(1 << bit for bit, value in enumerate(cells) if value > 128)
