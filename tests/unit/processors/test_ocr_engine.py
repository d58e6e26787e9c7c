"""OCR on rendered pages with known text: the OpenVINO engine and the full pipeline."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from PIL import ImageFont

from processors.ocr import OcrPipeline, OcrResult, OpenVinoOcrEngine
from processors.ocr.metrics import character_error_rate
from processors.ocr.orientation import upright_probability
from processors.ocr.synthetic import (
    Page,
    add_noise,
    fade,
    font_path,
    photograph,
    render_columns,
    render_lines,
    turn,
)
from processors.openvino_runtime import OpenVinoRuntime
from visionlog.settings import get_settings

ENGLISH = [
    "The quick brown fox jumps over the lazy dog.",
    "Invoice 2024-117 is due on 3 March.",
]
GERMAN = [
    "Die Größe der Straße ist übermäßig.",
    "Äpfel, Öl und Übungen für die Prüfung.",
]
MAX_CER = 0.03


@pytest.fixture(scope="module")
def engine() -> OpenVinoOcrEngine:
    return OpenVinoOcrEngine(OpenVinoRuntime.from_settings(get_settings()))


@pytest.fixture(scope="module")
def pipeline(engine: OpenVinoOcrEngine) -> OcrPipeline:
    return OcrPipeline(engine, probe=engine, parallel=4)


@pytest.fixture(scope="module")
def page() -> Page:
    return render_lines([*ENGLISH, *GERMAN], width=640, font_size=22)


def test_dictionary_covers_german_letters(engine: OpenVinoOcrEngine) -> None:
    assert set("äöüßÄÖÜ€") <= set(engine.charset)
    assert engine.charset[0] == "" and engine.charset[-1] == " "


def test_models_are_named_and_versioned(engine: OpenVinoOcrEngine) -> None:
    refs = engine.model_refs()
    assert [ref["name"] for ref in refs] == [
        "pp-ocrv6-det",
        "pp-ocrv6-rec",
        "pp-lcnet-textline-ori",
    ]
    assert all(ref["version"] == "rapidocr==3.10.0" for ref in refs)
    assert all(str(ref["runtime"]).startswith("openvino/") for ref in refs)


def test_engine_reads_a_clean_page(engine: OpenVinoOcrEngine, page: Page) -> None:
    lines = engine.read_lines(page.image)
    assert [line.text for line in lines] == page.text.split("\n")
    assert all(line.confidence > 0.9 for line in lines)
    assert all(len(line.char_confidences) == len(line.text) for line in lines)


def test_engine_flips_upside_down_lines(engine: OpenVinoOcrEngine, page: Page) -> None:
    lines = engine.read_lines(turn(page.image, 180))
    assert sorted(line.text for line in lines) == sorted(page.text.split("\n"))


def test_engine_rejects_non_images(engine: OpenVinoOcrEngine) -> None:
    with pytest.raises(ValueError, match="BGR image"):
        engine.read_lines(np.zeros((10, 10), np.uint8))


Distortion = Callable[[np.ndarray], np.ndarray]
CASES: dict[str, tuple[Distortion, int, str | None]] = {
    "clean": (lambda image: image, 0, None),
    "turned-90": (lambda image: turn(image, 90), 90, "orientation"),
    "turned-180": (lambda image: turn(image, 180), 180, "orientation"),
    "turned-270": (lambda image: turn(image, 270), 270, "orientation"),
    "skewed+7": (lambda image: turn(image, 7), 0, "deskew"),
    "skewed-7": (lambda image: turn(image, -7), 0, "deskew"),
    "turned-270-skewed-5": (lambda image: turn(turn(image, 270), 5), 270, "deskew"),
    "noisy": (lambda image: add_noise(image, 25, seed=1), 0, "denoise"),
    "low-contrast": (lambda image: fade(image, 120, 175), 0, "clahe"),
    "photographed": (lambda image: photograph(image, seed=2), 0, "perspective_crop"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_pipeline_reads_distorted_pages(pipeline: OcrPipeline, page: Page, case: str) -> None:
    distort, orientation, step = CASES[case]
    image = distort(page.image)
    result = pipeline.read(image)
    assert character_error_rate(page.text, result.full_text) < MAX_CER, result.full_text
    assert result.orientation_degrees == orientation
    if step is not None:
        assert step in result.preprocessing
    else:
        assert result.preprocessing == ()
    assert (result.image_width, result.image_height) == (image.shape[1], image.shape[0])


def test_skew_is_reported(pipeline: OcrPipeline, page: Page) -> None:
    result = pipeline.read(turn(page.image, -7))
    assert result.skew_degrees == pytest.approx(-7, abs=0.7)


def _centres(result: OcrResult) -> np.ndarray:
    return np.array([np.mean(line.polygon, axis=0) for line in result.lines])


def test_polygons_are_in_original_pixels(pipeline: OcrPipeline, page: Page) -> None:
    upright = pipeline.read(page.image)
    turned = pipeline.read(turn(page.image, 90))
    height = page.image.shape[0]
    # Turning clockwise by 90 degrees moves (x, y) to (height - 1 - y, x).
    expected = np.array([[height - 1 - y, x] for x, y in _centres(upright)])
    assert _centres(turned) == pytest.approx(expected, abs=4)
    # Polygons start at the text's top-left corner, which is now at the top-right.
    first = turned.lines[0].polygon
    assert first[0][0] > first[2][0] and first[0][1] < first[2][1]


def test_word_boxes_follow_the_rendered_words(pipeline: OcrPipeline) -> None:
    text = "Straße und Größe"
    font_size, margin = 28, 40
    result = pipeline.read(render_lines([text], width=600, font_size=font_size).image)
    words = result.lines[0].words
    assert [word.text for word in words] == ["Straße", "und", "Größe"]
    font = ImageFont.truetype(str(font_path()), font_size)
    start = 0
    for word in words:
        start = text.index(word.text, start)
        left = margin + font.getlength(text[:start])
        right = margin + font.getlength(text[: start + len(word.text)])
        xs = [x for x, _ in word.polygon]
        assert min(xs) == pytest.approx(left, abs=0.4 * font_size)
        assert max(xs) == pytest.approx(right, abs=0.4 * font_size)
        assert word.confidence > 0.8
        start += len(word.text)


def test_columns_and_languages(pipeline: OcrPipeline) -> None:
    page = render_columns(
        "Annual Report / Jahresbericht",
        ["The results of the year", "are better than expected", "and the team is growing."],
        ["Die Ergebnisse des Jahres", "sind besser als erwartet", "und das Team wächst."],
        width=900,
    )
    result = pipeline.read(page.image)
    assert character_error_rate(page.text, result.full_text) < MAX_CER, result.full_text
    assert [block.reading_order for block in result.blocks] == list(range(len(result.blocks)))
    assert [block.language for block in result.blocks] == [None, "en", "de"]
    assert result.languages == ("en", "de")


def test_blank_page_has_no_text(pipeline: OcrPipeline) -> None:
    result = pipeline.read(np.full((300, 400, 3), 255, np.uint8))
    assert result.blocks == () and result.full_text == ""
    assert result.orientation_degrees == 0


def test_pipeline_rejects_empty_images(pipeline: OcrPipeline) -> None:
    with pytest.raises(ValueError, match="non-empty"):
        pipeline.read(np.zeros((0, 0, 3), np.uint8))


@pytest.mark.parametrize(("degrees", "upright"), [(0, True), (180, False)])
def test_recognition_contest_decides_when_asked(
    engine: OpenVinoOcrEngine, page: Page, degrees: int, upright: bool
) -> None:
    image = turn(page.image, degrees)
    quads = [box.quad for box in engine.detect(image)]
    # unsure=0.5 skips the classifier's vote and compares recognition confidences.
    probability = upright_probability(engine, image, quads, unsure=0.5)
    assert (probability > 0.5) is upright
    assert abs(probability - 0.5) > 0.05


def test_without_a_probe_skew_comes_from_the_text_mask(
    engine: OpenVinoOcrEngine, page: Page
) -> None:
    result = OcrPipeline(engine).read(turn(page.image, 5))
    assert result.preprocessing == ("deskew",)
    assert result.skew_degrees == pytest.approx(5, abs=0.7)
    assert character_error_rate(page.text, result.full_text) < MAX_CER


def test_pages_read_in_parallel_give_the_text_of_serial_reads(
    pipeline: OcrPipeline, page: Page
) -> None:
    # Several pages at once on one engine (each read borrows its own inference requests):
    # the same results as one after the other, whatever runs beside them.
    images = [
        page.image,
        turn(page.image, 180),
        turn(page.image, 90),
        add_noise(page.image, 25, seed=1),
        render_lines(ENGLISH, width=500, font_size=24).image,
        turn(page.image, -7),
    ]
    serial = [pipeline.read(image) for image in images]
    for _ in range(2):
        parallel = pipeline.read_many(images)
        for alone, together in zip(serial, parallel, strict=True):
            assert together.full_text == alone.full_text
            assert together.orientation_degrees == alone.orientation_degrees
            assert together.preprocessing == alone.preprocessing
            assert together.skew_degrees == alone.skew_degrees
    assert all(result.full_text for result in serial)


def test_the_pipeline_reads_no_more_pages_at_once_than_allowed(
    engine: OpenVinoOcrEngine, page: Page
) -> None:
    reading = 0
    most = 0
    lock = threading.Lock()

    class CountingEngine:
        version = engine.version

        def model_refs(self) -> list[Any]:
            return engine.model_refs()

        def read_lines(self, image: np.ndarray) -> list[Any]:
            nonlocal reading, most
            with lock:
                reading += 1
                most = max(most, reading)
            try:
                time.sleep(0.05)
                return engine.read_lines(image)
            finally:
                with lock:
                    reading -= 1

    limited = OcrPipeline(CountingEngine(), parallel=2)
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(limited.read, [page.image] * 6))
    assert most == 2
    assert all(result.full_text == results[0].full_text for result in results)


def test_upright_pages_are_detected_once(
    pipeline: OcrPipeline, engine: OpenVinoOcrEngine, page: Page, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The orientation probe runs the engine's own detector: on a page that needs no turn
    # its boxes are read directly; a turned page is detected again after the turn.
    calls: list[tuple[int, int]] = []
    detect = engine.detect

    def counted(image: np.ndarray, max_side: int | None = None) -> list[Any]:
        calls.append(image.shape[:2])
        return detect(image, max_side)

    classified: list[int] = []
    classify = engine.upside_down_probability

    def counted_votes(crops: Sequence[np.ndarray]) -> list[float]:
        classified.append(len(crops))
        return classify(crops)

    monkeypatch.setattr(engine, "detect", counted)
    monkeypatch.setattr(engine, "upside_down_probability", counted_votes)
    upright = pipeline.read(page.image)
    assert len(calls) == 1
    # The orientation vote's crops are the read's crops: each line is classified once.
    assert sum(classified) == len(upright.lines) == len(page.text.split("\n"))
    calls.clear()
    turned = pipeline.read(turn(page.image, 90))
    assert len(calls) == 2
    assert turned.full_text == upright.full_text
