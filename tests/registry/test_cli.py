"""`retrain alias ...` against a moto server, with settings from environment variables."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from retrain.cli import alias
from retrain.cli.main import _RetrainGroup
from retrain.config.services import S3Settings
from retrain.config.settings import get_settings
from retrain.registry.registry import Registry
from retrain.storage.object_store import ObjectStore

pytestmark = pytest.mark.slow

FAKE_KEY = "sk-FAKE-registry-leak-check-0123456789"

root = typer.Typer(cls=_RetrainGroup)
root.add_typer(alias.app, name="alias")


@pytest.fixture
def s3(s3_env: S3Settings, monkeypatch: pytest.MonkeyPatch) -> S3Settings:
    monkeypatch.setenv("RETRAIN_PROVIDER__KIND", "openai")
    monkeypatch.setenv("RETRAIN_PROVIDER__NAME", "openai-prod")
    monkeypatch.setenv("RETRAIN_PROVIDER__API_KEY", FAKE_KEY)
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    return s3_env


def run_unverified(*args: str) -> tuple[int, str]:
    """`alias set` without asking the provider: these tests' OpenAI provider is unreachable."""
    return run(*args, "--no-verify")


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(root, ["alias", *args])
    return result.exit_code, result.output


@pytest.fixture(autouse=True)
def no_prefect_api() -> Iterator[None]:
    """No PREFECT_API_URL, even where another test of this worker started the session's server
    (a test that wants one sets it), and Prefect's log handlers set up here, not on the streams
    of a CliRunner invocation that are closed when it returns."""
    import prefect.main  # noqa: F401
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        yield


def test_set_show_list_history_resolve_rollback(s3: S3Settings) -> None:
    assert run_unverified("set", "production", "ft:a", "--reason", "first")[0] == 0
    code, out = run_unverified("set", "production", "ft:b", "--provider", "azure-eu")
    assert code == 0
    assert "production: ft:a -> ft:b (event 2)" in out
    assert "no Prefect API configured (PREFECT_API_URL): no retrain.alias.changed event sent" in out
    code, out = run_unverified("set", "production", "ft:b")
    assert "nothing written" in out and "retrain.alias.changed" not in out
    assert run_unverified("set", "staging", "ft:a")[0] == 0

    assert run("resolve", "production") == (0, "ft:b\n")
    code, out = run("show", "production")
    assert code == 0
    assert "azure-eu" in out
    assert "gpt-4o-mini-2024-07-18" in out
    code, out = run("list")
    assert code == 0
    assert "production" in out
    assert "staging" in out
    code, out = run("history", "production")
    assert code == 0
    assert "first" in out
    assert "ft:b" in out

    code, out = run("list", "--json")
    assert code == 0
    listed = json.loads(out)
    assert sorted(listed) == ["production", "staging"]
    assert listed["production"]["model"] == {
        **listed["production"]["model"],
        "model_id": "ft:b",
        "provider": "azure-eu",
    }
    code, out = run("history", "production", "--json", "--limit", "1")
    assert code == 0 and [event["seq"] for event in json.loads(out)] == [listed["production"]["seq"]]
    code, out = run("show", "staging", "--json")
    assert code == 0 and json.loads(out) == listed["staging"]

    code, out = run("rollback", "production")
    assert (code, "production: ft:b -> ft:a (event 4)" in out) == (0, True)
    assert "no alias-change alert fires" in out
    assert run("resolve", "production") == (0, "ft:a\n")
    assert run("rollback", "production", "--to", "ft:b", "--reason", "a was worse")[0] == 0
    assert run("resolve", "production") == (0, "ft:b\n")
    record = Registry(ObjectStore.from_settings(s3)).resolve("staging")
    assert (record.provider, record.base_model) == ("openai-prod", "gpt-4o-mini-2024-07-18")


def test_errors_are_one_line_and_exit_1(s3: S3Settings) -> None:
    code, out = run("resolve", "production")
    assert code == 1
    assert out.strip().splitlines() == [
        "error: no alias 'production' in the registry (known aliases: none yet): see `retrain alias "
        "list`, or create it with `retrain alias set production MODEL`"
    ]
    assert "Traceback" not in out
    run_unverified("set", "production", "ft:a")
    code, out = run("rollback", "production", "--to", "ft:zzz")
    assert code == 1
    assert "model 'ft:zzz' is not in the registry" in out
    assert run("rollback", "production", "--to", "ft:a", "--steps", "2")[0] == 2


def test_registry_objects_never_contain_the_api_key(s3: S3Settings) -> None:
    assert get_settings().provider.api_key.get_secret_value() == FAKE_KEY
    for model_id in ("ft:a", "ft:b", "ft:c"):
        assert run_unverified("set", "production", model_id)[0] == 0
    assert run("rollback", "production", "--steps", "2")[0] == 0
    Registry(ObjectStore.from_settings(s3), snapshot_every=1).set(
        "staging", Registry(ObjectStore.from_settings(s3)).resolve("production"), actor="t", reason="r"
    )

    store = ObjectStore.from_settings(s3)
    keys = [info.key for info in store.list("")]
    assert any(key.startswith("registry/snapshots/") for key in keys)
    assert len(keys) == 8  # 4 events, the full and the heads snapshot, LATEST.json
    for key in keys:
        body = store.get_bytes(key)
        assert FAKE_KEY.encode() not in body
        assert b"sk-" not in body
        assert b"api_key" not in body


def test_set_points_an_alias_only_at_a_model_its_provider_knows(
    s3_env: S3Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from local_openai import serve_in_thread

    with serve_in_thread(tmp_path / "openai") as api:
        monkeypatch.setenv("RETRAIN_PROVIDER__BASE_URL", api.base_url)
        monkeypatch.setenv("COLUMNS", "200")
        get_settings.cache_clear()
        registry = Registry(ObjectStore.from_settings(s3_env))

        code, out = run("set", "production", "ft:gpt-4o-mini:acme:typo")
        assert code == 1
        assert out.strip().splitlines() == [
            "error: provider 'local' does not know model 'ft:gpt-4o-mini:acme:typo': check the model id "
            "(`retrain jobs list --provider local` shows the fine-tuned ones) and the provider, or pass "
            "--no-verify to point 'production' there anyway"
        ]
        assert registry.get("production") is None

        assert run("set", "production", "gpt-4o-mini-2024-07-18")[0] == 0
        assert registry.resolve("production").model_id == "gpt-4o-mini-2024-07-18"
        code, out = run("set", "canary", "gpt-4o-mini-2024-07-18", "--provider", "azure-eu")
        assert code == 1 and "RETRAIN_PROVIDERS__AZURE_EU__KIND" in out
        assert run("set", "staging", "ft:gpt-4o-mini:acme:later", "--no-verify")[0] == 0
        assert registry.resolve("staging").model_id == "ft:gpt-4o-mini:acme:later"


def test_history_keeps_whole_model_ids_on_a_narrow_terminal(
    s3: S3Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    long_id = "ft:gpt-4o-mini-2024-07-18:acme-support-team:retrain-20261101:Gv6tsEV7"
    run_unverified("set", "production", "ft:a", "--reason", "first")
    run_unverified("set", "production", long_id, "--reason", "better")
    monkeypatch.setenv("COLUMNS", "40")
    code, out = run("history", "production")
    assert code == 0, out
    lines = [line for line in out.splitlines() if line.startswith("    ")]
    assert lines == [
        "    model    ft:a (on openai-prod)",
        "    previous -",
        "    reason   first",
        f"    model    {long_id} (on openai-prod)",
        "    previous ft:a",
        "    reason   better",
    ]
    headers = [line.split("  ")[0::2] for line in out.splitlines() if line.startswith("#")]
    assert headers == [["#1", "set"], ["#2", "set"]]


def test_an_unreachable_prefect_api_is_a_warning_after_the_alias_moved(s3: S3Settings) -> None:
    from prefect.settings import PREFECT_API_KEY, PREFECT_API_URL, temporary_settings

    key = "pnu_FAKE-prefect-key-0123456789"
    assert run_unverified("set", "production", "ft:a")[0] == 0
    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:9/api", PREFECT_API_KEY: key}):
        code, out = run_unverified("set", "production", "ft:b")
    assert code == 0
    assert "production: ft:a -> ft:b (event 2)" in out
    assert "warning: the Prefect API did not take the retrain.alias.changed event" in out
    assert key not in out
    assert run("resolve", "production") == (0, "ft:b\n")
