"""Worker processes, the paused collector, near-duplicates against the curated set, and the Data Docs path."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from retrain.config.stage_settings import ValidationSettings
from retrain.validate.batch import validate_batch
from retrain.validate.batch_result import BatchResult
from retrain.validate.canonical import near_duplicate_key, normalise_prompt

from .conftest import MODEL, ROOT, chat, clean_examples, jsonl
from .test_validation import _hostile_corpus


def _run(sources: list[tuple[str, bytes]], settings: ValidationSettings, **kwargs: Any) -> BatchResult:
    return validate_batch(
        [(name, [data[i : i + 65536] for i in range(0, len(data), 65536)]) for name, data in sources],
        settings,
        base_model=MODEL,
        **kwargs,
    )


def _outcome(result: BatchResult) -> dict[str, Any]:
    """Everything a caller can see of a result, as JSON-able data."""
    return orjson.loads(
        orjson.dumps(
            {
                "accepted": [(a.source, a.line_no, a.hash, a.n_tokens, a.example) for a in result.accepted],
                "quarantined": [(q.source, q.line_no, q.to_json()) for q in result.quarantined],
                "summary": result.summary(),
            },
            option=orjson.OPT_SERIALIZE_NUMPY,
        )
    )


_SCRIPT = """
import logging
import sys
import threading
from pathlib import Path

import orjson

from retrain.config.stage_settings import ValidationSettings
from retrain.validate.batch import validate_batch
from tests.validation.test_batch_features import _outcome

print("script body ran", file=sys.stderr)
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
if sys.argv[3] == "threaded":  # like a flow run: another thread is alive, so workers are spawned
    threading.Thread(target=threading.Event().wait, daemon=True).start()
folder = Path(sys.argv[1])
settings = ValidationSettings.model_validate_json((folder / "settings.json").read_bytes())
sources = [(path.name, [path.read_bytes()]) for path in sorted(folder.glob("*.jsonl"))]
prompts = set(orjson.loads((folder / "prompts.json").read_bytes()))
result = validate_batch(sources, settings, base_model=sys.argv[2], eval_prompts=prompts)
sys.stdout.buffer.write(orjson.dumps(_outcome(result)))
"""


@pytest.mark.slow
@pytest.mark.parametrize(("caller", "start_method"), [("single", "fork"), ("threaded", "spawn")])
def test_worker_processes_give_exactly_the_in_process_result(
    tmp_path: Path, settings: ValidationSettings, caller: str, start_method: str
) -> None:
    """Run in a script without a main guard: spawned workers must not re-run it."""
    hostile, _ = _hostile_corpus()
    examples = clean_examples(2500)
    sources = {
        "a-hostile.jsonl": hostile,
        "b-big.jsonl": jsonl(*examples) + jsonl(*examples[:300]) + b"{bad\n" * 40,
        "c-tail.jsonl": hostile,
    }
    for name, data in sources.items():
        (tmp_path / name).write_bytes(data)
    prompts = [normalise_prompt([{"role": "user", "content": "What is the capital of France?"}])]
    (tmp_path / "prompts.json").write_bytes(orjson.dumps(prompts))
    base = settings.model_copy(update={"max_quarantine_rate": 1.0, "chunk_rows": 700})
    parallel = base.model_copy(update={"workers": 2, "parallel_min_lines": 0})
    (tmp_path / "settings.json").write_text(parallel.model_dump_json())
    script = tmp_path / "no_guard.py"
    script.write_text(_SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path), MODEL, caller],
        capture_output=True,
        timeout=600,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert done.stderr.decode().count("script body ran") == 1
    assert f"checking lines in 2 worker processes ({start_method})" in done.stderr.decode()
    inline = _run(
        [(name, sources[name]) for name in sorted(sources)],
        base.model_copy(update={"workers": 1}),
        eval_prompts=set(prompts),
    )
    assert orjson.loads(done.stdout) == _outcome(inline)
    assert inline.by_reason["duplicate"] >= 300 and inline.by_reason["eval_leak"] == 2
    assert inline.n_accepted == 2500  # the hostile corpus starts with clean_examples(40)


def test_near_duplicates_of_curated_examples_are_quarantined(settings: ValidationSettings) -> None:
    curated = chat("What is item number 3?", "Item 3 is a distinct thing, number 21.")
    batch = [*clean_examples(12), chat("what is ITEM number 3", "item 3 is a distinct thing number 21!")]
    result = _run([("batch.jsonl", jsonl(*batch))], settings, known_near_keys={near_duplicate_key(curated)})
    # clean_examples(12)[3] is the curated example itself (same text), the last line a variant
    assert [q.line_no for q in result.quarantined] == [4, 13]
    assert {r.code for q in result.quarantined for r in q.reasons} == {"near_duplicate"}
    assert all("curated data" in q.reasons[0].message for q in result.quarantined)
    assert result.n_accepted == 11


def test_the_data_docs_index_is_exposed(tmp_path: Path, settings: ValidationSettings) -> None:
    result = _run([("a.jsonl", jsonl(*clean_examples(12)))], settings, data_docs_dir=tmp_path / "docs")
    assert result.data_docs_index == (tmp_path / "docs" / "index.html").resolve()
    assert result.data_docs_index.is_file()
    assert "chat_batch" in result.data_docs_index.read_text()
    assert result.summary()["data_docs_index"] == str(result.data_docs_index)
    without = _run([("a.jsonl", jsonl(*clean_examples(12)))], settings)
    assert without.data_docs_index is None and without.summary()["data_docs_index"] is None


@pytest.mark.parametrize("enabled", [True, False])
def test_the_collector_is_paused_while_lines_are_read_and_restored_after(
    settings: ValidationSettings, enabled: bool
) -> None:
    seen: list[bool] = []

    def chunks() -> Any:
        seen.append(gc.isenabled())
        yield jsonl(*clean_examples(12))

    (gc.enable if enabled else gc.disable)()
    try:
        result = validate_batch([("a.jsonl", chunks())], settings, base_model=MODEL)
        assert gc.isenabled() is enabled
    finally:
        gc.enable()
    assert seen == [False] and result.n_accepted == 12
