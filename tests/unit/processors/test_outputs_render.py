"""Pure renderers: JSON, plain text, annotated image, thumbnail and searchable PDF."""

from __future__ import annotations

import json
import random

import cv2
import numpy as np
import pypdfium2 as pdfium
import pytest
from PIL import Image, ImageDraw, ImageFont

from processors.outputs.annotate import (
    CODE_COLOUR,
    TEXT_COLOUR,
    annotate_image,
    class_colour,
    make_thumbnail,
)
from processors.outputs.items import export_key
from processors.outputs.json_export import render_json
from processors.outputs.searchable_pdf import render_searchable_pdf
from processors.outputs.text_export import render_plain_text
from processors.outputs.views import analysed_view
from processors.stage import item_label
from tests.processor_factories import (
    Box,
    codes_event,
    detections_event,
    item,
    new_media_id,
    text_event,
)

WORDS = [["Invoice", "Nr.", "4711"], ["Grüße", "aus", "der", "Straße"], ["Total", "EUR", "99"]]


def render_words(
    lines: list[list[str]], size: tuple[int, int] = (900, 420)
) -> tuple[np.ndarray, list[list[tuple[str, Box]]]]:
    """A white BGR image with the words drawn in black, and each word's pixel box."""
    canvas = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=44)
    placed: list[list[tuple[str, Box]]] = []
    y = 40.0
    for words in lines:
        x = 40.0
        row: list[tuple[str, Box]] = []
        for word in words:
            left, top, right, bottom = draw.textbbox((x, y), word, font=font)
            draw.text((x, y), word, fill="black", font=font)
            row.append((word, (float(left), float(top), float(right), float(bottom))))
            x = right + 24
        placed.append(row)
        y += 120
    return np.asarray(canvas)[:, :, ::-1].copy(), placed


def test_item_labels_follow_the_exports_layout() -> None:
    media_id = new_media_id()
    assert item_label(item(media_id)) == "original"
    assert item_label(item(media_id, page=3)) == "page-0003"
    assert item_label(item(media_id, frame=42)) == "frame-00000042"
    # Zero-padded, so listing the keys gives document order.
    labels = [item_label(item(media_id, page=number)) for number in (10, 2, 1)]
    assert sorted(labels) == ["page-0001", "page-0002", "page-0010"]
    assert export_key("m", "page-0003", "ocr", "txt") == "m/page-0003/ocr.txt"


def test_json_holds_all_results_of_an_item_in_a_stable_order() -> None:
    media_id = new_media_id()
    ref = item(media_id, page=2)
    text = text_event(media_id, ref, [[[("hello", (1, 2, 30, 12))]]])
    detections = detections_event(media_id, ref, [("person", 0.9, (5, 5, 50, 80), 3.5)])
    forward = render_json([text, detections])
    backward = render_json([detections, text])
    assert forward == backward
    document = json.loads(forward)
    assert document["item"] == "page-0002"
    types = [result["envelope"]["event_type"] for result in document["results"]]
    assert types == ["ObjectsDetected", "TextRecognized"]
    assert document["results"][1]["blocks"][0]["text"] == "hello"
    # sorted keys at every level: re-serialising with sort_keys changes nothing
    assert json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False) + "\n" == (
        forward.decode("utf-8")
    )


def test_json_refuses_results_of_different_items() -> None:
    media_id = new_media_id()
    first = text_event(media_id, item(media_id, page=1), [[[("a", (1, 1, 5, 5))]]])
    second = text_event(media_id, item(media_id, page=2), [[[("b", (1, 1, 5, 5))]]])
    with pytest.raises(ValueError, match="one item"):
        render_json([first, second])


def test_plain_text_follows_reading_order_not_list_order() -> None:
    media_id = new_media_id()
    event = text_event(
        media_id,
        item(media_id),
        [
            [[("First", (0, 0, 10, 10)), ("block", (12, 0, 30, 10))]],
            [[("Second", (0, 20, 10, 30))], [("line", (0, 40, 10, 50))]],
            [[("Third", (0, 60, 10, 70))]],
        ],
    )
    random.Random(3).shuffle(event["blocks"])
    assert render_plain_text(event).decode("utf-8") == "First block\n\nSecond\nline\n\nThird\n"


def test_annotated_image_draws_boxes_in_class_colours_and_outlines() -> None:
    media_id = new_media_id()
    ref = item(media_id)
    image = np.full((300, 400, 3), 128, np.uint8)
    detections = detections_event(
        media_id,
        ref,
        [("person", 0.91, (50, 100, 150, 250), None), ("car", 0.55, (200, 120, 380, 280), 9.0)],
        size=(400, 300),
    )
    text = text_event(media_id, ref, [[[("x", (20, 20, 120, 60))]]], size=(400, 300))
    codes = codes_event(media_id, ref, [("QR_CODE", "https://example.org", (300, 10, 390, 90))])
    annotated = annotate_image(image, [detections, text, codes])
    assert annotated.shape == image.shape
    assert class_colour("person") != class_colour("car")
    assert class_colour("person") == class_colour("person")

    def rgb_at(x: int, y: int) -> tuple[int, ...]:
        return tuple(int(v) for v in annotated[y, x, ::-1])

    # left edges of the boxes, below their labels, and the polygons' lower edges
    assert rgb_at(50, 200) == class_colour("person")
    assert rgb_at(200, 220) == class_colour("car")
    assert rgb_at(70, 60) == TEXT_COLOUR
    assert rgb_at(340, 90) == CODE_COLOUR
    # labels were drawn: the label strip above the person box is no longer plain grey
    strip = annotated[80:99, 52:100]
    assert (np.abs(strip.astype(int) - 128).sum(axis=2) > 30).mean() > 0.5
    # far from every overlay the image is untouched
    assert tuple(annotated[295, 5]) == (128, 128, 128)


def test_annotated_image_scales_boxes_from_the_analysed_size() -> None:
    media_id = new_media_id()
    image = np.full((300, 400, 3), 128, np.uint8)
    # computed on a half-size copy: the box must be doubled on the stored image
    detections = detections_event(
        media_id, item(media_id), [("dog", 0.8, (25, 50, 75, 125), None)], size=(200, 150)
    )
    annotated = annotate_image(image, [detections])
    assert tuple(int(v) for v in annotated[200, 50, ::-1]) == class_colour("dog")


def test_thumbnail_is_a_small_jpeg_with_the_aspect_ratio_kept() -> None:
    image = np.zeros((900, 1200, 3), np.uint8)
    cv2.rectangle(image, (0, 0), (600, 900), (255, 255, 255), -1)
    data = make_thumbnail(image)
    assert data[:3] == b"\xff\xd8\xff"
    thumb = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert thumb is not None
    assert thumb.shape[:2] == (240, 320)
    assert thumb[120, 80].mean() > 240 and thumb[120, 240].mean() < 15
    small = cv2.imdecode(
        np.frombuffer(make_thumbnail(np.zeros((50, 80, 3), np.uint8)), np.uint8),
        cv2.IMREAD_COLOR,
    )
    assert small is not None
    assert small.shape[:2] == (50, 80)


def _pdf_words(data: bytes) -> tuple[pdfium.PdfDocument, pdfium.PdfTextPage, float, float]:
    document = pdfium.PdfDocument(data)
    page = document[0]
    return document, page.get_textpage(), page.get_width(), page.get_height()


def test_searchable_pdf_places_invisible_words_over_their_image_boxes() -> None:
    image, placed = render_words(WORDS)
    media_id = new_media_id()
    event = text_event(media_id, item(media_id), [placed[:2], placed[2:]], size=(900, 420))
    dpi = 150.0
    data = render_searchable_pdf(image, event, dpi=dpi)
    assert data == render_searchable_pdf(image, event, dpi=dpi)  # deterministic bytes
    document, text_page, width, height = _pdf_words(data)
    scale = 72.0 / dpi
    assert width == pytest.approx(900 * scale) and height == pytest.approx(420 * scale)
    full = " ".join(text_page.get_text_range().split())
    assert full == "Invoice Nr. 4711 Grüße aus der Straße Total EUR 99"
    for row in placed:
        for word, (x_min, y_min, x_max, y_max) in row:
            inside = text_page.get_text_bounded(
                left=x_min * scale - 1,
                bottom=height - y_max * scale - 1,
                right=x_max * scale + 1,
                top=height - y_min * scale + 1,
            )
            assert inside.strip() == word
    # every character box lies inside the box of the word it belongs to
    boxes = [box for row in placed for _, box in row]
    chars = [i for i in range(text_page.count_chars()) if text_page.get_text_range(i, 1).strip()]
    assert len(chars) == sum(len(word) for row in placed for word, _ in row)
    for index in chars:
        left, bottom, right, top = text_page.get_charbox(index)
        centre = ((left + right) / 2 / scale, (height - (bottom + top) / 2) / scale)
        assert any(b[0] <= centre[0] <= b[2] and b[1] <= centre[1] <= b[3] for b in boxes)
    # the text is invisible: rendering the page shows the image, the same pixels as before
    bitmap = document[0].render(scale=dpi / 72.0).to_numpy()[:, :, :3]
    rendered = cv2.resize(bitmap, (900, 420))
    difference = np.abs(rendered.astype(int) - image[:, :, ::-1].astype(int)).mean()
    assert difference < 6.0


def test_searchable_pdf_undoes_the_ocr_orientation() -> None:
    upright, placed = render_words([["Rotated", "page"]], size=(600, 200))
    stored = cv2.rotate(upright, cv2.ROTATE_180)  # the stored page is upside down
    media_id = new_media_id()
    event = text_event(media_id, item(media_id), [placed], size=(600, 200), orientation=180)
    view = analysed_view(stored, event)
    assert np.array_equal(view, upright)
    data = render_searchable_pdf(view, event, dpi=72.0)
    _, text_page, _, height = _pdf_words(data)
    _, (x_min, y_min, x_max, y_max) = placed[0][0]
    inside = text_page.get_text_bounded(
        x_min - 1, height - y_max - 1, x_max + 1, height - y_min + 1
    )
    assert inside.strip() == "Rotated"
    assert " ".join(text_page.get_text_range().split()) == "Rotated page"


def test_searchable_pdf_rejects_a_non_positive_dpi() -> None:
    media_id = new_media_id()
    event = text_event(media_id, item(media_id), [[[("a", (1, 1, 5, 5))]]])
    with pytest.raises(ValueError, match="dpi"):
        render_searchable_pdf(np.zeros((10, 10, 3), np.uint8), event, dpi=0)
