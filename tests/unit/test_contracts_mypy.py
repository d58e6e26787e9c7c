"""mypy catches a wrong field of an event record, built or read, through the generated typed
records; a correct use passes, and the correct record also passes the run-time check.

One mypy run (in process, the project's configuration, its own cache under .mypy_cache so it
is warm after the first run) checks three files: a correct use, a wrong one whose every
wrong line carries an `# error: <what mypy must say>` marker, and the module generated from
the edge-case catalogue.
"""

from __future__ import annotations

import re
import runpy
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.unit.contract_catalogs import edge_case_catalog
from visionlog.contracts import codegen, validate_record

mypy_api = pytest.importorskip("mypy.api")

ROOT = Path(__file__).resolve().parents[2]

CORRECT = """
from datetime import UTC, datetime

from visionlog.contracts import (
    EVENT_TYPES,
    Detection,
    EventRecord,
    ObjectsDetected,
    typed_record,
    validate_record,
)


def build() -> ObjectsDetected:
    # Defaulted fields (causation_id, owner_id, trace_id, page_number, ...) may be left out.
    return {
        "envelope": {
            "event_id": "6c1d1f5e-3f39-4b5e-9f64-0c3c9f6a7b10",
            "event_type": "ObjectsDetected",
            "schema_version": 1,
            "occurred_at": datetime(2026, 5, 1, tzinfo=UTC),
            "producer": "tests/0",
            "correlation_id": "media-1",
            "tenant_id": "tests",
        },
        "media_id": "media-1",
        "item": {
            "media_id": "media-1",
            "image": {
                "bucket": "media",
                "key": "media-1/original.jpg",
                "sha256": "0" * 64,
                "size_bytes": 10,
                "content_type": "image/jpeg",
            },
        },
        "image_width": 640,
        "image_height": 480,
        "detections": [
            {
                "class_id": 0,
                "class_name": "person",
                "confidence": 0.9,
                "box": {"x_min": 0.0, "y_min": 0.0, "x_max": 10.0, "y_max": 20.0},
            }
        ],
        "model": {"name": "nanodet-coco", "version": "1", "source": "tests"},
        "score_threshold": 0.35,
        "inference_ms": 12,
    }


def widest(record: ObjectsDetected) -> float:
    return max((d["box"]["x_max"] - d["box"]["x_min"] for d in record["detections"]), default=0.0)


def track(detection: Detection) -> int | None:
    return detection["track_id"]


def decoded(event_type: str, record: dict[str, object]) -> str:
    detected = typed_record(ObjectsDetected, event_type, record)
    return detected["envelope"]["occurred_at"].isoformat()


def any_event(record: EventRecord) -> str:
    return record["envelope"]["event_id"]


validate_record("ObjectsDetected", build())
RECORD_TYPE: type = EVENT_TYPES["ObjectsDetected"]
"""

WRONG = """
from datetime import datetime

from visionlog.contracts import BoundingBox, Detection, MediaKind, ModelRef, ObjectsDetected

BOX: BoundingBox = {
    "x_min": 0.0,
    "y_min": 0.0,
    "x_max": "wide",  # error: TypedDict item "x_max" has type "float"
    "y_max": 1.0,
}
MODEL: ModelRef = {
    "name": "nanodet",
    "version": "1",
    "source": "tests",
    "licence": 3,  # error: TypedDict item "licence" has type "str | None"
}
KIND: MediaKind = "GIF"  # error: variable has type "Literal['UNKNOWN', 'IMAGE', 'PDF', 'VIDEO']"
DETECTION: Detection = {  # error: Extra key "track_idd" for TypedDict "Detection"
    "class_id": 0,
    "class_name": "person",
    "confidence": 0.9,
    "box": BOX,
    "track_idd": 1,
}


def build(envelope_time: int) -> ObjectsDetected:
    # mypy reports missing and unknown keys where the dict starts.
    return {  # error: Missing key "detections" # error: Extra key "detectionz"
        "envelope": {
            "event_id": "e",
            "event_type": "ObjectsDetected",
            "schema_version": 1,
            "occurred_at": envelope_time,  # error: TypedDict item "occurred_at" has type "datetime"
            "producer": "tests/0",
            "correlation_id": "m",
            "tenant_id": "t",
        },
        "media_id": "m",
        "item": {
            "media_id": "m",
            "image": {
                "bucket": "b",
                "key": "k",
                "sha256": "s",
                "size_bytes": 1,
                "content_type": "image/jpeg",
            },
        },
        "image_width": "640",  # error: TypedDict item "image_width" has type "int"
        "image_height": 480,
        "detectionz": [DETECTION],
        "model": MODEL,
        "score_threshold": 0.35,
        "inference_ms": 12.5,
    }


def media(record: ObjectsDetected) -> str:
    return record["medai_id"]  # error: TypedDict "ObjectsDetected" has no key "medai_id"


def width(record: ObjectsDetected) -> str:
    return record["image_width"]  # error: return value type (got "int", expected "str")


def track(detection: Detection) -> int:
    return detection["track_id"]  # error: (got "int | None", expected "int")


def seen(record: ObjectsDetected) -> datetime:
    return record["envelope"]["occured_at"]  # error: TypedDict "Envelope" has no key "occured_at"
"""

_MARKER = re.compile(r"# error: ([^#]+)")
_MYPY_LINE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): (?P<severity>error|note): (?P<text>.*)$")


@dataclass(frozen=True)
class MypyReport:
    output: str
    errors: dict[str, dict[int, list[str]]]  # file name -> line -> messages


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MypyReport]:
    folder = tmp_path_factory.mktemp("contracts_mypy")
    files = {
        "correct_use.py": CORRECT,
        "wrong_use.py": WRONG,
        "edge_events.py": codegen.render(edge_case_catalog(folder / "catalog")),
    }
    for name, text in files.items():
        (folder / name).write_text(text)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(ROOT)  # so mypy finds the project's packages
        stdout, stderr, _ = mypy_api.run(
            [
                "--config-file",
                str(ROOT / "pyproject.toml"),
                "--cache-dir",
                str(ROOT / ".mypy_cache" / "contracts-tests"),
                # Imported project modules are analysed but their errors (others' work in
                # progress) are not this test's business.
                "--follow-imports=silent",
                "--no-pretty",
                "--no-error-summary",
                "--show-error-codes",
                *(str(folder / name) for name in files),
            ]
        )
    errors: dict[str, dict[int, list[str]]] = {name: {} for name in files}
    for line in stdout.splitlines():
        match = _MYPY_LINE.match(line)
        if match and match["severity"] == "error":
            name = Path(match["file"]).name
            errors.setdefault(name, {}).setdefault(int(match["line"]), []).append(match["text"])
    yield MypyReport(output=stdout + stderr, errors=errors)


def test_a_correct_use_passes_mypy(report: MypyReport) -> None:
    assert report.errors["correct_use.py"] == {}, report.output


def test_the_correct_record_also_passes_the_run_time_check(tmp_path: Path) -> None:
    (tmp_path / "correct_use.py").write_text(CORRECT)
    namespace = runpy.run_path(str(tmp_path / "correct_use.py"))
    validate_record("ObjectsDetected", namespace["build"]())


def test_mypy_reports_every_wrong_field_where_it_is(report: MypyReport) -> None:
    expected = {
        number: [fragment.strip() for fragment in _MARKER.findall(line)]
        for number, line in enumerate(WRONG.splitlines(), start=1)
        if _MARKER.search(line)
    }
    found = report.errors["wrong_use.py"]
    assert sum(len(fragments) for fragments in expected.values()) == 12
    for number, fragments in expected.items():
        messages = found.get(number, [])
        for fragment in fragments:
            assert any(fragment in message for message in messages), (
                f"line {number}: expected an error with {fragment!r}, mypy said {messages}\n"
                f"{report.output}"
            )
    # Nothing else is wrong: mypy points at the marked lines only.
    assert set(found) == set(expected), report.output


def test_the_edge_case_module_passes_mypy_strict(report: MypyReport) -> None:
    assert report.errors["edge_events.py"] == {}, report.output
