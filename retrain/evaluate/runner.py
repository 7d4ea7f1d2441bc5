"""Ask several models the same eval items, grade the answers, keep everything in S3.

Every target is asked every item at once, within the limits of one ``Asker`` shared by all
models (and by the judge of ``model_graded`` items). Per-item results go to
``evals/{run_id}/{label}.jsonl`` and the summary to ``evals/{run_id}/summary.json``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar

from retrain.config.stage_settings import EvaluationSettings
from retrain.evaluate.asker import Asker, ModelAnswer
from retrain.evaluate.eval_sets import EvalItem, EvalSet, prompt_hash
from retrain.evaluate.graders import MODEL_GRADED, Grade, RubricJudge, grade_output
from retrain.evaluate.request_params import request_params
from retrain.evaluate.results import EvalReport, ItemResult, ModelScores
from retrain.evaluate.targets import ModelTarget
from retrain.exceptions import EvaluationError, ProviderUnavailable, TooManyItemErrors
from retrain.storage.layout import eval_results_key, eval_summary_key
from retrain.storage.object_store import ObjectStore

__all__ = ["run_evaluation"]

logger = logging.getLogger(__name__)


Progress = Callable[[int, int], None]
T = TypeVar("T")


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
        self.asker = Asker(store, settings)
        self.targets = targets
        self.eval_set = eval_set
        self.judge_target = judge
        self.judge = RubricJudge(self._ask_judge) if judge else None
        self.progress = progress
        self.done = 0
        self.total = len(targets) * len(eval_set.items)
        self.usage: dict[str, dict[str, int]] = {}

    async def _ask_judge(self, messages: list[dict[str, Any]]) -> str:
        assert self.judge_target is not None
        answer = await self.asker.ask(self.judge_target, messages, prompt_hash(messages))
        if not answer.cached:
            self._count(self.judge_target.model_id, answer.usage)
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

    def _count(self, model_id: str, usage: dict[str, Any] | None) -> None:
        """Add an answer the provider sent (not one from the cache) to the tokens sent."""
        sent = self.usage.setdefault(model_id, {"prompt_tokens": 0, "completion_tokens": 0, "requests": 0})
        sent["requests"] += 1
        for name in ("prompt_tokens", "completion_tokens"):
            sent[name] += int((usage or {}).get(name) or 0)

    async def _sample(
        self, target: ModelTarget, item: EvalItem, sample: int
    ) -> tuple[ModelAnswer, Grade, str | None]:
        """One answer to the item, graded, and the error that left it without a grade (if any)."""
        answer = await self.asker.ask(target, item.prompt_messages, item.item_hash, sample)
        if not answer.cached and answer.output is not None:
            self._count(target.model_id, answer.usage)
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
        return answer, grade, error

    async def _one(self, target: ModelTarget, item: EvalItem) -> ItemResult:
        """The item's result: with several samples per item, its score is their mean score."""
        samples = self.asker.samples_per_item
        done = await asyncio.gather(*(self._sample(target, item, sample) for sample in range(samples)))
        answer, grade, error = done[0]
        if samples > 1:
            score = sum(g.score for _, g, _ in done) / samples
            passes = sum(g.passed for _, g, _ in done)
            grade = Grade(
                score=score,
                passed=score >= 0.5,
                explanation=f"{passes} of {samples} sampled answers passed; the first: {grade.explanation}",
            )
            error = next((e for _, _, e in done if e), None)
        self.done += 1
        if self.progress:
            self.progress(self.done, self.total)
        return ItemResult(
            item_id=item.id,
            output=answer.output,
            grade=grade,
            latency_s=sum(a.latency_s for a, _, _ in done),
            usage=_summed([a.usage for a, _, _ in done]),
            error=error,
            cached=all(a.cached for a, _, _ in done),
            grader=item.grader,
        )


def _summed(usages: Sequence[dict[str, Any] | None]) -> dict[str, Any] | None:
    """The tokens of an item's answers together (one answer: its own usage)."""
    if len(usages) == 1 or not any(usages):
        return usages[0]
    names = ("prompt_tokens", "completion_tokens", "total_tokens")
    return {name: sum(int((u or {}).get(name) or 0) for u in usages) for name in names}


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
    on_report: Callable[[EvalReport], object] = lambda report: None,
) -> EvalReport:
    """Ask every target every item, grade, store results and summary, and return the report.

    Raises TooManyItemErrors if more than ``settings.max_error_rate`` of a model's items failed
    (after its results are stored and ``on_report`` has seen the report, so what was asked is
    counted), so a retry re-runs with the cache filled.
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
        usage=evaluation.usage,
    )
    for label, label_results in results.items():
        store.put_jsonl(eval_results_key(run_id, label), (r.to_record() for r in label_results))
    summary = report.summary() | {
        "params": {t.label: request_params(settings, t.model_id) for t in targets},
        "elapsed_s": round(time.perf_counter() - started, 3),
        "finished_at": datetime.now(UTC).isoformat(),
    }
    store.put_json(eval_summary_key(run_id), summary)
    on_report(report)
    logger.debug(
        "eval run %s on %s: %s",
        run_id,
        eval_set.name,
        ", ".join(f"{s.label}={s.mean:.3f}" for s in report.models.values()),
    )
    _check_errors(report, settings)
    return report
