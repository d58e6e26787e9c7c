"""Run-time checks of event records against their contracts, with the path of what is wrong.

The static check is mypy with the generated `TypedDict`s; this is the run-time one, for tests
and for code that builds records from untyped data. Verdicts come from fastavro's own
validation (the rules the writer applies), strictly: a field without a default must be
present. On top of that a key the contract does not know is an error, because the writer
would drop it silently (a misspelled optional field is a lost value, not a failure).
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import fastavro
from fastavro.validation import ValidationError, validate

from visionlog.codec import EventEncodingError
from visionlog.contracts.events import EVENT_TYPES
from visionlog.schemas import SchemaCatalog, SchemaCatalogError, get_catalog

T = TypeVar("T")

_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_NAMED_KINDS = frozenset({"record", "error", "enum", "fixed"})


class RecordContractError(EventEncodingError):
    """A record breaks its event contract at `path` (empty: the record as a whole)."""

    def __init__(self, event_type: str, path: str, reason: str) -> None:
        where = f"{event_type}.{path}" if path else event_type
        super().__init__(f"{where}: {reason}")
        self.event_type = event_type
        self.path = path
        self.reason = reason


@dataclass(frozen=True)
class _Named:
    node: dict[str, Any]
    namespace: str | None


def _fullname(node: Mapping[str, Any], enclosing: str | None) -> str:
    name = str(node["name"])
    if "." in name:
        return name
    namespace = node.get("namespace", enclosing)
    return f"{namespace}.{name}" if namespace else name


def _inner(full: str) -> str | None:
    return full.rsplit(".", 1)[0] if "." in full else None


def _brief(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _Explainer:
    """Walks a record and its (self-contained) schema side by side to the first mismatch.

    Records, arrays, maps and unions are walked here; every other value (primitives, enums,
    fixed, logical types) is judged by fastavro's `validate` against that part of the schema.
    """

    def __init__(self, definition: dict[str, Any]) -> None:
        self.named: dict[str, _Named] = {}
        self._collect(definition, None)
        self._leaves: dict[int, tuple[Any, Any]] = {}

    def _collect(self, node: Any, namespace: str | None) -> None:
        if isinstance(node, list):
            for branch in node:
                self._collect(branch, namespace)
        elif isinstance(node, dict):
            kind = node.get("type")
            if kind in _NAMED_KINDS:
                full = _fullname(node, namespace)
                self.named[full] = _Named(node, namespace)
                for avro_field in node.get("fields", []):
                    self._collect(avro_field["type"], _inner(full))
            elif kind == "array":
                self._collect(node["items"], namespace)
            elif kind == "map":
                self._collect(node["values"], namespace)
            elif isinstance(kind, dict | list):
                self._collect(kind, namespace)

    def _resolve(self, reference: str, namespace: str | None) -> _Named:
        if "." not in reference and namespace and f"{namespace}.{reference}" in self.named:
            return self.named[f"{namespace}.{reference}"]
        return self.named[reference]

    def _leaf_fits(self, value: Any, node: Any) -> bool:
        cached = self._leaves.get(id(node))
        if cached is None:
            # Keep `node` alive with its parsed form so its id stays unique.
            cached = (node, fastavro.parse_schema(copy.deepcopy(node)))
            self._leaves[id(node)] = cached
        return bool(validate(value, cached[1], raise_errors=False, strict=True))

    def explain(
        self, value: Any, node: Any, namespace: str | None, path: str, leaves: bool = True
    ) -> tuple[str, str] | None:
        """The first `(path, reason)` where `value` breaks `node`; None when it fits.

        With `leaves=False` only the structure is walked, for a record fastavro has already
        accepted: what is left to find is a key the contract does not know."""
        if isinstance(node, str):
            if node in _PRIMITIVES:
                return self._leaf(value, node, node, path, leaves)
            named = self._resolve(node, namespace)
            return self.explain(value, named.node, named.namespace, path, leaves)
        if isinstance(node, list):
            return self._union(value, node, namespace, path, leaves)
        kind = node.get("type")
        if kind in ("record", "error"):
            return self._record(value, node, namespace, path, leaves)
        if kind == "array":
            if not isinstance(value, Sequence) or isinstance(value, str | bytes | bytearray):
                return path, f"is {type(value).__name__}, expected an array (list)"
            for index, item in enumerate(value):
                found = self.explain(item, node["items"], namespace, f"{path}[{index}]", leaves)
                if found:
                    return found
            return None
        if kind == "map":
            if not isinstance(value, Mapping):
                return path, f"is {type(value).__name__}, expected a map (dict with str keys)"
            for key, item in value.items():
                if not isinstance(key, str):
                    return path, f"has the key {key!r}; map keys are strings"
                found = self.explain(item, node["values"], namespace, f"{path}[{key!r}]", leaves)
                if found:
                    return found
            return None
        if isinstance(kind, dict | list) or (
            isinstance(kind, str) and kind not in _PRIMITIVES and kind not in _NAMED_KINDS
        ):
            return self.explain(value, kind, namespace, path, leaves)
        return self._leaf(value, node, _describe(node), path, leaves)

    def _leaf(
        self, value: Any, node: Any, expected: str, path: str, leaves: bool
    ) -> tuple[str, str] | None:
        if not leaves or self._leaf_fits(value, node):
            return None
        return path, f"{_brief(value)} is not a valid {expected}"

    def _record(
        self, value: Any, node: dict[str, Any], namespace: str | None, path: str, leaves: bool
    ) -> tuple[str, str] | None:
        full = _fullname(node, namespace)
        if not isinstance(value, Mapping):
            return path, f"is {type(value).__name__}, expected a record {full} (a dict)"
        names = [str(f["name"]) for f in node["fields"]]
        for key in value:
            if key not in names:
                close = difflib.get_close_matches(str(key), names, n=1)
                hint = f"did you mean {close[0]}?" if close else f"its fields: {', '.join(names)}"
                return _join(path, str(key)), f"is not a field of {full} ({hint})"
        for avro_field in node["fields"]:
            name = str(avro_field["name"])
            if name not in value:
                if "default" in avro_field:
                    continue  # the writer fills the default in
                return _join(path, name), "is missing (the field has no default)"
            found = self.explain(
                value[name], avro_field["type"], _inner(full), _join(path, name), leaves
            )
            if found:
                return found
        return None

    def _union(
        self, value: Any, branches: list[Any], namespace: str | None, path: str, leaves: bool
    ) -> tuple[str, str] | None:
        # Branches of the value's own shape (a dict: the record or map branches) are walked
        # first and reported from: that names the field that is wrong, not just the union.
        shaped = [b for b in branches if self._same_shape(value, b, namespace)]
        if not leaves:
            others: list[Any] = []  # fastavro accepted the value: only keys can be wrong
        else:
            others = [b for b in branches if not self._same_shape(value, b, namespace)]
        reasons = []
        for branch in [*shaped, *others]:
            found = self.explain(value, branch, namespace, path, leaves)
            if found is None:
                return None
            reasons.append(found)
        if not reasons:
            return None
        if len(shaped) == 1:
            return reasons[0]
        expected = " or ".join(self._name(branch, namespace) for branch in branches)
        return path, f"{_brief(value)} is not a valid {expected}"

    def _same_shape(self, value: Any, branch: Any, namespace: str | None) -> bool:
        kind = self._kind(branch, namespace)
        if isinstance(value, Mapping):
            return kind in ("record", "error", "map")
        if isinstance(value, list | tuple):
            return kind == "array"
        return False

    def _kind(self, node: Any, namespace: str | None) -> str:
        if isinstance(node, str):
            if node in _PRIMITIVES:
                return node
            return self._kind(self._resolve(node, namespace).node, namespace)
        if isinstance(node, list):
            return "union"
        kind = node.get("type")
        return kind if isinstance(kind, str) else self._kind(kind, namespace)

    def _name(self, node: Any, namespace: str | None) -> str:
        if isinstance(node, str):
            return node
        if isinstance(node, dict) and node.get("type") in _NAMED_KINDS:
            return _fullname(node, namespace)
        return _describe(node)


def _describe(node: Any) -> str:
    if isinstance(node, dict):
        if node.get("type") == "enum":
            return f"enum {node['name']} ({', '.join(node['symbols'])})"
        if node.get("type") == "fixed":
            return f"fixed {node['name']} of {node['size']} bytes"
        if "logicalType" in node:
            return f"{node['type']} ({node['logicalType']})"
        return str(node.get("type"))
    return str(node)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


_EXPLAINERS: dict[tuple[int, str], tuple[SchemaCatalog, _Explainer]] = {}


def _explainer(catalog: SchemaCatalog, event_type: str) -> _Explainer:
    key = (id(catalog), event_type)
    cached = _EXPLAINERS.get(key)
    if cached is None or cached[0] is not catalog:
        cached = (catalog, _Explainer(catalog.event(event_type).definition))
        _EXPLAINERS[key] = cached
    return cached[1]


def validate_record(
    event_type: str, record: Mapping[str, object], catalog: SchemaCatalog | None = None
) -> None:
    """Check `record` against the current contract of `event_type`.

    Raises `RecordContractError` (an `EventEncodingError`) naming the first wrong field, e.g.
    `ObjectsDetected.detections[0].box.x_max: 'wide' is not a valid float`: a value of the
    wrong type, a field without default that is missing, or a key the contract does not
    know. Like the writer, it accepts any value fastavro would encode (an `int` for a
    timestamp, a `bytearray` for bytes); envelope identity (`event_type`, `schema_version`)
    is the codec's check on publishing.
    """
    catalog = catalog or get_catalog()
    try:
        schema = catalog.event(event_type)
    except SchemaCatalogError as exc:
        raise RecordContractError(event_type, "", str(exc)) from exc
    explainer = _explainer(catalog, event_type)
    try:
        validate(record, schema.parsed, raise_errors=True, strict=True)
    except ValidationError as exc:
        # fastavro's verdict stands; the walk only finds the path it does not give.
        found = explainer.explain(record, schema.definition, None, "")
        if found is None:
            raise RecordContractError(event_type, "", f"does not match: {exc}") from exc
        raise RecordContractError(event_type, *found) from exc
    found = explainer.explain(record, schema.definition, None, "", leaves=False)
    if found is not None:
        raise RecordContractError(event_type, *found)


def typed_record(
    record_type: type[T],
    event_type: str,
    record: Mapping[str, Any],
    *,
    check: bool = False,
) -> T:
    """`record` of event `event_type`, typed as `record_type` (e.g. a decoded record as
    `ObjectsDetected`), after making sure the two belong together; with `check=True` it is
    also validated against the contract.

    A record decoded by `visionlog.codec` already has its contract's shape (the codec
    resolves it against the reader schema), so the default costs one dictionary lookup.
    """
    expected = EVENT_TYPES.get(event_type)
    if expected is None:
        raise RecordContractError(event_type, "", "is not an event type of the catalogue")
    if expected is not record_type:
        name = getattr(record_type, "__name__", repr(record_type))
        raise TypeError(f"{event_type} records are typed {expected.__name__}, not {name}")
    if check:
        validate_record(event_type, record)
    return cast(T, record)
