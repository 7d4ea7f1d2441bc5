"""Train: what to train tonight (the newest dataset version, unless it was decided already or adds
too little), and fine-tuning through OpenAI's API shape or Together AI's (``job_api``), paying once
per dataset version.
The training files are uploaded once per content, a job is resumed rather than started again, its
cost is checked against the limits and kept in a monthly ledger, and what a person reads about a
job in the Prefect UI is built here.
"""

from retrain.train.budget import (
    BudgetCheck,
    GpuRun,
    MonthSpend,
    budget_evaluations,
    check_budget,
    check_month_spend,
    count_evaluation,
    estimate_training_cost,
    month_evaluations,
    month_jobs,
    month_spend,
    record_evaluation_cost,
    record_gpu_run,
    record_job_cost,
    reserve_job_cost,
    spend_of,
)
from retrain.train.failures import (
    FailureKind,
    PermanentFailure,
    configuration_refusal,
    job_failure_kind,
    load_failure,
    permanent_failure,
    save_failure,
)
from retrain.train.job_api import JobApi, OpenAIJobApi, TrainingClient, job_api
from retrain.train.job_spec import JobSpec, config_hash, job_spec
from retrain.train.jobs import (
    ACTIVE_STATUSES,
    TrainingJob,
    best_checkpoint,
    cancel_job,
    cancel_jobs_of_run,
    ensure_job,
    job_records,
    wait_for_job,
)
from retrain.train.plan import TrainingHistory, TrainingPlan, plan_training, training_history
from retrain.train.reports import (
    loss_points,
    metrics_rows,
    metrics_table_markdown,
    training_job_markdown,
    training_progress,
)
from retrain.train.result import LossPoint, TrainingResult
from retrain.train.together_jobs import TOGETHER_STATUSES, TogetherJobApi
from retrain.train.uploads import delete_job_files, upload_training_file

__all__ = [
    "ACTIVE_STATUSES",
    "BudgetCheck",
    "FailureKind",
    "GpuRun",
    "JobApi",
    "JobSpec",
    "LossPoint",
    "MonthSpend",
    "OpenAIJobApi",
    "PermanentFailure",
    "TOGETHER_STATUSES",
    "TogetherJobApi",
    "TrainingClient",
    "TrainingHistory",
    "TrainingJob",
    "TrainingPlan",
    "TrainingResult",
    "best_checkpoint",
    "budget_evaluations",
    "cancel_job",
    "cancel_jobs_of_run",
    "check_budget",
    "check_month_spend",
    "config_hash",
    "configuration_refusal",
    "count_evaluation",
    "delete_job_files",
    "ensure_job",
    "estimate_training_cost",
    "job_api",
    "job_failure_kind",
    "job_records",
    "job_spec",
    "load_failure",
    "loss_points",
    "metrics_rows",
    "metrics_table_markdown",
    "month_evaluations",
    "month_jobs",
    "month_spend",
    "permanent_failure",
    "plan_training",
    "record_evaluation_cost",
    "record_gpu_run",
    "record_job_cost",
    "reserve_job_cost",
    "save_failure",
    "spend_of",
    "training_history",
    "training_job_markdown",
    "training_progress",
    "upload_training_file",
    "wait_for_job",
]
