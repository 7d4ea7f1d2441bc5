"""Settings: a misspelt RETRAIN_* name stops the program with the setting it probably meant."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from retrain.cli.main import app
from retrain.config.settings import load_settings
from retrain.exceptions import ConfigError


@pytest.mark.parametrize(
    ("name", "meant"),
    [
        ("RETRAIN_PROVIDER__APIKEY", "RETRAIN_PROVIDER__API_KEY"),
        ("RETRAIN_VALIDATIONS__FORMAT", "RETRAIN_VALIDATION__FORMAT"),
        ("retrain_training__max_training_cost", "RETRAIN_TRAINING__MAX_TRAINING_COST_USD"),
        ("RETRAIN_PROVIDERS__LEGACY__BASEURL", "RETRAIN_PROVIDERS__LEGACY__BASE_URL"),
        ("RETRAIN_S3__BUCKET__NAME", "RETRAIN_S3__BUCKET"),
    ],
)
def test_a_misspelt_setting_names_the_one_meant_and_never_its_value(
    monkeypatch: pytest.MonkeyPatch, name: str, meant: str
) -> None:
    monkeypatch.setenv(name, "sk-live-value-never-shown")
    with pytest.raises(ConfigError) as error:
        load_settings()
    message = str(error.value)
    assert message.startswith(f"unknown setting {name.upper()} in the environment: did you mean {meant}?")
    assert "sk-live-value-never-shown" not in message


def test_a_single_underscore_after_the_group_is_caught_in_the_env_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("OTHER_TOOL=1\nRETRAIN_S3_BUCKET=acme\nRETRAIN_S3__REGION=eu-west-1\n")
    with pytest.raises(ConfigError) as error:
        load_settings()
    assert str(error.value) == (
        "unknown setting RETRAIN_S3_BUCKET in .env: did you mean RETRAIN_S3__BUCKET? "
        "(two underscores join a group and its setting) (`retrain config-reference` lists every setting)"
    )


def test_every_misspelt_name_is_listed_in_the_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETRAIN_PROVIDER__APIKEY", "x")
    monkeypatch.setenv("RETRAIN_NOSUCHGROUP__X", "y")
    with pytest.raises(ConfigError) as error:
        load_settings()
    assert str(error.value) == (
        "unknown setting RETRAIN_NOSUCHGROUP__X in the environment; "
        "unknown setting RETRAIN_PROVIDER__APIKEY in the environment: "
        "did you mean RETRAIN_PROVIDER__API_KEY? "
        "(`retrain config-reference` lists every setting)"
    )


def test_settings_and_names_that_are_not_ours_are_accepted(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("retrain_s3__prefix=team\n")
    for name, value in {
        "RETRAIN_S3": '{"bucket": "from-json"}',  # a whole group as JSON
        "RETRAIN_PROVIDERS__LEGACY__BASE_URL": "http://127.0.0.1:1/v1",
        "RETRAIN_VALIDATION__EXAMPLE_TOKEN_LIMITS__GPT_9": "1000",  # an entry of a table
        "RETRAIN_HOME": "/opt/retrain",  # read by the local stack's worker
        "RETRAIN_ALERTS_WEBHOOK_URL": "http://hooks.example/x",  # automations apply's option
        "RETRAIN_SERVICE_HOST": "10.0.0.1",  # Kubernetes, for a service called retrain
        "RETRAIN_LOCAL_PORT_80_TCP": "tcp://10.0.0.1:80",  # and for one called retrain-local
    }.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.s3.bucket == "from-json" and settings.s3.prefix == "team/"
    assert settings.providers["legacy"].base_url == "http://127.0.0.1:1/v1"
    assert settings.validation.example_token_limits["gpt_9"] == 1000


def test_the_cli_prints_it_as_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETRAIN_PROVIDER__APIKEY", "sk-x")
    result = CliRunner().invoke(app, ["alias", "list"])
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "error: unknown setting RETRAIN_PROVIDER__APIKEY in the environment: did you mean "
        "RETRAIN_PROVIDER__API_KEY? (`retrain config-reference` lists every setting)"
    ]
