"""The rendered manifests agree with the code they deploy: commands the CLI accepts, settings
that exist, consumer groups and topics the processors really use, stores each process
really reaches; and they meet the availability rules of the platform."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml
from prometheus_client import CollectorRegistry

from processors.bindings import ALL_KINDS, COMPLETION_KIND, WORKER_KINDS, worker_kind
from processors.worker import group_id, input_topics
from producers.cameras.config import load_camera_set
from projections.host import PROJECTION_NAMES
from stack.platform import PROCESSES
from tests.ops.contract import (
    REPO,
    CommandLineError,
    Subscription,
    parse_command_line,
    settings_field,
    settings_from_environment,
    worker_subscription,
)
from tests.ops.manifests import (
    CHECKED_IN,
    ENVIRONMENTS,
    Document,
    ManifestSet,
    containers,
    pod_spec,
)
from visionlog.observability.metrics import LIVE_BUCKETS, collectors
from visionlog.settings import Settings
from visionlog.topics import CATALOGUE, full_topic_name, partitions_for

CAMERA_SET_PATH = "/etc/visionlog/cameras/cameras.toml"
# Stand-ins for the values Secrets supply, so settings can be built from a pod's env.
SECRET_STAND_IN = "from-a-secret"


def platform_deployments(manifests: ManifestSet) -> list[Document]:
    return [
        item.document
        for item in manifests.of_kind("Deployment")
        if item.document["metadata"]["labels"].get("app.kubernetes.io/part-of") == "visionlog"
    ]


def platform_pods(manifests: ManifestSet) -> list[Document]:
    jobs = [item.document for item in manifests.of_kind("Job")]
    return platform_deployments(manifests) + jobs


def component(document: Document) -> str:
    return str(document["metadata"]["labels"]["app.kubernetes.io/component"])


def pod_environment(manifests: ManifestSet, document: Document) -> dict[str, str]:
    """The VISIONLOG_* variables a pod's container starts with."""
    (container,) = containers(document)
    environment: dict[str, str] = {}
    for source in container.get("envFrom", []):
        environment.update(manifests.get("ConfigMap", source["configMapRef"]["name"])["data"])
    for variable in container.get("env", []):
        environment[variable["name"]] = variable.get("value", SECRET_STAND_IN)
    return environment


def settings_of(manifests: ManifestSet, document: Document) -> Settings:
    return settings_from_environment(pod_environment(manifests, document))


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_every_platform_process_has_its_deployment(
    environment: str, manifests: dict[str, ManifestSet]
) -> None:
    deployed = {component(document) for document in platform_deployments(manifests[environment])}
    expected = (
        {f"processors-{kind}" for kind in ALL_KINDS}
        | {f"projection-{name}" for name in PROJECTION_NAMES}
        | {"reprocess-worker", "api", "camera-producer"}
    )
    assert deployed == expected
    # Each process the local platform runs is deployed, one way or another.
    commands = {
        " ".join(containers(document)[0]["args"])
        for document in platform_deployments(manifests[environment])
    }
    for process in PROCESSES:
        if process.argv == ("processors", "run"):
            # The local supervisor's workers run one kind per Deployment.
            for kind in ALL_KINDS:
                assert f"processors worker {kind}" in commands
        else:
            prefix = " ".join(process.argv)
            assert any(command.startswith(prefix) for command in commands), process.name


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_every_container_runs_a_command_the_cli_accepts(
    environment: str, manifests: dict[str, ManifestSet], tmp_path: Path
) -> None:
    rendered = manifests[environment]
    camera_set = tmp_path / "cameras.toml"
    camera_set.write_text(rendered.get("ConfigMap", "visionlog-cameras")["data"]["cameras.toml"])
    # The camera set this environment deploys is one the producer accepts.
    assert load_camera_set(camera_set).enabled
    for document in platform_pods(rendered):
        (container,) = containers(document)
        assert container["command"] == ["visionlog"]
        args = [
            camera_set.as_posix() if arg == CAMERA_SET_PATH else arg for arg in container["args"]
        ]
        params = parse_command_line(args)
        if CAMERA_SET_PATH in container["args"]:
            mounts = {mount["mountPath"] for mount in container["volumeMounts"]}
            assert str(Path(CAMERA_SET_PATH).parent) in mounts
        if args[:2] == ["processors", "worker"]:
            assert params["kind"] in ALL_KINDS


def test_the_cli_check_refuses_what_the_cli_refuses() -> None:
    for argv in (
        ["processors", "worker"],
        ["processors", "wrker", "vision"],
        ["api", "serve", "--hots", "0.0.0.0"],
        ["replay"],
    ):
        with pytest.raises(CommandLineError):
            parse_command_line(argv)


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_configuration_names_real_settings(
    environment: str, manifests: dict[str, ManifestSet]
) -> None:
    rendered = manifests[environment]
    for variable in rendered.config():
        settings_field(variable)
    for document in platform_pods(rendered):
        for variable in pod_environment(rendered, document):
            settings_field(variable)
        settings = settings_of(rendered, document)
        # Production servers, not the local defaults or the embedded stores.
        assert not settings.qdrant_embedded
        assert settings.kafka.security_protocol == "SASL_SSL"
        assert settings.kafka.sasl_password is not None
        assert not settings.kafka.bootstrap_servers.startswith("127.0.0.1")
        assert settings.state_dir == Path("/var/lib/visionlog")
        mounts = {mount["mountPath"] for mount in containers(document)[0]["volumeMounts"]}
        assert str(settings.state_dir) in mounts, "the state directory must be writable"
        assert settings.kafka.ssl_ca_location is not None
        assert str(Path(settings.kafka.ssl_ca_location).parent) in mounts
        # JSON lines for the cluster's log collector; no traces unless a collector is named.
        assert settings.logging.format == "json"
        assert settings.tracing.otlp_endpoint is None


def test_the_settings_check_refuses_unknown_names() -> None:
    for variable in ("VISIONLOG_KAFKA__BOOTSTRAP", "VISIONLOG_HEALTH__PROT", "KAFKA_BROKERS"):
        with pytest.raises(KeyError):
            settings_field(variable)


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_no_credentials_in_configuration(
    environment: str, manifests: dict[str, ManifestSet]
) -> None:
    rendered = manifests[environment]
    assert not rendered.of_kind("Secret"), "Secrets are referenced, never rendered"
    for variable in rendered.config():
        assert not re.search(r"PASSWORD|SECRET|API_KEY|__URI$|ACCESS_KEY", variable), variable


def referenced_secrets(manifests: ManifestSet) -> set[str]:
    names: set[str] = set()

    def walk(node: Any, parent: str = "") -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("secretKeyRef", "passwordSecretRef") and isinstance(value, dict):
                    names.add(value["name"])
                elif key == "secret" and isinstance(value, dict) and "secretName" in value:
                    names.add(value["secretName"])
                elif key in ("secretName", "scramCredentialsSecretName") and isinstance(value, str):
                    names.add(value)
                elif key == "secretTargetRef":
                    names.update(ref["name"] for ref in value)
                elif key in ("imagePullSecrets", "users") and isinstance(value, list):
                    names.update(ref["name"] for ref in value if "passwordSecretRef" not in ref)
                    walk(value, key)
                elif key == "configuration" and parent == "spec":
                    names.add(value["name"])
                else:
                    walk(value, key)
        elif isinstance(node, list):
            for value in node:
                walk(value, parent)

    for item in manifests:
        walk(item.document)
    return names


def test_every_referenced_secret_is_documented(manifests: dict[str, ManifestSet]) -> None:
    readme = (CHECKED_IN / "README.md").read_text(encoding="utf-8")
    table = readme.split("## Secrets", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([a-z0-9.-]+)` \|", table, flags=re.MULTILINE))
    used: set[str] = set()
    for environment in ENVIRONMENTS:
        used |= referenced_secrets(manifests[environment])
    assert {"visionlog-pg-app", "visionlog-platform", "visionlog-api"} <= used
    assert used == documented, (
        f"undocumented: {sorted(used - documented)}; documented but unused: "
        f"{sorted(documented - used)}"
    )


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_processors_scale_on_the_lag_of_their_own_consumer_groups(
    environment: str, manifests: dict[str, ManifestSet]
) -> None:
    rendered = manifests[environment]
    scaled = rendered.of_kind("ScaledObject")
    assert {item.name for item in scaled} == {
        f"visionlog-processors-{kind}" for kind in WORKER_KINDS
    }
    for item in scaled:
        spec = item.document["spec"]
        target = rendered.get("Deployment", spec["scaleTargetRef"]["name"])
        assert "replicas" not in target["spec"], "the autoscaler owns the replica count"
        kind = containers(target)[0]["args"][2]
        settings = settings_of(rendered, target)
        lag = [trigger for trigger in spec["triggers"] if trigger["type"] == "kafka"]
        assert {trigger["metadata"]["consumerGroup"] for trigger in lag} == {
            group_id(kind, settings)
        }
        topics = [trigger["metadata"]["topic"] for trigger in lag]
        assert sorted(topics) == input_topics(worker_kind(kind), settings.kafka)
        assert {trigger["metadata"]["bootstrapServers"] for trigger in lag} == {
            settings.kafka.bootstrap_servers
        }
        # Consumers beyond the partitions of the busiest input topic would idle.
        partitions = {
            full_topic_name(spec_, settings.kafka): partitions_for(spec_, settings.kafka)
            for spec_ in CATALOGUE
        }
        assert spec["maxReplicaCount"] <= max(partitions[topic] for topic in topics)
        assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
        assert any(trigger["type"] == "cpu" for trigger in spec["triggers"]), "CPU fallback"
        assert spec["fallback"]["replicas"] >= spec["minReplicaCount"]
    hpa = rendered.get("HorizontalPodAutoscaler", "visionlog-api")
    api = rendered.get("Deployment", hpa["spec"]["scaleTargetRef"]["name"])
    assert "replicas" not in api["spec"]


# --- what the workers' faust apps really consume -------------------------------------------

PLATFORM_VARS = REPO / "ops" / "ansible" / "vars" / "platform.yml"
# Apps are built under a topic prefix, so the prefix is seen to reach every name they use.
BUILT_PREFIX = "acme."


def declared_workloads() -> dict[str, dict[str, Any]]:
    loaded = yaml.safe_load(PLATFORM_VARS.read_text(encoding="utf-8"))
    workloads: dict[str, dict[str, Any]] = loaded["platform_workloads"]
    return workloads


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, dict[str, Subscription]]:
    settings = settings_from_environment(
        {
            "VISIONLOG_STATE_DIR": str(tmp_path_factory.mktemp("state")),
            "VISIONLOG_KAFKA__TOPIC_PREFIX": BUILT_PREFIX,
        }
    )
    return settings, {kind: worker_subscription(kind, settings) for kind in ALL_KINDS}


def unprefixed(names: frozenset[str]) -> set[str]:
    assert all(name.startswith(BUILT_PREFIX) for name in names), names
    return {name.removeprefix(BUILT_PREFIX) for name in names}


def test_every_topic_a_worker_uses_is_in_the_catalogue(
    built: tuple[Settings, dict[str, Subscription]],
) -> None:
    # Topics come from the catalogue only (`visionlog init`; brokers create none and faust
    # declares none), so a worker reading a topic outside it would wait forever.
    settings, subscriptions = built
    catalogue = {spec.name: spec for spec in CATALOGUE}
    for kind, subscription in subscriptions.items():
        assert subscription.group == group_id(kind, settings)
        assert subscription.topics, kind
        if kind != COMPLETION_KIND:
            assert sorted(subscription.topics) == input_topics(worker_kind(kind), settings.kafka)
            state_topic = worker_kind(kind).state_topic
            assert unprefixed(subscription.changelogs) == ({state_topic} if state_topic else set())
        used = unprefixed(subscription.topics | subscription.changelogs)
        assert used <= set(catalogue), f"{kind}: {sorted(used - set(catalogue))}"
        for name in unprefixed(subscription.changelogs):
            assert not catalogue[name].events, f"{name} is a changelog, not an event topic"
            assert catalogue[name].config["cleanup.policy"] == "compact", name
    assert subscriptions[COMPLETION_KIND].changelogs, "the completion state is a table"


def test_the_processor_workloads_declare_what_the_code_consumes(
    built: tuple[Settings, dict[str, Subscription]],
) -> None:
    # platform.yml's groups and topics feed KEDA's lag triggers and the lag alerts.
    _, subscriptions = built
    declared = {
        name: spec
        for name, spec in declared_workloads().items()
        if spec["args"][:2] == ["processors", "worker"]
    }
    assert {spec["args"][2] for spec in declared.values()} == set(ALL_KINDS)
    for name, spec in declared.items():
        kind = spec["args"][2]
        assert name == f"processors-{kind}"
        assert BUILT_PREFIX + spec["consumer_group"] == subscriptions[kind].group, name
        assert set(spec["input_topics"]) == unprefixed(subscriptions[kind].topics), name


def acl_allows(acls: list[dict[str, Any]], resource_type: str, name: str, operation: str) -> bool:
    for acl in acls:
        resource = acl["resource"]
        if resource["type"] != resource_type or operation not in acl["operations"]:
            continue
        if resource.get("patternType", "literal") == "prefix":
            if name.startswith(resource["name"]):
                return True
        elif resource["name"] in ("*", name):
            return True
    return False


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_kafka_lets_every_worker_use_its_group_and_topics(
    environment: str,
    manifests: dict[str, ManifestSet],
    built: tuple[Settings, dict[str, Subscription]],
) -> None:
    rendered = manifests[environment]
    _, subscriptions = built
    acls = rendered.get("KafkaUser", "visionlog-platform")["spec"]["authorization"]["acls"]
    exporter = rendered.get("Kafka", "visionlog")["spec"].get("kafkaExporter")
    rules = {
        rule["alert"]: rule
        for item in rendered.of_kind("PrometheusRule")
        for group in item.document["spec"]["groups"]
        for rule in group["rules"]
    }
    kinds = set()
    for document in platform_deployments(rendered):
        args = containers(document)[0]["args"]
        if args[:2] != ["processors", "worker"]:
            continue
        kind = args[2]
        kinds.add(kind)
        settings = settings_of(rendered, document)
        prefix = settings.kafka.topic_prefix
        group = group_id(kind, settings)
        assert acl_allows(acls, "group", group, "Read"), (kind, group)
        subscription = subscriptions[kind]
        for topic in unprefixed(subscription.topics | subscription.changelogs):
            for operation in ("Read", "Write", "Describe"):
                assert acl_allows(acls, "topic", prefix + topic, operation), (kind, topic)
        if exporter is not None:
            # The Kafka Exporter reports the lag of exactly the groups matching its regex.
            assert re.fullmatch(exporter["groupRegex"], group), (kind, group)
        if kind == COMPLETION_KIND and exporter is not None:
            # The completion processor does not scale: an alert watches its lag instead.
            expr = rules["VisionlogCompletionBehind"]["expr"]
            assert f'consumergroup="{group}"' in expr
            assert "kafka_consumergroup_lag" in expr
    assert kinds == set(ALL_KINDS)


def exported_samples() -> set[str]:
    """The sample names the processors' metric families expose to Prometheus."""
    registry = CollectorRegistry()
    collectors(registry)
    suffixes = {"histogram": ("_bucket", "_sum", "_count"), "counter": ("_total",), "gauge": ("",)}
    return {
        family.name + suffix for family in registry.collect() for suffix in suffixes[family.type]
    }


def test_alerts_watch_the_metrics_the_processors_export(
    manifests: dict[str, ManifestSet],
) -> None:
    production = manifests["production"]
    rules = {
        rule["alert"]: rule
        for group in production.get("PrometheusRule", "visionlog-alerts")["spec"]["groups"]
        for rule in group["rules"]
    }
    exported = exported_samples()
    for name, rule in rules.items():
        used = set(re.findall(r"visionlog_processor_\w+", rule["expr"]))
        assert used <= exported, f"{name}: {sorted(used - exported)} are not exported"
    live = rules["VisionlogLiveLatencyHigh"]
    assert re.search(
        r"histogram_quantile\(0\.99, .*rate\(visionlog_processor_live_latency_seconds_bucket"
        r'\{[^}]*worker="live"[^}]*\}\[5m\]\)\)\) > 1\.5$',
        live["expr"],
    ), live["expr"]
    assert live["for"] == "5m"
    # The threshold is a bucket edge, so the quantile is exact where the alert decides.
    assert 1.5 in LIVE_BUCKETS
    dead = rules["VisionlogDeadLetters"]
    assert "rate(visionlog_processor_dead_letters_total{" in dead["expr"]
    # Every processor pod is scraped on the port its probes use.
    monitor = production.get("PodMonitor", "visionlog-workers")["spec"]
    assert [endpoint["port"] for endpoint in monitor["podMetricsEndpoints"]] == ["health"]
    for kind in ALL_KINDS:
        document = production.get("Deployment", f"visionlog-processors-{kind}")
        labels = document["spec"]["template"]["metadata"]["labels"]
        for expression in monitor["selector"]["matchExpressions"]:
            inside = labels.get(expression["key"]) in expression["values"]
            assert inside is (expression["operator"] == "In"), (kind, expression)
        assert "health" in {port["name"] for port in containers(document)[0]["ports"]}


def cpu_cores(quantity: str) -> float:
    return int(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_live_analysis_has_guaranteed_cpu_and_the_batch_kinds_yield(
    environment: str, manifests: dict[str, ManifestSet]
) -> None:
    rendered = manifests[environment]
    for kind in ALL_KINDS:
        document = rendered.get("Deployment", f"visionlog-processors-{kind}")
        (container,) = containers(document)
        resources = container["resources"]
        settings = settings_of(rendered, document)
        if kind == "live":
            # Guaranteed QoS: every request equals its limit, so the kubelet may pin
            # cores and evicts it last.
            assert resources["requests"] == resources["limits"], environment
            # A restart moves cameras and their tracks: live recycles on memory only.
            assert settings.processors.recycle_after_items == 0
            rendered.get("ScaledObject", "visionlog-processors-live")
        elif kind in WORKER_KINDS and WORKER_KINDS[kind].nice > 0:
            # Burstable: above its request a batch worker gets the CPU live leaves.
            requests, limits = resources["requests"], resources["limits"]
            assert cpu_cores(requests["cpu"]) < cpu_cores(limits["cpu"]), (environment, kind)
        if kind in WORKER_KINDS:
            # os.cpu_count() in a pod is the node's: the pools are sized from the limit.
            cpus = max(1, int(cpu_cores(resources["limits"]["cpu"])))
            tuning = settings.processors
            assert 0 < tuning.max_in_flight <= 2 * cpus, (environment, kind)
            assert 0 < tuning.stage_threads <= max(4, 2 * cpus), (environment, kind)
            assert 0 < tuning.ocr_parallel_pages <= cpus, (environment, kind)
            assert tuning.inference_threads <= cpus, (environment, kind)


def memory_mib(quantity: str) -> int:
    match = re.fullmatch(r"(\d+)(Mi|Gi)", quantity)
    assert match, f"memory quantities here are written in Mi or Gi, not {quantity}"
    return int(match[1]) * (1024 if match[2] == "Gi" else 1)


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_workloads_are_probed_sized_spread_and_disruption_budgeted(
    environment: str, manifests: dict[str, ManifestSet]
) -> None:
    rendered = manifests[environment]
    budgets = [item.document for item in rendered.of_kind("PodDisruptionBudget")]
    for document in platform_deployments(rendered):
        name = document["metadata"]["name"]
        spec = pod_spec(document)
        labels = document["spec"]["template"]["metadata"]["labels"]
        assert selects(document["spec"]["selector"]["matchLabels"], labels)
        (container,) = spec["containers"]
        ports = {port["name"]: port["containerPort"] for port in container["ports"]}
        for probe, path in (
            ("livenessProbe", "/healthz"),
            ("readinessProbe", "/readyz"),
            ("startupProbe", "/readyz"),
        ):
            assert container[probe]["httpGet"]["path"] == path, (name, probe)
            assert container[probe]["httpGet"]["port"] in ports, (name, probe)
        settings = settings_of(rendered, document)
        if component(document) == "api":
            assert container["args"][container["args"].index("--port") + 1] == str(ports["http"])
        else:
            # The worker's health server listens where the probes knock.
            assert settings.health.port == ports["health"]
            assert settings.health.host == "0.0.0.0"
        resources = container["resources"]
        for bound in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(resources[bound]), (name, bound)
        limit = memory_mib(resources["limits"]["memory"])
        assert memory_mib(resources["requests"]["memory"]) == limit
        if any(
            v["name"] == "VISIONLOG_PROCESSORS__RECYCLE_ABOVE_RSS_MB"
            for v in container.get("env", [])
        ):
            # A worker recycles itself before the kernel kills it.
            assert settings.processors.recycle_above_rss_mb < limit
        terms = spec["affinity"]["podAntiAffinity"][
            "preferredDuringSchedulingIgnoredDuringExecution"
        ]
        zone_terms = [
            term
            for term in terms
            if term["podAffinityTerm"]["topologyKey"] == "topology.kubernetes.io/zone"
        ]
        assert zone_terms and selects(
            zone_terms[0]["podAffinityTerm"]["labelSelector"]["matchLabels"], labels
        )
        matching = [b for b in budgets if selects(b["spec"]["selector"]["matchLabels"], labels)]
        assert len(matching) == 1, f"{name}: {len(matching)} disruption budgets"
        context = spec["securityContext"]
        assert context["runAsNonRoot"] is True
        assert container["securityContext"]["readOnlyRootFilesystem"] is True


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_services_ingress_and_jobs_point_at_what_exists(
    environment: str, manifests: dict[str, ManifestSet]
) -> None:
    rendered = manifests[environment]
    templates = [
        item.document["spec"]["template"]["metadata"]["labels"]
        for item in rendered
        if item.kind in ("Deployment", "StatefulSet")
    ]
    for item in rendered.of_kind("Service"):
        selector = item.document["spec"]["selector"]
        assert any(selects(selector, labels) for labels in templates), item
    ingress = rendered.get("Ingress", "visionlog-api")["spec"]
    backend = ingress["rules"][0]["http"]["paths"][0]["backend"]["service"]
    service = rendered.get("Service", backend["name"])
    assert backend["port"]["name"] in {port["name"] for port in service["spec"]["ports"]}
    assert ingress["tls"][0]["secretName"]
    jobs = {component(item.document): item.document for item in rendered.of_kind("Job")}
    assert containers(jobs["init"])[0]["args"] == ["init"]
    assert containers(jobs["migrate"])[0]["args"] == ["migrate"]
    assert jobs["replay-rebuild"]["spec"]["suspend"] is True
    tag = containers(jobs["init"])[0]["image"].rsplit(":", 1)[1]
    assert jobs["init"]["metadata"]["name"].endswith(re.sub(r"[^a-z0-9]+", "-", tag.lower()))


STORE_VARIABLES = {
    "postgres": "VISIONLOG_POSTGRES__PASSWORD",
    "mongo": "VISIONLOG_MONGO__URI",
    "minio": "VISIONLOG_MINIO__SECRET_KEY",
    "qdrant": "VISIONLOG_QDRANT__API_KEY",
}


def egress_ports(manifests: ManifestSet, labels: dict[str, str]) -> set[int]:
    ports: set[int] = set()
    for item in manifests.of_kind("NetworkPolicy"):
        spec = item.document["spec"]
        if "Egress" in spec["policyTypes"] and selects(spec["podSelector"]["matchLabels"], labels):
            for rule in spec.get("egress", []):
                ports.update(port["port"] for port in rule.get("ports", []))
    return ports


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_network_policies_open_exactly_the_stores_a_process_has_credentials_for(
    environment: str, manifests: dict[str, ManifestSet]
) -> None:
    rendered = manifests[environment]
    store_ports = {"postgres": 5432, "mongo": 27017, "minio": 9000, "qdrant": 6333}
    for document in platform_pods(rendered):
        labels = document["spec"]["template"]["metadata"]["labels"]
        environment_variables = {v["name"] for v in containers(document)[0].get("env", [])}
        ports = egress_ports(rendered, labels)
        assert {53, 9093, 8080} <= ports, component(document)
        for store, variable in STORE_VARIABLES.items():
            has_credentials = variable in environment_variables
            assert (store_ports[store] in ports) is has_credentials, (component(document), store)
    # The processes that must reach a store do.
    api = rendered.get("Deployment", "visionlog-api")
    assert {5432, 27017, 9000, 6333} <= egress_ports(
        rendered, api["spec"]["template"]["metadata"]["labels"]
    )
    # Live analysis reads frames from MinIO; the completion processor only counts reports.
    for kind, ports in (("live", {53, 9093, 8080, 9000}), ("completion", {53, 9093, 8080})):
        document = rendered.get("Deployment", f"visionlog-processors-{kind}")
        labels = document["spec"]["template"]["metadata"]["labels"]
        assert egress_ports(rendered, labels) == ports, kind


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_operator_resources_serve_what_the_platform_connects_to(
    environment: str, manifests: dict[str, ManifestSet]
) -> None:
    rendered = manifests[environment]
    api = rendered.get("Deployment", "visionlog-api")
    settings = settings_of(rendered, api)
    secrets = {
        variable["name"]: variable["valueFrom"]["secretKeyRef"]
        for variable in containers(api)[0]["env"]
        if "valueFrom" in variable and "secretKeyRef" in variable["valueFrom"]
    }
    # Kafka (Strimzi): bootstrap service, TLS listener with SCRAM, the user and its Secret.
    kafka = rendered.get("Kafka", "visionlog")
    listener = kafka["spec"]["kafka"]["listeners"][0]
    assert settings.kafka.bootstrap_servers == f"visionlog-kafka-bootstrap:{listener['port']}"
    assert listener["tls"] is True
    assert listener["authentication"]["type"] == "scram-sha-512"
    assert settings.kafka.sasl_mechanism == "SCRAM-SHA-512"
    user = rendered.get("KafkaUser", settings.kafka.sasl_username or "")
    assert user["metadata"]["labels"]["strimzi.io/cluster"] == "visionlog"
    assert secrets["VISIONLOG_KAFKA__SASL_PASSWORD"]["name"] == user["metadata"]["name"]
    volumes = {v["name"]: v for v in pod_spec(api)["volumes"]}
    assert volumes["kafka-ca"]["secret"]["secretName"] == "visionlog-cluster-ca-cert"
    replication = kafka["spec"]["kafka"]["config"]["default.replication.factor"]
    assert settings.kafka.replication_factor == replication
    brokers = rendered.get("KafkaNodePool", "brokers")["spec"]["replicas"]
    assert replication <= brokers
    # PostgreSQL (CloudNativePG): the primary's service, the database and the app Secret.
    cluster = rendered.get("Cluster", "visionlog-pg")
    assert settings.postgres.host == f"{cluster['metadata']['name']}-rw"
    assert cluster["spec"]["bootstrap"]["initdb"]["database"] == settings.postgres.database
    assert secrets["VISIONLOG_POSTGRES__PASSWORD"]["name"] == f"{cluster['metadata']['name']}-app"
    # MongoDB (community operator): the connection-string Secret it writes for the user.
    mongo = rendered.get("MongoDBCommunity", "visionlog-mongodb")
    mongo_user = mongo["spec"]["users"][0]
    assert secrets["VISIONLOG_MONGO__URI"] == {
        "name": f"{mongo['metadata']['name']}-{mongo_user['db']}-{mongo_user['name']}",
        "key": "connectionString.standard",
    }
    assert {role["db"] for role in mongo_user["roles"]} == {settings.mongo.database}
    # MinIO (operator): the tenant's service and the platform's user.
    tenant = rendered.get("Tenant", "visionlog-minio")
    assert secrets["VISIONLOG_MINIO__ACCESS_KEY"]["name"] in {
        u["name"] for u in tenant["spec"]["users"]
    }
    assert settings.minio.secure is False and tenant["spec"]["requestAutoCert"] is False
    # Qdrant and the schema registry: Services of this namespace.
    for url in (settings.qdrant.url or "", settings.registry.url):
        parsed = urlparse(url)
        service = rendered.get("Service", parsed.hostname or "")
        assert parsed.port in {port["port"] for port in service["spec"]["ports"]}
    qdrant = rendered.get("StatefulSet", "visionlog-qdrant")
    qdrant_env = {v["name"]: v for v in containers(qdrant)[0]["env"]}
    assert (
        qdrant_env["QDRANT__SERVICE__API_KEY"]["valueFrom"]["secretKeyRef"]
        == secrets["VISIONLOG_QDRANT__API_KEY"]
    )
