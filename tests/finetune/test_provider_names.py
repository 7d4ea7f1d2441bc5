"""Models live on named providers: the registry records the name, settings map it back."""

from __future__ import annotations

import pytest

from retrain.config.settings import load_settings
from retrain.exceptions import ConfigError
from retrain.providers.clients import provider_named


def test_a_further_provider_is_named_by_its_key_unless_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETRAIN_PROVIDERS__LEGACY__BASE_URL", "http://127.0.0.1:1/v1")
    monkeypatch.setenv("RETRAIN_PROVIDERS__OTHER__NAME", "Other-Cloud")
    monkeypatch.setenv("RETRAIN_PROVIDERS__OTHER__BASE_URL", "http://127.0.0.1:2/v1")
    settings = load_settings()
    assert provider_named(settings, "legacy").base_url == "http://127.0.0.1:1/v1"
    assert provider_named(settings, "Other-Cloud").base_url == "http://127.0.0.1:2/v1"
    assert provider_named(settings, "local") is settings.provider


@pytest.mark.parametrize(
    ("name", "key", "named"),
    [("openai", "OPENAI", False), ("azure-prod", "AZURE_PROD", True), ("OpenAI", "OPENAI", True)],
)
def test_an_unknown_provider_says_how_to_configure_it_and_the_advice_works(
    monkeypatch: pytest.MonkeyPatch, name: str, key: str, named: bool
) -> None:
    prefix = f"RETRAIN_PROVIDERS__{key}"
    with pytest.raises(ConfigError) as missing:
        provider_named(load_settings(), name)
    advice = f"{prefix}__NAME={name}, " if named else ""
    assert str(missing.value) == (
        f"provider {name!r} is not configured (known: local): "
        f"add it with {advice}{prefix}__KIND / __BASE_URL / __API_KEY"
    )

    if named:
        monkeypatch.setenv(f"{prefix}__NAME", name)
    monkeypatch.setenv(f"{prefix}__KIND", "compatible")
    monkeypatch.setenv(f"{prefix}__BASE_URL", "http://127.0.0.1:3/v1")
    assert provider_named(load_settings(), name).base_url == "http://127.0.0.1:3/v1"
