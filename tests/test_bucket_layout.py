"""One module names the bucket layout: retrain/storage/layout.py.

Every other module of retrain, tasks and flows takes its key prefixes from there: a string
literal shaped like a bucket folder (``state/jobs/``, or the ``evals/`` that starts
``f"evals/{run_id}/..."``) anywhere else fails this test, unless the module is listed in
``NOT_REWIRED`` below. Whatever a listed module still spells must be a prefix layout.py names.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from retrain.storage import layout

ROOT = Path(__file__).resolve().parents[1]
LAYOUT = Path("retrain/storage/layout.py")
# A relative folder: a lowercase first segment, every segment ending in "/" (no scheme, no space).
KEY_PREFIX = re.compile(r"[a-z][a-z0-9_-]*/(?:[A-Za-z0-9_.-]+/)*")

# Modules that still spell key prefixes themselves, and why; remove an entry once it is rewired.
NOT_REWIRED = {
    "retrain/cli/data.py": "curated/ in the title of `retrain data list`: the CLI is not rewired yet",
    "retrain/cli/run.py": "the bucket folders `retrain demo` prints: the CLI is not rewired yet",
    "tasks/ingest.py": "incoming/ in the discovery summary: tasks are not rewired yet",
}


def _named() -> set[str]:
    return {value for name, value in vars(layout).items() if name.isupper() and isinstance(value, str)}


def _key_prefixes(path: Path) -> list[tuple[int, str]]:
    """(line, literal) of every string constant in the module shaped like a bucket folder."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and KEY_PREFIX.fullmatch(node.value)
    ]


def _modules() -> list[Path]:
    paths = [p for root in ("retrain", "tasks", "flows") for p in (ROOT / root).rglob("*.py")]
    return sorted(p.relative_to(ROOT) for p in paths if p.relative_to(ROOT) != LAYOUT)


def test_no_module_but_layout_spells_a_key_prefix() -> None:
    spelled = [
        f"{path}:{line}: {literal!r}"
        for path in _modules()
        if path.as_posix() not in NOT_REWIRED
        for line, literal in _key_prefixes(ROOT / path)
    ]
    assert spelled == [], "take these from retrain.storage.layout instead"


@pytest.mark.parametrize("module", sorted(NOT_REWIRED))
def test_a_module_not_rewired_yet_spells_only_prefixes_that_layout_names(module: str) -> None:
    literals = {literal for _, literal in _key_prefixes(ROOT / module)}
    assert literals, f"{module} spells no key prefix any more: remove it from NOT_REWIRED"
    assert literals <= _named(), f"{module} uses prefixes layout.py does not name: {literals - _named()}"


def test_the_layout_table_lists_every_prefix_and_key_it_names() -> None:
    table = layout.__doc__ or ""
    missing = sorted(value for value in _named() if value.endswith(("/", ".json")) and value not in table)
    assert missing == []
