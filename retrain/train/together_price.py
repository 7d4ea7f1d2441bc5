"""What a Together job will cost, in Together's own price, before it is created.

Our price table knows OpenAI's models; Together prices by model size and training type itself,
and says so through ``fine_tuning.estimate_price`` (the call its SDK makes before each create).
That call prices only files Together holds, so the training files are uploaded first (once per
content, as ``retrain.train.uploads`` records them: the job then reuses them), and the answer
becomes a ``CostEstimate``, which ``retrain.train.budget.check_budget`` holds against
``max_training_cost_usd`` and the month's budget as for any other job. Together also says whether
the account's credit lets the job proceed; when it does not, no job is created.
"""

from __future__ import annotations

import logging
from typing import Any

from together import Together, omit
from together.types.fine_tuning_estimate_price_response import UnavailableEstimate

from retrain.config.services import ProviderSettings
from retrain.config.stage_settings import TogetherSettings, TrainingSettings
from retrain.curate.training_files import TrainingFiles
from retrain.exceptions import BudgetExceeded
from retrain.providers.clients import api_errors
from retrain.storage.object_store import ObjectStore
from retrain.train.uploads import upload_dataset_files
from retrain.validate.tokens import CostEstimate

__all__ = ["together_estimate"]

logger = logging.getLogger(__name__)


def _training_type(together: TogetherSettings) -> dict[str, Any]:
    if together.training_type == "lora":
        return {"type": "Lora", "lora_r": together.lora_r, "lora_alpha": together.lora_alpha}
    return {"type": "Full"}


def together_estimate(
    client: Together,
    store: ObjectStore,
    provider: ProviderSettings,
    files: TrainingFiles,
    together: TogetherSettings,
    training: TrainingSettings,
) -> CostEstimate | None:
    """Together's price of training ``files`` with these settings; None when it cannot say and no
    budget limit is set. BudgetExceeded when it cannot say and a limit is set, or when it says the
    account's credit does not cover the job."""
    train, validation = upload_dataset_files(client, store, provider, files, training)
    with api_errors("asking Together for the job's price", provider):
        quote = client.fine_tuning.estimate_price(
            training_file=train,
            model=together.base_model,
            n_epochs=together.n_epochs,
            training_type=_training_type(together),  # type: ignore[arg-type]  # the SDK's TypedDicts
            training_method={"method": "sft", "train_on_inputs": "auto"},
            validation_file=validation or omit,
        )
    if isinstance(quote, UnavailableEstimate):
        reason = quote.unavailable_reason
        if training.max_training_cost_usd is not None or training.monthly_budget_usd is not None:
            raise BudgetExceeded(
                f"Together gave no price for training {together.base_model!r} ({reason}), so the budget "
                "cannot be checked: no job created; run again once Together has validated the file, "
                "or unset RETRAIN_TRAINING__MAX_TRAINING_COST_USD and __MONTHLY_BUDGET_USD"
            )
        logger.warning("Together gave no price for %s: %s", together.base_model, reason)
        return None
    usd = float(quote.estimated_total_price or 0.0)
    if quote.allowed_to_proceed is False:
        limit = "" if quote.user_limit is None else f" (credit limit ${quote.user_limit:,.2f})"
        raise BudgetExceeded(
            f"Together says the account cannot pay for this job: estimated ${usd:,.2f}{limit}; no job "
            "created: add credit to the Together account or train on less data"
        )
    tokens = int(quote.estimated_train_token_count or 0)
    epochs = together.n_epochs
    return CostEstimate(
        n_examples=files.train_examples,
        epochs=epochs,
        billable_tokens_per_epoch=tokens // epochs,
        billable_tokens=tokens,
        usd_per_million=usd / tokens * 1e6 if tokens else None,
        usd=usd,
    )
