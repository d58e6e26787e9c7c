"""The sustained-load benchmark's sources: its MJPEG cameras read back with the camera
producer's own MJPEG reader, the generated documents and the unique upload images."""

from __future__ import annotations

import itertools
import time
from functools import cache
from pathlib import Path

import cv2
import numpy as np
import pypdfium2 as pdfium
import pytest

from bench.load.documents import document_pdf
from bench.load.mjpeg import MjpegCameras
from bench.load.scene import camera_loop, upload_image
from processors.modelstore import load
from producers.cameras.mjpeg import MjpegReader
from producers.cameras.sources import SourceError, parse_source


@cache
def photos() -> list[Path]:
    model = load("sample-photos")
    return [model.path("bus.jpg"), model.path("zidane.jpg")]


def test_the_cameras_serve_their_loop_at_the_source_rate() -> None:
    frames = camera_loop(photos(), 320, 180, 12)
    assert len(set(frames)) == 12  # the photos move: every frame differs
    server = MjpegCameras(frames, cameras=2, fps=20)
    server.start()
    try:
        reader = MjpegReader(parse_source(server.url(2)), timeout_s=5)
        began = time.monotonic()
        received = [reader.read() for _ in range(21)]
        elapsed = time.monotonic() - began
        reader.close()
        # The first frame goes out at once, then one every 1/20 s (generous upper bound:
        # the machine is shared).
        assert 0.8 < elapsed < 5.0
        jpegs = [frame.jpeg for frame in received if frame is not None and frame.jpeg]
        assert len(jpegs) == 21
        assert all(jpeg in frames for jpeg in jpegs)
        # The loop's frames in order, never one twice; after a stall the server skips
        # ahead like a live camera instead of bursting.
        indexes = [frames.index(jpeg) for jpeg in jpegs]
        assert all((b - a) % 12 in (1, 2, 3) for a, b in itertools.pairwise(indexes))
        image = cv2.imdecode(np.frombuffer(jpegs[0], np.uint8), cv2.IMREAD_COLOR)
        assert image is not None and image.shape == (180, 320, 3)
        with pytest.raises(SourceError, match="404"):
            MjpegReader(parse_source(server.url(3)), timeout_s=5)
    finally:
        server.stop()


def test_documents_have_the_pages_asked_for_and_differ() -> None:
    first, second = document_pdf(1, 4), document_pdf(2, 4)
    assert first != second
    document = pdfium.PdfDocument(first)
    assert len(document) == 4
    text = document[2].get_textpage().get_text_range()
    assert "page 3" in text
    assert "ä" in text or "ü" in text or "ß" in text  # the German paragraphs are there
    with pytest.raises(ValueError):
        document_pdf(1, 0)


def test_upload_images_are_unique_jpegs() -> None:
    images = [upload_image(photos(), number, max_side=256) for number in range(4)]
    assert len(set(images)) == 4
    decoded = cv2.imdecode(np.frombuffer(images[0], np.uint8), cv2.IMREAD_COLOR)
    assert decoded is not None and max(decoded.shape[:2]) <= 256
    assert upload_image(photos(), 3, max_side=256) == images[3]  # reproducible
