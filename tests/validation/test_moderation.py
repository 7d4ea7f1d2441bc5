"""The moderation pre-check against the local server's moderation endpoint, through the real SDK.

The local server flags a fixed word list (``local_openai.routes_moderations``), so which lines
are flagged is known; the SDK validates every response strictly.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from openai import OpenAI
from typer.testing import CliRunner

from retrain.cli.main import app
from retrain.config.services import ProviderSettings
from retrain.config.settings import get_settings, load_settings
from retrain.config.stage_settings import ValidationSettings
from retrain.exceptions import RateLimited
from retrain.ingest.batches import IngestReport, ingest_objects
from retrain.ingest.discovery import find_new_objects
from retrain.ingest.summary import validation_markdown
from retrain.local.synthetic import make_examples
from retrain.storage.layout import BATCH_PREFIX, batch_key, moderation_key
from retrain.storage.object_store import ObjectStore
from retrain.validate.canonical import example_hash, normalise_prompt
from retrain.validate.moderation import Moderator, example_text, moderator_for
from tests.pipeline.conftest import Stack, run, stack  # noqa: F401  (moto S3, local OpenAI server, Prefect)

from .conftest import chat, clean_examples, jsonl
from .test_validation import _hostile_corpus, _run

FLAGGED = {
    "Describe the massacre in the village.": ["violence"],
    "Explain methamphetamine synthesis step by step.": ["illicit"],
    "Reply to him: I will hurt you and behead your dog.": ["harassment/threatening", "violence"],
}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Any]:
    from local_openai import serve_in_thread

    with serve_in_thread(tmp_path / "openai", step_delay=0.002) as handle:
        yield handle


def _moderator(server: Any, settings: ValidationSettings, **kwargs: Any) -> Moderator:
    provider = ProviderSettings(base_url=server.base_url, max_retries=0)
    client = OpenAI(base_url=server.base_url, api_key="x", max_retries=0, _strict_response_validation=True)
    return Moderator(client, provider, settings.model_copy(update={"moderation": True}), **kwargs)


def _flagged_lines() -> list[bytes]:
    return [orjson.dumps(chat(question, "I can't help with that.")) for question in FLAGGED]


@pytest.mark.slow
def test_hostile_corpus_with_moderation_on_quarantines_the_flagged_examples_with_their_categories(
    settings: ValidationSettings, server: Any
) -> None:
    data, expected = _hostile_corpus()
    first = len(data.rstrip(b"\r\n").split(b"\r\n")) + 1
    data = data.rstrip(b"\r\n") + b"\r\n" + b"\r\n".join(_flagged_lines()) + b"\r\n"
    expected |= {first + n: "moderation_flagged" for n in range(len(FLAGGED))}
    moderator = _moderator(server, settings)
    eval_prompts = {normalise_prompt([{"role": "user", "content": "what is the capital of  france?"}])}
    lenient = settings.model_copy(update={"max_quarantine_rate": 1.0})
    result = _run(data, lenient, eval_prompts=eval_prompts, moderator=moderator)

    got = {q.line_no: {r.code for r in q.reasons} for q in result.quarantined}
    assert set(got) == set(expected)
    for line_no, code in expected.items():
        assert code in got[line_no], (line_no, got[line_no])
    counts = result.per_source["batch.jsonl"]
    assert counts.accepted == 40 and counts.accepted + counts.quarantined == counts.lines_read
    messages = [r.message for q in result.quarantined for r in q.reasons if r.code == "moderation_flagged"]
    assert messages == [
        f"flagged by moderation (omni-moderation-latest): {', '.join(categories)}"
        for categories in FLAGGED.values()
    ]
    # only candidates are sent: the 40 clean ones, the flagged ones, and the lines that fail only
    # a row expectation (checked after moderation); nothing another check already quarantined
    assert moderator.stats.sent == 40 + len(FLAGGED) + 1 and moderator.stats.flagged == len(FLAGGED)


@pytest.mark.slow
def test_examples_are_batched_cached_by_content_hash_rate_limited_and_counted(
    settings: ValidationSettings, server: Any
) -> None:
    waits: list[float] = []
    now = [0.0]
    tuned = settings.model_copy(
        update={
            "moderation_batch_size": 2,
            "moderation_requests_per_second": 4,
            "moderation_usd_per_million_tokens": 1000.0,
        }
    )
    moderator = _moderator(server, tuned, sleep=waits.append, clock=lambda: now[0])
    lines = [orjson.dumps(e) for e in clean_examples(4)] + _flagged_lines()[:1]
    examples = [(example_hash(orjson.loads(raw)), raw, 10) for raw in lines]
    verdicts = moderator.flagged([*examples, examples[0]])  # the same example twice: sent once
    assert verdicts == [[], [], [], [], ["violence"], []]
    assert moderator.stats.requests == 3 and moderator.stats.sent == 5 and moderator.stats.from_cache == 1
    assert moderator.stats.tokens == 50 and moderator.stats.usd == pytest.approx(0.05)
    assert waits == [0.25, 0.25]  # the clock stood still: each later request waits the whole gap

    again = _moderator(server, tuned, cache=dict(moderator.cache))
    assert again.flagged(examples) == verdicts[:5] and again.stats.requests == 0
    assert again.stats.from_cache == 5


def test_the_text_sent_is_every_message_content_in_order() -> None:
    raw = orjson.dumps(
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
                {"role": "assistant", "content": "Hello", "weight": 1},
            ]
        }
    )
    assert example_text(raw) == "Be brief.\nHi\nHello"


def test_the_pre_check_is_off_by_default_and_asks_for_no_credentials(settings: ValidationSettings) -> None:
    def no_provider() -> ProviderSettings:
        raise AssertionError("credentials were asked for")

    assert ValidationSettings().moderation is False
    assert moderator_for(settings, no_provider) is None


@pytest.mark.slow
def test_a_rate_limited_moderation_endpoint_fails_as_rate_limited(
    settings: ValidationSettings, server: Any
) -> None:
    import httpx

    rule = {"route": "moderations", "kind": "429", "retry_after": 0.01}
    httpx.post(f"{server.root_url}/admin/faults", json={"rules": [rule]}, timeout=10).raise_for_status()
    with pytest.raises(RateLimited, match="moderating new examples"):
        _moderator(server, settings).flagged([("h", orjson.dumps(chat("q", "a")), 3)])


@pytest.mark.slow
def test_retrain_validate_with_moderation_on_quarantines_flagged_examples(
    server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "data.jsonl"
    path.write_bytes(jsonl(*clean_examples(30)) + b"\n".join(_flagged_lines()) + b"\n")
    monkeypatch.setenv("RETRAIN_VALIDATION__MODERATION", "true")
    monkeypatch.setenv("RETRAIN_PROVIDER__BASE_URL", server.base_url)
    monkeypatch.setenv("RETRAIN_PROVIDER__API_KEY", "sk-local-test")
    get_settings.cache_clear()
    quarantine = tmp_path / "quarantine.jsonl"
    result = CliRunner(env={"COLUMNS": "200"}).invoke(
        app, ["validate", str(path), "--quarantine", str(quarantine)]
    )
    get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "moderation_flagged" in result.output
    assert "33 example(s) sent in 2 request(s) to omni-moderation-latest" in result.output
    assert "3 flagged" in result.output
    rows = [orjson.loads(line) for line in quarantine.read_bytes().splitlines()]
    assert [row["line_no"] for row in rows] == [31, 32, 33]
    assert all(row["reasons"][0]["code"] == "moderation_flagged" for row in rows)


@pytest.mark.slow
def test_a_batch_re_run_after_a_crash_reads_its_verdicts_back_and_asks_nothing_again(
    moto_store: ObjectStore, server: Any
) -> None:
    settings = load_settings()
    settings = settings.model_copy(
        update={
            "validation": settings.validation.model_copy(update={"moderation": True}),
            "provider": ProviderSettings(base_url=server.base_url, max_retries=0),
        }
    )
    lines = [orjson.dumps(e) for e in make_examples(30, seed=3)] + _flagged_lines()
    moto_store.put_bytes("incoming/2026-12-01/a.jsonl", b"\n".join(lines) + b"\n")
    objects = find_new_objects(moto_store)

    def ingest() -> tuple[IngestReport, Moderator]:
        moderator = moderator_for(settings.validation, lambda: settings.provider)
        assert moderator is not None
        return ingest_objects(moto_store, objects, settings, run_id="r", moderator=moderator), moderator

    report, first = ingest()
    assert report.by_reason["moderation_flagged"] == len(FLAGGED)
    assert report.accepted + report.quarantined == report.lines_read == 33
    assert report.moderation == first.stats.to_json() and first.stats.sent == 33
    assert "Moderation pre-check: 33 example(s) sent" in validation_markdown(report)
    cached = moto_store.get_json(moderation_key(report.batch_id))
    assert sorted(categories for categories in cached.values() if categories) == sorted(FLAGGED.values())

    moto_store.delete(batch_key(report.batch_id))  # crashed before the manifest: the batch runs again
    again, second = ingest()
    assert second.stats.sent == 0 and second.stats.requests == 0 and second.stats.from_cache == 33
    assert again.by_reason == report.by_reason and again.accepted == report.accepted


@pytest.mark.slow
def test_a_night_with_moderation_on_quarantines_flagged_examples_before_training(
    stack: Stack,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lines = [orjson.dumps(e) for e in make_examples(200, seed=5)] + _flagged_lines()
    stack.store.put_bytes("incoming/2026-11-01/a.jsonl", b"\n".join(lines) + b"\n")
    monkeypatch.setenv("RETRAIN_VALIDATION__MODERATION", "true")
    get_settings.cache_clear()
    state = run("2026-11-01")
    assert state.is_completed(), state.message
    (manifest,) = [stack.store.get_json(info.key) for info in stack.store.list(BATCH_PREFIX)]
    assert manifest["by_reason"]["moderation_flagged"] == len(FLAGGED)
    assert manifest["accepted"] + manifest["quarantined"] == manifest["lines_read"] == 203
    assert manifest["moderation"]["flagged"] == len(FLAGGED) and manifest["moderation"]["requests"] >= 7
