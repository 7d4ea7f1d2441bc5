"""The small learner behind every fine-tuned model: retrieval over what it was taught.

Questions (the user turns before an assistant turn) become TF-IDF vectors over character
2-4-grams. To answer, the learner scores each known answer by the best cosine similarity of
its examples among the nearest neighbours, adds a fallback slot whose score is the confidence
threshold, and takes a softmax. The threshold is tuned on the validation examples.
Losses are the negative log-probability of the reference answer; token accuracy is the share
of reference words reproduced in place.
"""

from __future__ import annotations

import hashlib
import math
import pickle
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer

__all__ = [
    "FALLBACK_REPLY",
    "EpochMetrics",
    "Learner",
    "Pair",
    "StepMetrics",
    "pairs_from_chat",
    "token_accuracy",
]

FALLBACK_REPLY = "I'm not sure I can help with that."
_TOP_K = 10
_TEMPERATURE = 0.05
_DEFAULT_THRESHOLD = 0.3
_THRESHOLD_MARGIN = 0.2
_MAX_THRESHOLD = 0.5
_MIN_PROB = 1e-4
_CHUNK = 512


@dataclass(frozen=True)
class Pair:
    question: str
    answer: str


@dataclass(frozen=True)
class StepMetrics:
    step: int
    epoch: int
    train_loss: float
    train_mean_token_accuracy: float


@dataclass(frozen=True)
class EpochMetrics:
    epoch: int
    step: int
    valid_loss: float | None
    valid_mean_token_accuracy: float | None


def pairs_from_chat(messages: Sequence[dict[str, Any]]) -> list[Pair]:
    """One (question, answer) pair per trainable assistant turn of a chat example."""
    pairs = []
    asked: list[str] = []
    for message in messages:
        content = message.get("content")
        text = content if isinstance(content, str) else ""
        if message.get("role") == "user":
            asked.append(text)
        elif message.get("role") == "assistant" and asked and message.get("weight", 1) != 0 and text:
            pairs.append(Pair("\n".join(asked), text))
    return pairs


def token_accuracy(predicted: str, reference: str) -> float:
    """Share of the reference's words that the prediction has at the same position."""
    ref, pred = reference.split(), predicted.split()
    if not ref:
        return 1.0 if not pred else 0.0
    return sum(1 for i, word in enumerate(ref) if i < len(pred) and pred[i] == word) / len(ref)


@dataclass
class Learner:
    """A fitted retrieval model; picklable."""

    vectorizer: TfidfVectorizer
    matrix: sparse.csr_matrix
    answer_ids: NDArray[np.int64]
    answers: list[str]
    threshold: float = _DEFAULT_THRESHOLD
    _index: dict[str, int] = field(default_factory=dict, repr=False)

    @classmethod
    def fit(
        cls,
        train: Sequence[Pair],
        valid: Sequence[Pair] = (),
        *,
        n_epochs: int = 1,
        batch_size: int = 8,
        seed: int = 0,
        on_step: Callable[[StepMetrics], None] | None = None,
        on_epoch: Callable[[EpochMetrics], None] | None = None,
    ) -> Learner:
        """Train on ``train``; report each batch's loss before it is absorbed, and validation per epoch."""
        if not train:
            raise ValueError("no training pairs")
        order = np.random.default_rng(seed).permutation(len(train))
        shuffled = [train[i] for i in order]
        vectorizer = TfidfVectorizer(
            analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True, dtype=np.float32
        )
        matrix = sparse.csr_matrix(vectorizer.fit_transform([p.question for p in shuffled]))
        answers = sorted({p.answer for p in shuffled})
        index = {answer: i for i, answer in enumerate(answers)}
        learner = cls(
            vectorizer, matrix, np.array([index[p.answer] for p in shuffled]), answers, _index=index
        )
        step = 0
        for epoch in range(1, n_epochs + 1):
            for start in range(0, len(shuffled), batch_size):
                rows = np.arange(start, min(start + batch_size, len(shuffled)))
                known = start if epoch == 1 else len(shuffled)
                losses, accuracies = learner._score_rows(rows, known=known)
                step += 1
                if on_step is not None:
                    on_step(StepMetrics(step, epoch, float(np.mean(losses)), float(np.mean(accuracies))))
            if epoch == n_epochs and valid:
                learner.threshold = learner._tune_threshold(valid)
            if on_epoch is not None:
                loss, accuracy = learner.evaluate(valid) if valid else (None, None)
                on_epoch(EpochMetrics(epoch, step, loss, accuracy))
        return learner

    def answer(self, question: str, temperature: float | None = None, seed: int | None = None) -> str:
        """The reply to a question: the most probable known answer, or the fallback reply.

        At a temperature above 0 the reply is drawn from the answers' probabilities sharpened or
        flattened by it (``p ** (1 / temperature)``), repeatably for the same question and seed.
        """
        sims = self._similarities(self.vectorizer.transform([question]), known=self.matrix.shape[0])
        if not temperature:
            label, _ = self._decide(sims[0])
        else:
            labels, probs = self._distribution(sims[0], self.threshold)
            weights = np.asarray(probs, dtype=float) ** (1 / temperature)
            key = int.from_bytes(hashlib.sha256(f"{seed}:{question}".encode()).digest()[:8], "big")
            label = labels[int(np.random.default_rng(key).choice(len(labels), p=weights / weights.sum()))]
        return FALLBACK_REPLY if label < 0 else self.answers[label]

    def evaluate(self, pairs: Sequence[Pair]) -> tuple[float, float]:
        """Mean loss and mean token accuracy on ``pairs``."""
        sims = self._similarities(
            self.vectorizer.transform([p.question for p in pairs]), known=self.matrix.shape[0]
        )
        losses, accuracies = zip(
            *(self._loss(row, p.answer) for row, p in zip(sims, pairs, strict=True)), strict=True
        )
        return float(np.mean(losses)), float(np.mean(accuracies))

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> Learner:
        learner = pickle.loads(path.read_bytes())
        if not isinstance(learner, cls):
            raise TypeError(f"{path} does not hold a Learner")
        return learner

    def _score_rows(self, rows: NDArray[np.int64], *, known: int) -> tuple[list[float], list[float]]:
        sims = self._similarities(self.matrix[rows], known=known, exclude=rows)
        scored = [
            self._loss(row, self.answers[self.answer_ids[r]]) for row, r in zip(sims, rows, strict=True)
        ]
        return [loss for loss, _ in scored], [acc for _, acc in scored]

    def _similarities(
        self, queries: Any, *, known: int, exclude: Iterable[int] | None = None
    ) -> NDArray[np.float64]:
        """Cosine similarities of each query to the first ``known`` training questions (-inf elsewhere)."""
        out = np.full((queries.shape[0], self.matrix.shape[0]), -np.inf)
        if known:
            for start in range(0, queries.shape[0], _CHUNK):
                block = queries[start : start + _CHUNK] @ self.matrix[:known].T
                out[start : start + _CHUNK, :known] = block.toarray()
        if exclude is not None:
            for i, column in enumerate(exclude):
                out[i, column] = -np.inf
        return out

    def _candidates(self, sims: NDArray[np.float64]) -> dict[int, float]:
        """Best similarity per answer among the top neighbours."""
        finite = int(np.isfinite(sims).sum())
        k = min(_TOP_K, finite)
        best: dict[int, float] = {}
        if k:
            top = np.argpartition(-sims, k - 1)[:k]
            for column in top:
                label = int(self.answer_ids[column])
                best[label] = max(best.get(label, -1.0), float(sims[column]))
        return best

    def _distribution(
        self, sims: NDArray[np.float64], threshold: float
    ) -> tuple[list[int], NDArray[np.float64]]:
        best = self._candidates(sims)
        labels = [*best, -1]
        logits = np.array([*best.values(), threshold]) / _TEMPERATURE
        probs = np.exp(logits - logits.max())
        return labels, probs / probs.sum()

    def _decide(self, sims: NDArray[np.float64], threshold: float | None = None) -> tuple[int, float]:
        labels, probs = self._distribution(sims, self.threshold if threshold is None else threshold)
        i = int(np.argmax(probs))
        return labels[i], float(probs[i])

    def _loss(self, sims: NDArray[np.float64], reference: str) -> tuple[float, float]:
        labels, probs = self._distribution(sims, self.threshold)
        target = self._index.get(reference, -2)
        p = float(probs[labels.index(target)]) if target in labels else 0.0
        predicted = labels[int(np.argmax(probs))]
        text = FALLBACK_REPLY if predicted < 0 else self.answers[predicted]
        return -math.log(max(p, _MIN_PROB)), token_accuracy(text, reference)

    def _tune_threshold(self, valid: Sequence[Pair]) -> float:
        """A margin below the 5th percentile of the confidence of correctly answered validation questions."""
        sims = self._similarities(
            self.vectorizer.transform([p.question for p in valid]), known=self.matrix.shape[0]
        )
        confident = []
        for row, pair in zip(sims, valid, strict=True):
            best = self._candidates(row)
            label = max(best, key=best.__getitem__)
            if self.answers[label] == pair.answer:
                confident.append(best[label])
        if not confident:
            return _DEFAULT_THRESHOLD
        return float(np.clip(np.percentile(confident, 5) - _THRESHOLD_MARGIN, 0.0, _MAX_THRESHOLD))
