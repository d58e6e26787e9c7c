"""Video probing and frame sampling on videos written here with cv2.VideoWriter."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest

from tests.numbered_frames import NumberedFrames
from visionlog.media.errors import MediaRejectedError, RejectReason
from visionlog.media.video import (
    FrameDecodeError,
    FrameSelector,
    SampledFrame,
    frame_timestamp_ms,
    probe_video,
    sample_frames,
)

WIDTH, HEIGHT = 160, 96
FRAMES = NumberedFrames(WIDTH, HEIGHT, bits=8)
frame_with_number = FRAMES.frame
number_in = FRAMES.number_in


def write_video(path: Path, fourcc: str, frames: int, fps: float) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*fourcc), fps, (WIDTH, HEIGHT))
    assert writer.isOpened()
    for number in range(frames):
        writer.write(frame_with_number(number))
    writer.release()
    return path


@pytest.fixture(params=[("MJPG", "avi"), ("mp4v", "mp4")], ids=["mjpg-avi", "mp4v-mp4"])
def video(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    fourcc, extension = request.param
    return write_video(tmp_path / f"clip.{extension}", fourcc, frames=40, fps=20.0)


def test_probe_reports_size_rate_length_and_codec(video: Path) -> None:
    info = probe_video(video)
    assert (info.width, info.height) == (WIDTH, HEIGHT)
    assert info.fps == pytest.approx(20.0)
    assert info.frame_count == 40
    assert info.duration_ms == 2000
    assert info.codec == ("MJPG" if video.suffix == ".avi" else "FMP4")


def test_every_frame_by_default_with_container_timestamps(video: Path) -> None:
    frames = list(sample_frames(video))
    assert [f.frame_index for f in frames] == list(range(40))
    assert [number_in(f.jpeg) for f in frames] == list(range(40))
    assert [f.timestamp_ms for f in frames] == [i * 50 for i in range(40)]
    assert {(f.width, f.height) for f in frames} == {(WIDTH, HEIGHT)}


def test_sampling_at_a_target_rate(video: Path) -> None:
    frames = list(sample_frames(video, target_fps=4.0))
    # 20 fps source, 4 fps target: every 5th frame, 250 ms apart.
    assert [f.frame_index for f in frames] == list(range(0, 40, 5))
    assert [number_in(f.jpeg) for f in frames] == list(range(0, 40, 5))
    assert [f.timestamp_ms for f in frames] == list(range(0, 2000, 250))


def test_sampling_every_n_frames_with_a_cap(video: Path) -> None:
    frames = list(sample_frames(video, every_n=7, max_frames=3))
    assert [(f.frame_index, number_in(f.jpeg)) for f in frames] == [(0, 0), (7, 7), (14, 14)]
    assert [f.timestamp_ms for f in frames] == [0, 350, 700]


def test_jpeg_quality_changes_the_encoding(video: Path) -> None:
    def first(quality: int) -> SampledFrame:
        return next(iter(sample_frames(video, max_frames=1, jpeg_quality=quality)))

    low, high = first(20), first(95)
    assert len(low.jpeg) < len(high.jpeg)
    assert number_in(low.jpeg) == number_in(high.jpeg) == 0
    with pytest.raises(ValueError, match=r"1\.\.100"):
        sample_frames(video, jpeg_quality=0)


def test_target_rate_above_the_source_rate_keeps_every_frame(video: Path) -> None:
    frames = list(sample_frames(video, target_fps=60.0))
    assert len(frames) == 40


def test_rate_and_step_together_are_refused(video: Path) -> None:
    with pytest.raises(ValueError, match="not both"):
        sample_frames(video, target_fps=1.0, every_n=2)


def test_not_a_video_is_corrupt(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video " * 200)
    with pytest.raises(MediaRejectedError) as caught:
        probe_video(junk)
    assert caught.value.reason is RejectReason.CORRUPT
    assert "not a readable video" in caught.value.message


def test_missing_file_is_not_a_rejection(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        probe_video(tmp_path / "absent.avi")


def test_truncated_mp4_without_index_is_corrupt(tmp_path: Path) -> None:
    # mp4v files carry their index (moov) at the end: a cut file cannot be opened.
    source = write_video(tmp_path / "whole.mp4", "mp4v", frames=40, fps=20.0)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    with pytest.raises(MediaRejectedError) as caught:
        probe_video(cut)
    assert caught.value.reason is RejectReason.CORRUPT
    assert (
        caught.value.message == "cut.mp4: not a readable video (no container or stream "
        "OpenCV can open)"
    )


def test_truncated_avi_is_corrupt_naming_the_missing_frames(tmp_path: Path) -> None:
    source = write_video(tmp_path / "whole.avi", "MJPG", frames=40, fps=20.0)
    cut = tmp_path / "cut.avi"
    cut.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    with pytest.raises(MediaRejectedError) as caught:
        sample_frames(cut)
    assert caught.value.reason is RejectReason.CORRUPT
    assert caught.value.message == (
        "cut.avi: the container declares 40 frames but frame 39 cannot be decoded "
        "(truncated or damaged)"
    )


def test_damaged_stream_is_corrupt(tmp_path: Path) -> None:
    source = write_video(tmp_path / "whole.mp4", "mp4v", frames=40, fps=20.0)
    data = bytearray(source.read_bytes())
    start = len(data) // 3
    for offset in range(start, start + 2000, 5):
        data[offset] ^= 0xFF
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(bytes(data))
    with pytest.raises(MediaRejectedError) as caught:
        list(sample_frames(damaged))
    assert caught.value.reason is RejectReason.CORRUPT
    assert "damaged.mp4" in caught.value.message
    assert "truncated or damaged" in caught.value.message


def test_a_video_breaking_off_names_the_frame_after_the_good_ones(tmp_path: Path) -> None:
    source = write_video(tmp_path / "whole.avi", "MJPG", frames=20, fps=10.0)
    data = bytearray(source.read_bytes())
    starts = [at for at in range(len(data) - 2) if data[at : at + 3] == b"\xff\xd8\xff"]
    assert len(starts) == 20
    data[starts[12] : starts[13] - 8] = bytes(starts[13] - 8 - starts[12])
    broken = tmp_path / "broken.avi"
    broken.write_bytes(bytes(data))
    sampled: list[int] = []
    with pytest.raises(FrameDecodeError) as caught:
        for frame in sample_frames(broken, every_n=4):
            sampled.append(frame.frame_index)
    # The frames before the break were yielded; the error says where it broke.
    assert sampled == [0, 4, 8]
    assert caught.value.frame_index == 12
    assert caught.value.reason is RejectReason.CORRUPT


def test_selector_picks_the_first_frame_at_each_tick() -> None:
    # 30 fps source (33.3 ms steps, rounded) sampled at 2 fps: one frame per 500 ms.
    selector = FrameSelector(target_fps=2.0, every_n=None)
    picked = [i for i in range(90) if selector.wants(i, round(i * 1000 / 30))]
    assert picked == [0, 15, 30, 45, 60, 75]


def test_selector_skips_ticks_after_a_gap() -> None:
    selector = FrameSelector(target_fps=10.0, every_n=None)
    assert [selector.wants(i, t) for i, t in enumerate([0, 40, 100, 450, 480, 500])] == [
        True,
        False,
        True,
        True,
        False,
        True,
    ]


def test_timestamp_falls_back_to_index_over_fps() -> None:
    assert frame_timestamp_ms(0, 0.0, 25.0) == 0
    assert frame_timestamp_ms(10, 0.0, 25.0) == 400
    assert frame_timestamp_ms(10, 401.2, 25.0) == 401
    assert frame_timestamp_ms(10, float("nan"), 0.0) == 0
