"""Named evaluation sets kept in object storage under ``eval/{name}/items.jsonl``.

Each line is a chat example whose final assistant message is the reference answer; the
messages before it are the prompt. Optional fields: ``id``, ``grader`` (a registered grader
name, default ``exact_match``) and ``grader_options``. A set's version is the sha256 of its
content, so a changed set never shares a version (or cached answers) with the old one.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from retrain.evaluate.graders import DEFAULT_GRADER, is_registered
from retrain.exceptions import EvaluationError, ObjectNotFound
from retrain.storage.layout import eval_set_key
from retrain.storage.object_store import ObjectStore

__all__ = [
    "EvalItem",
    "EvalSet",
    "load_eval_set",
    "parse_eval_set",
    "prompt_hash",
    "put_eval_set",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalItem:
    id: str
    prompt_messages: list[dict[str, Any]]
    reference: str
    grader: str = DEFAULT_GRADER
    grader_options: dict[str, Any] = field(default_factory=dict)
    item_hash: str = ""


@dataclass(frozen=True)
class EvalSet:
    name: str
    version: str
    items: list[EvalItem]


def prompt_hash(messages: list[dict[str, Any]]) -> str:
    """sha256 of exactly what a model is asked: the key of its cached answer."""
    return hashlib.sha256(orjson.dumps(messages, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _parse_item(record: Any, line_no: int, where: str) -> EvalItem:
    def bad(problem: str) -> EvaluationError:
        return EvaluationError(f"{where} line {line_no}: {problem}; fix the eval set and upload it again")

    if not isinstance(record, dict):
        raise bad("expected a JSON object")
    messages = record.get("messages")
    if not isinstance(messages, list) or len(messages) < 2:
        raise bad("'messages' must list the prompt and a final assistant reference")
    if not all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages):
        raise bad("every message needs a 'role'")
    *prompt, last = messages
    if last["role"] != "assistant" or not isinstance(last.get("content"), str):
        raise bad("the final message must be an assistant message with text content (the reference)")
    grader = record.get("grader") or DEFAULT_GRADER
    if not isinstance(grader, str) or not is_registered(grader):
        raise bad(f"unknown grader {grader!r}")
    options = record.get("grader_options") or {}
    if not isinstance(options, dict):
        raise bad("'grader_options' must be an object")
    digest = prompt_hash(prompt)
    item_id = record.get("id")
    return EvalItem(
        id=str(item_id) if item_id is not None else digest[:16],
        prompt_messages=prompt,
        reference=last["content"],
        grader=grader,
        grader_options=options,
        item_hash=digest,
    )


def parse_eval_set(name: str, content: bytes, *, where: str | None = None) -> EvalSet:
    """Parse JSONL content into an EvalSet; EvaluationError names the line that is wrong."""
    where = where or eval_set_key(name)
    items = []
    for line_no, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise EvaluationError(f"{where} line {line_no}: not valid JSON ({exc})") from exc
        items.append(_parse_item(record, line_no, where))
    if not items:
        raise EvaluationError(f"{where} holds no items: upload at least one with put_eval_set")
    ids = [item.id for item in items]
    if len(set(ids)) != len(ids):
        duplicate = next(i for i in ids if ids.count(i) > 1)
        raise EvaluationError(f"{where}: item id {duplicate!r} appears twice; ids must be unique")
    return EvalSet(name=name, version=hashlib.sha256(content).hexdigest(), items=items)


def load_eval_set(store: ObjectStore, name: str) -> EvalSet:
    """Read and validate the named eval set from the store."""
    key = eval_set_key(name)
    try:
        content = store.get_bytes(key)
    except ObjectNotFound as exc:
        raise EvaluationError(
            f"eval set {name!r} not found at {store.uri(key)}: upload it there (JSONL, one chat "
            "example per line, its last assistant message the reference) or fix the name "
            "(RETRAIN_EVALUATION__EVAL_SET, RETRAIN_EVALUATION__GUARDRAILS, `retrain eval --set`)"
        ) from exc
    eval_set = parse_eval_set(name, content, where=store.uri(key))
    logger.debug("loaded eval set %s: %d items, version %s", name, len(eval_set.items), eval_set.version[:12])
    return eval_set


def put_eval_set(store: ObjectStore, name: str, items: Iterable[Mapping[str, Any]]) -> EvalSet:
    """Write chat examples as the named eval set (validated first) and return it as loaded."""
    content = b"".join(orjson.dumps(dict(item)) + b"\n" for item in items)
    eval_set = parse_eval_set(name, content)
    store.put_bytes(eval_set_key(name), content)
    return eval_set
