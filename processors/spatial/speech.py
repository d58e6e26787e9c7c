"""Speaking the scene sentences with espeak-ng (Debian package `espeak-ng`) into WAV files."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path

ESPEAK = "espeak-ng"
TIMEOUT_S = 30.0


class SpeechUnavailableError(RuntimeError):
    """espeak-ng is not installed, or failed."""


def _binary() -> str:
    path = shutil.which(ESPEAK)
    if path is None:
        raise SpeechUnavailableError(
            f"{ESPEAK} is not installed (Debian: apt-get install espeak-ng); "
            "it is needed when speech output is enabled"
        )
    return path


@cache
def espeak_version() -> str:
    """The version espeak-ng reports, e.g. `1.51`."""
    output = subprocess.run(
        [_binary(), "--version"], capture_output=True, text=True, check=True, timeout=TIMEOUT_S
    ).stdout
    match = re.search(r"text-to-speech:\s*([\w.\-]+)", output)
    return match.group(1) if match else output.strip()


def render_speech(text: str, language: str) -> bytes:
    """WAV bytes of `text` spoken with the espeak-ng voice of `language` (ISO 639-1)."""
    if not text.strip():
        raise ValueError("cannot speak an empty text")
    if not re.fullmatch(r"[a-z]{2,3}(?:-[a-z0-9]+)?", language):
        raise ValueError(f"not a language code for a voice: {language!r}")
    with tempfile.TemporaryDirectory(prefix="visionlog-speech-") as folder:
        target = Path(folder) / "speech.wav"
        # The text goes in on stdin, so nothing in it is read as an option.
        result = subprocess.run(
            [_binary(), "-v", language, "-w", str(target), "--stdin"],
            input=text,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
        if result.returncode != 0 or not target.is_file():
            raise SpeechUnavailableError(
                f"{ESPEAK} failed for voice {language!r} (exit {result.returncode}): "
                f"{result.stderr.strip()}"
            )
        return target.read_bytes()


def speak_sentences(sentences: dict[str, str], enabled: bool) -> dict[str, bytes]:
    """WAV bytes per language, or nothing when speech output is disabled."""
    if not enabled:
        return {}
    return {language: render_speech(text, language) for language, text in sorted(sentences.items())}
