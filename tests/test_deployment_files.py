"""Kubernetes manifests, compose file and Dockerfile: valid, and consistent with the service."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
MANIFESTS = sorted((ROOT / "deploy" / "kubernetes").glob("*.yaml"))
KUBERNETES_VERSION = "1.31.0"


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def resource(kind: str) -> dict[str, Any]:
    for path in MANIFESTS:
        for doc in documents(path):
            if doc.get("kind") == kind:
                return doc
    raise AssertionError(f"no {kind} in deploy/kubernetes")


@pytest.mark.parametrize("path", [p for p in MANIFESTS if p.name != "kustomization.yaml"], ids=lambda p: p.name)
def test_manifest_is_valid_against_the_kubernetes_schemas(path: Path) -> None:
    for doc in documents(path):
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_kustomization_lists_every_resource_but_the_secret_example() -> None:
    listed = set(documents(ROOT / "deploy" / "kubernetes" / "kustomization.yaml")[0]["resources"])
    expected = {p.name for p in MANIFESTS} - {"kustomization.yaml", "secret.example.yaml"}
    assert listed == expected


def test_deployment_matches_the_service() -> None:
    container = resource("Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["ports"][0]["containerPort"] == 8000
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["path"] == "/health"
    env = {item["name"]: item for item in container["env"]}
    assert env["API_KEYS"]["valueFrom"]["secretKeyRef"]["name"] == "face-service"  # the key comes from a Secret
    limits = container["resources"]["limits"]
    # The worst case the default limits allow, measured by bench.memory_test: 852 MB (docs/reliability.md).
    assert limits["memory"].endswith("Mi") and int(limits["memory"][:-2]) >= 900
    grace = resource("Deployment")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > 30  # longer than the server's own graceful-shutdown timeout
    assert resource("HorizontalPodAutoscaler")["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    assert resource("PodDisruptionBudget")["spec"]["minAvailable"] >= 1


def test_compose_and_dockerfile_agree() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]["face-service"]
    assert compose["ports"] == ["8000:8000"]
    assert "/health" in " ".join(compose["healthcheck"]["test"])
    assert compose["env_file"][0]["path"] == ".env"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "EXPOSE 8000" in dockerfile and "HEALTHCHECK" in dockerfile and "/health" in dockerfile
    assert "USER 10001" in dockerfile
    assert resource("Deployment")["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == 10001
