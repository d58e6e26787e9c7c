"""OCR benchmark: throughput and character error rate on generated document pages.

Run by hand: ``.venv/bin/python bench/ocr_bench.py [--pages 10] [--no-tesseract]``.

Ten pages of English and German prose are rendered with known text. Each page is read
(1) by the full pipeline (clean-up, orientation, skew, OCR, layout) and (2) by a direct
engine call, side by side in one run, on clean copies and on distorted copies (turned,
skewed, noisy, faded, photographed). The Tesseract binary (`-l deu+eng`), when installed,
reads the same images for comparison.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from processors.ocr import OcrPipeline, OpenVinoOcrEngine
from processors.ocr.metrics import character_error_rate
from processors.ocr.synthetic import Page, add_noise, fade, photograph, render_lines, turn
from visionlog.settings import get_settings

ENGLISH = (
    "The annual meeting of the board will take place on the second Tuesday of May. "
    "All members are asked to confirm their attendance by the end of April. "
    "The agenda includes the budget for next year, the new office lease and the audit. "
    "Please bring the signed minutes of the last meeting and any open invoices. "
    "Travel costs are refunded against receipts within thirty days of the meeting. "
    "Questions about the agenda can be sent to the secretary at any time before then. "
    "The warehouse will be closed for inventory from the first to the third of June. "
    "Orders placed during this period are shipped on the following Monday. "
    "We apologise for any inconvenience and thank you for your understanding."
)
GERMAN = (
    "Die Jahresversammlung des Vorstands findet am zweiten Dienstag im Mai statt. "
    "Alle Mitglieder werden gebeten, ihre Teilnahme bis Ende April zu bestätigen. "
    "Auf der Tagesordnung stehen der Haushalt, der neue Mietvertrag und die Prüfung. "
    "Bitte bringen Sie das unterschriebene Protokoll und offene Rechnungen mit. "
    "Reisekosten werden gegen Belege innerhalb von dreißig Tagen erstattet. "
    "Für Rückfragen zur Tagesordnung steht Ihnen die Geschäftsführung gern zur Verfügung. "
    "Das Lager bleibt wegen der Inventur vom ersten bis dritten Juni geschlossen. "
    "Bestellungen aus diesem Zeitraum werden am darauffolgenden Montag verschickt. "
    "Wir bitten um Verständnis und danken Ihnen für Ihre Geduld und Mühe."
)

Distortion = Callable[[np.ndarray], np.ndarray]
DISTORTIONS: list[tuple[str, Distortion]] = [
    ("turned 90", lambda image: turn(image, 90)),
    ("turned 180", lambda image: turn(image, 180)),
    ("turned 270", lambda image: turn(image, 270)),
    ("skewed +6", lambda image: turn(image, 6)),
    ("skewed -9", lambda image: turn(image, -9)),
    ("noisy", lambda image: add_noise(image, 25, seed=7)),
    ("faded", lambda image: fade(image, 115, 175)),
    ("photographed", lambda image: photograph(image, seed=11)),
    ("turned 270, skewed +4", lambda image: turn(turn(image, 270), 4)),
    ("clean", lambda image: image),
]


def wrap(text: str, width: int) -> list[str]:
    lines: list[str] = []
    current = ""
    for word in text.split():
        if current and len(current) + 1 + len(word) > width:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}".strip()
    if current:
        lines.append(current)
    return lines


def generate_pages(count: int) -> list[Page]:
    """Pages alternating English and German, each starting at a different sentence."""
    pages = []
    for index in range(count):
        source = ENGLISH if index % 2 == 0 else GERMAN
        sentences = source.split(". ")
        shift = index // 2 % len(sentences)
        text = ". ".join(sentences[shift:] + sentences[:shift])
        pages.append(render_lines(wrap(text, 62)[:14], width=1000, font_size=22, line_gap=0.6))
    return pages


@dataclass
class Run:
    seconds: float = 0.0
    cer: float = 0.0
    pages: int = 0

    def add(self, seconds: float, cer: float) -> None:
        self.seconds += seconds
        self.cer += cer
        self.pages += 1

    @property
    def pages_per_minute(self) -> float:
        return 60.0 * self.pages / self.seconds if self.seconds else 0.0

    @property
    def mean_cer(self) -> float:
        return self.cer / self.pages if self.pages else 0.0


def tesseract_text(image: np.ndarray, workdir: Path) -> str:
    path = workdir / "page.png"
    cv2.imwrite(str(path), image)
    completed = subprocess.run(
        ["tesseract", str(path), "stdout", "-l", "deu+eng"],
        capture_output=True,
        text=True,
        check=True,
    )
    return completed.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pages", type=int, default=10)
    parser.add_argument("--no-tesseract", action="store_true")
    args = parser.parse_args()
    use_tesseract = not args.no_tesseract and shutil.which("tesseract") is not None

    engine = OpenVinoOcrEngine(threads=get_settings().processors.inference_threads)
    pipeline = OcrPipeline(engine, probe=engine)
    pages = generate_pages(args.pages)
    # Warm-up: first inferences allocate buffers for new shapes.
    pipeline.read(pages[0].image)

    results: dict[tuple[str, str], Run] = {}
    print(f"{'page':>4}  {'condition':<22} {'pipeline':>9} {'engine':>9} {'tesseract':>9}  (CER)")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)

        def read_pipeline(image: np.ndarray) -> str:
            return pipeline.read(image).full_text

        def read_engine(image: np.ndarray) -> str:
            return "\n".join(line.text for line in engine.read_lines(image))

        def read_tesseract(image: np.ndarray) -> str:
            return tesseract_text(image, workdir)

        readers: list[tuple[str, Callable[[np.ndarray], str]]] = [
            ("pipeline", read_pipeline),
            ("engine", read_engine),
        ]
        if use_tesseract:
            readers.append(("tesseract", read_tesseract))
        for index, page in enumerate(pages):
            name, distort = DISTORTIONS[index % len(DISTORTIONS)]
            for condition, image in (("clean", page.image), ("distorted", distort(page.image))):
                row = []
                for reader, read in readers:
                    started = time.perf_counter()
                    text = read(image)
                    elapsed = time.perf_counter() - started
                    cer = character_error_rate(page.text, text)
                    results.setdefault((condition, reader), Run()).add(elapsed, cer)
                    row.append(f"{cer:9.3f}")
                label = "clean" if condition == "clean" else name
                print(f"{index:>4}  {label:<22} {' '.join(row)}")

    print()
    print(f"{'set':<10} {'reader':<10} {'pages/min':>10} {'mean CER':>9}")
    for (condition, reader), run in results.items():
        print(f"{condition:<10} {reader:<10} {run.pages_per_minute:>10.1f} {run.mean_cer:>9.4f}")
    print()
    for condition in ("clean", "distorted"):
        full, bare = results[(condition, "pipeline")], results[(condition, "engine")]
        print(
            f"{condition}: pipeline/engine throughput ratio "
            f"{full.pages_per_minute / bare.pages_per_minute:.2f}"
        )
        if use_tesseract:
            tess = results[(condition, "tesseract")]
            print(
                f"{condition}: CER pipeline {full.mean_cer:.4f} vs tesseract {tess.mean_cer:.4f}; "
                f"throughput pipeline/tesseract {full.pages_per_minute / tess.pages_per_minute:.2f}"
            )
    if not use_tesseract:
        print("tesseract not run (missing binary or --no-tesseract)")


if __name__ == "__main__":
    main()
