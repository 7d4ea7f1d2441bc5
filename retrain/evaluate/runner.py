"""Ask several models the same eval items, grade the answers, keep everything in S3.

Models answer through chat completions of any OpenAI-compatible provider (never a hosted
evals API): temperature 0 (reasoning models: their default), a fixed seed, bounded concurrency
shared by all models, a client-side rate limiter, the SDK's retries on 429/5xx (they honour
``Retry-After``) and a per-item timeout. Every answer is cached under
``state/eval-cache/{model}/{params hash}/{item hash}.json`` as soon as it arrives, so a run
that crashed asks again only for what is missing; S3 failing to write or read one cached
answer costs that answer a re-ask, not the run. Per-item results go to
``evals/{run_id}/{label}.jsonl`` and the summary to ``evals/{run_id}/summary.json``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections import defaultdict
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

import openai
import orjson

from retrain.config.settings import EvaluationSettings, ProviderSettings, Settings
from retrain.evaluate.eval_sets import EvalItem, EvalSet, prompt_hash
from retrain.evaluate.graders import MODEL_GRADED, Grade, RubricJudge, grade_output
from retrain.evaluate.rate_limit import RateLimiter
from retrain.exceptions import (
    EvaluationError,
    ProviderError,
    ProviderUnavailable,
    StorageUnavailable,
    TooManyItemErrors,
)
from retrain.providers.clients import api_key_source, make_async_client, provider_named
from retrain.registry.aliases import CANDIDATE, PRODUCTION
from retrain.registry.registry import Registry
from retrain.storage.object_store import ObjectStore
from retrain.validate.tokens import base_model_id

__all__ = [
    "EvalReport",
    "ItemResult",
    "ModelScores",
    "ModelTarget",
    "cache_prefix",
    "is_reasoning_model",
    "request_params",
    "resolve_target",
    "run_evaluation",
    "token_limit_field",
]

logger = logging.getLogger(__name__)

ALL = "all"
_S3_THREADS = 8  # below botocore's default pool of 10 connections

Progress = Callable[[int, int], None]
T = TypeVar("T")


@dataclass(frozen=True)
class ModelTarget:
    label: str
    model_id: str
    provider: ProviderSettings


@dataclass
class ItemResult:
    item_id: str
    output: str | None
    grade: Grade
    latency_s: float
    usage: dict[str, Any] | None
    error: str | None
    cached: bool
    grader: str = "exact_match"

    def to_record(self) -> dict[str, Any]:
        record = asdict(self)
        record.update(record.pop("grade"))
        return record


@dataclass
class ModelScores:
    label: str
    model_id: str
    scores: list[float]
    passed: list[bool]
    mean: float
    eval_set: str = ""
    item_ids: list[str] = field(default_factory=list)
    by_grader: dict[str, float] = field(default_factory=dict)
    errors: int = 0

    @property
    def pass_rate(self) -> float:
        return sum(self.passed) / len(self.passed) if self.passed else 0.0

    @classmethod
    def from_results(
        cls, label: str, model_id: str, eval_set: str, results: Sequence[ItemResult]
    ) -> ModelScores:
        scores = [r.grade.score for r in results]
        per_grader: dict[str, list[float]] = defaultdict(list)
        for r in results:
            per_grader[r.grader].append(r.grade.score)
        return cls(
            label=label,
            model_id=model_id,
            scores=scores,
            passed=[r.grade.passed for r in results],
            mean=sum(scores) / len(scores) if scores else 0.0,
            eval_set=eval_set,
            item_ids=[r.item_id for r in results],
            by_grader={name: sum(v) / len(v) for name, v in sorted(per_grader.items())},
            errors=sum(r.error is not None for r in results),
        )


@dataclass
class EvalReport:
    run_id: str
    eval_set: str
    eval_version: str
    models: dict[str, ModelScores]
    results: dict[str, list[ItemResult]]

    def comparison(self, candidate: str = CANDIDATE, production: str = PRODUCTION) -> list[dict[str, Any]]:
        """Rows (set, grader, items, candidate, production, delta): one per grader, then all items."""
        cand, prod = self.models[candidate], self.models[production]
        counts: dict[str, int] = defaultdict(int)
        for r in self.results[candidate]:
            counts[r.grader] += 1
        rows = [
            (grader, counts[grader], cand.by_grader[grader], prod.by_grader.get(grader, 0.0))
            for grader in cand.by_grader
        ]
        rows.append((ALL, len(cand.scores), cand.mean, prod.mean))
        return [
            {
                "set": self.eval_set,
                "grader": grader,
                "items": n,
                candidate: round(c, 4),
                production: round(p, 4),
                "delta": round(c - p, 4),
            }
            for grader, n, c, p in rows
        ]

    def summary(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "eval_set": self.eval_set,
            "eval_version": self.eval_version,
            "models": {
                label: {
                    "model_id": s.model_id,
                    "items": len(s.scores),
                    "mean": s.mean,
                    "pass_rate": s.pass_rate,
                    "by_grader": s.by_grader,
                    "errors": s.errors,
                    "cached": sum(r.cached for r in self.results[label]),
                }
                for label, s in self.models.items()
            },
        }


def resolve_target(store: ObjectStore, name: str, label: str, settings: Settings) -> ModelTarget:
    """A registry alias becomes the model it points to (on its provider); any other name is a model id."""
    record = Registry(store).get(name)
    if record is None:
        return ModelTarget(label=label, model_id=name, provider=settings.provider)
    logger.info("alias %s resolves to %s (provider %s)", name, record.model_id, record.provider)
    return ModelTarget(
        label=label, model_id=record.model_id, provider=provider_named(settings, record.provider)
    )


_O_SERIES_OR_GPT5 = re.compile(r"^(?:o\d|gpt-5)(?:[-.:]|$)")


def is_reasoning_model(model_id: str) -> bool:
    """Whether ``model_id`` (or the base of a fine-tune of it) is an OpenAI reasoning model.

    o1, o3, o4 and gpt-5 (but not gpt-5-chat): they reject ``max_tokens`` and any temperature
    but the default.
    """
    base = base_model_id(model_id.lower())
    return bool(_O_SERIES_OR_GPT5.match(base)) and "-chat" not in base


def token_limit_field(model_id: str, settings: EvaluationSettings) -> str:
    """``max_completion_tokens`` for OpenAI's o-series and gpt-5 models (the reasoning ones
    reject ``max_tokens``), else ``max_tokens``, which every OpenAI-compatible server knows.

    ``RETRAIN_EVALUATION__TOKEN_LIMIT_PARAMETER`` overrides the guess from the model id (an
    Azure deployment name, for one, does not tell the model family).
    """
    if settings.token_limit_parameter != "auto":
        return settings.token_limit_parameter
    newer = _O_SERIES_OR_GPT5.match(base_model_id(model_id.lower()))
    return "max_completion_tokens" if newer else "max_tokens"


def request_params(settings: EvaluationSettings, model_id: str = "") -> dict[str, Any]:
    """The sampling parameters every eval request of ``model_id`` uses (part of the cache key).

    Temperature 0, unless the model is a reasoning model (which accepts only the default) or
    ``RETRAIN_EVALUATION__TEMPERATURE_PARAMETER`` says otherwise.
    """
    send = settings.temperature_parameter
    params: dict[str, Any] = {}
    if send == "send" or (send == "auto" and not is_reasoning_model(model_id)):
        params["temperature"] = 0
    return params | {"seed": settings.seed, token_limit_field(model_id, settings): settings.max_tokens}


def _params_hash(settings: EvaluationSettings, model_id: str) -> str:
    params = orjson.dumps(request_params(settings, model_id), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(params).hexdigest()[:16]


def cache_prefix(model_id: str, settings: EvaluationSettings) -> str:
    """Where the cached answers of one model under the current request parameters live."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", model_id).strip("-")[:80]
    digest = hashlib.sha256(model_id.encode()).hexdigest()[:8]
    return f"state/eval-cache/{slug}-{digest}/{_params_hash(settings, model_id)}/"


@dataclass
class _Answer:
    output: str | None
    usage: dict[str, Any] | None
    latency_s: float
    error: str | None
    cached: bool


def _estimate_tokens(messages: Sequence[dict[str, Any]], max_tokens: int) -> int:
    return sum(len(str(m.get("content", ""))) for m in messages) // 4 + max_tokens


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    status = getattr(exc, "status_code", None)
    return f"{type(exc).__name__}" + (f" (HTTP {status})" if status else "")


class _Asker:
    """Sends chat completions: cache first, then the semaphore, rate limiter and timeout."""

    def __init__(self, store: ObjectStore, settings: EvaluationSettings) -> None:
        self._store = store
        self._settings = settings
        self._semaphore = asyncio.Semaphore(settings.concurrency)
        self._limiter = RateLimiter(settings.requests_per_minute, settings.tokens_per_minute)
        self._clients: dict[str, openai.AsyncOpenAI] = {}
        self._cached: dict[str, set[str]] = {}
        self._s3 = ThreadPoolExecutor(max_workers=_S3_THREADS, thread_name_prefix="eval-s3")

    async def _io(self, call: Callable[..., T], *args: Any) -> T:
        """Blocking S3 calls on the asker's own threads (the default executor has cpu + 4)."""
        return await asyncio.get_running_loop().run_in_executor(self._s3, partial(call, *args))

    async def open(self, target: ModelTarget) -> None:
        self._clients[target.label] = make_async_client(
            target.provider, max_retries=self._settings.max_retries
        )
        prefix = cache_prefix(target.model_id, self._settings)
        infos = await self._io(lambda: list(self._store.list(prefix)))
        self._cached[target.label] = {info.key for info in infos}

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._s3.shutdown(wait=True)

    async def ask(self, target: ModelTarget, messages: list[dict[str, Any]], item_hash: str) -> _Answer:
        key = f"{cache_prefix(target.model_id, self._settings)}{item_hash}.json"
        async with self._semaphore:
            if key in self._cached[target.label]:
                try:
                    record = await self._io(self._store.get_json, key)
                except StorageUnavailable as exc:
                    logger.warning(
                        "%s: cached answer to item %s unreadable, asking again: %s",
                        target.label,
                        item_hash[:12],
                        exc,
                    )
                else:
                    return _Answer(
                        record["output"], record.get("usage"), record.get("latency_s", 0.0), None, True
                    )
            await self._limiter.acquire(_estimate_tokens(messages, self._settings.max_tokens))
            params = request_params(self._settings, target.model_id)
            started = time.perf_counter()
            try:
                response = await asyncio.wait_for(
                    self._clients[target.label].chat.completions.create(
                        model=target.model_id,
                        messages=messages,  # type: ignore[arg-type]
                        **params,
                    ),
                    timeout=self._settings.item_timeout_seconds,
                )
            except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
                raise ProviderError(
                    f"provider {target.provider.name!r} refused the API key ({_describe(exc)}): "
                    f"check {api_key_source(target.provider)}"
                ) from exc
            except openai.NotFoundError as exc:
                raise EvaluationError(
                    f"model {target.model_id!r} ({target.label}) is not served by provider "
                    f"{target.provider.name!r}: check the model id or alias"
                ) from exc
            except (openai.APIError, TimeoutError) as exc:
                latency = time.perf_counter() - started
                logger.warning("%s: item %s failed: %s", target.label, item_hash[:12], _describe(exc))
                return _Answer(None, None, latency, _describe(exc), False)
        latency = time.perf_counter() - started
        output = response.choices[0].message.content if response.choices else None
        usage = response.usage.model_dump() if response.usage else None
        record = {"model": target.model_id, "params": params, "output": output or "", "usage": usage}
        record["latency_s"] = latency
        try:
            await self._io(self._store.put_json, key, record)
        except StorageUnavailable as exc:  # the answer stands; only a re-run would ask again
            logger.warning("%s: answer to item %s not cached: %s", target.label, item_hash[:12], exc)
        else:
            self._cached[target.label].add(key)
        return _Answer(output or "", usage, latency, None, False)


class _Evaluation:
    def __init__(
        self,
        store: ObjectStore,
        targets: Sequence[ModelTarget],
        eval_set: EvalSet,
        settings: EvaluationSettings,
        judge: ModelTarget | None,
        progress: Progress | None,
    ) -> None:
        self.asker = _Asker(store, settings)
        self.targets = targets
        self.eval_set = eval_set
        self.judge_target = judge
        self.judge = RubricJudge(self._ask_judge) if judge else None
        self.progress = progress
        self.done = 0
        self.total = len(targets) * len(eval_set.items)

    async def _ask_judge(self, messages: list[dict[str, Any]]) -> str:
        assert self.judge_target is not None
        answer = await self.asker.ask(self.judge_target, messages, prompt_hash(messages))
        if answer.output is None:
            raise ProviderUnavailable(f"judge {self.judge_target.model_id!r} did not answer ({answer.error})")
        return answer.output

    async def run(self) -> dict[str, list[ItemResult]]:
        try:
            for target in [*self.targets, *([self.judge_target] if self.judge_target else [])]:
                await self.asker.open(target)
            tasks = {
                target.label: [asyncio.create_task(self._one(target, item)) for item in self.eval_set.items]
                for target in self.targets
            }
            everything = [task for label_tasks in tasks.values() for task in label_tasks]
            try:
                await asyncio.gather(*everything)
            except BaseException:
                for task in everything:
                    task.cancel()
                await asyncio.gather(*everything, return_exceptions=True)
                raise
        finally:
            await self.asker.close()
        return {label: [task.result() for task in label_tasks] for label, label_tasks in tasks.items()}

    async def _one(self, target: ModelTarget, item: EvalItem) -> ItemResult:
        answer = await self.asker.ask(target, item.prompt_messages, item.item_hash)
        error = answer.error
        if answer.output is None:
            grade = Grade(score=0.0, passed=False, explanation=f"no answer: {error}")
        elif item.grader == MODEL_GRADED:
            assert self.judge is not None
            try:
                grade = await self.judge.grade(
                    answer.output, item.prompt_messages, item.reference, item.grader_options
                )
            except ProviderUnavailable as exc:
                grade, error = Grade(score=0.0, passed=False, explanation=str(exc)), str(exc)
        else:
            grade = grade_output(item.grader, answer.output, item.reference, item.grader_options)
        self.done += 1
        if self.progress:
            self.progress(self.done, self.total)
        return ItemResult(
            item_id=item.id,
            output=answer.output,
            grade=grade,
            latency_s=answer.latency_s,
            usage=answer.usage,
            error=error,
            cached=answer.cached,
            grader=item.grader,
        )


def _run_sync(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """asyncio.run, also from code that already runs inside an event loop (it then uses a thread)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


def _judge_for(
    targets: Sequence[ModelTarget], eval_set: EvalSet, settings: EvaluationSettings, judge: ModelTarget | None
) -> ModelTarget | None:
    if not any(item.grader == MODEL_GRADED for item in eval_set.items):
        return None
    if judge is not None:
        return judge
    if settings.judge_model:
        return ModelTarget(label="judge", model_id=settings.judge_model, provider=targets[0].provider)
    raise EvaluationError(
        f"eval set {eval_set.name!r} uses the model_graded grader: set RETRAIN_EVALUATION__JUDGE_MODEL"
    )


def _check_errors(report: EvalReport, settings: EvaluationSettings) -> None:
    for label, scores in report.models.items():
        if scores.errors > settings.max_error_rate * len(scores.scores):
            first = next(r.error for r in report.results[label] if r.error)
            raise TooManyItemErrors(
                f"{scores.errors} of {len(scores.scores)} answers of {label} ({scores.model_id}) failed "
                f"(first: {first}); run again: answers already received are cached"
            )


def run_evaluation(
    store: ObjectStore,
    targets: Sequence[ModelTarget],
    eval_set: EvalSet,
    settings: EvaluationSettings,
    *,
    run_id: str,
    progress: Progress | None = None,
    judge: ModelTarget | None = None,
) -> EvalReport:
    """Ask every target every item, grade, store results and summary, and return the report.

    Raises TooManyItemErrors if more than ``settings.max_error_rate`` of a model's items failed
    (after its results are stored), so a retry re-runs with the cache filled.
    """
    labels = [t.label for t in targets]
    if not targets or len(set(labels)) != len(labels):
        raise EvaluationError(f"targets need distinct labels (got {labels}): give each model its own label")
    evaluation = _Evaluation(
        store, targets, eval_set, settings, _judge_for(targets, eval_set, settings, judge), progress
    )
    started = time.perf_counter()
    results = _run_sync(evaluation.run)
    report = EvalReport(
        run_id=run_id,
        eval_set=eval_set.name,
        eval_version=eval_set.version,
        models={
            t.label: ModelScores.from_results(t.label, t.model_id, eval_set.name, results[t.label])
            for t in targets
        },
        results=results,
    )
    for label, label_results in results.items():
        store.put_jsonl(f"evals/{run_id}/{label}.jsonl", (r.to_record() for r in label_results))
    summary = report.summary() | {
        "params": {t.label: request_params(settings, t.model_id) for t in targets},
        "elapsed_s": round(time.perf_counter() - started, 3),
        "finished_at": datetime.now(UTC).isoformat(),
    }
    store.put_json(f"evals/{run_id}/summary.json", summary)
    logger.debug(
        "eval run %s on %s: %s",
        run_id,
        eval_set.name,
        ", ".join(f"{s.label}={s.mean:.3f}" for s in report.models.values()),
    )
    _check_errors(report, settings)
    return report
