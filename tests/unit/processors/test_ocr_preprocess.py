"""Document clean-up steps on rendered pages (no models)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from processors.ocr.geometry import transform_points
from processors.ocr.preprocess import (
    contrast_range,
    crop_page,
    denoise,
    deskew,
    enhance_contrast,
    estimate_noise,
    estimate_skew,
    find_page_quad,
    rotate,
    to_bgr,
)
from processors.ocr.synthetic import Page, add_noise, fade, photograph, render_lines, turn

LINES = [
    "The quarterly report shows steady growth in all regions.",
    "Die Ergebnisse für das dritte Quartal sind erfreulich.",
    "Please review the attached figures before Friday.",
    "Bitte prüfen Sie die Zahlen bis Freitag.",
]


@pytest.fixture(scope="module")
def page() -> Page:
    return render_lines(LINES, width=800, font_size=22)


def test_noise_estimate_tracks_added_noise(page: Page) -> None:
    grey = np.full((200, 300, 3), 128, np.uint8)
    assert estimate_noise(grey) == 0.0
    # Independent noise per channel shrinks in the grey conversion by the weights' norm.
    grey_sigma = 20 * float(np.linalg.norm([0.114, 0.587, 0.299]))
    assert estimate_noise(add_noise(grey, 20)) == pytest.approx(grey_sigma, rel=0.1)
    assert estimate_noise(add_noise(grey[..., 0], 20)) == pytest.approx(20, rel=0.1)
    # On white paper half the noise clips at 255, but it still stands out clearly.
    assert estimate_noise(page.image) < 5 < estimate_noise(add_noise(page.image, 20))


def test_denoise_only_acts_on_noisy_pages(page: Page) -> None:
    assert not denoise(page.image).applied
    noisy = add_noise(page.image, 25)
    result = denoise(noisy)
    assert result.applied and result.name == "denoise"
    assert estimate_noise(result.image) < 0.6 * estimate_noise(noisy)
    assert denoise(noisy, method="nlmeans").applied


def test_contrast_is_stretched_only_when_faded(page: Page) -> None:
    assert not enhance_contrast(page.image).applied
    faded = fade(page.image)
    assert contrast_range(faded) < 70
    result = enhance_contrast(faded)
    assert result.applied and contrast_range(result.image) > 200


def test_adaptive_threshold_is_an_explicit_option(page: Page) -> None:
    result = enhance_contrast(fade(page.image), method="adaptive_threshold")
    assert result.applied and result.name == "adaptive_threshold"
    assert set(np.unique(result.image)) <= {0, 255}


@pytest.mark.parametrize("degrees", [-7.0, -2.5, 4.0, 9.0])
def test_skew_is_estimated_from_the_text(page: Page, degrees: float) -> None:
    assert estimate_skew(turn(page.image, degrees)) == pytest.approx(degrees, abs=0.6)


def test_deskew_straightens_and_reports(page: Page) -> None:
    skewed = turn(page.image, 6.0)
    result = deskew(skewed)
    assert result.applied and result.measure == pytest.approx(6.0, abs=0.6)
    assert abs(estimate_skew(result.image)) < 0.6
    assert not deskew(page.image).applied


def test_rotation_matrix_maps_pixels_to_their_new_place() -> None:
    image = np.zeros((40, 60, 3), np.uint8)
    image[5, 10] = 255
    for degrees in (90.0, 180.0, 270.0, 30.0):
        result = rotate(image, degrees, fill=(0, 0, 0))
        x, y = transform_points(np.array([[10.0, 5.0]]), result.matrix)[0]
        brightest = np.unravel_index(result.image[..., 0].argmax(), result.image.shape[:2])
        assert (brightest[1], brightest[0]) == pytest.approx((x, y), abs=1.0)
    assert not rotate(image, 0.0).applied


def test_photographed_page_is_found_and_flattened(page: Page) -> None:
    photo = photograph(page.image, seed=5)
    quad = find_page_quad(photo)
    assert quad is not None
    result = crop_page(photo)
    assert result.applied and result.name == "perspective_crop"
    height, width = result.image.shape[:2]
    assert width == pytest.approx(page.image.shape[1], rel=0.1)
    assert height == pytest.approx(page.image.shape[0], rel=0.1)
    # The page's corners land on the output's corners.
    corners = transform_points(quad, result.matrix)
    assert corners[0] == pytest.approx([0, 0], abs=2)


def test_a_frame_printed_on_a_scan_is_not_a_page(page: Page) -> None:
    framed = cv2.rectangle(page.image.copy(), (20, 20), (780, 230), (0, 0, 0), 3)
    assert not crop_page(framed).applied
    assert not crop_page(page.image).applied


def test_to_bgr_accepts_grey_and_alpha() -> None:
    assert to_bgr(np.zeros((4, 5), np.uint8)).shape == (4, 5, 3)
    assert to_bgr(np.zeros((4, 5, 4), np.uint8)).shape == (4, 5, 3)
    with pytest.raises(ValueError, match="unsupported"):
        to_bgr(np.zeros((4, 5, 2), np.uint8))
