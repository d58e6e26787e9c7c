"""The main job's generated samples are what the pipeline needs to show its stages."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pypdfium2

from stack.samples import (
    ENGLISH_LINES,
    GERMAN_LINES,
    SAMPLE_QR_TEXT,
    write_document,
    write_pan_video,
)


def test_document_has_english_and_german_pages_with_a_readable_qr_code(tmp_path: Path) -> None:
    path = write_document(tmp_path / "doc.pdf")
    pdf = pypdfium2.PdfDocument(path)
    assert len(pdf) == 2
    first = pdf[0].get_textpage().get_text_range()
    second = pdf[1].get_textpage().get_text_range()
    assert ENGLISH_LINES[1] in first
    assert GERMAN_LINES[0] in second and "ß" in second
    bitmap = pdf[0].render(scale=2).to_numpy()
    gray = cv2.cvtColor(np.ascontiguousarray(bitmap[..., :3]), cv2.COLOR_BGR2GRAY)
    text, points, _ = cv2.QRCodeDetector().detectAndDecode(gray)
    assert text == SAMPLE_QR_TEXT and points is not None


def test_pan_video_moves_across_the_photo(tmp_path: Path) -> None:
    photo = np.zeros((300, 600, 3), np.uint8)
    cv2.rectangle(photo, (20, 100), (80, 200), (255, 255, 255), -1)
    cv2.imwrite(str(tmp_path / "p.png"), photo)
    path = write_pan_video(tmp_path / "p.png", tmp_path / "v.avi", frames=12, fps=6)
    capture = cv2.VideoCapture(str(path))
    fps = capture.get(cv2.CAP_PROP_FPS)
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    assert len(frames) == 12
    assert fps == 6.0
    # The white block starts in view and has left the window by the last frame.
    assert frames[0].max() > 200 and frames[-1].max() < 60
