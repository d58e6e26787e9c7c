"""Generates `visionlog/contracts/events.py`: the event contracts as `TypedDict` records.

    .venv/bin/python -m visionlog.contracts.codegen            # write the module
    .venv/bin/python -m visionlog.contracts.codegen --check    # exit 1 when it is stale

(Should a hand-edited `events.py` keep the package from importing, run the file itself,
`.venv/bin/python visionlog/contracts/codegen.py`: that does not import the package.)

Input is the contract catalogue (`visionlog.schemas.get_catalog()`): every event and every
shared named type, including records and enums an event defines inline. Output is one
module, written so that ruff format leaves it unchanged and mypy --strict accepts it:

- one `TypedDict` per Avro record, named after the record (two records of the same name in
  different namespaces are told apart by their namespace, see `_assign_class_names`);
- enums as `Literal[...]` aliases, fixed as `bytes`;
- unions as `X | Y`, with `None` for the null branch last; arrays as `list[...]`, maps as
  `dict[str, ...]`; logical types as the values fastavro decodes them to (`timestamp-millis`
  as an aware `datetime`, `date`, `time`, `uuid` as `UUID`, `decimal` as `Decimal`);
- a field with an Avro default is `NotRequired`: decoded records always carry it, a record
  being built may leave it out and the writer fills the default in;
- the Avro docs as class and attribute docstrings;
- `EventName`, `EventRecord` and `EVENT_TYPES`: the event names, the union of the event
  records, and the record type of each event.

The module has no `from __future__ import annotations` on purpose: with string annotations
`TypedDict` cannot see `NotRequired` at run time, so `__optional_keys__` would be wrong.
Classes are therefore emitted dependencies first, and only references inside a cycle (a
recursive record) are quoted.
"""

from __future__ import annotations

import argparse
import json
import keyword
import sys
import textwrap
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from visionlog.schemas import SchemaCatalog, get_catalog

OUTPUT = Path(__file__).with_name("events.py")
LINE_LENGTH = 100
INDENT = "    "
REGENERATE = ".venv/bin/python -m visionlog.contracts.codegen"

_NAMED_KINDS = frozenset({"record", "error", "enum", "fixed"})
_PRIMITIVES = {
    "null": "None",
    "boolean": "bool",
    "int": "int",
    "long": "int",
    "float": "float",
    "double": "float",
    "bytes": "bytes",
    "string": "str",
}
# (Avro base type, logical type) -> (annotation, module it is imported from). Keyed like
# fastavro's logical readers: a logical type on another base type is ignored, as the Avro
# specification asks and as fastavro does.
_LOGICAL = {
    ("long", "timestamp-millis"): ("datetime", "datetime"),
    ("long", "timestamp-micros"): ("datetime", "datetime"),
    ("long", "local-timestamp-millis"): ("datetime", "datetime"),
    ("long", "local-timestamp-micros"): ("datetime", "datetime"),
    ("int", "date"): ("date", "datetime"),
    ("int", "time-millis"): ("time", "datetime"),
    ("long", "time-micros"): ("time", "datetime"),
    ("string", "uuid"): ("UUID", "uuid"),
    ("bytes", "decimal"): ("Decimal", "decimal"),
    ("fixed", "decimal"): ("Decimal", "decimal"),
}
_TYPING = ("Final", "Literal", "NotRequired", "TypeAlias", "TypedDict")
_MODULE_NAMES = ("EVENT_TYPES", "EventName", "EventRecord", "Mapping")
_BUILTINS = ("bool", "bytes", "dict", "float", "int", "list", "str", "type")
# Names a generated class or alias must not take: what the module imports, defines or uses
# in its annotations (a record called `list` would shadow the builtin).
RESERVED = frozenset({*_TYPING, *_MODULE_NAMES, *_BUILTINS, *(n for n, _ in _LOGICAL.values())})


class CodegenError(ValueError):
    """The contracts cannot be turned into one consistent module."""


@dataclass
class NamedType:
    """One Avro record, enum or fixed of the catalogue, wherever it was defined."""

    fullname: str
    kind: str
    node: dict[str, Any]
    # Namespace the definition sits in: relative names inside it resolve against it.
    namespace: str | None
    origin: str
    event: str | None = None
    class_name: str = ""
    shape: str = field(default="", repr=False)

    @property
    def name(self) -> str:
        return self.fullname.rsplit(".", 1)[-1]

    @property
    def namespace_parts(self) -> list[str]:
        return self.fullname.split(".")[:-1]


def fullname(node: dict[str, Any], enclosing: str | None) -> str:
    name = str(node["name"])
    if "." in name:
        return name
    namespace = node.get("namespace", enclosing)
    return f"{namespace}.{name}" if namespace else name


def _inner_namespace(full: str) -> str | None:
    return full.rsplit(".", 1)[0] if "." in full else None


class TypeTable:
    """Every named type of a catalogue by full name, each defined consistently."""

    def __init__(self, catalog: SchemaCatalog) -> None:
        self.types: dict[str, NamedType] = {}
        for schema in sorted(catalog, key=lambda s: s.name):
            self._collect(schema.definition, None, f"event {schema.name}", event=schema.name)
        for name in sorted(catalog.types):
            self._collect(catalog.types[name], None, "schemas/avro/types")
        _assign_class_names(self.types)

    def resolve(self, reference: str, namespace: str | None) -> NamedType:
        """The named type a reference means inside `namespace` (Avro's rule: a relative name
        is looked up in the enclosing namespace first)."""
        candidates = [reference]
        if "." not in reference and namespace:
            candidates.insert(0, f"{namespace}.{reference}")
        for candidate in candidates:
            if candidate in self.types:
                return self.types[candidate]
        raise CodegenError(f"unknown Avro type {reference!r}")

    def _collect(
        self, node: Any, namespace: str | None, origin: str, event: str | None = None
    ) -> None:
        if isinstance(node, list):
            for branch in node:
                self._collect(branch, namespace, origin)
            return
        if not isinstance(node, dict):
            return  # a primitive or a reference: nothing is defined here
        kind = node.get("type")
        if kind in _NAMED_KINDS:
            full = fullname(node, namespace)
            self._define(NamedType(full, str(kind), node, namespace, origin, event))
            for avro_field in node.get("fields", []):
                self._collect(avro_field["type"], _inner_namespace(full), origin)
        elif kind == "array":
            self._collect(node["items"], namespace, origin)
        elif kind == "map":
            self._collect(node["values"], namespace, origin)
        elif isinstance(kind, dict | list):
            self._collect(kind, namespace, origin)

    def _define(self, named: NamedType) -> None:
        named.shape = json.dumps(_shape(named.node, named.namespace, top=True), sort_keys=True)
        known = self.types.get(named.fullname)
        if known is None:
            self.types[named.fullname] = named
            return
        if known.shape != named.shape:
            raise CodegenError(
                f"{named.fullname} is defined differently in {known.origin} and {named.origin}"
            )
        known.event = known.event or named.event


def _shape(node: Any, namespace: str | None, top: bool = False) -> Any:
    """A definition with nested named definitions replaced by their full names, so a type
    inlined into an event compares equal to its shared file, which only names them."""
    if isinstance(node, str):
        if node in _PRIMITIVES or "." in node or not namespace:
            return node
        return f"{namespace}.{node}"
    if isinstance(node, list):
        return [_shape(branch, namespace) for branch in node]
    if not isinstance(node, dict):
        return node
    kind = node.get("type")
    if kind in _NAMED_KINDS:
        full = fullname(node, namespace)
        if not top:
            return full
        out = {key: value for key, value in node.items() if key not in ("name", "namespace")}
        out["fullname"] = full
        if "fields" in node:
            inner = _inner_namespace(full)
            out["fields"] = [{**f, "type": _shape(f["type"], inner)} for f in node["fields"]]
        return out
    if kind == "array":
        return {**node, "items": _shape(node["items"], namespace)}
    if kind == "map":
        return {**node, "values": _shape(node["values"], namespace)}
    if isinstance(kind, dict | list | str):
        return {**node, "type": _shape(kind, namespace)}
    return node


def _camel(parts: Sequence[str]) -> str:
    return "".join(part[:1].upper() + part[1:] for part in parts)


def _usable(name: str) -> bool:
    return name.isidentifier() and not keyword.iskeyword(name) and name not in RESERVED


def _assign_class_names(types: dict[str, NamedType]) -> None:
    """Each type's Python name: its Avro name when that is unique and free; otherwise the
    shortest namespace suffix that tells the namesakes apart (`visionlog.types.Point` and
    `other.geo.Point` become `TypesPoint` and `GeoPoint`), then a number. Deterministic:
    it depends on the set of full names only."""
    groups: dict[str, list[NamedType]] = {}
    for named in types.values():
        groups.setdefault(named.name, []).append(named)
    taken: set[str] = set()
    for name, group in groups.items():
        if len(group) == 1 and _usable(name):
            group[0].class_name = name
            taken.add(name)
    for name, group in sorted(groups.items()):
        members = sorted(group, key=lambda named: named.fullname)
        if members[0].class_name:
            continue
        depth = max(len(named.namespace_parts) for named in members)
        for level in range(1, depth + 1):
            candidates = [_camel([*m.namespace_parts[-level:], name]) for m in members]
            if len(set(candidates)) == len(members) and all(
                _usable(c) and c not in taken for c in candidates
            ):
                break
        else:
            base = [_camel([*m.namespace_parts, name]) for m in members]
            candidates = []
            for stem in base:
                number = 1
                while not _usable(f"{stem}{number}") or f"{stem}{number}" in taken:
                    number += 1
                candidates.append(f"{stem}{number}")
                taken.add(f"{stem}{number}")
        for member, candidate in zip(members, candidates, strict=True):
            member.class_name = candidate
            taken.add(candidate)


# ---------------------------------------------------------------- text helpers


def _escape(text: str) -> str:
    text = text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    return text[:-1] + '\\"' if text.endswith('"') else text


def _paragraphs(text: str) -> list[str]:
    return [" ".join(chunk.split()) for chunk in text.split("\n\n") if chunk.strip()]


def docstring(paragraphs: Sequence[str], indent: str) -> list[str]:
    """A docstring of `paragraphs` at `indent`, wrapped to the line length."""
    body = [_escape(p) for p in paragraphs if p]
    if not body:
        return []
    single = f'{indent}"""{body[0]}"""'
    if len(body) == 1 and len(single) <= LINE_LENGTH:
        return [single]
    lines: list[str] = []
    for index, paragraph in enumerate(body):
        if index:
            lines.append("")
        lines.extend(
            textwrap.wrap(
                paragraph,
                width=LINE_LENGTH,
                initial_indent=indent + ('"""' if index == 0 else ""),
                subsequent_indent=indent,
                break_long_words=False,
                break_on_hyphens=False,
            )
        )
    lines.append(f'{indent}"""')
    return lines


def comment(paragraphs: Sequence[str], indent: str) -> list[str]:
    lines: list[str] = []
    for index, paragraph in enumerate(p for p in paragraphs if p):
        if index:
            lines.append(f"{indent}#")
        lines.extend(
            textwrap.wrap(
                paragraph,
                width=LINE_LENGTH,
                initial_indent=f"{indent}# ",
                subsequent_indent=f"{indent}# ",
                break_long_words=False,
                break_on_hyphens=False,
            )
        )
    return lines


def exploded(head: str, items: Sequence[str], tail: str, indent: str = "") -> list[str]:
    """`head` + items + `tail`, on one line when it fits, else one item per line with a
    trailing comma (the layout ruff format keeps)."""
    flat = f"{indent}{head}{', '.join(items)}{tail}"
    if len(flat) <= LINE_LENGTH:
        return [flat]
    return [f"{indent}{head}", *(f"{indent}{INDENT}{item}," for item in items), f"{indent}{tail}"]


def _default_text(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


# ---------------------------------------------------------------- rendering


class Renderer:
    """Renders the module for one catalogue."""

    def __init__(self, catalog: SchemaCatalog) -> None:
        self.catalog = catalog
        self.table = TypeTable(catalog)
        self.imports: set[tuple[str, str]] = {("typing", "TypeAlias"), ("typing", "Literal")}
        self.emitted: set[str] = set()

    # -- annotations

    def annotation(self, node: Any, namespace: str | None) -> tuple[str, bool]:
        """The Python type of an Avro type, and whether it names a class not emitted yet
        (then the whole annotation has to be quoted)."""
        if isinstance(node, list):
            parts: list[str] = []
            forward = False
            nullable = False
            for branch in node:
                if branch == "null":
                    nullable = True
                    continue
                text, branch_forward = self.annotation(branch, namespace)
                forward = forward or branch_forward
                if text not in parts:
                    parts.append(text)
            if nullable:
                parts.append("None")
            return " | ".join(parts), forward
        if isinstance(node, str):
            if node in _PRIMITIVES:
                return _PRIMITIVES[node], False
            return self._named(self.table.resolve(node, namespace))
        kind = node.get("type")
        logical = node.get("logicalType")
        if isinstance(kind, str) and (kind, logical) in _LOGICAL:
            name, module = _LOGICAL[(kind, logical)]
            self.imports.add((module, name))
            return name, False
        if kind in _NAMED_KINDS:
            return self._named(self.table.types[fullname(node, namespace)])
        if kind == "array":
            text, forward = self.annotation(node["items"], namespace)
            return f"list[{text}]", forward
        if kind == "map":
            text, forward = self.annotation(node["values"], namespace)
            return f"dict[str, {text}]", forward
        return self.annotation(kind, namespace)

    def _named(self, named: NamedType) -> tuple[str, bool]:
        if named.kind == "fixed":
            if named.node.get("logicalType") == "decimal":
                self.imports.add(("decimal", "Decimal"))
                return "Decimal", False
            return "bytes", False
        return named.class_name, named.class_name not in self.emitted

    def field_annotation(self, avro_field: dict[str, Any], namespace: str | None) -> str:
        text, forward = self.annotation(avro_field["type"], namespace)
        if forward:
            text = f'"{text}"'
        if "default" in avro_field:
            self.imports.add(("typing", "NotRequired"))
            return f"NotRequired[{text}]"
        return text

    # -- blocks

    def enum_block(self, named: NamedType) -> list[str]:
        symbols = [json.dumps(symbol) for symbol in named.node["symbols"]]
        lines = exploded(f"{named.class_name}: TypeAlias = Literal[", symbols, "]")
        note = f"Avro enum `{named.fullname}`."
        if "default" in named.node:
            note += f" A reader maps symbols it does not know to `{named.node['default']}`."
        lines += docstring([*_paragraphs(str(named.node.get("doc", ""))), note], "")
        self.emitted.add(named.class_name)
        return lines

    def record_block(self, named: NamedType) -> list[str]:
        self.imports.add(("typing", "TypedDict"))
        inner = _inner_namespace(named.fullname)
        doc = _paragraphs(str(named.node.get("doc", "")))
        if named.event:
            version = self.catalog.event(named.event).version
            note = f"Event `{named.event}`, contract version {version}: Avro record "
            note += f"`{named.fullname}`."
        else:
            note = f"Avro record `{named.fullname}`."
        fields = named.node["fields"]
        if any(keyword.iskeyword(str(f["name"])) for f in fields):
            # A field named like a Python keyword cannot be declared in a class body.
            lines = comment([*doc, note], "")
            lines.append(f"{named.class_name} = TypedDict(")
            lines.append(f'{INDENT}"{named.class_name}",')
            lines.append(f"{INDENT}{{")
            for avro_field in fields:
                lines += comment(self._field_doc(avro_field), INDENT * 2)
                annotation = self.field_annotation(avro_field, inner)
                lines.append(f'{INDENT * 2}"{avro_field["name"]}": {annotation},')
            lines.append(f"{INDENT}}},")
            lines.append(")")
        else:
            lines = [f"class {named.class_name}(TypedDict):"]
            lines += docstring([*doc, note], INDENT)
            for avro_field in fields:
                lines.append("")
                annotation = self.field_annotation(avro_field, inner)
                lines += self._annotated(avro_field["name"], annotation)
                lines += docstring(self._field_doc(avro_field), INDENT)
        self.emitted.add(named.class_name)
        return lines

    @staticmethod
    def _annotated(name: str, annotation: str) -> list[str]:
        line = f"{INDENT}{name}: {annotation}"
        if len(line) <= LINE_LENGTH or not annotation.endswith("]"):
            return [line]
        # Too long: split inside the outermost brackets, as ruff format does.
        head, _, rest = annotation.partition("[")
        return [f"{INDENT}{name}: {head}[", f"{INDENT * 2}{rest[:-1]}", f"{INDENT}]"]

    @staticmethod
    def _field_doc(avro_field: dict[str, Any]) -> list[str]:
        doc = " ".join(_paragraphs(str(avro_field.get("doc", ""))))
        if "default" in avro_field:
            doc = f"{doc} Avro default: `{_default_text(avro_field['default'])}`.".strip()
        return [doc] if doc else []

    def record_order(self) -> Iterator[NamedType]:
        """Records, each after the records its fields use: shared types by name, then the
        events by name. Depth-first, so a record that joins a cycle is yielded last of it."""
        records = [t for t in self.table.types.values() if t.kind in ("record", "error")]
        records.sort(key=lambda t: (t.event is not None, t.class_name))
        seen: set[str] = set()

        def visit(named: NamedType) -> Iterator[NamedType]:
            if named.fullname in seen:
                return
            seen.add(named.fullname)
            for dependency in self._dependencies(named):
                yield from visit(dependency)
            yield named

        for named in records:
            yield from visit(named)

    def _dependencies(self, named: NamedType) -> Iterator[NamedType]:
        """The records the fields of `named` use, by reference or defined inline."""
        namespace = _inner_namespace(named.fullname)
        for avro_field in named.node["fields"]:
            yield from self._records_in(avro_field["type"], namespace)

    def _records_in(self, node: Any, namespace: str | None) -> Iterator[NamedType]:
        if isinstance(node, str):
            if node not in _PRIMITIVES:
                named = self.table.resolve(node, namespace)
                if named.kind in ("record", "error"):
                    yield named
        elif isinstance(node, list):
            for branch in node:
                yield from self._records_in(branch, namespace)
        elif isinstance(node, dict):
            kind = node.get("type")
            if kind in ("record", "error"):
                yield self.table.types[fullname(node, namespace)]
            elif kind == "array":
                yield from self._records_in(node["items"], namespace)
            elif kind == "map":
                yield from self._records_in(node["values"], namespace)
            elif kind not in _NAMED_KINDS:
                yield from self._records_in(kind, namespace)

    def render(self) -> str:
        blocks: list[list[str]] = []
        enums = sorted(
            (t for t in self.table.types.values() if t.kind == "enum"), key=lambda t: t.class_name
        )
        blocks += [self.enum_block(named) for named in enums]
        blocks += [self.record_block(named) for named in self.record_order()]
        blocks += self.event_blocks()
        exported = sorted(
            [t.class_name for t in self.table.types.values() if t.kind != "fixed"]
            + ["EVENT_TYPES", "EventName", "EventRecord"],
            key=_all_order,
        )
        out = [*self.header(), "", *self.import_lines(), ""]
        out += exploded("__all__ = [", [json.dumps(name) for name in exported], "]")
        for block in blocks:
            out += ["", "", *block]
        return "\n".join(out) + "\n"

    def event_blocks(self) -> list[list[str]]:
        self.imports |= {("typing", "Final"), ("collections.abc", "Mapping")}
        events = sorted(self.catalog.events)
        classes = [self.table.types[self.catalog.event(e).fullname].class_name for e in events]
        names = exploded(
            "EventName: TypeAlias = Literal[", [json.dumps(e) for e in events], "]"
        ) + docstring(["Name of every event type of the catalogue."], "")
        union = f"EventRecord: TypeAlias = {' | '.join(classes)}"
        if len(union) > LINE_LENGTH:
            lines = ["EventRecord: TypeAlias = (", f"{INDENT}{classes[0]}"]
            lines += [f"{INDENT}| {name}" for name in classes[1:]]
            union_lines = [*lines, ")"]
        else:
            union_lines = [union]
        union_lines += docstring(["The record of any event."], "")
        mapping = exploded(
            "EVENT_TYPES: Final[Mapping[str, type]] = {",
            [f"{json.dumps(e)}: {c}" for e, c in zip(events, classes, strict=True)],
            "}",
        ) + docstring(["The record type of each event, by event name."], "")
        return [names, union_lines, mapping]

    @staticmethod
    def header() -> list[str]:
        summary = "Typed records of the event contracts in `schemas/avro` (generated)."
        body = [
            "One `TypedDict` per Avro record, enums as `Literal` aliases. A decoded event "
            "(`visionlog.codec`) is a plain dict of exactly this shape: timestamps are aware "
            "`datetime`s, enums `str`s, bytes `bytes`. Fields with an Avro default are "
            "`NotRequired`: decoded records always carry them, a record being built may leave "
            "them out and the writer fills the default in.",
            f"Regenerate after a contract change with `{REGENERATE}`; `--check` fails when "
            "this module is stale (a unit test runs it).",
        ]
        return [
            "# Generated by visionlog.contracts.codegen from schemas/avro: do not edit.",
            *docstring([summary, *body], ""),
        ]

    def import_lines(self) -> list[str]:
        modules: dict[str, set[str]] = {}
        for module, name in self.imports:
            modules.setdefault(module, set()).add(name)
        return [
            f"from {module} import {', '.join(sorted(names, key=_import_order))}"
            for module, names in sorted(modules.items())
        ]


def _import_order(name: str) -> tuple[int, str]:
    # isort's order-by-type: CONSTANTS, then Classes, then the rest.
    if name.isupper() and len(name) > 1:
        return 0, name
    return (1 if name[:1].isupper() else 2), name


def _all_order(name: str) -> tuple[int, str]:
    # ruff's RUF022 (isort-style): SCREAMING_CASE, then CamelCase, then the rest.
    return _import_order(name)


def render(catalog: SchemaCatalog | None = None) -> str:
    """The text of the generated module for `catalog` (default: the repository's)."""
    return Renderer(catalog or get_catalog()).render()


def is_current(path: Path = OUTPUT, catalog: SchemaCatalog | None = None) -> bool:
    """Whether the module at `path` is what the generator writes for `catalog` now."""
    return path.is_file() and path.read_text(encoding="utf-8") == render(catalog)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m visionlog.contracts.codegen", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument(
        "--check", action="store_true", help="exit 1 when the module is stale; write nothing"
    )
    parser.add_argument("--output", type=Path, default=OUTPUT, help=f"default: {OUTPUT}")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if args.output.is_file() and args.output.read_text(encoding="utf-8") == text:
            print(f"{args.output} is current")
            return 0
        print(f"{args.output} is stale: run {REGENERATE}", file=sys.stderr)
        return 1
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
