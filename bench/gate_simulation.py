"""How often does each promotion gate promote? Simulated pass/fail evals with known accuracies.

Production passes each item with probability ``base``; the candidate with ``base + delta``.
Both models answer the same items, so their outcomes are correlated: with probability
``shared`` an item is easy or hard for both (one uniform draw decides both), otherwise the two
draw independently. Compared gates: retrain's gate (``retrain.promote.gate.decide``, exact one-sided
McNemar at alpha), a plain "candidate mean > production mean", and an MLflow-style
``min_absolute_change`` threshold on the mean. Then the same simulated nights for the
``non_inferiority`` mode (Tango's score test at ``--margin``): how often it replaces production
with a candidate that is truly worse by the margin or more (false replacement, at most alpha),
and how often it moves production to a candidate that is as good or slightly worse (power).
Run: ``python -m bench.gate_simulation``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from retrain.config.stage_settings import EvaluationSettings
from retrain.evaluate.results import ModelScores
from retrain.promote.gate import decide

__all__ = ["main", "simulate"]

Gate = Callable[[NDArray[np.float64], NDArray[np.float64]], bool]


def _scores(label: str, values: NDArray[np.float64]) -> ModelScores:
    listed = values.tolist()
    return ModelScores(label, label, listed, [v == 1.0 for v in listed], float(values.mean()))


def gates(settings: EvaluationSettings, min_absolute_change: float) -> dict[str, Gate]:
    return {
        "retrain gate": lambda c, p: decide(_scores("cand", c), _scores("prod", p), settings).promote,
        "mean > mean": lambda c, p: bool(c.mean() > p.mean()),
        f"min_absolute_change {min_absolute_change:g}": lambda c, p: bool(
            c.mean() - p.mean() >= min_absolute_change
        ),
    }


def simulate(
    n: int,
    base: float,
    delta: float,
    shared: float,
    trials: int,
    rng: np.random.Generator,
    gate_set: dict[str, Gate],
) -> dict[str, float]:
    """The share of trials in which each gate promotes the candidate."""
    promoted = dict.fromkeys(gate_set, 0)
    for _ in range(trials):
        common = rng.random(n)
        together = rng.random(n) < shared
        prod_u = np.where(together, common, rng.random(n))
        cand_u = np.where(together, common, rng.random(n))
        prod = (prod_u < base).astype(float)
        cand = (cand_u < base + delta).astype(float)
        for name, gate in gate_set.items():
            promoted[name] += gate(cand, prod)
    return {name: count / trials for name, count in promoted.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--base", type=float, default=0.70)
    parser.add_argument("--shared", type=float, default=0.5)
    parser.add_argument("--min-absolute-change", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--margin", type=float, default=0.05)
    args = parser.parse_args()
    settings = EvaluationSettings()
    gate_set = gates(settings, args.min_absolute_change)
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    print(
        f"base accuracy {args.base:.2f}, shared-outcome share {args.shared:.2f}, alpha {settings.alpha}, "
        f"{args.trials} trials a cell, seed {args.seed}\n"
    )
    print("| items | true improvement | " + " | ".join(gate_set) + " |")
    print("|---:|---:|" + "---:|" * len(gate_set))
    for n in (200, 500, 2000):
        for delta in (0.0, 0.02, 0.05, 0.10):
            rates = simulate(n, args.base, delta, args.shared, args.trials, rng, gate_set)
            kind = "false promotion" if delta == 0 else "power"
            cells = " | ".join(f"{rates[name]:.3f}" for name in gate_set)
            print(f"| {n} | {delta * 100:+.0f} pts ({kind}) | {cells} |")
    margin = args.margin
    migration = EvaluationSettings(gate_mode="non_inferiority", margin=margin)
    replace = {
        "non_inferiority gate": lambda c, p: decide(_scores("cand", c), _scores("prod", p), migration).promote
    }
    print(f"\nnon_inferiority mode, margin {margin:g}\n")
    print("| items | true difference | non_inferiority gate |")
    print("|---:|---:|---:|")
    for n in (200, 500, 2000):
        for delta in (-margin - 0.03, -margin, -0.02, 0.0):
            rate = simulate(n, args.base, delta, args.shared, args.trials, rng, replace)[
                "non_inferiority gate"
            ]
            kind = "false replacement" if delta <= -margin + 1e-9 else "power"
            print(f"| {n} | {delta * 100:+.0f} pts ({kind}) | {rate:.3f} |")
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
