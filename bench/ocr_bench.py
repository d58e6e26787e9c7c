"""OCR benchmark: throughput and character error rate on generated document pages.

Run by hand: ``.venv/bin/python bench/ocr_bench.py [--pages 10] [--rounds 2]
[--parallel N] [--no-tesseract]``. Check `uptime` first: only a quiet machine gives
comparable figures.

Ten pages of English and German prose are rendered with known text, and stored as PNG
bytes as the renderer stores pages. Each set of pages (clean copies, and distorted copies:
turned, skewed, noisy, faded, photographed) is read side by side in one run by

- **stage**: what the OCR stage does with a page's blob bytes: PNG decode, the full
  pipeline (clean-up, orientation, skew, OCR, layout) and the TextRecognized fields, with
  several pages at once as the document worker runs them (its stage threads; the engines'
  `ocr_parallel_pages` admits that many at a time);
- **engine**: the engine alone (`read_lines`) on the decoded pages, the same number of
  pages at once.

Both use the worker's engine (`Engines(settings).ocr()`). Rounds alternate and the best
of each side is kept. The Tesseract binary (`-l deu+eng`), when installed, reads the same
images one at a time for comparison.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from processors.engines import Engines, parallel_pages
from processors.ocr.metrics import character_error_rate
from processors.ocr.stage import read_page
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

    @property
    def pages_per_minute(self) -> float:
        return 60.0 * self.pages / self.seconds if self.seconds else 0.0

    @property
    def mean_cer(self) -> float:
        return self.cer / self.pages if self.pages else 0.0


def timed_pages(read: Callable[[int], str], count: int, texts: Sequence[str], threads: int) -> Run:
    """Read pages 0..count-1 on `threads` threads; wall time, mean CER against `texts`."""
    started = time.perf_counter()
    if threads > 1:
        with ThreadPoolExecutor(threads, "page") as pool:
            read_texts = list(pool.map(read, range(count)))
    else:
        read_texts = [read(index) for index in range(count)]
    seconds = time.perf_counter() - started
    cer = sum(character_error_rate(t, r) for t, r in zip(texts, read_texts, strict=True))
    return Run(seconds, cer, count)


def png(image: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return encoded.tobytes()


def decode(data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError("page does not decode")
    return np.asarray(image, np.uint8)


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
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--parallel", type=int, default=0, help="pages at once (default: ocr_parallel_pages)"
    )
    parser.add_argument("--no-tesseract", action="store_true")
    args = parser.parse_args()
    use_tesseract = not args.no_tesseract and shutil.which("tesseract") is not None
    settings = get_settings()
    if args.parallel:
        settings = settings.model_copy(
            update={
                "processors": settings.processors.model_copy(
                    update={"ocr_parallel_pages": args.parallel}
                )
            }
        )
    parallel = parallel_pages(settings)
    # The document worker runs stages on 2 x CPUs threads (at least 4); the pipeline lets
    # `parallel` of them read at once.
    stage_threads = max(4, 2 * (os.cpu_count() or 1), parallel)
    pipeline = Engines(settings).ocr()
    engine = pipeline.engine
    pages = generate_pages(args.pages)
    sets: dict[str, list[tuple[str, np.ndarray]]] = {"clean": [], "distorted": []}
    for index, page in enumerate(pages):
        name, distort = DISTORTIONS[index % len(DISTORTIONS)]
        sets["clean"].append(("clean", page.image))
        sets["distorted"].append((name, distort(page.image)))
    texts = [page.text for page in pages]
    # Warm-up: first inferences allocate buffers for new shapes.
    pipeline.read_many([image for _, image in sets["distorted"][:parallel]])

    results: dict[tuple[str, str], Run] = {}
    for _ in range(args.rounds):
        for condition, images in sets.items():
            blobs = [png(image) for _, image in images]
            decoded = [decode(data) for data in blobs]
            readers: dict[str, tuple[Callable[[int], str], int]] = {
                "stage": (
                    lambda i, blobs=blobs: str(read_page(pipeline, decode(blobs[i]))["full_text"]),
                    stage_threads,
                ),
                "engine": (
                    lambda i, decoded=decoded: "\n".join(
                        line.text for line in engine.read_lines(decoded[i])
                    ),
                    parallel,
                ),
            }
            for reader, (read, threads) in readers.items():
                run = timed_pages(read, len(images), texts, threads)
                best = results.get((condition, reader))
                if best is None or run.pages_per_minute > best.pages_per_minute:
                    results[(condition, reader)] = run
    if use_tesseract:
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            for condition, images in sets.items():
                results[(condition, "tesseract")] = timed_pages(
                    lambda i, images=images: tesseract_text(images[i][1], workdir),
                    len(images),
                    texts,
                    1,
                )

    load_average = " ".join(f"{value:.2f}" for value in os.getloadavg())
    print(
        f"{args.pages} pages per set, best of {args.rounds} rounds, {parallel} pages at once "
        f"({stage_threads} stage threads), load average {load_average} (after the run)"
    )
    print(f"{'set':<10} {'reader':<10} {'pages/min':>10} {'mean CER':>9}")
    for (condition, reader), run in results.items():
        print(f"{condition:<10} {reader:<10} {run.pages_per_minute:>10.1f} {run.mean_cer:>9.4f}")
    print()
    for condition in sets:
        full, bare = results[(condition, "stage")], results[(condition, "engine")]
        print(
            f"{condition}: stage/engine throughput ratio "
            f"{full.pages_per_minute / bare.pages_per_minute:.2f}"
        )
        if use_tesseract:
            tess = results[(condition, "tesseract")]
            print(
                f"{condition}: CER stage {full.mean_cer:.4f} vs tesseract {tess.mean_cer:.4f}; "
                f"throughput stage/tesseract {full.pages_per_minute / tess.pages_per_minute:.2f}"
            )
    if not use_tesseract:
        print("tesseract not run (missing binary or --no-tesseract)")


if __name__ == "__main__":
    main()
