"""What the gate compares: the candidate and production as eval targets, on the main eval set and
each guardrail set, each set scored in an eval run of its own."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from retrain.config.settings import Settings
from retrain.evaluate.targets import ModelTarget
from retrain.providers.clients import provider_named
from retrain.registry.aliases import CANDIDATE, PRODUCTION
from retrain.registry.records import ModelRecord

__all__ = ["GateSets", "gate_runs", "gate_targets"]

T = TypeVar("T")


@dataclass(frozen=True)
class GateSets(Generic[T]):
    """One value for each eval set the gate reads: ``main`` for the primary set (``main_set``),
    ``guardrails`` by set name."""

    main_set: str
    main: T
    guardrails: dict[str, T]

    @classmethod
    def split(cls, by_set: Mapping[str, T], main_set: str) -> GateSets[T]:
        """The main set's value out of ``by_set``; every other set is a guardrail set."""
        guardrails = dict(by_set)
        main = guardrails.pop(main_set)
        return cls(main_set, main, guardrails)

    def by_set(self) -> dict[str, T]:
        """Set name -> value, the main set first."""
        return {self.main_set: self.main} | self.guardrails


def gate_runs(
    run_id: str, main_set: str, guardrails: Iterable[str], *, main_run: str | None = None
) -> GateSets[str]:
    """The eval-run id of each set: ``{run_id}-{set}``, or ``main_run`` for the main set if given.

    The nightly run scores its main set in the eval run named for the night itself. A guardrail
    set that is also the main set is scored once, as the main set, in the guardrail's run.
    """
    main = main_run or f"{run_id}-{main_set}"
    return GateSets.split({main_set: main} | {name: f"{run_id}-{name}" for name in guardrails}, main_set)


def gate_targets(candidate: ModelRecord, production: ModelRecord, settings: Settings) -> list[ModelTarget]:
    """The two models as eval targets labelled ``candidate`` and ``production``, each on its provider."""
    return [
        ModelTarget(
            CANDIDATE, candidate.model_id, provider_named(settings, candidate.provider), candidate.deployment
        ),
        ModelTarget(
            PRODUCTION,
            production.model_id,
            provider_named(settings, production.provider),
            production.deployment,
        ),
    ]
