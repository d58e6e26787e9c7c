"""What `visionlog run` prints about late samples: warnings of the logs and stall dumps."""

from __future__ import annotations

import json
from pathlib import Path

from stack.diagnosis import last_stall_dump, notable_lines


def _json(level: str, message: str) -> str:
    return json.dumps(
        {
            "timestamp": "2026-12-07T10:00:00.000Z",
            "level": level,
            "process": "worker-document",
            "message": message,
        }
    )


def test_notable_lines_keep_the_latest_warnings_of_json_and_text_logs(tmp_path: Path) -> None:
    log = tmp_path / "processors.log"
    lines = [
        _json("INFO", "engines ready: ocr"),
        _json("WARNING", "first warning"),
        "· document worker started (pid 12, nice 15)",
        "2026-12-07 10:00:01,000 ERROR [worker-live] processors.worker: text error",
        _json("CRITICAL", "x" * 1000),
        "{not json but starts like it",
    ]
    log.write_text("\n".join(lines) + "\n")
    notable = notable_lines(log, 2)
    assert notable[0].endswith("text error")
    assert notable[1].startswith("2026-12-07T10:00:00.000Z CRITICAL [worker-document] xxx")
    assert len(notable[1]) == 400
    assert notable_lines(log, 10)[0].endswith("[worker-document] first warning")
    assert notable_lines(tmp_path / "absent.log", 5) == []


def test_the_last_stall_dump_is_found(tmp_path: Path) -> None:
    log = tmp_path / "processors.log"
    log.write_text(
        'Timeout (0:05:00)!\nThread 0x1 (most recent call first):\n  File "old.py"\n'
        + _json("INFO", "restarted")
        + "\nTimeout (0:03:00)!\nThread 0x2 (most recent call first):\n"
        + '  File "engines.py", line 84 in _once\n'
    )
    dump = last_stall_dump(log)
    assert dump[0] == "Timeout (0:03:00)!"
    assert dump[-1] == '  File "engines.py", line 84 in _once'
    clean = tmp_path / "clean.log"
    clean.write_text(_json("INFO", "fine") + "\n")
    assert last_stall_dump(clean) == []


def test_the_dump_of_a_worker_that_gave_up_on_a_stuck_stage_is_found(tmp_path: Path) -> None:
    log = tmp_path / "processors.log"
    log.write_text(
        _json(
            "CRITICAL",
            "document worker: a stage has run for 301 s (limit 300 s); writing every "
            "thread's stack and exiting, its inputs are read again after the restart",
        )
        + "\nThread 0x7f01 (most recent call first):\n"
        + '  File "render.py", line 12 in render_page\n'
        + "Current thread 0x7f02 (most recent call first):\n"
    )
    dump = last_stall_dump(log)
    assert dump[0] == "Thread 0x7f01 (most recent call first):"
    assert dump[1].endswith("in render_page")
