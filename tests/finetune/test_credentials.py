"""The API key from a Prefect Secret block instead of the environment."""

from __future__ import annotations

import pytest
from prefect.blocks.system import Secret

from retrain.config.services import ProviderSettings
from retrain.config.settings import load_settings
from retrain.exceptions import ConfigError
from tasks.credentials import provider_with_credentials

pytestmark = pytest.mark.slow

KEY = "sk-from-a-secret-block-5e2a9c71"


def test_the_key_comes_from_the_named_secret_block(
    prefect_harness: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    Secret(value=KEY).save("retrain-test-openai-key", overwrite=True)
    monkeypatch.setenv("RETRAIN_PROVIDER__KIND", "openai")
    monkeypatch.setenv("RETRAIN_PROVIDER__API_KEY_SECRET_BLOCK", "retrain-test-openai-key")
    # No key in the environment: with a secret block named, the settings are complete.
    provider = load_settings().provider
    assert provider.api_key_secret_block == "retrain-test-openai-key"

    resolved = provider_with_credentials(provider)
    assert resolved.api_key.get_secret_value() == KEY
    assert KEY not in repr(resolved) and KEY not in str(resolved.model_dump())
    assert provider_with_credentials(ProviderSettings()).api_key.get_secret_value() == "sk-local-not-a-secret"

    with pytest.raises(ConfigError, match="'no-such-block' not found") as missing:
        provider_with_credentials(provider.model_copy(update={"api_key_secret_block": "no-such-block"}))
    assert "\n" not in str(missing.value)


def test_openai_without_a_key_or_a_block_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETRAIN_PROVIDER__KIND", "openai")
    with pytest.raises(ConfigError, match="API_KEY_SECRET_BLOCK"):
        load_settings()
