"""`retrain demo`: it starts over on an empty bucket each time, and runs on the local stack only."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from retrain.cli.main import app
from retrain.config.settings import get_settings, load_settings
from retrain.local.demo import start_over
from retrain.local.stack import settings_off_the_stack
from retrain.storage.object_store import ObjectStore


def test_start_over_empties_the_demos_prefix_and_nothing_else(moto_store: ObjectStore) -> None:
    demo = ObjectStore(moto_store._client, moto_store.bucket, "demo/")
    for key in (
        "incoming/2026-11-01/a.jsonl",
        "registry/log/000000000001.json",
        "state/leases/nightly/1.json",
    ):
        demo.put_bytes(key, b"{}")
    moto_store.put_bytes("elsewhere/keep.json", b"{}")
    assert start_over(demo) == 3
    assert list(demo.list()) == []
    assert [info.key for info in moto_store.list()] == ["elsewhere/keep.json"]
    assert start_over(demo) == 0


def test_the_defaults_are_the_local_stack_and_anything_else_is_named() -> None:
    assert settings_off_the_stack(load_settings()) == []
    moved = load_settings(local={"s3_port": 9600, "openai_port": 9601})
    assert settings_off_the_stack(moved) == [
        "RETRAIN_S3__ENDPOINT_URL=http://127.0.0.1:9555",
        "RETRAIN_PROVIDER__BASE_URL=http://127.0.0.1:8765/v1",
    ]
    real = load_settings(s3={"endpoint_url": ""}, provider={"kind": "openai", "api_key": "sk-test-0000"})
    assert settings_off_the_stack(real) == ["RETRAIN_S3__ENDPOINT_URL=(AWS)", "RETRAIN_PROVIDER__KIND=openai"]


def test_the_demo_refuses_to_run_against_a_real_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETRAIN_PROVIDER__KIND", "openai")
    monkeypatch.setenv("RETRAIN_PROVIDER__API_KEY", "sk-test-0000")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["demo"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1
    assert "runs on the local stack only, but RETRAIN_PROVIDER__KIND=openai: unset it" in result.output
    assert "sk-test" not in result.output and "Traceback" not in result.output
