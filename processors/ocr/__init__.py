"""OCR: PP-OCRv6 on OpenVINO with document clean-up, orientation and layout analysis.

Typical use::

    engine = OpenVinoOcrEngine(OpenVinoRuntime.from_settings(settings))
    result = OcrPipeline(engine, probe=engine).read(bgr_image)

Workers take theirs from the stage context (`ctx.engines.ocr()`), which reads several
pages at once.
    fields = text_recognized_fields(result)
"""

from processors.ocr.engine import OcrEngine, OpenVinoOcrEngine, RecognisedLine, TextLineProbe
from processors.ocr.pipeline import OcrPipeline, PipelineOptions
from processors.ocr.record import text_recognized_fields
from processors.ocr.result import OcrBlock, OcrLine, OcrResult, OcrWord

__all__ = [
    "OcrBlock",
    "OcrEngine",
    "OcrLine",
    "OcrPipeline",
    "OcrResult",
    "OcrWord",
    "OpenVinoOcrEngine",
    "PipelineOptions",
    "RecognisedLine",
    "TextLineProbe",
    "text_recognized_fields",
]
