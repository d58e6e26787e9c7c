"""The alerts and the Grafana dashboard watch only metrics that exist, with labels they have.

Every metric name an alert expression or a dashboard query uses is either one the platform's
code exports (the families its modules define, and prometheus_client's process, platform
and GC collectors, which every process serves with the default registry) or one of an
explicit list of standard kube-state-metrics, cAdvisor, Kafka Exporter and Prometheus
series; and every label a selector matches, an aggregation groups by, a legend or an alert
summary names is one those series carry.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Any

import pytest
from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.metrics import MetricWrapperBase

from tests.ops.contract import REPO
from tests.ops.manifests import ENVIRONMENTS, Document, ManifestSet
from tests.ops.test_ansible import inventory
from visionlog.observability.metrics import ProcessorCollectors

# The modules that define metric families at import time (the processors' families are
# registered per registry by `ProcessorCollectors`). test_every_metric_of_the_source_is_known
# fails when a family is defined anywhere else, so this list cannot fall behind.
METRIC_MODULES = ("api.observability", "projections.runtime", "projections.host")
SOURCE_PACKAGES = ("visionlog", "processors", "projections", "api", "producers", "stack")

# Labels Prometheus adds to every series it scrapes through a prometheus-operator PodMonitor
# or ServiceMonitor.
TARGET_LABELS = frozenset(
    {"namespace", "pod", "container", "service", "endpoint", "job", "instance"}
)

# Standard series of the cluster's own exporters, with the labels they carry. Nothing else
# outside the platform's code may be referenced.
STANDARD_METRICS: dict[str, frozenset[str]] = {
    # kube-state-metrics
    "kube_pod_container_status_restarts_total": frozenset({"uid"}),
    "kube_pod_container_resource_limits": frozenset({"uid", "node", "resource", "unit"}),
    # cAdvisor, through the kubelet
    "container_memory_working_set_bytes": frozenset({"id", "image", "name", "node"}),
    # Strimzi's Kafka Exporter
    "kafka_consumergroup_lag": frozenset({"consumergroup", "topic", "partition"}),
    # Prometheus itself, per target
    "up": frozenset(),
}

SAMPLE_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "enum": ("",),
}
# Labels a sample has beyond its family's.
SUFFIX_LABELS = {
    ("histogram", "_bucket"): frozenset({"le"}),
    ("summary", ""): frozenset({"quantile"}),
}

PROMQL_WORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "bool"}
    | {"and", "or", "unless", "offset", "atan2", "inf", "nan"}
)
# A prometheus_client family: its name, then its help text (collections.Counter has neither).
DEFINITION = re.compile(r"\b(Counter|Gauge|Histogram|Summary|Info|Enum)\(\s*\"(\w+)\",\s*\"")
STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
RANGE = re.compile(r"\[[^\]]*\]")
GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
SELECTOR = re.compile(r"([a-zA-Z_:][\w:]*)?\s*\{([^}]*)\}")
MATCHER = re.compile(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)")
IDENTIFIER = re.compile(r"(?<![\w.$])([a-zA-Z_:][\w:]*)(?![\w:]|\s*\()")
TEMPLATE_LABEL = re.compile(r"\{\{\s*(?:\$labels\.)?(\w+)\s*\}\}")
ANNOTATION_LABEL = re.compile(r"\$labels\.(\w+)")


@dataclass(frozen=True)
class Family:
    name: str
    type: str
    labels: frozenset[str]

    def samples(self) -> dict[str, frozenset[str]]:
        base = self.name.removesuffix("_total") if self.type == "counter" else self.name
        return {
            base + suffix: self.labels | SUFFIX_LABELS.get((self.type, suffix), frozenset())
            for suffix in SAMPLE_SUFFIXES[self.type]
        }


def wrapper_family(metric: MetricWrapperBase) -> Family:
    # prometheus_client keeps a family's name, type and label names on the wrapper; they
    # show in collect() only once a child exists, and a labelled family has none yet.
    return Family(str(metric._name), str(metric._type), frozenset(metric._labelnames))


def platform_families() -> list[Family]:
    """The families the platform's processes serve, from the code that defines them."""
    registry = CollectorRegistry()
    processors = ProcessorCollectors.register(registry)
    wrappers: list[MetricWrapperBase] = [getattr(processors, f.name) for f in fields(processors)]
    for name in METRIC_MODULES:
        module = importlib.import_module(name)
        wrappers.extend(
            value for value in vars(module).values() if isinstance(value, MetricWrapperBase)
        )
    families = [wrapper_family(wrapper) for wrapper in wrappers]
    # What the default registry adds in every process: these families carry their samples.
    defaults = CollectorRegistry()
    ProcessCollector(registry=defaults)
    PlatformCollector(registry=defaults)
    GCCollector(registry=defaults)
    for family in defaults.collect():
        labels = frozenset(label for sample in family.samples for label in sample.labels)
        families.append(Family(family.name, family.type, labels))
    return families


def known_samples() -> dict[str, frozenset[str]]:
    """Every sample name that may be referenced, with the labels it carries."""
    samples: dict[str, frozenset[str]] = {}
    for family in platform_families():
        for name, labels in family.samples().items():
            samples[name] = labels | TARGET_LABELS
    for name, labels in STANDARD_METRICS.items():
        samples[name] = labels | TARGET_LABELS
    return samples


def source_definitions() -> set[str]:
    """Family names of every Counter/Gauge/Histogram/... defined in the platform's source."""
    names = set()
    for package in SOURCE_PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            for kind, name in DEFINITION.findall(path.read_text(encoding="utf-8")):
                names.add(name.removesuffix("_total") if kind == "Counter" else name)
    return names


@dataclass(frozen=True)
class Query:
    """One PromQL expression and the labels its output is expected to show."""

    where: str
    expr: str
    shown: frozenset[str] = frozenset()


@dataclass
class Parsed:
    selectors: list[tuple[str, frozenset[str]]]
    grouping: frozenset[str]


def parse(expr: str) -> Parsed:
    """The metric selectors (name, matched labels) and grouping labels of an expression.

    Not a PromQL parser: enough of one for the expressions of alerts and dashboards (no
    label_replace, no __name__ matchers), which the tests below hold to.
    """
    text = STRING.sub('""', expr)
    text = RANGE.sub("", text)
    grouping: set[str] = set()

    def group(match: re.Match[str]) -> str:
        grouping.update(label.strip() for label in match[2].split(",") if label.strip())
        return " "

    text = GROUPING.sub(group, text)
    selectors: list[tuple[str, frozenset[str]]] = []

    def select(match: re.Match[str]) -> str:
        if not match[1]:
            raise AssertionError(f"a selector without a metric name in {expr!r}")
        selectors.append((match[1], frozenset(MATCHER.findall(match[2]))))
        return " "

    text = SELECTOR.sub(select, text)
    for name in IDENTIFIER.findall(text):
        if name not in PROMQL_WORDS:
            selectors.append((name, frozenset()))
    return Parsed(selectors, frozenset(grouping))


def problems(query: Query, known: dict[str, frozenset[str]]) -> list[str]:
    """What a query references that the platform and the standard exporters do not export."""
    found = []
    parsed = parse(query.expr)
    if not parsed.selectors:
        found.append(f"{query.where}: no metric in {query.expr!r}")
    available: set[str] = set()
    for name, labels in parsed.selectors:
        if name not in known:
            found.append(f"{query.where}: {name} is not exported")
            continue
        available |= known[name]
        if unknown := labels - known[name]:
            found.append(f"{query.where}: {name} has no label {sorted(unknown)}")
    # An aggregation keeps, and a legend or a summary shows, only labels some series has
    # (`le` only where histogram buckets are selected).
    if unknown := (parsed.grouping | query.shown) - available:
        found.append(f"{query.where}: no series of {query.expr!r} has {sorted(unknown)}")
    return found


def rule_queries(manifests: ManifestSet) -> Iterator[Query]:
    for item in manifests.of_kind("PrometheusRule"):
        for group in item.document["spec"]["groups"]:
            for rule in group["rules"]:
                name = rule.get("alert") or rule.get("record")
                shown = {
                    label
                    for text in rule.get("annotations", {}).values()
                    for label in ANNOTATION_LABEL.findall(text)
                }
                yield Query(f"rule {name}", rule["expr"], frozenset(shown))


def dashboards(manifests: ManifestSet) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for item in manifests.of_kind("ConfigMap"):
        if item.document["metadata"].get("labels", {}).get("grafana_dashboard") == "1":
            found.extend(json.loads(text) for text in item.document["data"].values())
    return found


def panels(container: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in container.get("panels", []):
        yield panel
        yield from panels(panel)


def dashboard_queries(dashboard: dict[str, Any]) -> Iterator[Query]:
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            shown = TEMPLATE_LABEL.findall(target.get("legendFormat", ""))
            yield Query(
                f"panel {panel['title']!r} ({target['refId']})", target["expr"], frozenset(shown)
            )
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable["type"] == "query":
            yield Query(f"variable {variable['name']}", str(variable["query"]))


def monitored() -> list[str]:
    return [
        environment
        for environment in ENVIRONMENTS
        if inventory(environment)["monitoring"]["enabled"]
    ]


def all_queries(rendered: ManifestSet) -> list[Query]:
    queries = list(rule_queries(rendered))
    for dashboard in dashboards(rendered):
        queries.extend(dashboard_queries(dashboard))
    return queries


def test_every_metric_of_the_source_is_known() -> None:
    # A family defined in a module not listed above would be missing from what the checks
    # accept; a family listed but no longer defined would be accepted without existing.
    listed = {
        family.name
        for family in platform_families()
        if not family.name.startswith(("process_", "python_"))  # the default collectors
    }
    assert listed == source_definitions()
    assert "visionlog_projection_restarts" in listed
    assert "visionlog_api_request_duration_seconds" in listed


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_alerts_and_dashboard_use_only_exported_metrics_and_labels(
    environment: str, manifests: dict[str, ManifestSet]
) -> None:
    if environment not in monitored():
        assert not all_queries(manifests[environment])
        return
    known = known_samples()
    queries = all_queries(manifests[environment])
    assert len(queries) > 30
    found = [problem for query in queries for problem in problems(query, known)]
    assert not found, "\n".join(found)
    # Every standard series listed is used: the allow-list does not outlive its use.
    used = {name for query in queries for name, _ in parse(query.expr).selectors}
    assert set(STANDARD_METRICS) <= used, sorted(set(STANDARD_METRICS) - used)


def test_the_check_refuses_what_does_not_exist() -> None:
    known = known_samples()
    good = (
        'sum by (worker, stage) (rate(visionlog_processor_dead_letters_total{namespace="x"}[5m]))'
    )
    assert problems(Query("good", good, frozenset({"stage"})), known) == []
    for where, expr in [
        ("an invented metric", 'sum(rate(visionlog_processor_failures_total{worker="live"}[5m]))'),
        (
            "a histogram without _bucket",
            "histogram_quantile(0.99, rate(visionlog_api_request_duration_seconds[5m]))",
        ),
        ("a counter without _total", "rate(visionlog_projection_restarts[5m])"),
        ("a label the family lacks", 'visionlog_projection_lag_messages{worker="live"}'),
        (
            "grouping by a missing label",
            "sum by (camera) (visionlog_processor_camera_latency_seconds)",
        ),
        ("an unlisted kube metric", "kube_pod_status_phase"),
        ("le without buckets", "sum by (le) (visionlog_api_requests_total)"),
    ]:
        assert problems(Query(where, expr), known), where
    assert problems(Query("legend", good, frozenset({"camera_id"})), known)


def test_the_parser_finds_selectors_and_grouping() -> None:
    parsed = parse(
        'max by (pod, container) (container_memory_working_set_bytes{namespace="a", '
        'container!=""}) / on (pod, container) max by (pod, container) '
        '(kube_pod_container_resource_limits{resource="memory"}) > 0.9 '
        "or up offset 15m unless rate(process_cpu_seconds_total[$__rate_interval]) > 1e3"
    )
    assert parsed.selectors == [
        ("container_memory_working_set_bytes", frozenset({"namespace", "container"})),
        ("kube_pod_container_resource_limits", frozenset({"resource"})),
        ("up", frozenset()),
        ("process_cpu_seconds_total", frozenset()),
    ]
    assert parsed.grouping == {"pod", "container"}


def rules_by_name(rendered: ManifestSet) -> dict[str, Document]:
    return {
        rule["alert"]: rule
        for item in rendered.of_kind("PrometheusRule")
        for group in item.document["spec"]["groups"]
        for rule in group["rules"]
    }


def selected(expr: str) -> set[str]:
    return {name for name, _ in parse(expr).selectors}


def test_the_alerts_cover_what_operators_must_see(manifests: dict[str, ManifestSet]) -> None:
    rules = rules_by_name(manifests["production"])
    expected = {
        "VisionlogProjectionLagHigh": {"visionlog_projection_lag_messages"},
        "VisionlogProjectionRestarting": {"visionlog_projection_restarts_total"},
        "VisionlogDeadLetters": {"visionlog_processor_dead_letters_total"},
        "VisionlogProjectionDeadLetters": {"visionlog_projection_events_total"},
        "VisionlogWorkerRestarting": {"kube_pod_container_status_restarts_total"},
        "VisionlogApiLatencyHigh": {"visionlog_api_request_duration_seconds_bucket"},
        "VisionlogApiErrors": {"visionlog_api_requests_total"},
        "VisionlogMemoryNearLimit": {
            "container_memory_working_set_bytes",
            "kube_pod_container_resource_limits",
        },
    }
    for name, metrics in expected.items():
        assert name in rules, name
        assert selected(rules[name]["expr"]) == metrics, name
    # Per projection, per worker and stage: the labels the alerts are raised for.
    assert parse(rules["VisionlogProjectionLagHigh"]["expr"]).grouping == {"projection"}
    assert parse(rules["VisionlogProjectionDeadLetters"]["expr"]).grouping == {"projection"}
    assert parse(rules["VisionlogDeadLetters"]["expr"]).grouping == {"worker", "stage"}
    assert 'outcome="dead_lettered"' in rules["VisionlogProjectionDeadLetters"]["expr"]
    # Lag and memory are judged over minutes, not on one scrape.
    for name in ("VisionlogProjectionLagHigh", "VisionlogMemoryNearLimit"):
        assert rules[name].get("for"), name
    for name, rule in rules.items():
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert rule["annotations"]["summary"], name


def test_the_dashboard_shows_what_operators_must_see(manifests: dict[str, ManifestSet]) -> None:
    (dashboard,) = dashboards(manifests["production"])
    all_panels = list(panels(dashboard))
    ids = [panel["id"] for panel in all_panels]
    assert len(ids) == len(set(ids))
    graphs = [panel for panel in all_panels if panel["type"] != "row"]
    used: set[str] = set()
    for panel in graphs:
        assert panel["targets"], panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
            used |= selected(target["expr"])
    variables = {variable["name"] for variable in dashboard["templating"]["list"]}
    assert "datasource" in variables
    assert used >= {
        "visionlog_processor_live_latency_seconds_bucket",  # capture to analysed
        "visionlog_processor_camera_latency_seconds",
        "visionlog_processor_skipped_frames_total",  # frames skipped
        "visionlog_processor_stage_duration_seconds_bucket",
        "visionlog_processor_queue_age_seconds_bucket",
        "visionlog_processor_dead_letters_total",
        "visionlog_projection_lag_messages",
        "visionlog_projection_events_total",  # throughput
        "visionlog_api_requests_total",  # rate and errors
        "visionlog_api_request_duration_seconds_bucket",
        "process_resident_memory_bytes",
    }
    # Panels do not overlap on Grafana's 24-column grid.
    cells: set[tuple[int, int]] = set()
    for panel in all_panels:
        box = panel["gridPos"]
        assert box["x"] + box["w"] <= 24, panel["title"]
        covered = {
            (x, y)
            for x in range(box["x"], box["x"] + box["w"])
            for y in range(box["y"], box["y"] + box["h"])
        }
        assert not covered & cells, panel["title"]
        cells |= covered


def test_every_query_is_scoped_to_its_environment(manifests: dict[str, ManifestSet]) -> None:
    for environment in monitored():
        namespace = inventory(environment)["k8s_namespace"]
        for query in all_queries(manifests[environment]):
            for name, labels in parse(query.expr).selectors:
                assert "namespace" in labels, (environment, query.where, name)
            assert f'namespace="{namespace}"' in query.expr, (environment, query.where)


def test_the_api_latency_leaves_out_exactly_the_long_running_routes(
    manifests: dict[str, ManifestSet],
) -> None:
    # Uploads take as long as their body, event streams as long as their item: the latency
    # alert and panel leave them out by route template, so the templates must be the API's.
    rule = rules_by_name(manifests["production"])["VisionlogApiLatencyHigh"]
    (pattern,) = re.findall(r'route!~"([^"]+)"', rule["expr"])
    upload = "/v1" + "/ingest"
    events = "/v1" + "/media/{media_id}/events"
    for route in (upload, events):
        assert re.fullmatch(pattern, route), route
    for route in ("/v1/media/{media_id}", "/v1/search", "/v1/media/{media_id}/report"):
        assert not re.fullmatch(pattern, route), route
    ingest_source = (REPO / "producers" / "http.py").read_text(encoding="utf-8")
    media_source = (REPO / "api" / "routes" / "media.py").read_text(encoding="utf-8")
    app_source = (REPO / "api" / "app.py").read_text(encoding="utf-8")
    assert re.search(r'@router\.post\(\s*"/ingest"', ingest_source)
    # The ingest router is included under /v1 (rebound to the API's own dependencies).
    assert re.search(r"rebound_router\(\s*ingest_http\.router", app_source)
    assert re.search(r'ingest_router,\s*prefix="/v1"', app_source)
    assert 'APIRouter(prefix="/v1"' in media_source
    assert re.search(r'@router\.get\(\s*"/media/\{media_id\}/events"', media_source)
