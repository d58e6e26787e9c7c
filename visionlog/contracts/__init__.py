"""Typed event records: the Avro contracts in `schemas/avro` as `TypedDict`s, and their checks.

Build and read events through these types so mypy catches a misspelled or mistyped field:

    from visionlog.contracts import ObjectsDetected, typed_record, validate_record

    record: ObjectsDetected = {"envelope": ..., "media_id": ..., ...}   # checked by mypy
    validate_record("ObjectsDetected", record)                          # checked at run time
    detected = typed_record(ObjectsDetected, event.event_type, event.record)  # a decoded one

The records live in the generated module `visionlog.contracts.events` (regenerate it with
`python -m visionlog.contracts.codegen` after a contract change; a unit test fails while it
is stale).
"""

from visionlog.contracts import events as _events
from visionlog.contracts.events import *  # noqa: F403 (the generated records, by their __all__)
from visionlog.contracts.validation import RecordContractError, typed_record, validate_record

__all__ = [*_events.__all__, "RecordContractError", "typed_record", "validate_record"]
