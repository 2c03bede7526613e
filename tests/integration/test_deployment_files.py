"""Kubernetes manifests, compose file and Dockerfile: valid, and consistent with the service.

Two Kubernetes variants: deploy/kubernetes (SQLite on a PersistentVolumeClaim, one replica) and
deploy/kubernetes-postgres (a kustomize overlay of it: PostgreSQL, several replicas, autoscaler).
`render` builds what `kubectl kustomize` builds from them, for the few kustomize features they use
(and fails on any other), so the variants are checked as they would be applied.
"""

from __future__ import annotations

import copy
import re
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from app.settings import Settings
from tests.support.paths import ROOT

SQLITE = ROOT / "deploy" / "kubernetes"
POSTGRES = ROOT / "deploy" / "kubernetes-postgres"
NOT_RESOURCES = {"kustomization.yaml", "deployment-patch.yaml"}  # kustomize's input, not Kubernetes objects
MANIFESTS = sorted(p for folder in (SQLITE, POSTGRES) for p in folder.glob("*.yaml") if p.name not in NOT_RESOURCES)
KUBERNETES_VERSION = "1.31.0"
API_KEY = "compose-test-key-0123456789"


def documents(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def kustomization(folder: Path) -> dict[str, Any]:
    result: dict[str, Any] = documents(folder / "kustomization.yaml")[0]
    return result


# --- a small kustomize: resources (files and folders), JSON 6902 patches, `$patch: delete`


def _pointer(path: str) -> list[str]:
    assert path.startswith("/"), path
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _json_patch(doc: Any, operations: list[dict[str, Any]]) -> Any:
    doc = copy.deepcopy(doc)
    for operation in operations:
        *parents, last = _pointer(operation["path"])
        target = doc
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        op = operation["op"]
        if op == "test":
            actual = target[int(last)] if isinstance(target, list) else target[last]
            assert actual == operation["value"], f"JSON patch test {operation['path']}: {actual!r}"
        elif op == "remove":
            del target[int(last) if isinstance(target, list) else last]
        elif op in ("add", "replace"):
            value = copy.deepcopy(operation["value"])
            if isinstance(target, list):
                if last == "-":
                    target.append(value)
                elif op == "add":
                    target.insert(int(last), value)
                else:
                    target[int(last)] = value
            else:
                assert op == "add" or last in target, f"JSON patch replace of a missing {operation['path']}"
                target[last] = value
        else:
            raise AssertionError(f"JSON patch operation {op!r}: not supported by this test's renderer")
    return doc


def _matches(doc: dict[str, Any], target: dict[str, Any]) -> bool:
    assert set(target) <= {"kind", "name"}, f"patch target {target}: not supported by this test's renderer"
    return doc.get("kind") == target.get("kind", doc.get("kind")) and doc["metadata"]["name"] == target.get(
        "name", doc["metadata"]["name"]
    )


def render(folder: Path) -> list[dict[str, Any]]:
    """The objects `kubectl kustomize folder` builds."""
    spec = kustomization(folder)
    unsupported = set(spec) - {"apiVersion", "kind", "resources", "patches"}
    assert not unsupported, f"{folder}: {unsupported} not supported by this test's renderer"
    objects: list[dict[str, Any]] = []
    for entry in spec["resources"]:
        path = (folder / entry).resolve()
        objects += render(path) if path.is_dir() else documents(path)
    for patch in spec.get("patches", []):
        if "path" in patch:
            operations = documents(folder / patch["path"])[0]
            assert isinstance(operations, list), "only JSON 6902 patch files are supported by this test's renderer"
            hits = [i for i, doc in enumerate(objects) if _matches(doc, patch["target"])]
            assert hits, f"patch {patch['path']}: no object matches {patch['target']}"
            for i in hits:
                objects[i] = _json_patch(objects[i], operations)
        else:
            strategic = yaml.safe_load(patch["patch"])
            assert strategic.pop("$patch", None) == "delete", "only `$patch: delete` inline patches are supported"
            target = {"kind": strategic["kind"], "name": strategic["metadata"]["name"]}
            kept = [doc for doc in objects if not _matches(doc, target)]
            assert len(kept) == len(objects) - 1, f"delete patch: no single object matches {target}"
            objects = kept
    return objects


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [doc for doc in objects if doc["kind"] == kind]
    assert len(found) == 1, f"{len(found)} objects of kind {kind}"
    return found[0]


def kinds(objects: list[dict[str, Any]]) -> list[str]:
    return sorted(doc["kind"] for doc in objects)


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    result: dict[str, Any] = containers[0]
    return result


def dockerfile_env(name: str) -> str:
    match = re.search(rf"^\s*(?:ENV\s+)?{name}=(\S+)", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert match, f"{name} is not set in the Dockerfile"
    return match.group(1)


# --- Kubernetes


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_manifest_is_valid_against_the_kubernetes_schemas(path: Path) -> None:
    for doc in documents(path):
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("folder", [SQLITE, POSTGRES], ids=lambda p: p.name)
def test_rendered_variant_is_valid_against_the_kubernetes_schemas(folder: Path) -> None:
    for doc in render(folder):
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_kustomizations_list_every_resource_but_the_secret_example() -> None:
    listed = set(kustomization(SQLITE)["resources"])
    assert listed == {p.name for p in MANIFESTS if p.parent == SQLITE} - {"secret.example.yaml"}
    listed = set(kustomization(POSTGRES)["resources"])
    assert listed == {"../kubernetes"} | {p.name for p in MANIFESTS if p.parent == POSTGRES}
    assert [p["path"] for p in kustomization(POSTGRES)["patches"] if "path" in p] == ["deployment-patch.yaml"]


def test_deployment_matches_the_service() -> None:
    deployment = one(render(SQLITE), "Deployment")
    app = container(deployment)
    assert app["ports"][0]["containerPort"] == 8000
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert app[probe]["httpGet"]["path"] == "/health"
    env = {item["name"]: item for item in app["env"]}
    assert env["API_KEYS"]["valueFrom"]["secretKeyRef"]["name"] == "face-service"  # the key comes from a Secret
    limits = app["resources"]["limits"]
    # The worst case the default limits allow, measured by bench.memory_test: 852 MB (docs/reliability.md).
    assert limits["memory"].endswith("Mi") and int(limits["memory"][:-2]) >= 900
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > 30  # longer than the server's own graceful-shutdown timeout


def test_sqlite_variant_is_one_pod_with_its_volume_at_data_dir() -> None:
    objects = render(SQLITE)
    assert kinds(objects) == ["Deployment", "PersistentVolumeClaim", "Service"]  # no autoscaler, no PDB
    deployment = one(objects, "Deployment")
    # SQLite: one process per file (the store's lock file). One replica, and the old pod gone before the new one.
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["fsGroup"] == 10001  # the volume writable by the service's user
    claim = one(objects, "PersistentVolumeClaim")
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container(deployment)["volumeMounts"]}
    data_dir = dockerfile_env("DATA_DIR")
    assert data_dir == "/data" and mounts[data_dir] in volumes
    assert volumes[mounts[data_dir]]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert container(deployment)["securityContext"]["readOnlyRootFilesystem"] is True


def test_postgres_variant_scales_and_keeps_nothing_in_the_pod() -> None:
    objects = render(POSTGRES)
    assert kinds(objects) == ["Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Service"]
    deployment = one(objects, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert not [v for v in pod["volumes"] if "persistentVolumeClaim" in v]
    assert {m["mountPath"] for m in container(deployment)["volumeMounts"]} == {"/tmp"}
    env = {item["name"]: item for item in container(deployment)["env"]}
    assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": "face-service", "key": "database-url"}
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    hpa = one(objects, "HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "face-service"}
    assert hpa["metrics"][0]["resource"]["name"] == "cpu"
    assert 2 <= hpa["minReplicas"] == deployment["spec"]["replicas"] < hpa["maxReplicas"]
    pdb = one(objects, "PodDisruptionBudget")["spec"]
    assert pdb["minAvailable"] >= 1
    assert pdb["selector"]["matchLabels"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


def test_secret_example_holds_every_key_the_variants_read() -> None:
    secret = one(documents(SQLITE / "secret.example.yaml"), "Secret")
    for folder in (SQLITE, POSTGRES):
        for item in container(one(render(folder), "Deployment"))["env"]:
            ref = item.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref["name"] == secret["metadata"]["name"] and ref["key"] in secret["stringData"]
    url = secret["stringData"]["database-url"]
    assert Settings.from_env({"API_KEY": API_KEY, "DATABASE_URL": url}).gallery() == "postgresql"


# --- compose and Dockerfile


def project_version() -> str:
    version: str = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    return version


def compose(name: str = "compose.yaml") -> dict[str, Any]:
    result: dict[str, Any] = yaml.safe_load((ROOT / name).read_text())
    return result


def required_variables(name: str) -> set[str]:
    """The variables a compose file requires (`${NAME:?message}`): Compose stops without any of them,
    whichever services are started (it resolves the whole file first)."""
    return set(re.findall(r"\$\{(\w+):\?", (ROOT / name).read_text()))


def test_compose_and_dockerfile_agree() -> None:
    for name in ("compose.yaml", "compose.postgres.yaml"):
        service = compose(name)["services"]["face-service"]
        assert service["ports"] == ["8000:8000"]
        assert "/health" in " ".join(service["healthcheck"]["test"])
        assert service["env_file"][0]["path"] == ".env"
        assert service["environment"]["API_KEY"].startswith("${API_KEY:?")
        assert service["read_only"] is True and service["tmpfs"] == ["/tmp"]
        assert service["stop_grace_period"] == "40s"
        assert service["image"] == f"face-service:{project_version()}"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "EXPOSE 8000" in dockerfile and "HEALTHCHECK" in dockerfile and "/health" in dockerfile
    assert "USER 10001" in dockerfile
    assert one(render(SQLITE), "Deployment")["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == 10001


def test_both_compose_files_run_the_same_service() -> None:
    """compose.postgres.yaml repeats compose.yaml's service: the same but for the store's settings."""
    store_settings = ("environment", "volumes", "depends_on")
    sqlite = compose()["services"]["face-service"]
    postgres = compose("compose.postgres.yaml")["services"]["face-service"]
    assert {k: v for k, v in postgres.items() if k not in store_settings} == {
        k: v for k, v in sqlite.items() if k not in store_settings
    }
    assert postgres["environment"] == {**sqlite["environment"], "DATABASE_URL": postgres["environment"]["DATABASE_URL"]}
    assert set(compose()["services"]) == {"face-service"}, "compose.yaml: the SQLite variant only"


def test_compose_requires_only_what_its_variant_uses() -> None:
    assert required_variables("compose.yaml") == {"API_KEY"}, "`docker compose up` (SQLite) needs only API_KEY"
    assert required_variables("compose.postgres.yaml") == {"API_KEY", "POSTGRES_PASSWORD"}


def test_image_tag_is_the_same_in_the_readme_compose_and_kubernetes() -> None:
    """`docker build -t` in the README tags the image that compose and the Deployment run."""
    tag = f"face-service:{project_version()}"
    readme = (ROOT / "README.md").read_text()
    builds = re.findall(r"docker build -t (\S+) \.", readme)  # the CPU image (not --build-arg ...)
    assert builds == [tag], builds
    assert re.search(rf"docker run [^`]*\\\n[^`]*-e API_KEY=\S+ {re.escape(tag)}\n", readme), "docker run the tag built"
    assert one(render(SQLITE), "Deployment")["spec"]["template"]["spec"]["containers"][0]["image"] == tag
    assert "registry" in readme[readme.index("**Kubernetes**") :].split("\n\n")[0]


def test_compose_default_keeps_sqlite_on_a_named_volume_at_data_dir() -> None:
    spec = compose()
    service = spec["services"]["face-service"]
    assert "profiles" not in service  # `docker compose up` starts it
    assert "DATABASE_URL" not in service["environment"]
    data_dir = dockerfile_env("DATA_DIR")
    assert f"VOLUME {data_dir}" in (ROOT / "Dockerfile").read_text()
    (volume,) = [v for v in service["volumes"] if v.split(":")[1] == data_dir]
    assert volume.split(":")[0] in spec["volumes"]  # a named volume: it starts as a copy of the image's /data
    env = {"API_KEY": API_KEY, "DATA_DIR": data_dir}
    assert Settings.from_env(env).gallery() == "sqlite"


def test_compose_postgres_file() -> None:
    spec = compose("compose.postgres.yaml")
    services = spec["services"]
    service, db = services["face-service"], services["db"]
    assert service["depends_on"] == {"db": {"condition": "service_healthy"}}
    assert "volumes" not in service  # nothing to keep in the container

    image, _, tag = db["image"].partition(":")
    assert image == "pgvector/pgvector"
    pinned = re.fullmatch(r"(\d+\.\d+\.\d+)-pg(\d+)", tag)
    assert pinned, f"pin the pgvector and PostgreSQL versions, not {tag!r}"
    db_env = db["environment"]
    assert db_env["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?"), "an empty password stops compose"

    password = db_env["POSTGRES_PASSWORD"]
    assert password in service["environment"]["DATABASE_URL"]  # the same password as db's, as required
    filled = service["environment"]["DATABASE_URL"].replace(password, "secret0123")
    url = urlsplit(filled)
    assert (url.scheme, url.hostname, url.port) == ("postgresql", "db", 5432)
    assert url.username == db_env["POSTGRES_USER"] and url.password == "secret0123"
    assert url.path == "/" + db_env["POSTGRES_DB"]
    assert Settings.from_env({"API_KEY": API_KEY, "DATABASE_URL": filled}).gallery() == "postgresql"

    check = " ".join(db["healthcheck"]["test"])
    assert db["healthcheck"]["test"][0] == "CMD" and "pg_isready" in check
    assert f"--username={db_env['POSTGRES_USER']}" in check and f"--dbname={db_env['POSTGRES_DB']}" in check
    (volume,) = db["volumes"]
    name, mount = volume.split(":")
    assert name in spec["volumes"]
    # PostgreSQL 18+ images keep their data under /var/lib/postgresql/<major>/docker and refuse a
    # volume at the old /var/lib/postgresql/data.
    assert mount == ("/var/lib/postgresql" if int(pinned.group(2)) >= 18 else "/var/lib/postgresql/data")
