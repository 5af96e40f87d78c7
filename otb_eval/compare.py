"""Is tracker A better than tracker B? A difference of mean scores with a bootstrap interval.

Benchmarks of learned trackers vary along two axes: the sequences (some are hard for everyone)
and the training seed. :func:`difference` resamples both: each bootstrap replicate draws the
sequences with replacement, the same draw for both trackers (a paired comparison, so the
sequences' shared difficulty cancels), and each tracker's seeds with replacement, independently.
The score of a tracker in a replicate is its mean over the drawn seeds and sequences; the interval
is the percentile interval of A - B. A tracker with one run (a deterministic baseline) has one
"seed". "Better" holds only when the whole interval is above zero (:attr:`Difference.verdict`).

Scores are per-sequence values such as got10k's success score (AUC): the overall AUC of a
``performance.json`` is their mean (:func:`per_sequence` reads them).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import numpy as np

__all__ = ["Difference", "difference", "per_sequence"]


@dataclass(frozen=True)
class Difference:
    """Mean score of A minus that of B with its bootstrap interval."""

    mean: float
    low: float
    high: float
    level: float
    sequences: int
    seeds_a: int
    seeds_b: int

    @property
    def verdict(self) -> str:
        """``better``, ``worse`` or ``no difference`` (the interval holds zero)."""
        return "better" if self.low > 0 else "worse" if self.high < 0 else "no difference"

    def to_dict(self) -> dict:
        return {**asdict(self), "verdict": self.verdict}


def _runs(scores: Any) -> np.ndarray:
    a = np.asarray(scores, dtype=float)
    if a.ndim == 1:
        a = a[None]
    if a.ndim != 2 or a.size == 0 or not np.all(np.isfinite(a)):
        raise ValueError("scores must be finite, shaped (seeds, sequences) or (sequences,)")
    return a


def difference(a: Any, b: Any, resamples: int = 10000, level: float = 0.95, seed: int = 0) -> Difference:
    """A - B for per-sequence scores shaped ``(seeds, sequences)`` (or ``(sequences,)`` for one
    run), the sequences in the same order for both."""
    ra, rb = _runs(a), _runs(b)
    if ra.shape[1] != rb.shape[1]:
        raise ValueError(f"A has {ra.shape[1]} sequences, B {rb.shape[1]}: a paired comparison needs the same")
    if not 0 < level < 1 or resamples < 1:
        raise ValueError("level must be in (0, 1) and resamples at least 1")
    rng = np.random.default_rng(seed)
    n = ra.shape[1]
    seqs = rng.integers(0, n, (resamples, n))
    diffs = np.empty(resamples)
    for i in range(resamples):
        sa = ra[rng.integers(0, len(ra), len(ra))]
        sb = rb[rng.integers(0, len(rb), len(rb))]
        diffs[i] = sa[:, seqs[i]].mean() - sb[:, seqs[i]].mean()
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(diffs, [tail, 100 - tail])
    return Difference(float(ra.mean() - rb.mean()), float(low), float(high), level, n, len(ra), len(rb))


def per_sequence(performance: Mapping[str, Any], tracker: str, sequences: Sequence[str],
                 key: str = "success_score") -> np.ndarray:
    """One tracker's ``key`` on each of ``sequences`` from a got10k-style performance dict."""
    seq_wise = performance[tracker]["seq_wise"]
    missing = [s for s in sequences if s not in seq_wise]
    if missing:
        raise KeyError(f"{tracker} has no result for {', '.join(missing[:3])}")
    return np.array([float(seq_wise[s][key]) for s in sequences])
