from __future__ import annotations

import gzip
import json
import logging
import random
import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest

from retrain.config.stage_settings import TrainingSettings, ValidationSettings
from retrain.exceptions import ConfigError
from retrain.validate.batch import validate_batch
from retrain.validate.canonical import example_hash, normalise_prompt

from .conftest import CHAT_SUITE, MODEL, chat, clean_examples, jsonl

SECRETS = {
    "openai": "sk-proj-" + "A1b2C3d4" * 5,
    "aws": "AKIA" + "ABCDEFGHIJKLMNOP",
    "private key": "-----BEGIN RSA PRIVATE KEY-----\nMIIEow...\n-----END RSA PRIVATE KEY-----",
    "bearer": "Authorization: Bearer " + "eyJhbGciOiJIUzI1NiJ9" * 2,
    "github": "ghp_" + "a1B2c3D4e5" * 4,
}

SPECIAL_TOKENS = ["<|endoftext|>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|im_start|>"]


def _run(data: bytes, settings: ValidationSettings, **kwargs: Any) -> Any:
    return validate_batch(
        [("batch.jsonl", [data[i : i + 4096] for i in range(0, len(data), 4096)])],
        settings,
        base_model=MODEL,
        **kwargs,
    )


def _hostile_corpus() -> tuple[bytes, dict[int, str]]:
    """Forty clean examples followed by one line per hostile case; returns the expected code per line."""
    good = clean_examples(40)
    lines: list[bytes] = [orjson.dumps(e) for e in good]
    expected: dict[int, str] = {}

    def add(raw: bytes, code: str) -> None:
        lines.append(raw)
        expected[len(lines)] = code

    add(b"{not json", "not_json")
    add(b"[1, 2, 3]", "not_object")
    add(b'{"messages": "\xc3\x28"}', "invalid_utf8")
    add(orjson.dumps({**chat("a", "b"), "extra": 1}), "unknown_key")
    add(orjson.dumps({"messages": [{"role": "narrator", "content": "x"}]}), "bad_role")
    add(orjson.dumps(chat("", "b")), "empty_content")
    add(orjson.dumps({"messages": [{"role": "user", "content": "only a question"}]}), "no_assistant_turn")
    add(
        orjson.dumps(
            {
                "messages": [
                    {"role": "user", "content": "q"},
                    {"role": "assistant", "content": "a", "weight": 0},
                ]
            }
        ),
        "no_trainable_turn",
    )
    add(
        orjson.dumps(
            {
                "messages": [
                    {"role": "user", "content": "q"},
                    {"role": "tool", "tool_call_id": "x", "content": "r"},
                    {"role": "assistant", "content": "a"},
                ]
            }
        ),
        "orphan_tool_message",
    )
    for kind, secret in SECRETS.items():
        add(
            orjson.dumps(chat(f"my {kind} credential is {secret}", "Please do not share it.")),
            "contains_secret",
        )
    for token in SPECIAL_TOKENS:
        add(orjson.dumps(chat("Summarise this file.", f"Done.{token}Next file")), "special_token")
    add(orjson.dumps(good[0]), "duplicate")
    add(
        orjson.dumps(chat("WHAT is item number 1 ?", "item 1 is a distinct thing number 7")), "near_duplicate"
    )
    add(orjson.dumps(chat("What is the capital of France?", "Paris.")), "eval_leak")
    add(orjson.dumps(chat("Repeat: " + "word " * 70_000, "ok")), "too_many_tokens")
    add(
        orjson.dumps(
            {
                "messages": [
                    {"role": "user", "content": "q"},
                    {"role": "assistant", "content": "a"},
                    {"role": "user", "content": "dangling"},
                ]
            }
        ),
        "expectation:expect_column_values_to_be_in_set:last_role",
    )
    body = b"\xef\xbb\xbf" + b"\r\n".join(lines) + b"\r\n\r\n"
    return body, expected


def test_hostile_corpus_quarantines_each_case_with_its_code(settings: ValidationSettings) -> None:
    data, expected = _hostile_corpus()
    eval_prompts = {normalise_prompt([{"role": "user", "content": "what is the capital of  france?"}])}
    result = _run(data, settings.model_copy(update={"max_quarantine_rate": 1.0}), eval_prompts=eval_prompts)
    got = {q.line_no: {r.code for r in q.reasons} for q in result.quarantined}
    assert set(got) == set(expected)
    for line_no, code in expected.items():
        assert code in got[line_no], (line_no, got[line_no])
    counts = result.per_source["batch.jsonl"]
    assert counts.lines_read == len(expected) + 40
    assert counts.accepted == 40 and len(result.accepted) == 40
    assert counts.accepted + counts.quarantined == counts.lines_read
    assert counts.blank_lines == 1
    assert result.by_reason["contains_secret"] == len(SECRETS)
    assert result.by_reason["special_token"] == len(SPECIAL_TOKENS)
    named = {q.reasons[0].message for q in result.quarantined if q.reasons[0].code == "special_token"}
    assert {token for token in SPECIAL_TOKENS if any(repr(token) in message for message in named)} == set(
        SPECIAL_TOKENS
    )
    assert result.passed


def test_secrets_never_appear_in_messages_or_the_summary(settings: ValidationSettings) -> None:
    data, _ = _hostile_corpus()
    result = _run(data, settings.model_copy(update={"max_quarantine_rate": 1.0}))
    text = json.dumps(result.summary()) + json.dumps(
        [r.message for q in result.quarantined for r in q.reasons]
    )
    for secret in SECRETS.values():
        assert secret.splitlines()[0][-20:] not in text
    leaked = [q for q in result.quarantined if any(r.code == "contains_secret" for r in q.reasons)]
    assert all("contains what looks like" in q.reasons[0].message for q in leaked)
    assert any(SECRETS["aws"] in q.raw for q in leaked)  # the raw line stays in the quarantine


def test_known_hashes_make_curated_examples_duplicates(settings: ValidationSettings) -> None:
    examples = clean_examples(20)
    result = _run(jsonl(*examples), settings, known_hashes={example_hash(examples[3])})
    assert [q.line_no for q in result.quarantined] == [4]
    assert result.quarantined[0].reasons[0].code == "duplicate"
    assert result.accepted[0].hash == example_hash(examples[0])


def test_counts_always_add_up_on_random_hostile_input(settings: ValidationSettings) -> None:
    rng = random.Random(20261125)
    pieces = [orjson.dumps(e) for e in clean_examples(30)] + [
        b"",
        b"   ",
        b"{",
        b"null",
        b"\xff\xfe",
        b'{"messages": []}',
    ]
    sources = []
    for index in range(6):
        lines = [rng.choice(pieces) for _ in range(rng.randrange(0, 60))]
        data = rng.choice([b"\n", b"\r\n"]).join(lines)
        if rng.random() < 0.3:
            data = gzip.compress(data)
        if rng.random() < 0.3:
            cut = rng.randrange(len(data) + 1)
            data = data[:cut] + bytes(rng.randrange(256) for _ in range(rng.randrange(20))) + data[cut:]
        sizes = rng.choice([1, 3, 64, 1 << 16])
        sources.append((f"s{index}", [data[i : i + sizes] for i in range(0, len(data), sizes)]))
    result = validate_batch(sources, settings, base_model=MODEL)
    for name, counts in result.per_source.items():
        assert counts.accepted + counts.quarantined == counts.lines_read, name
    assert result.lines_read == result.n_accepted + result.n_quarantined
    assert len(result.quarantined) == result.n_quarantined


def test_gates_fail_without_raising(settings: ValidationSettings) -> None:
    few = _run(jsonl(*clean_examples(3)), settings)
    assert not few.passed
    (failed,) = few.failed_gates()
    assert failed.name == "min_new_examples" and failed.observed == 3 and failed.threshold == 10

    dirty = _run(jsonl(*clean_examples(20)) + b"bad\n" * 10, settings)
    assert [g.name for g in dirty.failed_gates()] == ["max_quarantine_rate"]
    assert "10 of 30" in dirty.failed_gates()[0].message


def test_duplicates_do_not_count_towards_the_quarantine_rate_but_towards_the_duplicate_gate(
    settings: ValidationSettings,
) -> None:
    examples = clean_examples(20)
    result = _run(jsonl(*examples, *examples, *examples[:5]), settings)
    names = [g.name for g in result.failed_gates()]
    assert names == ["duplicate_rate"]  # meta.gate in the suite file
    gate = result.failed_gates()[0]
    assert gate.observed == pytest.approx(25 / 45)
    assert gate.threshold == 0.5
    assert gate.message == "duplicate_rate: observed 0.5556, at most 0.5"
    quarantine_gate = next(g for g in result.gates if g.name == "max_quarantine_rate")
    assert quarantine_gate.passed and quarantine_gate.observed == 0


def test_editing_a_threshold_in_the_suite_file_changes_the_outcome(
    tmp_path: Path, settings: ValidationSettings
) -> None:
    data = jsonl(
        *clean_examples(15), *[chat(f"q{i} without system", f"a{i}", system=None) for i in range(15)]
    )
    assert _run(data, settings).passed  # 50% have a system prompt; the suite asks for >= 0.5
    suite = json.loads(CHAT_SUITE.read_text())
    for expectation in suite["expectations"]:
        if expectation["kwargs"].get("column") == "has_system":
            expectation["kwargs"]["min_value"] = 0.9
    edited = tmp_path / "chat_batch.json"
    edited.write_text(json.dumps(suite))
    result = _run(data, settings.model_copy(update={"suite_path": edited}))
    (gate,) = result.failed_gates()
    assert gate.name == "system_prompt_share"
    assert gate.observed == 0.5 and gate.threshold == 0.9
    assert gate.detail == "observed 0.5, at least 0.9"


def test_a_batch_expectation_without_a_gate_name_is_named_by_its_type_and_column(
    tmp_path: Path, settings: ValidationSettings
) -> None:
    suite = json.loads(CHAT_SUITE.read_text())
    suite["expectations"].append(
        {
            "type": "expect_column_mean_to_be_between",
            "kwargs": {"column": "n_tokens", "min_value": 40, "max_value": 100},
            "meta": {"level": "batch"},
        }
    )
    edited = tmp_path / "suite.json"
    edited.write_text(json.dumps(suite))
    result = _run(jsonl(*clean_examples(20)), settings.model_copy(update={"suite_path": edited}))
    (gate,) = result.failed_gates()
    assert gate.name == "expectation:expect_column_mean_to_be_between:n_tokens"
    assert gate.detail.startswith("observed ") and gate.detail.endswith(", allowed [40, 100]")
    assert gate.observed < 40 and gate.threshold == 40


@pytest.mark.parametrize(("level", "column"), [("batch", "n_messages"), ("row", "n_mesages")])
def test_an_expectation_on_a_column_its_level_lacks_is_refused_at_start_up(
    tmp_path: Path, settings: ValidationSettings, level: str, column: str
) -> None:
    suite = json.loads(CHAT_SUITE.read_text())
    suite["expectations"].append(
        {
            "type": "expect_column_mean_to_be_between",
            "kwargs": {"column": column, "min_value": 1},
            "meta": {"level": level},
        }
    )
    edited = tmp_path / "suite.json"
    edited.write_text(json.dumps(suite))
    refused = f"reads column '{column}', which {level}-level expectations cannot"
    with pytest.raises(ConfigError, match=refused):
        _run(jsonl(*clean_examples(20)), settings.model_copy(update={"suite_path": edited}))


def test_row_expectations_from_the_file_quarantine_rows(tmp_path: Path, settings: ValidationSettings) -> None:
    suite = json.loads(CHAT_SUITE.read_text())
    suite["expectations"].append(
        {
            "type": "expect_column_values_to_be_between",
            "kwargs": {"column": "n_tokens", "max_value": 40},
            "meta": {"level": "row"},
        }
    )
    edited = tmp_path / "suite.json"
    edited.write_text(json.dumps(suite))
    data = jsonl(*clean_examples(20), chat("long " * 60, "reply"))
    result = _run(data, settings.model_copy(update={"suite_path": edited}))
    assert [q.line_no for q in result.quarantined] == [21]
    assert result.quarantined[0].reasons[0].code == "expectation:expect_column_values_to_be_between:n_tokens"


def test_token_stats_cost_and_streaming_options(settings: ValidationSettings) -> None:
    sink: list[Any] = []
    data = jsonl(*clean_examples(30)) + b"oops\n"
    result = _run(
        data,
        settings,
        training=TrainingSettings(n_epochs=2),
        keep_examples=False,
        quarantine_sink=sink.append,
    )
    assert result.accepted == [] and result.quarantined == [] and len(sink) == 1
    assert result.n_accepted == 30
    assert result.token_stats["count"] == 30
    assert result.cost["epochs"] == 2
    assert result.cost["billable_tokens"] == 2 * result.token_stats["total"]
    assert result.cost_estimate_usd == pytest.approx(result.cost["billable_tokens"] * 3.0 / 1e6, abs=1e-4)
    json.dumps(result.summary(), allow_nan=False)


def test_preference_batches_use_the_preference_suite(settings: ValidationSettings) -> None:
    records = [
        {
            "input": {
                "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": f"question {i}"}]
            },
            "preferred_output": [{"role": "assistant", "content": f"a good answer {i}"}],
            "non_preferred_output": [{"role": "assistant", "content": f"bad {i}"}],
        }
        for i in range(12)
    ]
    result = _run(jsonl(*records, chat("a", "b")), settings.model_copy(update={"format": "preference"}))
    assert result.n_accepted == 12
    assert {r.code for r in result.quarantined[0].reasons} >= {"unknown_key", "missing_field"}
    assert result.passed


def test_data_docs_are_built_only_where_asked(
    tmp_path: Path, settings: ValidationSettings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="great_expectations")
    result = _run(jsonl(*clean_examples(12)), settings, data_docs_dir=tmp_path / "docs")
    assert result.passed
    assert (tmp_path / "docs" / "index.html").is_file()
    # GX's default ephemeral context announces a docs site in a temporary folder it never uses
    assert not [r for r in caplog.records if "temporary directory" in r.getMessage()]
    shutil.rmtree(tmp_path / "docs")
