"""``python -m local_openai`` as a process, with faults from a JSON file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import openai
import pytest
from openai import OpenAI

from tests.s3_servers import free_port, wait_for_port

pytestmark = pytest.mark.slow


def test_module_entry_point_serves_the_api_with_faults_from_a_file(tmp_path: Path) -> None:
    faults = tmp_path / "faults.json"
    faults.write_text(
        json.dumps({"rules": [{"route": "files", "kind": "429", "retry_after": 0, "count": 1}]})
    )
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "local_openai",
        "--data-dir",
        str(tmp_path / "data"),
        "--port",
        str(port),
        "--faults",
        str(faults),
        "--step-delay",
        "0",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, timeout=60)
        client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0)
        with pytest.raises(openai.RateLimitError):
            client.files.list()
        assert client.files.list().data == []
        assert "gpt-4o-mini-2024-07-18" in {m.id for m in client.models.list()}
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert (tmp_path / "data" / "state.sqlite3").is_file()
