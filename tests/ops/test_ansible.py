"""The playbook renders every environment from its inventory, and applies only when asked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from tests.ops.contract import settings_from_environment
from tests.ops.manifests import ANSIBLE_DIR, ENVIRONMENTS, ManifestSet, containers, run_playbook


def inventory(environment: str) -> dict[str, Any]:
    path = ANSIBLE_DIR / "inventories" / environment / "group_vars" / "all.yml"
    loaded: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return loaded


def test_every_environment_renders_into_its_own_namespace(
    manifests: dict[str, ManifestSet],
) -> None:
    namespaces = {}
    for environment in ENVIRONMENTS:
        expected = inventory(environment)["k8s_namespace"]
        found = {
            item.document["metadata"].get("namespace")
            for item in manifests[environment]
            if item.kind != "Namespace"
        }
        assert found == {expected}, f"{environment}: objects outside {expected}: {found}"
        namespaces[environment] = expected
    assert len(set(namespaces.values())) == len(ENVIRONMENTS)


def test_sizes_follow_each_inventory(manifests: dict[str, ManifestSet]) -> None:
    for environment in ENVIRONMENTS:
        variables = inventory(environment)
        rendered = manifests[environment]
        projection = rendered.get("Deployment", "visionlog-projection-postgres")
        assert (
            projection["spec"]["replicas"]
            == (variables["workloads"]["projection-postgres"]["replicas"])
        )
        limits = projection["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
        assert limits["memory"] == f"{variables['workloads']['projection-postgres']['memory_mb']}Mi"
        scaled = rendered.get("ScaledObject", "visionlog-processors-vision")["spec"]
        assert (
            scaled["maxReplicaCount"]
            == variables["autoscaling"]["processors-vision"]["max_replicas"]
        )
        kafka = rendered.get("KafkaNodePool", "brokers")["spec"]
        assert kafka["replicas"] == variables["kafka"]["brokers"]
        assert kafka["storage"]["volumes"][0]["size"] == variables["kafka"]["broker_storage"]
        ingress = rendered.get("Ingress", "visionlog-api")["spec"]
        assert ingress["tls"][0]["hosts"] == [variables["ingress"]["host"]]
        image = projection["spec"]["template"]["spec"]["containers"][0]["image"]
        assert image == (
            f"{variables['image_registry']}/{variables['image_name']}:{variables['image_tag']}"
        )
        live = containers(rendered.get("Deployment", "visionlog-processors-live"))[0]
        size = variables["workloads"]["processors-live"]
        assert live["resources"]["limits"]["cpu"] == str(size["cpu_limit"])
        scaled_live = rendered.get("ScaledObject", "visionlog-processors-live")["spec"]
        assert (
            scaled_live["minReplicaCount"]
            == variables["autoscaling"]["processors-live"]["min_replicas"]
        )
        completion = rendered.get("Deployment", "visionlog-processors-completion")
        assert (
            completion["spec"]["replicas"]
            == variables["workloads"]["processors-completion"]["replicas"]
        )


def test_monitoring_resources_follow_the_switch(manifests: dict[str, ManifestSet]) -> None:
    for environment in ENVIRONMENTS:
        enabled = inventory(environment)["monitoring"]["enabled"]
        kinds = {item.kind for item in manifests[environment]}
        assert ("PodMonitor" in kinds) is enabled, environment
        assert ("PrometheusRule" in kinds) is enabled, environment
        cluster = manifests[environment].get("Cluster", "visionlog-pg")["spec"]
        assert ("monitoring" in cluster) is enabled, environment
    # The switch differs somewhere, so both branches above were exercised.
    assert (
        len({inventory(environment)["monitoring"]["enabled"] for environment in ENVIRONMENTS}) == 2
    )


def test_a_second_render_removes_manifests_no_longer_rendered(tmp_path: Path) -> None:
    stale = tmp_path / "development" / "99-removed.yaml"
    stale.parent.mkdir(parents=True)
    stale.write_text("kind: ConfigMap\n", encoding="utf-8")
    result = run_playbook("development", tmp_path)
    assert result.returncode == 0, result.stdout[-3000:]
    assert not stale.exists()
    assert (tmp_path / "development" / "40-processors.yaml").exists()
    # Development has monitoring off: its monitoring file is not rendered at all.
    assert not (tmp_path / "development" / "70-monitoring.yaml").exists()
    assert "apply : Apply the manifests" in result.stdout
    assert "skipping" in result.stdout.split("apply : Apply the manifests", 1)[1][:300]


def test_an_inventory_without_a_workload_size_is_refused(tmp_path: Path) -> None:
    inventory_dir = tmp_path / "inventory"
    (inventory_dir / "group_vars").mkdir(parents=True)
    (inventory_dir / "hosts.yml").write_text(
        (ANSIBLE_DIR / "inventories" / "development" / "hosts.yml").read_text(), encoding="utf-8"
    )
    variables = inventory("development")
    del variables["workloads"]["camera-producer"]
    (inventory_dir / "group_vars" / "all.yml").write_text(yaml.safe_dump(variables))
    result = run_playbook("development", tmp_path / "build", "-i", str(inventory_dir))
    assert result.returncode != 0
    assert "a size for every" in result.stdout
    assert "camera-producer" in result.stdout


def test_apply_runs_only_when_asked_and_reaches_the_given_cluster(tmp_path: Path) -> None:
    # A kubeconfig naming a closed local port: the apply role must try that cluster and
    # fail there, before touching any manifest.
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "closed", "cluster": {"server": "https://127.0.0.1:9"}}],
                "users": [{"name": "nobody", "user": {"token": "none"}}],
                "contexts": [
                    {"name": "closed", "context": {"cluster": "closed", "user": "nobody"}}
                ],
                "current-context": "closed",
            }
        )
    )
    result = run_playbook(
        "development",
        tmp_path / "build",
        "-e",
        "k8s_apply=true",
        "-e",
        f"k8s_kubeconfig={kubeconfig}",
    )
    assert result.returncode != 0
    assert "Check the cluster answers" in result.stdout
    assert "127.0.0.1" in result.stdout and "port=9" in result.stdout
    assert "apply : Apply the manifests" not in result.stdout
    # Rendering still happened before the apply was attempted.
    assert (tmp_path / "build" / "development" / "42-api.yaml").exists()


def test_the_playbook_passes_ansible_syntax_check(tmp_path: Path) -> None:
    result = run_playbook("production", tmp_path, "--syntax-check")
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_tracing_collector_is_configured_and_reachable_when_named(tmp_path: Path) -> None:
    collector = {
        "otlp_endpoint": "http://otel-collector.telemetry:4318",
        "collector_namespace": "telemetry",
    }
    result = run_playbook("development", tmp_path, "-e", json.dumps({"tracing": collector}))
    assert result.returncode == 0, result.stdout[-3000:]
    rendered = ManifestSet(tmp_path / "development")
    settings = settings_from_environment(rendered.config())
    assert settings.tracing.otlp_endpoint == collector["otlp_endpoint"]
    policy = rendered.get("NetworkPolicy", "visionlog-otlp-egress")["spec"]
    assert policy["podSelector"]["matchLabels"] == {"visionlog.io/tier": "processors"}
    (rule,) = policy["egress"]
    assert rule["ports"] == [{"port": 4318, "protocol": "TCP"}]
    namespace = rule["to"][0]["namespaceSelector"]["matchLabels"]
    assert namespace == {"kubernetes.io/metadata.name": "telemetry"}
    # Every processor kind is a pod of that tier.
    for item in rendered.of_kind("Deployment"):
        args = containers(item.document)[0].get("args", [])
        tier = item.document["spec"]["template"]["metadata"]["labels"].get("visionlog.io/tier")
        assert (tier == "processors") is (args[:2] == ["processors", "worker"]), item


def test_an_inventory_without_guaranteed_cpu_for_live_is_refused(tmp_path: Path) -> None:
    inventory_dir = tmp_path / "inventory"
    (inventory_dir / "group_vars").mkdir(parents=True)
    (inventory_dir / "hosts.yml").write_text(
        (ANSIBLE_DIR / "inventories" / "development" / "hosts.yml").read_text(), encoding="utf-8"
    )
    variables = inventory("development")
    variables["workloads"]["processors-live"]["cpu_request"] = "250m"
    (inventory_dir / "group_vars" / "all.yml").write_text(yaml.safe_dump(variables))
    result = run_playbook("development", tmp_path / "build", "-i", str(inventory_dir))
    assert result.returncode != 0
    assert "processors-live needs guaranteed CPU" in result.stdout
    assert not (tmp_path / "build" / "development" / "40-processors.yaml").exists()
