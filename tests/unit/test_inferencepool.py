"""deploy/k8s/extras/inferencepool.yaml: the InferencePool against its CRD's schema (strict: an
unknown field fails, as kubectl's server-side field validation would), and the endpoint picker's
configuration turning LoRA affinity on over the metrics loragate exports. The built-in kinds of the
file (ConfigMap, Deployment, ...) are schema-checked with the other manifests in test_deployment.py."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml


ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "deploy" / "k8s" / "extras" / "inferencepool.yaml"
POOL_CRD = Path(__file__).parent / "schemas" / "inferencepools.inference.networking.k8s.io.yaml"


def docs() -> dict[str, dict]:
    with MANIFEST.open(encoding="utf-8") as fh:
        return {doc["kind"]: doc for doc in yaml.safe_load_all(fh) if doc}


def strict(schema: Any) -> Any:
    """The CRD's OpenAPI schema with unknown fields refused (the API server prunes or rejects them)."""
    if isinstance(schema, dict):
        schema = {key: strict(value) for key, value in schema.items()}
        if schema.get("type") == "object" and "properties" in schema:
            schema.setdefault("additionalProperties", False)
        return schema
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    return schema


def pool_schema(version: str) -> dict:
    crd = yaml.safe_load(POOL_CRD.read_text(encoding="utf-8"))
    (served,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    schema = strict(served["schema"]["openAPIV3Schema"])
    for field in ("apiVersion", "kind", "metadata"):  # the API server's own, not in the CRD schema
        schema["properties"][field] = {"type": "object" if field == "metadata" else "string"}
    return schema


def test_the_pool_matches_its_crd() -> None:
    pool = docs()["InferencePool"]
    group, version = pool["apiVersion"].split("/")
    assert group == "inference.networking.k8s.io"
    schema = pool_schema(version)
    jsonschema.validate(pool, schema)
    picker = pool["spec"]["endpointPickerRef"]
    assert (picker["name"], picker["port"]["number"]) == ("loragate-epp", 9002)
    # The check is not a no-op: the field spelling this file once had is refused.
    wrong = copy.deepcopy(pool)
    wrong["spec"]["endpointPickerRef"]["portNumber"] = wrong["spec"]["endpointPickerRef"].pop("port")["number"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(wrong, schema)


def test_the_endpoint_picker_serves_the_pool_with_lora_affinity() -> None:
    kinds = docs()
    service, deployment = kinds["Service"], kinds["Deployment"]
    assert service["metadata"]["name"] == kinds["InferencePool"]["spec"]["endpointPickerRef"]["name"]
    assert 9002 in {port["port"] for port in service["spec"]["ports"]}
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    args = dict(arg.removeprefix("--").split("=", 1) for arg in container["args"])
    assert args["pool-name"] == kinds["InferencePool"]["metadata"]["name"]
    assert args["pool-namespace"] == kinds["InferencePool"]["metadata"]["namespace"]
    # The metric flags are deprecated (and refused when set) since llm-d-router moved them into the
    # config; their defaults are vLLM's names, which loragate exports.
    assert not {"lora-info-metric", "total-queued-requests-metric", "kv-cache-usage-percentage-metric"} & set(args)
    (volume,) = deployment["spec"]["template"]["spec"]["volumes"]
    config_map = kinds["ConfigMap"]
    assert volume["configMap"]["name"] == config_map["metadata"]["name"]
    config = yaml.safe_load(config_map["data"][Path(args["config-file"]).name])
    assert (config["apiVersion"], config["kind"]) == ("llm-d.ai/v1alpha1", "EndpointPickerConfig")
    plugins = {plugin.get("name", plugin["type"]): plugin for plugin in config["plugins"]}
    (profile,) = config["schedulingProfiles"]
    refs = {ref["pluginRef"]: ref for ref in profile["plugins"]}
    assert set(refs) <= set(plugins)
    assert plugins["lora-affinity-scorer"]["type"] == "lora-affinity-scorer" and refs["lora-affinity-scorer"]["weight"] > 0
    assert plugins["metrics-data-source"]["parameters"]["path"] == "/metrics"
    assert "core-metrics-extractor" in plugins  # its default engine, vllm, reads vLLM's own metric names
