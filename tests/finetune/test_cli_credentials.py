"""`retrain jobs`, `eval` and `chat` call the provider with the key of its Prefect Secret block.

The local server here demands one API key, as a real provider does, so a command that sent
the placeholder key instead of the block's value gets a 401.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect.blocks.system import Secret
from prefect.settings import PREFECT_API_URL

from retrain.config.services import S3Settings
from retrain.config.settings import get_settings
from retrain.evaluate.eval_sets import put_eval_set
from retrain.local.synthetic import make_eval_set
from retrain.registry.records import ModelRecord
from retrain.registry.registry import Registry
from retrain.storage.object_store import ObjectStore
from tests.pipeline.test_run_cli import retrain

pytestmark = pytest.mark.slow

KEY = "sk-only-in-the-secret-block-7c41e9a2"
BLOCK = "retrain-test-cli-key"
BASE = "gpt-4o-mini-2024-07-18"


@pytest.fixture
def guarded(
    s3_env: S3Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefect_harness: None
) -> Iterator[None]:
    """A local server that takes only KEY, `production` on it, and the key only in a Secret block."""
    from local_openai import serve_in_thread

    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("PREFECT_API_URL", str(PREFECT_API_URL.value()))
    Secret(value=KEY).save(BLOCK, overwrite=True)
    with serve_in_thread(tmp_path / "openai", api_key=KEY) as api:
        monkeypatch.setenv("RETRAIN_PROVIDER__BASE_URL", api.base_url)
        monkeypatch.setenv("RETRAIN_PROVIDER__API_KEY_SECRET_BLOCK", BLOCK)
        get_settings.cache_clear()
        store = ObjectStore.from_settings(s3_env)
        put_eval_set(store, "main", make_eval_set(10, seed=5))
        record = ModelRecord(model_id=BASE, provider="local", base_model=BASE)
        Registry(store).set("production", record, actor="test", reason="test")
        yield
    get_settings.cache_clear()


def test_jobs_eval_and_chat_use_the_key_from_the_secret_block(guarded: None) -> None:
    listed = retrain("jobs", "list")
    assert listed.returncode == 0, listed.stderr
    assert "no fine-tuning jobs on provider 'local'" in listed.stdout

    evaluated = retrain("eval", "--candidate", "production", "--production", BASE)
    assert evaluated.returncode == 0, evaluated.stderr
    assert "Gate checks" in evaluated.stdout

    chat = retrain("chat", "How do I reset my password?")
    assert chat.returncode == 0, chat.stderr
    assert chat.stdout.strip() and f"production -> {BASE} (local)" in chat.stderr

    assert all(KEY not in done.stdout + done.stderr for done in (listed, evaluated, chat))


def test_a_rejected_key_names_where_it_came_from(guarded: None) -> None:
    Secret(value="sk-an-old-rotated-key-0000").save(BLOCK, overwrite=True)
    rejected = retrain("chat", "Hello?")
    assert rejected.returncode == 1
    assert rejected.stderr.strip() == (
        f"error: asking {BASE}: provider 'local' rejected the API key: check the value of the "
        f"Prefect Secret block '{BLOCK}'"
    )
    evaluated = retrain("eval", "--candidate", "production", "--production", BASE)
    assert evaluated.returncode == 1
    assert evaluated.stderr.strip() == (
        "error: provider 'local' refused the API key (AuthenticationError (HTTP 401)): check the value "
        f"of the Prefect Secret block '{BLOCK}'"
    )


def test_a_rejected_key_from_the_environment_names_the_variables(
    guarded: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RETRAIN_PROVIDER__API_KEY_SECRET_BLOCK")
    monkeypatch.setenv("RETRAIN_PROVIDER__API_KEY", "sk-a-wrong-key-from-the-env-1111")
    get_settings.cache_clear()
    rejected = retrain("jobs", "list")
    assert rejected.returncode == 1
    assert rejected.stderr.strip() == (
        "error: listing fine-tuning jobs: provider 'local' rejected the API key: check "
        "RETRAIN_PROVIDER__API_KEY (RETRAIN_PROVIDERS__<KEY>__API_KEY for a further provider)"
    )
    assert "sk-a-wrong-key" not in rejected.stdout + rejected.stderr
