"""Timing calls: latency percentiles over repeated calls (a bottom-layer module, see ``ttskiln.LAYERS``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np


def time_calls(fn: Callable[[], Any], warmup: int, repeats: int) -> dict[str, Any]:
    """Latency percentiles in milliseconds over ``repeats`` timed calls after ``warmup`` (and the samples)."""
    for _ in range(warmup):
        fn()
    times = np.empty(repeats)
    for i in range(repeats):
        start = time.perf_counter()
        fn()
        times[i] = time.perf_counter() - start
    return latency_stats(times * 1e3)


def latency_stats(ms: np.ndarray) -> dict[str, Any]:
    """p50/p90/p99, mean and min of latencies in milliseconds, and the raw samples
    (``samples_ms``, in call order) that comparisons beyond noise resample."""
    ms = np.asarray(ms, dtype=float)
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p90_ms": float(np.percentile(ms, 90)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
        "min_ms": float(ms.min()),
        "samples_ms": [float(x) for x in ms],
    }
