"""Timing comparisons that account for run-to-run noise.

A variant counts as faster than another only when a bootstrap confidence interval of the
ratio of their median latencies lies wholly on one side of 1, not when one median is lower.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

RESAMPLES = 2000
LEVEL = 0.95
SEED = 0
#: Smallest speed difference counted as real: the interval covers the jitter between calls of
#: one job, not the drift between jobs and runs (measured here: 3.9 vs 4.0 ms with 3 % jitter
#: came out "beyond noise"), so a win must also exceed this margin.
MARGIN = 0.03


def median_ratio_ci(
    pairs: Sequence[tuple[Sequence[float], Sequence[float]]],
    resamples: int = RESAMPLES,
    level: float = LEVEL,
    seed: int = SEED,
) -> tuple[float, float, float] | None:
    """Ratio of medians ``median(a) / median(b)`` with a percentile bootstrap interval.

    ``pairs`` holds one ``(a, b)`` pair of raw latency samples per profile point; with several
    points the ratio is the geometric mean of the per-point ratios, each resample drawing every
    point's samples afresh. Returns ``(ratio, low, high)``, or None where a pair lacks samples
    (then nothing can be said beyond noise). Seeded: the same samples give the same interval.
    """
    pairs = [(np.asarray(a, dtype=float), np.asarray(b, dtype=float)) for a, b in pairs]
    if not pairs or any(a.size == 0 or b.size == 0 for a, b in pairs):
        return None
    rng = np.random.default_rng(seed)
    logs = np.zeros(resamples)
    point = 0.0
    for a, b in pairs:
        if np.median(a) <= 0 or np.median(b) <= 0:
            return None
        point += np.log(np.median(a) / np.median(b))
        ma = np.median(a[rng.integers(0, a.size, (resamples, a.size))], axis=1)
        mb = np.median(b[rng.integers(0, b.size, (resamples, b.size))], axis=1)
        logs += np.log(np.maximum(ma, 1e-300) / np.maximum(mb, 1e-300))
    logs /= len(pairs)
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(logs, [tail, 100 - tail])
    return float(np.exp(point / len(pairs))), float(np.exp(low)), float(np.exp(high))


def beyond_noise(ci: tuple[float, float, float] | None, margin: float = MARGIN) -> bool:
    """Whether a ``median_ratio_ci`` result says "faster": the whole interval below 1 - margin."""
    return ci is not None and ci[2] < 1 - margin


def faster_beyond_noise(a: Sequence[float], b: Sequence[float], **kwargs: float) -> bool:
    """Whether samples ``a`` are faster than ``b`` beyond noise (see ``beyond_noise``)."""
    return beyond_noise(median_ratio_ci([(a, b)], **kwargs))
