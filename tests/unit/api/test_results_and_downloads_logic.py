"""Who sees originals, item order helpers and the results cursor (no servers)."""

from __future__ import annotations

import pytest

from api.auth.roles import ROLE_PERMISSIONS, Permission, Principal, Role
from api.problems import ApiError
from api.readmodels import encode_cursor, item_fields
from api.routes.downloads import sees_originals
from api.routes.results import STAGE_EVENT_TYPES, _decode, is_camera_media


@pytest.mark.parametrize(
    ("role", "sees"),
    [(Role.ADMIN, True), (Role.OPERATOR, True), (Role.USER, True), (Role.VIEWER, False)],
)
def test_only_viewers_are_limited_to_anonymised_copies(role: Role, sees: bool) -> None:
    assert (Permission.READ_ORIGINALS in ROLE_PERMISSIONS[role]) is sees
    principal = Principal(user_id="u1", username="x", role=role, tenant_id="t")
    assert sees_originals(principal) is sees


@pytest.mark.parametrize(
    ("label", "page", "frame"),
    [
        ("page-0003", 3, None),
        ("page-12345", 12345, None),
        ("frame-00000042", None, 42),
        ("original", None, None),
        ("media", None, None),
        ("page-x", None, None),
    ],
)
def test_item_fields_from_labels(label: str, page: int | None, frame: int | None) -> None:
    assert item_fields(label) == {"page_number": page, "frame_index": frame}


def test_stage_event_types_name_every_result_event() -> None:
    assert STAGE_EVENT_TYPES["ocr"] == "TextRecognized"
    assert STAGE_EVENT_TYPES["outputs"] == "OutputGenerated"
    assert STAGE_EVENT_TYPES["anonymise"] == "MediaRedacted"


def test_camera_media_by_source_or_camera() -> None:
    assert is_camera_media({"source": "CAMERA", "camera_id": None})
    assert is_camera_media({"source": "HTTP", "camera_id": "gate"})
    assert not is_camera_media({"source": "HTTP", "camera_id": None})


def test_results_cursor_keeps_its_order() -> None:
    cursor = encode_cursor(["newest", 2, 3, "page-0003", "ocr", "ocr==1", ""])
    assert _decode(cursor, None) == ("newest", [2, 3, "page-0003", "ocr", "ocr==1", ""])
    assert _decode(cursor, "newest")[0] == "newest"
    with pytest.raises(ApiError) as mismatch:
        _decode(cursor, "oldest")
    assert mismatch.value.status == 400
    for bad in (
        encode_cursor(["sideways", 2, 3, "page-0003", "ocr", "ocr==1", ""]),
        encode_cursor([2, 3, "page-0003", "ocr", "ocr==1", ""]),
        encode_cursor(["oldest", "2", 3, "page-0003", "ocr", "ocr==1", ""]),
    ):
        with pytest.raises(ApiError):
            _decode(bad, None)
