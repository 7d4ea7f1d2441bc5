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
A third and fourth table repeat both modes with several sampled answers per item
(``RETRAIN_EVALUATION__SAMPLES_PER_ITEM``, ``--samples``): on a shared item every answer of both
models has the item's outcome, on any other item each answer draws anew, and an item scores the
share of its answers that pass (the gate then uses its paired bootstrap). The single-answer column
of those tables scores the first answer of the same simulated nights.
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

Gate = Callable[[NDArray[np.float64], NDArray[np.float64]], bool]  # (candidate, production), items x answers


def _scores(label: str, values: NDArray[np.float64]) -> ModelScores:
    listed = values.tolist()
    return ModelScores(label, label, listed, [v == 1.0 for v in listed], float(values.mean()))


def _gate(settings: EvaluationSettings, answers: int | None = None) -> Gate:
    """retrain's gate on the first answer of each item, or on the mean of its first ``answers``."""

    def promotes(c: NDArray[np.float64], p: NDArray[np.float64]) -> bool:
        cand, prod = (
            (c[:, 0], p[:, 0]) if answers is None else (c[:, :answers].mean(1), p[:, :answers].mean(1))
        )
        return decide(_scores("cand", cand), _scores("prod", prod), settings).promote

    return promotes


def gates(settings: EvaluationSettings, min_absolute_change: float) -> dict[str, Gate]:
    return {
        "retrain gate": _gate(settings),
        "mean > mean": lambda c, p: bool(c[:, 0].mean() > p[:, 0].mean()),
        f"min_absolute_change {min_absolute_change:g}": lambda c, p: bool(
            c[:, 0].mean() - p[:, 0].mean() >= min_absolute_change
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
    samples: int = 1,
) -> dict[str, float]:
    """The share of trials in which each gate promotes the candidate (``samples`` answers an item)."""
    promoted = dict.fromkeys(gate_set, 0)
    for _ in range(trials):
        common = rng.random((n, 1))
        together = rng.random((n, 1)) < shared
        prod_u = np.where(together, common, rng.random((n, samples)))
        cand_u = np.where(together, common, rng.random((n, samples)))
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
    parser.add_argument("--samples", type=int, default=3, help="Answers an item in the sampled tables.")
    parser.add_argument(
        "--sampled-trials",
        type=int,
        default=2000,
        help="Trials a cell of the sampled tables (bootstrap: slower).",
    )
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
    replace = {"non_inferiority gate": _gate(migration)}
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
    k = args.samples
    for title, mode_settings, deltas, worse in (
        ("better mode", settings, (0.0, 0.02, 0.05, 0.10), "false promotion"),
        (f"non_inferiority mode, margin {margin:g}", migration, (-margin - 0.03, -margin, -0.02, 0.0), None),
    ):
        sampled = {"1 answer an item": _gate(mode_settings), f"{k} answers an item": _gate(mode_settings, k)}
        print(f"\n{title}, {k} sampled answers an item, {args.sampled_trials} trials a cell\n")
        print("| items | true difference | " + " | ".join(sampled) + " | answers asked a model |")
        print("|---:|---:|" + "---:|" * (len(sampled) + 1))
        for n in (200, 500):
            for delta in deltas:
                rates = simulate(n, args.base, delta, args.shared, args.sampled_trials, rng, sampled, k)
                bad = delta == 0 if worse else delta <= -margin + 1e-9
                kind = (worse or "false replacement") if bad else "power"
                cells = " | ".join(f"{rates[name]:.3f}" for name in sampled)
                print(f"| {n} | {delta * 100:+.0f} pts ({kind}) | {cells} | 1 x {n} or {k} x {n} |")
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
