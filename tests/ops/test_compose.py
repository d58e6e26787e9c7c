"""The Docker Compose deployment (ops/compose), checked offline against the Compose
Specification and against the code: command lines the CLI accepts, variables that name real
settings, and the order in which the one-shot jobs gate the long-running services."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from importlib.metadata import distribution
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from jsonschema import validators  # type: ignore[import-untyped, unused-ignore]

from processors.bindings import ALL_KINDS, WORKER_KINDS
from producers.cameras.config import load_camera_set
from projections.host import PROJECTION_NAMES, default_projection_names, qdrant_hosted_by_api
from tests.ops.contract import (
    REPO,
    CommandLineError,
    parse_command_line,
    settings_field,
    settings_from_environment,
    visionlog_variables,
)
from visionlog.settings import Settings

COMPOSE_DIR = REPO / "ops" / "compose"
COMPOSE_FILE = COMPOSE_DIR / "compose.yaml"
ENV_EXAMPLE = COMPOSE_DIR / ".env.example"
CAMERAS_EXAMPLE = COMPOSE_DIR / "cameras.example.toml"
DOCKERFILE = "ops/image/Dockerfile"

SERVERS = frozenset({"kafka", "registry", "postgres", "mongo", "qdrant", "minio"})
ONE_SHOT = frozenset({"init", "migrate"})
# Long-running processes that serve the worker health endpoint.
WORKERS = frozenset(
    {f"processors-{kind}" for kind in ALL_KINDS}
    | {"projections", "reprocess-worker", "camera-producer"}
)
LONG_RUNNING = WORKERS | {"api"}
PLATFORM = ONE_SHOT | LONG_RUNNING


def declared_stores() -> dict[str, frozenset[str]]:
    """The stores each platform process reaches besides Kafka and the registry, as the
    Kubernetes workloads declare them (ops/ansible/vars/platform.yml), with the three
    projections in one process here."""
    platform = yaml.safe_load((REPO / "ops/ansible/vars/platform.yml").read_text("utf-8"))
    declared = {**platform["platform_workloads"], **platform["platform_jobs"]}
    stores = {
        name: frozenset(spec["stores"]) for name, spec in declared.items() if name in PLATFORM
    }
    stores["projections"] = frozenset().union(
        *(spec["stores"] for name, spec in declared.items() if name.startswith("projection-"))
    )
    return stores


STORES = declared_stores()
STORE_VARIABLE_PREFIXES = {
    "postgres": "VISIONLOG_POSTGRES__",
    "mongo": "VISIONLOG_MONGO__",
    "minio": "VISIONLOG_MINIO__",
    "qdrant": "VISIONLOG_QDRANT__",
}


# --- compose's variable interpolation, as the Compose Specification defines it -------------


class InterpolationError(ValueError):
    """A `${VAR:?message}` whose variable is missing, or a malformed `$` expression."""


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BRACED = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>.*))?", re.DOTALL)


def interpolate(text: str, variables: Mapping[str, str], missing: set[str] | None = None) -> str:
    """`text` with `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}`,
    `${VAR?error}`, `${VAR:+alternative}`, `${VAR+alternative}` and `$$` (a literal `$`)
    replaced. Defaults may nest expressions. An unset variable without a default becomes ""
    (compose warns) and its name is added to `missing`."""
    out: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char != "$":
            out.append(char)
            index += 1
            continue
        following = text[index + 1 : index + 2]
        if following == "$":
            out.append("$")
            index += 2
        elif following == "{":
            end = _closing_brace(text, index + 2)
            out.append(_expand(text[index + 2 : end], variables, missing))
            index = end + 1
        else:
            match = _NAME.match(text, index + 1)
            if match is None:
                raise InterpolationError(f"invalid interpolation at {index} in {text!r}")
            out.append(_lookup(match.group(), variables, missing))
            index = match.end()
    return "".join(out)


def _closing_brace(text: str, start: int) -> int:
    depth = 1
    index = start
    while index < len(text):
        if text.startswith("$$", index):
            index += 2
            continue
        if text.startswith("${", index):
            depth += 1
            index += 2
            continue
        if text[index] == "}":
            depth -= 1
            if depth == 0:
                return index
        index += 1
    raise InterpolationError(f"unclosed ${{ in {text!r}")


def _lookup(name: str, variables: Mapping[str, str], missing: set[str] | None) -> str:
    value = variables.get(name)
    if value is None:
        if missing is not None:
            missing.add(name)
        return ""
    return value


def _expand(body: str, variables: Mapping[str, str], missing: set[str] | None) -> str:
    match = _BRACED.fullmatch(body)
    if match is None:
        raise InterpolationError(f"invalid interpolation ${{{body}}}")
    name, operator, argument = match["name"], match["op"], match["arg"]
    if operator is None:
        return _lookup(name, variables, missing)
    value = variables.get(name)
    # The colon forms treat an empty value like an unset one.
    present = value is not None and (value != "" or not operator.startswith(":"))
    kind = operator[-1]
    if kind == "-":
        return (value or "") if present else interpolate(argument, variables, missing)
    if kind == "?":
        if not present:
            message = interpolate(argument, variables, missing)
            raise InterpolationError(f"{name}: {message or 'required variable is missing'}")
        return value or ""
    return interpolate(argument, variables, missing) if present else ""


def interpolate_tree(
    node: Any, variables: Mapping[str, str], missing: set[str] | None = None
) -> Any:
    """Every string value of a loaded YAML document interpolated (keys stay as they are)."""
    if isinstance(node, str):
        return interpolate(node, variables, missing)
    if isinstance(node, dict):
        return {key: interpolate_tree(value, variables, missing) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate_tree(item, variables, missing) for item in node]
    return node


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of a compose .env file: comments, blank lines, `export`, quotes."""
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, separator, value = stripped.removeprefix("export ").partition("=")
        key = key.strip()
        if not separator or not _NAME.fullmatch(key):
            raise ValueError(f"{path}:{number}: not a KEY=VALUE line")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        else:
            value = value.split(" #", 1)[0].rstrip()
        values[key] = value
    return values


def load_compose(variables: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The compose file as compose sees it: anchors merged, then interpolated (by default
    from .env.example, never from this process's environment)."""
    raw = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    if variables is None:
        variables = read_env_file(ENV_EXAMPLE)
    document: dict[str, Any] = interpolate_tree(raw, variables)
    return document


def _strings(node: Any) -> list[str]:
    """Every string value of a loaded YAML document: what compose interpolates."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [text for value in node.values() for text in _strings(value)]
    if isinstance(node, list):
        return [text for item in node for text in _strings(item)]
    return []


@pytest.fixture(scope="module")
def example_env() -> dict[str, str]:
    return read_env_file(ENV_EXAMPLE)


@pytest.fixture(scope="module")
def compose(example_env: dict[str, str]) -> dict[str, Any]:
    return load_compose(example_env)


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def environment_of(service: Mapping[str, Any]) -> dict[str, str]:
    environment = service.get("environment") or {}
    assert isinstance(environment, dict), "environments are written as mappings"
    return {key: "" if value is None else str(value) for key, value in environment.items()}


def _settings(service: Mapping[str, Any]) -> Settings:
    return settings_from_environment(visionlog_variables(environment_of(service)))


# --- the interpolation helper itself --------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("${A}", "a"),
        ("$A/$B", "a/"),
        ("x${A}y", "xay"),
        ("$$A and $${A}", "$A and ${A}"),
        ("${UNSET:-fallback}", "fallback"),
        ("${EMPTY:-fallback}", "fallback"),
        ("${EMPTY-fallback}", ""),
        ("${A:-fallback}", "a"),
        ("${UNSET-${A}/x}", "a/x"),
        ("${UNSET:-${ALSO_UNSET:-deep}}", "deep"),
        ("${A:+alt}", "alt"),
        ("${EMPTY:+alt}", ""),
        ("${EMPTY+alt}", "alt"),
        ("${UNSET+alt}", ""),
        ("${EMPTY?no}", ""),
        ("${A:?must be set}", "a"),
        ("no dollars", "no dollars"),
    ],
)
def test_interpolation_follows_the_compose_rules(template: str, expected: str) -> None:
    assert interpolate(template, {"A": "a", "EMPTY": ""}) == expected


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("${UNSET:?set UNSET in .env}", "UNSET: set UNSET in .env"),
        ("${EMPTY:?empty is missing too}", "EMPTY: empty is missing too"),
        ("${UNSET?}", "UNSET: required variable is missing"),
        ("cost: 5$", "invalid interpolation"),
        ("${A", "unclosed"),
        ("${1A}", "invalid interpolation"),
    ],
)
def test_interpolation_errors(template: str, message: str) -> None:
    with pytest.raises(InterpolationError, match=re.escape(message)):
        interpolate(template, {"A": "a", "EMPTY": ""})


def test_unset_variables_without_a_default_are_reported() -> None:
    missing: set[str] = set()
    assert interpolate("${A}-${NOPE}-$ALSO_NOPE-${B:-b}", {"A": "a"}, missing) == "a---b"
    assert missing == {"NOPE", "ALSO_NOPE"}


def test_env_file_reader(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text(
        "# comment\n\nPLAIN=value # trailing comment\nexport EXPORTED=1\n"
        "QUOTED=\"with # hash\"\nSINGLE='x y'\nEMPTY=\n"
    )
    assert read_env_file(path) == {
        "PLAIN": "value",
        "EXPORTED": "1",
        "QUOTED": "with # hash",
        "SINGLE": "x y",
        "EMPTY": "",
    }
    path.write_text("NOT A LINE\n")
    with pytest.raises(ValueError, match="not a KEY=VALUE line"):
        read_env_file(path)


# --- the compose file as a whole -------------------------------------------------------------


def _compose_schema() -> dict[str, Any]:
    # The file shipped by the check-jsonschema distribution, found through its metadata:
    # importing the package (as importlib.resources would) loads its CLI, which needs a
    # newer click than faust-streaming allows here.
    path = distribution("check-jsonschema").locate_file(
        "check_jsonschema/builtin_schemas/vendor/compose-spec.json"
    )
    schema: dict[str, Any] = json.loads(Path(str(path)).read_text(encoding="utf-8"))
    return schema


def _schema_errors(document: Mapping[str, Any]) -> list[str]:
    schema = _compose_schema()
    validator_class = validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)
    return sorted(
        f"{'/'.join(str(part) for part in error.absolute_path)}: {error.message}"
        for error in validator.iter_errors(document)
    )


def test_compose_file_validates_against_the_compose_specification(
    compose: dict[str, Any],
) -> None:
    assert _compose_schema()["title"] == "Compose Specification"
    assert _schema_errors(compose) == []


def test_the_schema_check_catches_a_broken_service(compose: dict[str, Any]) -> None:
    broken = copy.deepcopy(compose)
    broken["services"]["api"]["restart_policy"] = "always"
    broken["services"]["kafka"]["healthcheck"]["retries"] = ["three"]
    errors = _schema_errors(broken)
    assert any("restart_policy" in error for error in errors), errors
    assert any("kafka/healthcheck/retries" in error for error in errors), errors


def test_env_example_defines_exactly_the_variables_compose_uses(
    example_env: dict[str, str],
) -> None:
    raw = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    # Every string compose interpolates; `$$` is an escaped dollar (shell variables in the
    # healthchecks), never a variable.
    values = "\n".join(_strings(raw)).replace("$$", "")
    used = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", values))
    required = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*):?\?", values))
    assert required, "secrets are required through ${VAR:?message}"
    assert sorted(required - set(example_env)) == []
    assert sorted(set(example_env) - used) == [], ".env.example documents unused variables"
    missing: set[str] = set()
    interpolate_tree(raw, example_env, missing)
    assert missing == set()


def test_the_optional_values_of_env_example_are_the_compose_defaults(
    example_env: dict[str, str], compose: dict[str, Any]
) -> None:
    raw = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    required = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*):?\?", "\n".join(_strings(raw))))
    optional = set(example_env) - required
    assert optional, ".env.example shows the optional settings with their defaults"
    only_required = {key: value for key, value in example_env.items() if key in required}
    assert load_compose(only_required) == compose


def test_compose_refuses_to_start_without_the_secrets(example_env: dict[str, str]) -> None:
    without_secrets = {
        key: value
        for key, value in example_env.items()
        if not key.endswith(("PASSWORD", "API_KEY"))
    }
    assert len(without_secrets) < len(example_env)
    with pytest.raises(InterpolationError, match=r"set \w+ in \.env"):
        load_compose(without_secrets)


def test_no_secret_is_written_into_the_compose_file() -> None:
    raw = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    secret_name = re.compile(r"PASSWORD|SECRET|API_KEY|ACCESS_KEY|MONGO__URI|^MINIO_ROOT_USER$")
    checked = 0
    for name, service in raw["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if secret_name.search(key):
                checked += 1
                assert "${" in str(value), f"{name}: {key} must come from .env"
    assert checked >= 10


def test_the_service_set_is_complete(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == SERVERS | PLATFORM
    assert {f"processors-{kind}" for kind in ALL_KINDS} <= set(services)


@pytest.mark.parametrize(
    ("name", "image"),
    [
        ("kafka", "apache/kafka:4.1"),
        ("registry", "quay.io/apicurio/apicurio-registry:3.3.3"),
        ("mongo", "mongo:7"),
        ("postgres", "postgres:16"),
        ("qdrant", "qdrant/qdrant:"),
        ("minio", "quay.io/minio/minio:"),
    ],
)
def test_server_images(services: dict[str, dict[str, Any]], name: str, image: str) -> None:
    assert services[name]["image"].startswith(image)
    assert "build" not in services[name]


def test_platform_services_run_the_image_built_from_the_dockerfile(
    services: dict[str, dict[str, Any]],
) -> None:
    images = set()
    for name in sorted(PLATFORM):
        service = services[name]
        build = service["build"]
        assert (COMPOSE_DIR / build["context"]).resolve() == REPO, name
        assert build["dockerfile"] == DOCKERFILE, name
        assert "entrypoint" not in service, f"{name}: the image's entrypoint is `visionlog`"
        images.add(service["image"])
    assert (REPO / DOCKERFILE).is_file()
    assert len(images) == 1


def _container_paths(service: Mapping[str, Any]) -> dict[str, Path]:
    """Container path -> host path of the service's bind mounts (short syntax)."""
    mounts: dict[str, Path] = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        if source.startswith((".", "/")):
            mounts[target] = (COMPOSE_DIR / source).resolve()
    return mounts


def _argv_on_this_machine(service: Mapping[str, Any]) -> list[str]:
    mounts = _container_paths(service)
    return [str(mounts.get(argument, argument)) for argument in service["command"]]


@pytest.mark.parametrize("name", sorted(PLATFORM))
def test_every_platform_command_is_one_the_cli_accepts(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    argv = _argv_on_this_machine(services[name])
    try:
        parse_command_line(argv)
    except CommandLineError as error:
        pytest.fail(f"{name}: {error}")


def test_commands_match_the_services(services: dict[str, dict[str, Any]]) -> None:
    for kind in ALL_KINDS:
        assert services[f"processors-{kind}"]["command"] == ["processors", "worker", kind]
    projections = parse_command_line(services["projections"]["command"])
    assert sorted(projections["names"]) == sorted(PROJECTION_NAMES)
    api = parse_command_line(services["api"]["command"])
    assert (api["host"], api["port"]) == ("0.0.0.0", 8000)
    assert services["init"]["command"] == ["init"]
    assert services["migrate"]["command"] == ["migrate"]
    assert services["reprocess-worker"]["command"] == ["replay", "worker"]


# The kernel's CPU weight of a nice value (sched_prio_to_weight, nice 0 to 15).
NICE_WEIGHT = {
    0: 1024,
    1: 820,
    2: 655,
    3: 526,
    4: 423,
    5: 335,
    6: 272,
    7: 215,
    8: 172,
    9: 137,
    10: 110,
    11: 87,
    12: 70,
    13: 56,
    14: 45,
    15: 36,
}


def test_worker_cpu_weights_follow_the_niceness_of_their_kind(
    services: dict[str, dict[str, Any]],
) -> None:
    # `visionlog processors run` starts batch kinds with `nice`; containers get the same
    # relative CPU weight instead. The completion processor runs at nice 0 there.
    for kind in ALL_KINDS:
        nice = WORKER_KINDS[kind].nice if kind in WORKER_KINDS else 0
        assert services[f"processors-{kind}"]["cpu_shares"] == NICE_WEIGHT[nice], kind


def test_the_camera_set_is_mounted_and_parses(services: dict[str, dict[str, Any]]) -> None:
    producer = services["camera-producer"]
    assert producer["profiles"] == ["cameras"]
    mounted = _container_paths(producer)[producer["command"][-1]]
    assert mounted == CAMERAS_EXAMPLE.resolve()
    camera_set = load_camera_set(mounted)
    assert camera_set.enabled
    for camera in camera_set.enabled:
        if "://" not in camera.url and not camera.url.startswith("device:"):
            assert Path(camera.url).is_absolute(), "files are read inside the container"


@pytest.mark.parametrize("name", sorted(PLATFORM))
def test_every_visionlog_variable_names_a_setting(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    variables = visionlog_variables(environment_of(services[name]))
    assert variables
    for variable in variables:
        try:
            settings_field(variable)
        except KeyError as error:
            pytest.fail(f"{name}: {error}")


@pytest.mark.parametrize("name", sorted(PLATFORM))
def test_settings_reach_the_compose_servers(services: dict[str, dict[str, Any]], name: str) -> None:
    settings = _settings(services[name])
    assert settings.kafka.bootstrap_servers == "kafka:9092"
    assert settings.registry.url == "http://registry:8080/apis/ccompat/v7"
    assert settings.cache_dir == Path("/opt/visionlog/cache")
    assert settings.state_dir == Path("/var/lib/visionlog")
    assert (settings.health.host, settings.health.port) == ("0.0.0.0", 8081)
    stores = STORES[name]
    environment = environment_of(services[name])
    for store, prefix in STORE_VARIABLE_PREFIXES.items():
        given = any(key.startswith(prefix) for key in environment)
        assert given == (store in stores), f"{name}: {store} settings given: {given}"
    if "postgres" in stores:
        assert (settings.postgres.host, settings.postgres.port) == ("postgres", 5432)
    if "mongo" in stores:
        assert urlsplit(settings.mongo.uri.get_secret_value()).hostname == "mongo"
    if "minio" in stores:
        assert settings.minio.endpoint == "minio:9000"
    if "qdrant" in stores:
        assert settings.qdrant.url == "http://qdrant:6333"
        assert not settings.qdrant_embedded


def test_the_api_uses_the_qdrant_server_and_the_projections_host_it(
    services: dict[str, dict[str, Any]], example_env: dict[str, str]
) -> None:
    api = _settings(services["api"])
    assert not qdrant_hosted_by_api(api)
    assert api.api.admin_password is not None
    assert api.api.admin_password.get_secret_value() == example_env["VL_ADMIN_PASSWORD"]
    projections = _settings(services["projections"])
    assert "qdrant" in default_projection_names(projections)


def test_credentials_agree_between_the_platform_and_the_servers(
    services: dict[str, dict[str, Any]],
) -> None:
    api = _settings(services["api"])
    postgres = environment_of(services["postgres"])
    assert api.postgres.user == postgres["POSTGRES_USER"]
    assert api.postgres.password.get_secret_value() == postgres["POSTGRES_PASSWORD"]
    assert api.postgres.database == postgres["POSTGRES_DB"]
    registry = environment_of(services["registry"])
    assert (
        registry["APICURIO_DATASOURCE_URL"]
        == f"jdbc:postgresql://postgres:5432/{api.postgres.database}"
    )
    assert registry["APICURIO_DATASOURCE_USERNAME"] == postgres["POSTGRES_USER"]
    assert registry["APICURIO_DATASOURCE_PASSWORD"] == postgres["POSTGRES_PASSWORD"]
    mongo = environment_of(services["mongo"])
    uri = urlsplit(api.mongo.uri.get_secret_value())
    assert (uri.username, uri.password, uri.port) == (
        mongo["MONGO_INITDB_ROOT_USERNAME"],
        mongo["MONGO_INITDB_ROOT_PASSWORD"],
        27017,
    )
    minio = environment_of(services["minio"])
    assert api.minio.access_key == minio["MINIO_ROOT_USER"]
    assert api.minio.secret_key.get_secret_value() == minio["MINIO_ROOT_PASSWORD"]
    qdrant = environment_of(services["qdrant"])
    assert api.qdrant.api_key is not None
    assert api.qdrant.api_key.get_secret_value() == qdrant["QDRANT__SERVICE__API_KEY"]
    kafka = environment_of(services["kafka"])
    assert kafka["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{api.kafka.bootstrap_servers}"


# --- start order, health, hardening -------------------------------------------------------


def test_init_and_migrate_gate_every_long_running_service(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in sorted(LONG_RUNNING):
        depends_on = services[name]["depends_on"]
        for job in ONE_SHOT:
            assert depends_on[job] == {"condition": "service_completed_successfully"}, name
    for job in ONE_SHOT:
        assert services[job]["restart"] == "no"
    assert {name for name, d in services["init"]["depends_on"].items()} == {
        "kafka",
        "registry",
        "minio",
    }
    assert set(services["migrate"]["depends_on"]) == {"postgres"}


def test_dependencies_wait_for_health_that_is_checked(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for target, condition in (service.get("depends_on") or {}).items():
            assert target in services, f"{name} depends on unknown {target}"
            if condition["condition"] == "service_healthy":
                assert "test" in services[target].get("healthcheck", {}), target
            if condition["condition"] == "service_completed_successfully":
                assert target in ONE_SHOT, f"{name} waits for {target} to exit"


def test_stores_are_healthy_before_the_services_that_use_them(
    services: dict[str, dict[str, Any]],
) -> None:
    # Kafka, the registry and MinIO are behind init; PostgreSQL behind migrate.
    behind_jobs = {"kafka", "registry", "minio", "postgres"}
    for name in sorted(LONG_RUNNING):
        waits_for = set(services[name]["depends_on"])
        for store in STORES[name] - behind_jobs:
            assert store in waits_for, f"{name} does not wait for {store}"


def _probe(service: Mapping[str, Any]) -> tuple[int, str]:
    command = " ".join(service["healthcheck"]["test"])
    match = re.search(r"http://127\.0\.0\.1:(\d+)(/[a-z]+)", command)
    assert match is not None, command
    return int(match.group(1)), match.group(2)


def test_servers_and_long_running_services_have_healthchecks(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in sorted(SERVERS | LONG_RUNNING):
        test = services[name]["healthcheck"]["test"]
        assert test[0] in ("CMD", "CMD-SHELL"), name
    for name in sorted(WORKERS):
        settings = _settings(services[name])
        assert _probe(services[name]) == (settings.health.port, "/readyz"), name
        assert services[name]["healthcheck"]["test"][1] == "python", "the image has no curl"
    api_port = parse_command_line(services["api"]["command"])["port"]
    assert _probe(services["api"]) == (api_port, "/readyz")


def test_platform_containers_are_read_only_and_unprivileged(
    services: dict[str, dict[str, Any]], compose: dict[str, Any]
) -> None:
    for name in sorted(PLATFORM):
        service = services[name]
        assert service["read_only"] is True, name
        assert service["cap_drop"] == ["ALL"], name
        assert "user" not in service, f"{name}: the image's user (10001) runs it"
        writable = set(service.get("tmpfs", []))
        writable |= {volume.split(":")[1] for volume in service.get("volumes", [])}
        assert {"/tmp", str(_settings(service).state_dir)} <= writable, name
    api_volumes = services["api"]["volumes"]
    assert "api-state:/var/lib/visionlog" in api_volumes, "the JWT key must survive restarts"
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in compose["volumes"], source


def test_only_loopback_ports_are_published(services: dict[str, dict[str, Any]]) -> None:
    assert services["api"]["ports"] == ["127.0.0.1:8000:8000"]
    for name, service in services.items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port}"
    for name in sorted(PLATFORM - {"api"}):
        assert "ports" not in services[name], name
