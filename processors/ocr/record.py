"""Conversion of an `OcrResult` into the fields of a TextRecognized event."""

from __future__ import annotations

from typing import Any

from processors.ocr.result import OcrResult, Polygon


def _points(polygon: Polygon) -> list[dict[str, float]]:
    return [{"x": float(x), "y": float(y)} for x, y in polygon]


def text_recognized_fields(result: OcrResult) -> dict[str, Any]:
    """Every TextRecognized field that comes from the OCR itself (all but envelope, media_id,
    item and models)."""
    return {
        "image_width": result.image_width,
        "image_height": result.image_height,
        "blocks": [
            {
                "reading_order": block.reading_order,
                "polygon": _points(block.polygon),
                "text": block.text,
                "confidence": float(block.confidence),
                "language": block.language,
                "lines": [
                    {
                        "polygon": _points(line.polygon),
                        "text": line.text,
                        "confidence": float(line.confidence),
                        "words": [
                            {
                                "text": word.text,
                                "polygon": _points(word.polygon),
                                "confidence": float(word.confidence),
                            }
                            for word in line.words
                        ],
                    }
                    for line in block.lines
                ],
            }
            for block in result.blocks
        ],
        "full_text": result.full_text,
        "languages": list(result.languages),
        "orientation_degrees": int(result.orientation_degrees),
        "skew_degrees": float(result.skew_degrees),
        "preprocessing": list(result.preprocessing),
        "inference_ms": float(result.inference_ms),
    }
