"""Which list_offsets errors mean "ask again": leaders of fresh topics not yet elected."""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException

from visionlog.kafka import _leader_pending


def test_leader_elections_in_progress_are_retried() -> None:
    for code in (
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
    ):
        assert _leader_pending(KafkaException(KafkaError(code)))


def test_other_errors_are_raised() -> None:
    assert not _leader_pending(KafkaException(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED)))
    assert not _leader_pending(KafkaException("no error object"))
