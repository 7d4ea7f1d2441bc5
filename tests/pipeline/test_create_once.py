"""Creates that must not happen twice, against the local server's fault injector."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from openai import OpenAI

from retrain.config.services import ProviderSettings
from retrain.providers.clients import create_once

pytestmark = pytest.mark.slow


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[OpenAI, ProviderSettings, str]]:
    from local_openai import serve_in_thread

    with serve_in_thread(tmp_path / "openai") as handle:
        provider = ProviderSettings(base_url=handle.base_url, max_retries=3)
        yield OpenAI(base_url=handle.base_url, api_key="x", max_retries=0), provider, handle.root_url


def _faults(root: str, *rules: dict[str, object]) -> None:
    httpx.post(f"{root}/admin/faults", json={"rules": list(rules)}, timeout=10).raise_for_status()


def _upload(client: OpenAI, provider: ProviderSettings, name: str) -> str:
    return create_once(
        client,
        lambda once: once.files.create(file=(name, b'{"a": 1}\n'), purpose="fine-tune"),
        lambda: next((f for f in client.files.list() if f.filename == name), None),
        provider,
        sleep=lambda seconds: None,
    ).id


def test_429s_and_500s_are_retried_and_create_exactly_one_file(
    server: tuple[OpenAI, ProviderSettings, str],
) -> None:
    client, provider, root = server
    _faults(
        root,
        {"route": "files", "method": "POST", "kind": "429", "retry_after": 0.01, "count": 1},
        {"route": "files", "method": "POST", "kind": "500", "count": 2},
    )
    file_id = _upload(client, provider, "once.jsonl")
    assert [f.id for f in client.files.list()] == [file_id]


def test_gives_up_after_max_retries_with_the_last_error(server: tuple[OpenAI, ProviderSettings, str]) -> None:
    client, provider, root = server
    _faults(root, {"route": "files", "method": "POST", "kind": "500"})
    with pytest.raises(openai.InternalServerError):
        _upload(client, provider, "never.jsonl")
    assert client.files.list().data == []
