"""The Kubernetes work-pool base job template: valid for Prefect, with the retrain variables."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from uuid import uuid4

import jsonschema
import pytest

TEMPLATE = Path(__file__).resolve().parents[2] / "infra" / "k8s" / "work-pool-job-template.json"
RETRAIN_VARIABLES = {
    "image",
    "namespace",
    "retrain_home",
    "api_key_secret_name",
    "api_key_secret_key",
    "settings_config_map",
    "service_account_name",
    "cpu_request",
    "cpu_limit",
    "memory_request",
    "memory_limit",
}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(TEMPLATE.read_text())
    return loaded


def _defaults(template: dict[str, Any]) -> dict[str, Any]:
    return {
        name: spec["default"]
        for name, spec in template["variables"]["properties"].items()
        if "default" in spec
    }


def test_variables_are_a_json_schema_with_the_retrain_knobs(template: dict[str, Any]) -> None:
    jsonschema.Draft7Validator.check_schema(template["variables"])
    properties = template["variables"]["properties"]
    assert set(properties) >= RETRAIN_VARIABLES
    assert all("default" in properties[name] for name in RETRAIN_VARIABLES)
    jsonschema.validate(_defaults(template), template["variables"])


def test_prefect_accepts_every_placeholder(template: dict[str, Any]) -> None:
    from prefect.server.schemas.actions import validate_base_job_template

    validate_base_job_template(template)


def test_defaults_render_a_job_that_reads_the_key_from_a_secret(template: dict[str, Any]) -> None:
    from prefect.utilities.templating import apply_values, find_placeholders

    values = {**_defaults(template), "name": "retrain-run", "command": "prefect flow-run execute"}
    manifest = apply_values(template["job_configuration"]["job_manifest"], values)
    [container] = manifest["spec"]["template"]["spec"]["containers"]
    env = {item["name"]: item for item in container["env"]}
    assert env["RETRAIN_PROVIDER__API_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "retrain-openai",
        "key": "api-key",
    }
    assert "value" not in env["RETRAIN_PROVIDER__API_KEY"]
    assert env["RETRAIN_HOME"]["value"] == container["workingDir"] == "/opt/retrain"
    assert container["resources"]["limits"]["memory"] == "4Gi"
    assert not find_placeholders(json.dumps(manifest))


@pytest.mark.slow
def test_server_creates_a_kubernetes_pool_from_it(prefect_api_url: str, template: dict[str, Any]) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate

    name = f"retrain-k8s-{uuid4().hex[:6]}"
    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name=name, type="kubernetes", base_job_template=template))
        pool = client.read_work_pool(name)
    assert pool.base_job_template == template


GPU_TEMPLATE = TEMPLATE.with_name("gpu-work-pool-job-template.json")


def test_the_training_pool_template_asks_for_a_gpu_and_holds_no_provider_key() -> None:
    from prefect.server.schemas.actions import validate_base_job_template
    from prefect.utilities.templating import apply_values, find_placeholders

    gpu: dict[str, Any] = json.loads(GPU_TEMPLATE.read_text())
    validate_base_job_template(gpu)
    jsonschema.Draft7Validator.check_schema(gpu["variables"])
    values = {**_defaults(gpu), "name": "train-lora-run", "command": "prefect flow-run execute"}
    manifest = apply_values(gpu["job_configuration"]["job_manifest"], values)
    pod = manifest["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    env = {item["name"]: item for item in container["env"]}
    assert env["RETRAIN_LORA__DEVICE"]["value"] == "cuda"
    assert "RETRAIN_PROVIDER__API_KEY" not in env
    assert not find_placeholders(json.dumps(manifest))
