"""Every rendered manifest validates offline: built-in kinds against the Kubernetes JSON
schemas (strict: unknown fields fail), custom resources against the models generated from
their CRDs where a package ships them."""

from __future__ import annotations

import copy
from collections.abc import Callable
from types import ModuleType
from typing import Any

import kubernetes_validate
import pytest
import yaml
from cloudcoil.models.keda import v1alpha1 as keda
from cloudcoil.models.prometheus_operator import v1 as prometheus

from tests.ops.manifests import ANSIBLE_DIR, ENVIRONMENTS, Document, ManifestSet

# Custom resources whose CRD schemas ship in a package of the registries we reach.
CRD_MODELS: dict[str, ModuleType] = {
    "keda.sh/v1alpha1": keda,
    "monitoring.coreos.com/v1": prometheus,
}
# The operators' resources whose CRDs no reachable package ships (Strimzi, CloudNativePG,
# the MongoDB community operator, MinIO); tests/ops/test_kubernetes_contract.py checks
# how they connect to the platform instead.
UNSCHEMATISED = {
    ("kafka.strimzi.io/v1beta2", "Kafka"),
    ("kafka.strimzi.io/v1beta2", "KafkaNodePool"),
    ("kafka.strimzi.io/v1beta2", "KafkaUser"),
    ("postgresql.cnpg.io/v1", "Cluster"),
    ("mongodbcommunity.mongodb.com/v1", "MongoDBCommunity"),
    ("minio.min.io/v2", "Tenant"),
}


def kubernetes_version(environment: str) -> str:
    path = ANSIBLE_DIR / "inventories" / environment / "group_vars" / "all.yml"
    return str(yaml.safe_load(path.read_text(encoding="utf-8"))["kubernetes_version"])


def validate_custom_resource(document: Document) -> None:
    """Validate against the CRD's model and refuse any field the model does not know.

    The models ignore unknown fields, so a field that does not survive the round trip
    through the model is one the CRD does not define (a typo the API server would prune).
    """
    model = getattr(CRD_MODELS[document["apiVersion"]], document["kind"])
    parsed = model.model_validate(document)
    round_trip = parsed.model_dump(by_alias=True, exclude_unset=True, mode="json")
    if round_trip != document:
        raise ValueError(
            f"fields unknown to the {document['kind']} CRD: {diff(document, round_trip)}"
        )


def diff(original: Any, kept: Any, path: str = "") -> list[str]:
    if isinstance(original, dict) and isinstance(kept, dict):
        found = []
        for key, value in original.items():
            if key not in kept:
                found.append(f"{path}.{key}")
            else:
                found.extend(diff(value, kept[key], f"{path}.{key}"))
        return found
    if isinstance(original, list) and isinstance(kept, list):
        if len(original) != len(kept):
            return [f"{path}: {len(original)} items became {len(kept)}"]
        return [
            found
            for index, (item, kept_item) in enumerate(zip(original, kept, strict=True))
            for found in diff(item, kept_item, f"{path}[{index}]")
        ]
    return [] if original == kept else [f"{path}: {original!r} became {kept!r}"]


def validate(document: Document, version: str) -> str:
    """Validate one document; returns which schema validated it."""
    key = (document["apiVersion"], document["kind"])
    if document["apiVersion"] in CRD_MODELS:
        validate_custom_resource(document)
        return "crd"
    if key in UNSCHEMATISED:
        return "unschematised"
    kubernetes_validate.validate(document, version, strict=True)
    return "kubernetes"


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_every_manifest_validates(environment: str, manifests: dict[str, ManifestSet]) -> None:
    version = kubernetes_version(environment)
    schemas: dict[str, int] = {}
    failures = []
    for item in manifests[environment]:
        try:
            used = validate(item.document, version)
        except Exception as error:  # every failure is collected and reported together
            failures.append(f"{item!r}: {error}")
            continue
        schemas[used] = schemas.get(used, 0) + 1
    assert not failures, "\n".join(failures)
    assert schemas["kubernetes"] >= 40
    assert schemas["crd"] >= 4


def test_the_unvalidated_list_names_only_kinds_in_use(manifests: dict[str, ManifestSet]) -> None:
    # Any other custom resource fails validation for want of a schema; this keeps the list
    # of exceptions from outliving the resources it excuses.
    found = {(item.api_version, item.kind) for item in manifests["production"]}
    assert found >= UNSCHEMATISED


def mutate(document: Document, change: Callable[[Document], None]) -> Document:
    changed = copy.deepcopy(document)
    change(changed)
    return changed


def test_the_validators_refuse_broken_manifests(manifests: dict[str, ManifestSet]) -> None:
    production = manifests["production"]
    deployment = production.get("Deployment", "visionlog-api")
    scaled = production.get("ScaledObject", "visionlog-processors-vision")
    monitor = production.get("PodMonitor", "visionlog-workers")
    broken = [
        mutate(deployment, lambda d: d["spec"].update(replcas=2)),
        mutate(
            deployment, lambda d: d["spec"]["template"]["spec"]["containers"][0].update(image=3)
        ),
        mutate(deployment, lambda d: d["spec"].pop("selector")),
        mutate(scaled, lambda d: d["spec"].update(maxReplicas=3)),
        mutate(scaled, lambda d: d["spec"].update(minReplicaCount="two")),
        mutate(scaled, lambda d: d["spec"]["triggers"][0].update(metdata={})),
        mutate(monitor, lambda d: d["spec"]["podMetricsEndpoints"][0].update(prot="health")),
    ]
    for document in broken:
        with pytest.raises(Exception):  # noqa: B017 - any validation error will do
            validate(document, kubernetes_version("production"))
