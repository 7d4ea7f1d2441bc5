"""Fixtures for fine-tuning tests: the local OpenAI-compatible server and a bucket."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from openai import OpenAI

from retrain.config.services import ProviderSettings
from retrain.local.synthetic import make_examples
from tests.pipeline.conftest import stack  # noqa: F401  (moto S3 server + local OpenAI server + Prefect)


@dataclass
class Api:
    client: OpenAI
    provider: ProviderSettings
    root: str

    def admin(self, method: str, path: str, **kwargs: Any) -> Any:
        response = httpx.request(method, f"{self.root}{path}", timeout=30, **kwargs)
        response.raise_for_status()
        return response.json()

    def route_count(self, key: str) -> int:
        return int(self.admin("GET", "/admin/stats")["routes"].get(key, 0))


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    from local_openai import serve_in_thread

    with serve_in_thread(tmp_path / "openai", step_delay=0.002) as server:
        client = OpenAI(
            base_url=server.base_url, api_key="x", max_retries=0, _strict_response_validation=True
        )
        yield Api(client, ProviderSettings(base_url=server.base_url, max_retries=0), server.root_url)


def jsonl(examples: list[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(example) + b"\n" for example in examples)


def chat_file(n: int, seed: int) -> bytes:
    return jsonl(make_examples(n, seed=seed))


def preference_file(n: int, seed: int) -> bytes:
    """DPO examples: the synthetic answer is preferred over another example's answer."""
    examples = make_examples(n, seed=seed)
    rows = []
    for i, example in enumerate(examples):
        messages = example["messages"]
        other = examples[(i + 1) % len(examples)]["messages"][-1]
        rows.append(
            {
                "input": {"messages": messages[:-1]},
                "preferred_output": [messages[-1]],
                "non_preferred_output": [other],
            }
        )
    return jsonl(rows)
