"""The night summary: gathered in a task (it reads the bucket), published from the flow itself.

An artifact created in the flow body belongs to the flow run, not to a task run, and the Prefect
UI lists those first on the run's Artifacts tab, above every task's artifacts: so ``night-summary``
is the first thing a person sees there.
"""

from __future__ import annotations

from itertools import islice

from prefect import task
from prefect.artifacts import create_markdown_artifact

from retrain.ingest.batches import quarantined_rows
from retrain.registry.aliases import PRODUCTION
from retrain.report.history import score_history_of
from retrain.report.night_summary import QUARANTINE_EXAMPLES, NightFacts, Tonight, night_summary_markdown
from tasks.context import task_context
from tasks.retry import IO_TASK

__all__ = ["NIGHT_SUMMARY_KEY", "publish_night_summary", "summarise_night"]

NIGHT_SUMMARY_KEY = "night-summary"


@task(name="summarise-night", **IO_TASK)
def summarise_night(tonight: Tonight, outcome: str, message: str) -> str:
    """The night-summary markdown: tonight's results, a few quarantined lines, production now and
    its score history on the primary eval set."""
    context = task_context()
    store, evaluation = context.store, context.settings.evaluation
    batch = tonight.batch
    quarantined = list(islice(quarantined_rows(store, batch), QUARANTINE_EXAMPLES)) if batch else []
    facts = NightFacts.of(
        tonight,
        outcome,
        message,
        evaluation,
        quarantined=quarantined,
        production_now=context.registry.get(PRODUCTION),
        history=score_history_of(store, evaluation.eval_set, primary=evaluation.eval_set),
        history_set=evaluation.eval_set,
    )
    return night_summary_markdown(facts)


def publish_night_summary(markdown: str, outcome: str, message: str) -> None:
    """Call from the flow body, not from a task, so that the summary is the run's first artifact."""
    create_markdown_artifact(markdown, key=NIGHT_SUMMARY_KEY, description=f"{outcome}: {message}"[:500])
