"""Generated pictures with work in them for the detector: the packaged sample photos
(a bus with people, two people) moving across a street-like background.

Camera frames are encoded once, before the load starts, so serving them costs the
benchmark almost nothing; upload images are made one at a time, each unique.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

# numpy's uint8 image array
Image = np.ndarray


def _read(path: Path) -> Image:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{path} does not decode as an image")
    return np.asarray(image, np.uint8)


def street_background(width: int, height: int, seed: int) -> Image:
    """Sky, houses and a road, with sensor-like noise so JPEG sizes resemble a camera's."""
    rng = np.random.default_rng(seed)
    image = np.zeros((height, width, 3), np.uint8)
    horizon = height * 2 // 5
    sky = np.linspace(235, 170, horizon, dtype=np.float32)[:, None]
    image[:horizon] = np.stack([sky + 10, sky, sky - 40], axis=-1).astype(np.uint8)
    image[horizon:] = (92, 96, 98)
    x = 0
    while x < width:  # house fronts of random widths and colours along the horizon
        house_width = int(rng.integers(width // 12, width // 5))
        top = int(rng.integers(horizon // 4, horizon - 20))
        colour = tuple(int(c) for c in rng.integers(90, 200, 3))
        cv2.rectangle(image, (x, top), (x + house_width, horizon + 40), colour, -1)
        x += house_width + int(rng.integers(0, 20))
    for lane in range(0, width, 120):  # road markings
        cv2.rectangle(
            image, (lane, height * 4 // 5), (lane + 60, height * 4 // 5 + 8), (230,) * 3, -1
        )
    noise = rng.normal(0, 6, image.shape)
    return np.clip(image.astype(np.float32) + noise, 0, 255).astype(np.uint8)


def _scaled(image: Image, height: int) -> Image:
    width = max(1, round(image.shape[1] * height / image.shape[0]))
    return np.asarray(cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA), np.uint8)


def _paste(canvas: Image, sprite: Image, x: int, y: int) -> None:
    """Paste with clipping at the canvas edges."""
    height, width = canvas.shape[:2]
    left, top = max(0, x), max(0, y)
    right, bottom = min(width, x + sprite.shape[1]), min(height, y + sprite.shape[0])
    if right > left and bottom > top:
        canvas[top:bottom, left:right] = sprite[top - y : bottom - y, left - x : right - x]


def _triangle(phase: float) -> float:
    """0 → 1 → 0 over one period: a sprite walks across and back, so the loop has no jump."""
    phase %= 1.0
    return 2 * phase if phase < 0.5 else 2 - 2 * phase


def camera_loop(
    photos: list[Path], width: int, height: int, frames: int, quality: int = 85
) -> list[bytes]:
    """`frames` JPEGs of a seamless loop: each photo crosses the scene and comes back."""
    background = street_background(width, height, seed=7)
    sprites = [
        _scaled(_read(path), int(height * scale))
        for path, scale in zip(photos, (0.8, 0.5, 0.6, 0.45), strict=False)
    ]
    encoded: list[bytes] = []
    for number in range(frames):
        canvas = background.copy()
        for index, sprite in enumerate(sprites):
            travel = width - sprite.shape[1]
            phase = number / frames + index * 0.37
            x = round(_triangle(phase if index % 2 == 0 else -phase) * travel)
            y = height - sprite.shape[0] - (index * height // 12)
            _paste(canvas, sprite, x, y)
        ok, jpeg = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise RuntimeError("OpenCV cannot encode JPEG here")
        encoded.append(jpeg.tobytes())
    return encoded


def upload_image(photos: list[Path], number: int, max_side: int = 1024) -> bytes:
    """A unique JPEG per number: a photo cropped, mirrored and brightened differently,
    stamped with its number, so no two uploads are the same content."""
    rng = np.random.default_rng(number)
    image = _read(photos[number % len(photos)])
    height, width = image.shape[:2]
    crop = rng.uniform(0.8, 1.0)
    crop_w, crop_h = int(width * crop), int(height * crop)
    left = int(rng.integers(0, width - crop_w + 1))
    top = int(rng.integers(0, height - crop_h + 1))
    image = image[top : top + crop_h, left : left + crop_w]
    if rng.random() < 0.5:
        image = image[:, ::-1]
    image = cv2.convertScaleAbs(image, alpha=float(rng.uniform(0.85, 1.15)), beta=0)
    scale = min(1.0, max_side / max(image.shape[:2]))
    if scale < 1.0:
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    cv2.putText(image, f"upload {number}", (12, 36), 0, 1.0, (255, 255, 255), 2)
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise RuntimeError("OpenCV cannot encode JPEG here")
    return bytes(jpeg.tobytes())
