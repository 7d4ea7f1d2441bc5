"""Every response body the server sends is checked against the OpenAI OpenAPI description."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator
from local_openai import ServerHandle

from retrain.local.synthetic import make_examples

from .conftest import jsonl

pytestmark = pytest.mark.slow


class Conformance:
    def __init__(self, spec: dict[str, Any], server: ServerHandle) -> None:
        self.spec = spec
        self.http = httpx.Client(base_url=server.base_url, timeout=30)
        self.checked: list[str] = []

    def schema(self, path: str, method: str, status: str) -> dict[str, Any]:
        responses = self.spec["paths"][path][method]["responses"]
        if status == "200":
            ref: dict[str, Any] = responses["200"]["content"]["application/json"]["schema"]
        else:
            ref = {"$ref": "#/components/schemas/ErrorResponse"}
        return {**ref, "components": self.spec["components"]}

    def call(self, method: str, path: str, *, status: int = 200, **kwargs: Any) -> dict[str, Any]:
        """Call a spec path template (filled from ``path_params``) and validate the body."""
        filled = path.format(**kwargs.pop("path_params", {}))
        response = self.http.request(method, filled, **kwargs)
        assert response.status_code == status, response.text
        body: dict[str, Any] = response.json()
        schema = self.schema(path, method.lower(), str(status))
        errors = sorted(Draft202012Validator(schema).iter_errors(body), key=str)
        assert not errors, f"{method} {path}: {[e.message for e in errors[:3]]}"
        self.checked.append(f"{method} {path} {status}")
        return body


def test_files_jobs_models_chat_and_moderations_conform_to_the_spec(
    spec: dict[str, Any], server: ServerHandle
) -> None:
    api = Conformance(spec, server)
    upload = {"file": ("train.jsonl", jsonl(make_examples(40, seed=1)))}
    created = api.call("POST", "/files", files=upload, data={"purpose": "fine-tune"})
    file_id = created["id"]
    api.call("GET", "/files")
    api.call("GET", "/files/{file_id}", path_params={"file_id": file_id})
    assert api.http.get(f"/files/{file_id}/content").content == jsonl(make_examples(40, seed=1))

    job = api.call(
        "POST",
        "/fine_tuning/jobs",
        json={
            "model": "gpt-4o-mini-2024-07-18",
            "training_file": file_id,
            "suffix": "spec",
            "seed": 1,
            "metadata": {"team": "qa"},
            "method": {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2}}},
        },
    )
    ids = {"fine_tuning_job_id": job["id"]}
    for _ in range(2000):
        job = api.call("GET", "/fine_tuning/jobs/{fine_tuning_job_id}", path_params=ids)
        if job["status"] in ("succeeded", "failed", "cancelled"):
            break
    assert job["status"] == "succeeded", job
    api.call("GET", "/fine_tuning/jobs", params={"limit": 5, "metadata[team]": "qa"})
    events = api.call(
        "GET", "/fine_tuning/jobs/{fine_tuning_job_id}/events", path_params=ids, params={"limit": 100}
    )
    assert {e["type"] for e in events["data"]} == {"message", "metrics"}
    checkpoints = api.call("GET", "/fine_tuning/jobs/{fine_tuning_job_id}/checkpoints", path_params=ids)
    assert [c["step_number"] for c in checkpoints["data"]] == sorted(
        (c["step_number"] for c in checkpoints["data"]), reverse=True
    )

    other = api.call(
        "POST", "/fine_tuning/jobs", json={"model": "gpt-4o-mini-2024-07-18", "training_file": file_id}
    )
    api.call(
        "POST",
        "/fine_tuning/jobs/{fine_tuning_job_id}/cancel",
        path_params={"fine_tuning_job_id": other["id"]},
    )
    api.call("POST", "/fine_tuning/jobs/{fine_tuning_job_id}/cancel", status=400, path_params=ids)

    model = job["fine_tuned_model"]
    api.call("GET", "/models")
    api.call("GET", "/models/{model}", path_params={"model": model})
    api.call(
        "POST", "/chat/completions", json={"model": model, "messages": [{"role": "user", "content": "hi"}]}
    )
    api.call("DELETE", "/models/{model}", path_params={"model": model})
    api.call("GET", "/models/{model}", status=404, path_params={"model": model})
    api.call("DELETE", "/files/{file_id}", path_params={"file_id": file_id})
    api.call("GET", "/files/{file_id}", status=404, path_params={"file_id": file_id})
    api.call("POST", "/fine_tuning/jobs", status=400, json={"training_file": file_id})
    flagged = api.call("POST", "/moderations", json={"input": ["hello", "the massacre began"]})
    assert [result["flagged"] for result in flagged["results"]] == [False, True]
    api.call("POST", "/moderations", json={"input": "hello", "model": "omni-moderation-latest"})
    assert len(set(api.checked)) == 19
