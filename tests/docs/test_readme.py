"""The README stays true to the code: its configuration reference is the generated one."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from retrain.cli.main import app
from retrain.config.reference import configuration_reference
from retrain.validate.features import feature_row_columns
from retrain.validate.gates import BATCH_COLUMNS

ROOT = Path(__file__).resolve().parents[2]


def test_readme_configuration_reference_is_generated_from_the_settings() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert configuration_reference() in readme, "run `retrain config-reference --write README.md`"


def test_every_setting_is_described() -> None:
    undocumented = [line for line in configuration_reference().splitlines() if line.endswith("|  |")]
    assert undocumented == []


def test_readme_names_only_commands_that_exist() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    commands = (
        "demo",
        "run",
        "check",
        "local",
        "serve",
        "ingest",
        "validate",
        "eval",
        "alias",
        "chat",
        "jobs",
    )
    for command in (
        *commands,
        "batches",
        "data",
        "history",
        "spend",
        "lease",
        "automations",
        "config-reference",
    ):
        assert f"`retrain {command}" in (ROOT / "README.md").read_text(encoding="utf-8")
        assert command in result.output


def test_readme_names_the_columns_suite_expectations_can_read() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for column in (*feature_row_columns(), *BATCH_COLUMNS):
        assert f"`{column}`" in readme, column
