"""All configuration, in one settings class.

Values come from ``RETRAIN_*`` environment variables and a ``.env`` file in the working
directory; nested groups use ``__`` (``RETRAIN_S3__BUCKET=my-bucket``). The defaults run
the embedded local stack: a local S3 server and the local OpenAI-compatible server on
127.0.0.1, with no credentials and no internet.
"""

from __future__ import annotations

import os
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Literal

from dotenv import dotenv_values
from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from retrain.config.setting_names import unknown_settings
from retrain.exceptions import ConfigError

__all__ = [
    "DatasetSettings",
    "EvaluationSettings",
    "IngestSettings",
    "LocalStackSettings",
    "OrchestrationSettings",
    "ProviderSettings",
    "S3Settings",
    "Settings",
    "TrainingSettings",
    "ValidationSettings",
    "get_settings",
    "load_settings",
]

LOCAL_S3_PORT = 9555
LOCAL_OPENAI_PORT = 8765
LOCAL_API_KEY = "sk-local-not-a-secret"


class S3Settings(BaseModel):
    """Where incoming examples land and where retrain keeps its state."""

    endpoint_url: str | None = Field(
        default=f"http://127.0.0.1:{LOCAL_S3_PORT}",
        description="S3 endpoint; empty for AWS itself. The default is the local object store.",
    )
    bucket: str = Field(
        default="retrain", min_length=3, max_length=63, description="The bucket retrain reads and writes."
    )
    prefix: str = Field(default="", description="Optional key prefix under which every folder lives.")
    region: str = Field(default="us-east-1", description="AWS region of the bucket.")
    access_key_id: SecretStr | None = Field(
        default=SecretStr("local"), description="Empty on AWS to use the default credential chain."
    )
    secret_access_key: SecretStr | None = Field(
        default=SecretStr("local"), description="Pairs with access_key_id."
    )

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint_is_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"must start with http:// or https:// (got {value!r})")
        return value.rstrip("/")

    @field_validator("prefix")
    @classmethod
    def _prefix_is_folder(cls, value: str) -> str:
        value = value.strip("/")
        return f"{value}/" if value else ""


class ProviderSettings(BaseModel):
    """The OpenAI-compatible API that trains and serves models."""

    kind: Literal["openai", "azure", "compatible"] = Field(
        default="compatible",
        description="openai, azure, or compatible (any base_url, the local server included).",
    )
    name: str = Field(default="local", description="Recorded in the registry beside each model.")
    base_url: str | None = Field(
        default=f"http://127.0.0.1:{LOCAL_OPENAI_PORT}/v1", description="API root for kind compatible."
    )
    api_key: SecretStr = Field(default=SecretStr(LOCAL_API_KEY), description="Never logged.")
    api_key_secret_block: str | None = Field(
        default=None,
        description="Name of a Prefect Secret block holding the API key; when set, flows and `retrain "
        "jobs`, `eval` and `chat` read the key from it instead of api_key.",
    )
    azure_endpoint: str | None = Field(
        default=None, description="https://NAME.openai.azure.com for kind azure."
    )
    azure_api_version: str = Field(default="2025-04-01-preview", description="api-version for kind azure.")
    max_retries: int = Field(default=4, ge=0, le=20, description="SDK retries on 429/5xx/timeouts.")
    timeout_seconds: float = Field(default=60.0, gt=0, description="Per-request timeout.")

    @model_validator(mode="after")
    def _complete_for_kind(self) -> ProviderSettings:
        if self.kind == "azure" and not self.azure_endpoint:
            raise ValueError("kind 'azure' needs azure_endpoint (RETRAIN_PROVIDER__AZURE_ENDPOINT)")
        if self.kind == "compatible" and not self.base_url:
            raise ValueError("kind 'compatible' needs base_url (RETRAIN_PROVIDER__BASE_URL)")
        placeholder = self.api_key.get_secret_value() in ("", LOCAL_API_KEY)
        if self.kind in ("openai", "azure") and placeholder and not self.api_key_secret_block:
            raise ValueError(
                f"kind {self.kind!r} needs a real API key in RETRAIN_PROVIDER__API_KEY or a Prefect "
                "Secret block named in RETRAIN_PROVIDER__API_KEY_SECRET_BLOCK "
                "(the local placeholder key only works with the local server)"
            )
        return self


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
        description="Refuse new jobs once this month's spend (state/budget/YYYY-MM.json) would pass "
        "this; empty: no limit.",
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
    alpha: float = Field(default=0.05, gt=0, lt=1, description="One-sided significance level of the gate.")
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


class LocalStackSettings(BaseModel):
    """The embedded local stack (`retrain local up`)."""

    data_dir: Path = Field(
        default=Path(".retrain"), description="State, logs and pid files of the local stack."
    )
    host: str = Field(default="127.0.0.1", description="Address the local servers listen on.")
    s3_port: int = Field(default=LOCAL_S3_PORT, ge=1, le=65535, description="Local S3 server port.")
    openai_port: int = Field(
        default=LOCAL_OPENAI_PORT, ge=1, le=65535, description="Local OpenAI server port."
    )
    prefect_port: int = Field(default=4200, ge=1, le=65535, description="Local Prefect server port.")
    openai_step_delay: float = Field(
        default=0.01, ge=0, description="Seconds per training step of the local OpenAI server's jobs."
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


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RETRAIN_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
    )

    s3: S3Settings = S3Settings()
    provider: ProviderSettings = ProviderSettings()
    providers: dict[str, ProviderSettings] = Field(
        default_factory=dict,
        description="More named providers, for models served elsewhere than `provider` "
        "(RETRAIN_PROVIDERS__<NAME>__KIND, __BASE_URL, ...; the name is the key unless __NAME is "
        "set); the registry names each model's provider.",
    )
    validation: ValidationSettings = ValidationSettings()
    ingest: IngestSettings = IngestSettings()
    dataset: DatasetSettings = DatasetSettings()
    training: TrainingSettings = TrainingSettings()
    evaluation: EvaluationSettings = EvaluationSettings()
    local: LocalStackSettings = LocalStackSettings()
    orchestration: OrchestrationSettings = OrchestrationSettings()

    @model_validator(mode="after")
    def _providers_named_by_their_key(self) -> Settings:
        for key, provider in self.providers.items():
            if "name" not in provider.model_fields_set:
                self.providers[key] = provider.model_copy(update={"name": key})
        return self


def _describe(exc: ValidationError) -> str:
    problems = []
    for err in exc.errors():
        where = "RETRAIN_" + "__".join(str(part).upper() for part in err["loc"] if part != "__root__")
        message = err["msg"].removeprefix("Value error, ")
        problems.append(f"{where}: {message}")
    return "invalid settings: " + "; ".join(problems)


def _misnamed_settings() -> list[str]:
    problems = unknown_settings(os.environ, Settings, "the environment")
    env_file = Path(str(Settings.model_config.get("env_file")))
    if env_file.is_file():
        problems += unknown_settings(dotenv_values(env_file), Settings, str(env_file))
    return problems


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment and `.env`; raise ConfigError with one readable line.

    A ``RETRAIN_<GROUP>__...`` name that is not a setting is an error too (``setting_names``).
    """
    if problems := _misnamed_settings():
        raise ConfigError("; ".join(problems) + " (`retrain config-reference` lists every setting)")
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from exc


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()
