"""Schema registry behind a small interface.

The platform talks to any Confluent-compatible registry (Apicurio's ccompat API locally,
Confluent or Karapace in production) through confluent-kafka's client.
"""

from __future__ import annotations

from typing import Protocol

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient, SchemaRegistryError

from visionlog.settings import RegistrySettings

COMPATIBILITY_LEVELS = frozenset(
    {
        "NONE",
        "BACKWARD",
        "BACKWARD_TRANSITIVE",
        "FORWARD",
        "FORWARD_TRANSITIVE",
        "FULL",
        "FULL_TRANSITIVE",
    }
)


class RegistryError(RuntimeError):
    """The registry refused a request or could not be reached."""


class IncompatibleSchemaError(RegistryError):
    """A schema was rejected because it breaks the subject's compatibility rule."""


class SchemaRegistry(Protocol):
    def register(self, subject: str, schema_str: str) -> int: ...

    def schema_by_id(self, schema_id: int) -> str: ...

    def is_compatible(self, subject: str, schema_str: str) -> bool: ...

    def set_compatibility(self, subject: str, level: str) -> None: ...

    def compatibility(self, subject: str) -> str | None: ...

    def subjects(self) -> list[str]: ...

    def delete_subject(self, subject: str) -> None: ...


class HttpSchemaRegistry:
    """Confluent REST API client (confluent-kafka's), with errors made precise."""

    def __init__(self, settings: RegistrySettings) -> None:
        config: dict[str, str | float] = {"url": settings.url, "timeout": settings.timeout_s}
        if settings.username and settings.password:
            config["basic.auth.user.info"] = (
                f"{settings.username}:{settings.password.get_secret_value()}"
            )
        self.url = settings.url
        self._client = SchemaRegistryClient(config)
        self._by_id: dict[int, str] = {}

    def _fail(self, action: str, exc: SchemaRegistryError) -> RegistryError:
        message = f"registry {self.url}: {action}: HTTP {exc.http_status_code} {exc.error_message}"
        if exc.http_status_code == 409:
            return IncompatibleSchemaError(message)
        return RegistryError(message)

    def register(self, subject: str, schema_str: str) -> int:
        try:
            schema_id = int(self._client.register_schema(subject, Schema(schema_str, "AVRO")))
        except SchemaRegistryError as exc:
            raise self._fail(f"register {subject}", exc) from exc
        self._by_id[schema_id] = schema_str
        return schema_id

    def schema_by_id(self, schema_id: int) -> str:
        cached = self._by_id.get(schema_id)
        if cached is not None:
            return cached
        try:
            schema = self._client.get_schema(schema_id)
        except SchemaRegistryError as exc:
            raise self._fail(f"fetch schema id {schema_id}", exc) from exc
        self._by_id[schema_id] = str(schema.schema_str)
        return self._by_id[schema_id]

    def is_compatible(self, subject: str, schema_str: str) -> bool:
        try:
            return bool(self._client.test_compatibility(subject, Schema(schema_str, "AVRO")))
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                return True  # a new subject has nothing to be incompatible with
            raise self._fail(f"check compatibility of {subject}", exc) from exc

    def set_compatibility(self, subject: str, level: str) -> None:
        if level not in COMPATIBILITY_LEVELS:
            raise ValueError(f"unknown compatibility level {level!r}")
        try:
            self._client.set_compatibility(subject_name=subject, level=level)
        except SchemaRegistryError as exc:
            raise self._fail(f"set compatibility of {subject}", exc) from exc

    def compatibility(self, subject: str) -> str | None:
        try:
            return str(self._client.get_compatibility(subject_name=subject))
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                return None
            raise self._fail(f"read compatibility of {subject}", exc) from exc

    def subjects(self) -> list[str]:
        try:
            return [str(s) for s in self._client.get_subjects()]
        except SchemaRegistryError as exc:
            raise self._fail("list subjects", exc) from exc

    def delete_subject(self, subject: str) -> None:
        try:
            self._client.delete_subject(subject, permanent=False)
            self._client.delete_subject(subject, permanent=True)
        except SchemaRegistryError as exc:
            if exc.http_status_code != 404:
                raise self._fail(f"delete {subject}", exc) from exc


def subject_for(topic: str, record_fullname: str) -> str:
    """TopicRecordNameStrategy: one topic may carry several event types (e.g. media)."""
    return f"{topic}-{record_fullname}"
