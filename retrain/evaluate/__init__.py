"""The evaluate stage: ask models the items of a named eval set and grade their answers.

Eval sets live in object storage under ``eval/{name}/items.jsonl``; each target (a model id
or a registry alias resolved to the model and provider it points to) is asked every item
through chat completions with fixed request parameters, at bounded concurrency and rate,
with every answer cached under ``state/eval-cache/`` so a re-run asks only for what is
missing. Answers are graded by deterministic graders or a rubric judge model, and per-item
results and the summary are stored under ``evals/{run_id}/``; the report compares the
candidate with production. ``ask`` and ``ask_model`` ask one question the way an
application does.
"""

from retrain.evaluate.answer_cache import AnswerCache, cache_prefix
from retrain.evaluate.asker import Asker, ModelAnswer
from retrain.evaluate.chat import Answer, ask, ask_model
from retrain.evaluate.eval_sets import (
    EvalItem,
    EvalSet,
    load_eval_set,
    parse_eval_set,
    prompt_hash,
    put_eval_set,
)
from retrain.evaluate.graders import (
    DEFAULT_GRADER,
    JUDGE_RUBRIC_PATH,
    MODEL_GRADED,
    Grade,
    GradeFn,
    RubricJudge,
    grade_output,
    is_registered,
    normalise,
    parse_verdict,
    register_grader,
    registered_graders,
    resolve_json_pointer,
)
from retrain.evaluate.rate_limit import RateLimiter
from retrain.evaluate.request_params import is_reasoning_model, params_hash, request_params, token_limit_field
from retrain.evaluate.results import ALL, EvalReport, ItemResult, ModelScores
from retrain.evaluate.runner import run_evaluation
from retrain.evaluate.targets import ModelTarget, resolve_target

__all__ = [
    "ALL",
    "Answer",
    "AnswerCache",
    "Asker",
    "DEFAULT_GRADER",
    "EvalItem",
    "EvalReport",
    "EvalSet",
    "Grade",
    "GradeFn",
    "ItemResult",
    "JUDGE_RUBRIC_PATH",
    "MODEL_GRADED",
    "ModelAnswer",
    "ModelScores",
    "ModelTarget",
    "RateLimiter",
    "RubricJudge",
    "ask",
    "ask_model",
    "cache_prefix",
    "grade_output",
    "is_reasoning_model",
    "is_registered",
    "load_eval_set",
    "normalise",
    "params_hash",
    "parse_eval_set",
    "parse_verdict",
    "prompt_hash",
    "put_eval_set",
    "register_grader",
    "registered_graders",
    "request_params",
    "resolve_json_pointer",
    "resolve_target",
    "run_evaluation",
    "token_limit_field",
]
