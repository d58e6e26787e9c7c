"""espeak-ng speaks the scene sentences into valid WAV files that grow with the text."""

from __future__ import annotations

import io
import wave

import pytest

from processors.spatial.speech import render_speech, speak_sentences


def wav_duration_s(data: bytes) -> float:
    with wave.open(io.BytesIO(data)) as audio:
        assert audio.getnchannels() == 1
        assert audio.getsampwidth() == 2
        return float(audio.getnframes()) / float(audio.getframerate())


@pytest.mark.parametrize(
    ("language", "short", "long"),
    [
        ("en", "A bus.", "Two people stand left of a bus, about 6 m away; also visible: a dog."),
        ("de", "Ein Bus.", "Zwei Personen stehen links von einem Bus, etwa 6 m entfernt."),
    ],
)
def test_wav_is_valid_and_grows_with_text(language: str, short: str, long: str) -> None:
    short_s = wav_duration_s(render_speech(short, language))
    long_s = wav_duration_s(render_speech(long, language))
    assert 0 < short_s < long_s
    assert long_s > 2 * short_s


def test_disabled_speech_renders_nothing() -> None:
    assert speak_sentences({"en": "Hello.", "de": "Hallo."}, enabled=False) == {}
    spoken = speak_sentences({"en": "Hello.", "de": "Hallo."}, enabled=True)
    assert sorted(spoken) == ["de", "en"]
    assert all(wav_duration_s(audio) > 0 for audio in spoken.values())


def test_bad_requests_are_rejected() -> None:
    with pytest.raises(ValueError, match="empty"):
        render_speech("  ", "en")
    with pytest.raises(ValueError, match="language code"):
        render_speech("Hello", "-w /tmp/x")
