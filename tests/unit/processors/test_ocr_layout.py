"""Words, blocks, reading order, languages and CER on hand-made lines (no models)."""

from __future__ import annotations

import numpy as np
import pytest

from processors.ocr.engine import RecognisedLine
from processors.ocr.language import detect_language, languages_found
from processors.ocr.layout import build_blocks, word_spans
from processors.ocr.metrics import character_error_rate, levenshtein


def _line(text: str, x0: float, y0: float, x1: float, height: float = 20.0) -> RecognisedLine:
    quad = np.array([[x0, y0], [x1, y0], [x1, y0 + height], [x0, y0 + height]], dtype=np.float64)
    count = len(text)
    return RecognisedLine(
        quad=quad,
        text=text,
        confidence=0.9,
        char_confidences=tuple(0.8 + 0.1 * (i % 2) for i in range(count)),
        char_positions=tuple((i + 0.5) / count for i in range(count)),
    )


def _identity(points: np.ndarray) -> np.ndarray:
    return points


def test_word_spans_split_at_spaces_with_positions() -> None:
    spans = word_spans("ab  cd", [0.1, 0.2, 0.35, 0.5, 0.7, 0.8])
    assert [(first, end) for first, end, _, _ in spans] == [(0, 2), (4, 6)]
    first, second = spans
    assert first[2] == pytest.approx(0.05) and first[3] == pytest.approx(0.25)
    assert second[2] == pytest.approx(0.65) and second[3] == pytest.approx(0.85)


def test_word_spans_without_positions_spread_evenly() -> None:
    spans = word_spans("ab cd", None)
    assert spans[0][2:] == pytest.approx((0.0, 0.4))
    assert spans[1][2:] == pytest.approx((0.6, 1.0))


def test_words_carry_polygons_inside_their_line() -> None:
    blocks = build_blocks([_line("hello big world", 100, 50, 400)], _identity)
    words = blocks[0].lines[0].words
    assert [word.text for word in words] == ["hello", "big", "world"]
    lefts = [min(x for x, _ in word.polygon) for word in words]
    rights = [max(x for x, _ in word.polygon) for word in words]
    assert lefts == sorted(lefts) and all(100 <= x <= 400 for x in lefts + rights)
    assert rights[0] < lefts[1] and rights[1] < lefts[2]
    assert words[0].confidence == pytest.approx(np.mean([0.8, 0.9, 0.8, 0.9, 0.8]))


def test_close_lines_form_a_block_and_far_lines_another() -> None:
    lines = [
        _line("first paragraph line one", 50, 50, 450),
        _line("first paragraph line two", 50, 78, 420),
        _line("second paragraph", 50, 200, 300),
    ]
    blocks = build_blocks(lines, _identity)
    assert [block.text for block in blocks] == [
        "first paragraph line one\nfirst paragraph line two",
        "second paragraph",
    ]
    assert [block.reading_order for block in blocks] == [0, 1]
    assert blocks[0].polygon[0] == (50.0, 50.0) and blocks[0].polygon[2] == (450.0, 98.0)


def test_columns_are_read_before_moving_right() -> None:
    lines = [
        _line("Heading across the page", 50, 20, 900),
        _line("left one", 50, 100, 400),
        _line("right one", 500, 100, 900),
        _line("left two", 50, 128, 400),
        _line("right two", 500, 128, 900),
        _line("left three", 50, 156, 400),
        _line("right three", 500, 156, 900),
    ]
    blocks = build_blocks(lines, _identity)
    assert [block.text for block in blocks] == [
        "Heading across the page",
        "left one\nleft two\nleft three",
        "right one\nright two\nright three",
    ]


def test_polygons_are_mapped_by_the_callers_function() -> None:
    blocks = build_blocks([_line("ab", 10, 10, 30)], lambda points: points * 2)
    assert blocks[0].lines[0].polygon[0] == (20.0, 20.0)


def test_language_heuristic() -> None:
    assert detect_language("Die Straße ist nicht breit und sehr laut.") == "de"
    assert detect_language("The street is not wide and it is loud.") == "en"
    assert detect_language("Invoice 2024-117") is None
    assert detect_language("Größe") is None  # one hint is not enough
    assert languages_found(["en", None, "de", "en"]) == ("en", "de")


def test_blocks_get_their_own_language() -> None:
    lines = [
        _line("The report is ready for the team.", 50, 50, 600),
        _line("Der Bericht ist für das Team fertig.", 50, 200, 600),
    ]
    assert [block.language for block in build_blocks(lines, _identity)] == ["en", "de"]


def test_levenshtein_and_cer() -> None:
    assert levenshtein("kitten", "sitting") == 3
    assert levenshtein("", "abc") == 3
    assert character_error_rate("a  b\nc", "a b c") == 0.0
    assert character_error_rate("abcd", "abed") == pytest.approx(0.25)
    assert character_error_rate("", "x") == 1.0
