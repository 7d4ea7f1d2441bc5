"""How a night ended, one word each: the name of its final state in Prefect, its summary and logs.

A night that ran as it should ends in a ``Completed``-type state named after its outcome, so the
Prefect run list and dashboard tell the nights apart at a glance; ``Failed`` stays for failures
(a batch that fails its gates, a failed job, a lost lease).
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Outcome"]


class Outcome(StrEnum):
    PROMOTED = "Promoted"
    REJECTED = "Rejected"
    NO_NEW_DATA = "NoNewData"
    TOO_FEW_EXAMPLES = "TooFewExamples"
    STILL_TRAINING = "StillTraining"
    SUPERSEDED = "Superseded"  # production moved after the comparison: nothing was promoted

    @classmethod
    def of_decision(cls, promote: bool, *, superseded: bool = False) -> Outcome:
        if superseded:
            return cls.SUPERSEDED
        return cls.PROMOTED if promote else cls.REJECTED

    @property
    def word(self) -> str:
        """The outcome in running text: ``promoted``, ``no new data``, ``still training``."""
        return {
            "NoNewData": "no new data",
            "TooFewExamples": "too few examples",
            "StillTraining": "still training",
        }.get(self.value, self.value.lower())
