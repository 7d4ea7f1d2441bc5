"""Local: retrain without credentials or internet. The embedded local stack runs a local S3
server and the local OpenAI-compatible fine-tuning server (and, on request, a Prefect server with
a process worker) as background processes; deterministic synthetic data and the demo's story of
several nights run the real pipeline on it.
"""

from retrain.local.demo import EVAL_ITEMS, NIGHTS, Night, land_night, seed_eval_set, start_over
from retrain.local.prefect_server import (
    PREFECT_FILE,
    PREFECT_POOL,
    checkout_root,
    deploy,
    prefect_api_url,
    prefect_env,
    running_prefect_api_url,
)
from retrain.local.stack import (
    ServiceStatus,
    StackStatus,
    down,
    local_s3_settings,
    settings_off_the_stack,
    status,
    up,
)
from retrain.local.synthetic import (
    SYSTEM_PROMPT,
    Intent,
    intents,
    make_dirty_lines,
    make_eval_set,
    make_examples,
)

__all__ = [
    "EVAL_ITEMS",
    "Intent",
    "NIGHTS",
    "Night",
    "PREFECT_FILE",
    "PREFECT_POOL",
    "SYSTEM_PROMPT",
    "ServiceStatus",
    "StackStatus",
    "checkout_root",
    "deploy",
    "down",
    "intents",
    "land_night",
    "local_s3_settings",
    "make_dirty_lines",
    "make_eval_set",
    "make_examples",
    "prefect_api_url",
    "prefect_env",
    "running_prefect_api_url",
    "seed_eval_set",
    "settings_off_the_stack",
    "start_over",
    "status",
    "up",
]
