"""Every RETRAIN_* name the code, docs and infrastructure mention is a setting (or one we read)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from retrain.config.setting_names import unknown_settings
from retrain.config.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
NAME = re.compile(r"RETRAIN_[A-Z0-9_]*[A-Z0-9]")
# Examples of the error: these files misspell these names on purpose, and the tests of it any.
MISSPELT_EXAMPLES = {"RETRAIN_PROVIDER__APIKEY", "RETRAIN_S3_BUCKET", "RETRAIN_VALIDATIONS__FORMAT"}
FILES_WITH_EXAMPLES = {"README.md", "CHANGELOG.md", "retrain/config/setting_names.py"}
TESTS_OF_MISSPELLING = {"tests/test_settings.py", "tests/docs/test_setting_names.py"}


def test_no_file_names_a_setting_that_does_not_exist() -> None:
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.splitlines()
    problems = []
    for path in tracked:
        if path.endswith(".lock") or path in TESTS_OF_MISSPELLING:
            continue
        try:
            text = (ROOT / path).read_text()
        except (UnicodeDecodeError, FileNotFoundError):
            continue
        names = set(NAME.findall(text)) - (MISSPELT_EXAMPLES if path in FILES_WITH_EXAMPLES else set())
        problems += unknown_settings(names, Settings, path)
    assert problems == []
