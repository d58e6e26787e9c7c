"""The generated typed records (`visionlog/contracts/events.py`) are current, cover every
contract, match what the codec decodes, and the generator handles what the contracts may
one day hold."""

from __future__ import annotations

import importlib.util
import io
import random
import shutil
import subprocess
import sys
import types
import typing
from collections.abc import Iterator
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, NotRequired, Union
from uuid import UUID

import fastavro
import pytest
from fastavro.utils import generate_many

from tests.unit.contract_catalogs import EDGE_EVENT, SHARED_POINT, edge_case_catalog, write_catalog
from visionlog.contracts import codegen, events
from visionlog.schemas import SchemaCatalog, get_catalog, load_catalog

CATALOG = get_catalog()
ROOT = Path(__file__).resolve().parents[2]
SCALARS: dict[Any, tuple[type, ...]] = {
    str: (str,),
    bool: (bool,),
    bytes: (bytes,),
    float: (float,),
    datetime: (datetime,),
    date: (date,),
    time: (time,),
    UUID: (UUID,),
    Decimal: (Decimal,),
}


def _named_records(node: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        if node.get("type") in ("record", "enum"):
            found.append(node)
        for value in node.values():
            found.extend(_named_records(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(_named_records(item))
    return found


def _ruff() -> str:
    found = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if found is None:
        pytest.skip("ruff is not installed (pip install -e '.[dev]')")
    return found


def _conforms(value: Any, hint: Any, path: str) -> str | None:
    """Where `value` (as fastavro decoded it) does not fit the annotation `hint`; None if it
    does. Covers exactly the type vocabulary the generator emits."""
    origin = typing.get_origin(hint)
    if origin is NotRequired:
        return _conforms(value, typing.get_args(hint)[0], path)
    if typing.is_typeddict(hint):
        if not isinstance(value, dict):
            return f"{path} is {type(value).__name__}, expected {hint.__name__}"
        keys = hint.__required_keys__ | hint.__optional_keys__
        if set(value) != keys:
            return f"{path} has keys {sorted(value)}, {hint.__name__} declares {sorted(keys)}"
        hints = typing.get_type_hints(hint, include_extras=True)
        for key in sorted(keys):
            problem = _conforms(value[key], hints[key], f"{path}.{key}")
            if problem:
                return problem
        return None
    if origin is Literal:
        return None if value in typing.get_args(hint) else f"{path}={value!r} not in {hint}"
    if origin in (Union, types.UnionType):
        problems = [_conforms(value, arg, path) for arg in typing.get_args(hint)]
        return None if None in problems else f"{path}={value!r} fits no branch of {hint}"
    if origin is list:
        if not isinstance(value, list):
            return f"{path} is {type(value).__name__}, expected a list"
        item = typing.get_args(hint)[0]
        return next(
            (p for i, v in enumerate(value) if (p := _conforms(v, item, f"{path}[{i}]"))), None
        )
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            return f"{path} is not a dict with str keys"
        item = typing.get_args(hint)[1]
        return next((p for k, v in value.items() if (p := _conforms(v, item, f"{path}.{k}"))), None)
    if hint is type(None):
        return None if value is None else f"{path}={value!r}, expected None"
    if hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else f"{path}={value!r}, expected int"
    if hint in SCALARS:
        if not isinstance(value, SCALARS[hint]):
            return f"{path}={value!r}, expected {hint.__name__}"
        if isinstance(value, datetime) and value.tzinfo is None:
            return f"{path}={value!r} is a naive datetime"
        return None
    raise AssertionError(f"{path}: the test does not know the annotation {hint!r}")


# ---------------------------------------------------------------- the checked-in module


def test_generated_module_is_current() -> None:
    assert codegen.is_current(), f"visionlog/contracts/events.py is stale: run {codegen.REGENERATE}"
    assert codegen.main(["--check"]) == 0


def test_check_fails_on_a_stale_module(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stale = tmp_path / "events.py"
    stale.write_text(codegen.render().replace("Avro default", "Avro defualt", 1))
    assert codegen.main(["--check", "--output", str(stale)]) == 1
    assert "is stale" in capsys.readouterr().err
    assert codegen.main(["--check", "--output", str(tmp_path / "missing.py")]) == 1
    assert codegen.main(["--output", str(stale)]) == 0
    assert codegen.main(["--check", "--output", str(stale)]) == 0


def test_rendering_is_deterministic() -> None:
    first = codegen.render(CATALOG)
    assert codegen.render(load_catalog()) == first
    # The order of definition in the catalogue does not change the text.
    shuffled = SchemaCatalog(
        types=dict(reversed(CATALOG.types.items())), events=dict(reversed(CATALOG.events.items()))
    )
    assert codegen.render(shuffled) == first


def test_every_event_has_its_typed_record() -> None:
    assert set(events.EVENT_TYPES) == set(CATALOG.events)
    assert set(typing.get_args(events.EventName)) == set(CATALOG.events)
    assert set(typing.get_args(events.EventRecord)) == set(events.EVENT_TYPES.values())
    for schema in CATALOG:
        record_type: Any = events.EVENT_TYPES[schema.name]
        assert typing.is_typeddict(record_type)
        assert record_type.__name__ == schema.name
        fields = schema.definition["fields"]
        assert list(typing.get_type_hints(record_type)) == [f["name"] for f in fields]
        assert record_type.__optional_keys__ == {f["name"] for f in fields if "default" in f}
        assert f"contract version {schema.version}" in str(record_type.__doc__)


def test_every_record_and_enum_is_exported_with_its_doc() -> None:
    named = {
        node["name"]: node
        for definition in [*(s.definition for s in CATALOG), *CATALOG.types.values()]
        for node in _named_records(definition)
    }
    assert set(named) <= set(events.__all__)
    for name, node in named.items():
        exported = getattr(events, name)
        if node["type"] == "enum":
            assert typing.get_args(exported) == tuple(node["symbols"]), name
        else:
            assert typing.is_typeddict(exported), name
            assert " ".join(str(exported.__doc__).split()).startswith(node["doc"]), name
    source = (ROOT / "visionlog" / "contracts" / "events.py").read_text()
    # Field docs are attribute docstrings: spot-check one that wraps over lines.
    assert '    causation_id: NotRequired[str | None]\n    """event_id of the event' in source


@pytest.mark.parametrize("name", sorted(CATALOG.events))
def test_decoded_records_have_their_typed_shape(name: str) -> None:
    schema = CATALOG.event(name)
    random.seed(name)
    for written in generate_many(schema.parsed, 20):
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, schema.parsed, written)
        buffer.seek(0)
        decoded = fastavro.schemaless_reader(buffer, schema.parsed, schema.parsed)
        # Exactly the declared keys (defaulted ones too), each of its declared type:
        # timestamps as aware datetimes, enums as one of their literals, bytes as bytes.
        assert _conforms(decoded, events.EVENT_TYPES[name], name) is None


def test_generated_module_is_ruff_clean() -> None:
    ruff = _ruff()
    module = ROOT / "visionlog" / "contracts" / "events.py"
    for command in ([ruff, "format", "--check", "--diff"], [ruff, "check"]):
        result = subprocess.run(
            [*command, str(module)], cwd=ROOT, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr


# ---------------------------------------------------------------- the generator's edge cases


@pytest.fixture(scope="module")
def edge_module(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, types.ModuleType]]:
    """The module generated from the edge-case catalogue: its text, and imported."""
    root = tmp_path_factory.mktemp("edge_contracts")
    text = codegen.render(edge_case_catalog(root))
    path = root / "edge_events.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location("edge_events", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # get_type_hints resolves the quoted forward references in the module's namespace.
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        yield text, module
    finally:
        del sys.modules[spec.name]


def test_namesakes_of_different_namespaces_get_distinct_names(
    edge_module: tuple[str, types.ModuleType],
) -> None:
    text, module = edge_module
    assert "Avro record `visionlog.types.Point`." in module.TypesPoint.__doc__
    assert "Avro record `other.geo.Point`." in module.GeoPoint.__doc__
    assert "class Point(" not in text
    # A record named like a builtin is qualified too: `list` stays the builtin.
    assert "Avro record `visionlog.events.list`." in text
    assert typing.get_type_hints(module.EdgeCases)["bucket"] is module.EventsList


def test_keyword_fields_use_the_functional_syntax(
    edge_module: tuple[str, types.ModuleType],
) -> None:
    text, module = edge_module
    assert 'EventsList = TypedDict(\n    "EventsList",' in text
    assert module.EventsList.__required_keys__ == {"from"}
    assert module.EventsList.__optional_keys__ == {"count"}


def test_recursive_records_quote_only_the_forward_reference(
    edge_module: tuple[str, types.ModuleType],
) -> None:
    text, module = edge_module
    assert 'children: NotRequired["list[Node]"]' in text
    hints = typing.get_type_hints(module.Node, include_extras=True)
    assert hints["parent"] == NotRequired[module.Node | None]
    # Without string annotations TypedDict sees NotRequired at run time.
    assert module.Node.__optional_keys__ == {"children", "parent"}


def test_logical_types_fixed_and_unions_map_to_decoded_python_types(
    edge_module: tuple[str, types.ModuleType],
) -> None:
    _, module = edge_module
    hints = typing.get_type_hints(module.EdgeCases)
    assert (hints["day"], hints["at"], hints["id"], hints["amount"]) == (date, time, UUID, Decimal)
    assert hints["digest"] is bytes
    assert hints["odd"] is str
    assert str(hints["multi"]) == "int | str | list[edge_events.TypesPoint] | None"
    assert typing.get_args(module.One) == ("ONLY",)


def test_docs_with_quotes_and_backslashes_survive(
    edge_module: tuple[str, types.ModuleType],
) -> None:
    _, module = edge_module
    assert str(module.EdgeCases.__doc__).startswith(EDGE_EVENT["doc"])


def test_edge_case_module_is_ruff_clean(
    edge_module: tuple[str, types.ModuleType], tmp_path: Path
) -> None:
    ruff = _ruff()
    path = tmp_path / "edge_events.py"
    path.write_text(edge_module[0])
    config = str(ROOT / "pyproject.toml")
    for command in ([ruff, "format", "--check", "--diff"], [ruff, "check"]):
        result = subprocess.run(
            [*command, "--config", config, str(path)], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_conflicting_definitions_of_one_name_are_refused(tmp_path: Path) -> None:
    changed = {**SHARED_POINT, "fields": [{"name": "y", "type": "float", "doc": "Vertical."}]}
    event = {
        **EDGE_EVENT,
        "name": "Conflict",
        "fields": [
            {"name": "here", "type": "visionlog.types.Point", "doc": "Shared."},
            {"name": "inline", "type": {**changed, "name": "Other"}, "doc": "Fine."},
        ],
    }
    redefined = {
        **EDGE_EVENT,
        "name": "Redefines",
        "fields": [{"name": "p", "type": changed, "doc": "A different visionlog.types.Point."}],
    }
    catalog = load_catalog(write_catalog(tmp_path, [event, redefined], [SHARED_POINT]))
    with pytest.raises(codegen.CodegenError, match=r"visionlog\.types\.Point is defined differ"):
        codegen.render(catalog)
