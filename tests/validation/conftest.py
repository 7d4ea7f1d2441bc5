"""Shared helpers for the validation tests: example builders and settings pointing at the real suites."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from retrain.config.stage_settings import ValidationSettings

ROOT = Path(__file__).resolve().parents[2]
CHAT_SUITE = ROOT / "expectations" / "chat_batch.json"
PREFERENCE_SUITE = ROOT / "expectations" / "preference_batch.json"
MODEL = "gpt-4o-mini-2024-07-18"


def chat(user: str, reply: str, *, system: str | None = "You answer briefly.") -> dict[str, Any]:
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    return {
        "messages": [*messages, {"role": "user", "content": user}, {"role": "assistant", "content": reply}]
    }


def jsonl(*records: Any) -> bytes:
    return b"".join(orjson.dumps(record) + b"\n" for record in records)


def clean_examples(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [
        chat(f"What is item number {i}?", f"Item {i} is a distinct thing, number {i * 7}.")
        for i in range(start, start + n)
    ]


@pytest.fixture
def settings() -> ValidationSettings:
    return ValidationSettings(suite_path=CHAT_SUITE, preference_suite_path=PREFERENCE_SUITE, chunk_rows=25)
