"""Per-key state tables keep faust's false idle reports about their changelogs out of the logs."""

from __future__ import annotations

import logging

import faust
import pytest
from faust.types import TP

from processors.keyed_state import keyed_table
from visionlog.settings import Settings

IDLE = "Stream has not started processing %r (started %s)."


def _emit(caplog: pytest.LogCaptureFixture, topic: str) -> list[str]:
    caplog.clear()
    driver = logging.getLogger("faust.transport.drivers.aiokafka")
    with caplog.at_level(logging.ERROR, logger=driver.name):
        driver.error(IDLE, TP(topic, 3), "5 minutes ago")
    return [record.getMessage() for record in caplog.records]


def test_idle_reports_about_table_changelogs_are_dropped_and_others_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = Settings()
    app = faust.App("keyed-state-test", broker="kafka://127.0.0.1:1", autodiscover=False)
    table = keyed_table(app, "tracks", "state.live.tracks", settings)
    changelog = table.changelog_topic.get_topic_name()
    assert changelog.endswith("state.live.tracks")
    assert _emit(caplog, changelog) == []
    kept = _emit(caplog, f"{settings.kafka.topic_prefix}media.frames")
    assert len(kept) == 1 and "media.frames" in kept[0]
