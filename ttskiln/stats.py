"""Timing comparisons that account for run-to-run noise.

A variant counts as faster than another only when a bootstrap confidence interval of the
ratio of their median latencies lies wholly on one side of 1, not when one median is lower.
A record whose timings were disturbed by other work on the machine (``unstable_timing``) is
compared with nothing: its median says more about the other load than about the artifact.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

RESAMPLES = 2000
LEVEL = 0.95
SEED = 0
#: Smallest speed difference counted as real: the interval covers the jitter between calls of
#: one job, not the drift between jobs and runs (measured here: 3.9 vs 4.0 ms with 3 % jitter
#: came out "beyond noise"), so a win must also exceed this margin.
MARGIN = 0.03
#: Largest p50 / min latency ratio of a record timed on a quiet machine (see ``unstable_timing``).
UNSTABLE_P50_OVER_MIN = 2.0
#: A record whose 1-minute load average (read right after timing) exceeds this many times the
#: core count is unstable however even its calls are (see ``unstable_timing``).
UNSTABLE_LOAD_PER_CORE = 1.75


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


def unstable_timing(record: Mapping[str, Any], limit: float = UNSTABLE_P50_OVER_MIN) -> str | None:
    """Why a latency record's timings are unstable, or None when they look like a quiet machine.

    Unstable: the median (``p50_ms``) is more than ``limit`` (``UNSTABLE_P50_OVER_MIN``, 2x)
    times the fastest call (``min_ms``); both are taken from ``samples_ms`` where the record
    has them. Every timed call runs the same computation on the same input, so the fastest
    call is what the machine can do, and noise only ever adds time. On an idle machine the
    median stays within a few tens of percent of it (an occasional preemption or cache miss
    moves single calls, not the middle of the list). A median over twice the minimum means
    that more than half the calls lost most of their time to something else: another process
    competing for the cores (another benchmark, a build, a test suite), throttling or swapping.
    Such a median is a measure of that other load, and any speedup computed from it is noise.

    The rule is a ratio, with no floor in milliseconds: sub-millisecond calls need the same
    rule, not an exemption. A scheduler tick can double one 0.5 ms call, but it cannot double
    the median of twenty unless the cores were busy for most of the run; a quiet run of such
    calls keeps its median within ~20 % of its minimum like any other.

    The reason names the ratio and, where the record has them, the 1-minute load average and
    core count measured after timing. A record whose samples time different calls
    (``varied_calls``, e.g. decode steps at growing cache lengths) has no such floor and is
    never judged by this rule.

    Calls that are all slowed alike (a machine loaded for the whole run) keep their median
    near their minimum and pass that rule, so a second one judges the load itself: a record
    whose 1-minute load average exceeds ``UNSTABLE_LOAD_PER_CORE`` (1.75) times its core count
    (``cpu_count``) is unstable too, ``varied_calls`` or not. The benchmark's own threads are
    at most the core count, so they alone keep the load at or under 1x the cores; load beyond
    1.75x is other work queueing for the same cores while the calls were timed. (A quiet 2-core
    demo run measured 1.08-1.44x per core over its 47 records: the job runner and the
    1-minute average's lag from the previous job add some; a run beside a test suite, 2.04x.)
    """
    return _slow_median(record, limit) or _loaded(record)


def _loaded(record: Mapping[str, Any]) -> str | None:
    """The load rule of ``unstable_timing``."""
    load, cores = record.get("load_average"), record.get("cpu_count")
    if (isinstance(load, (int, float)) and isinstance(cores, int) and cores > 0
            and load > UNSTABLE_LOAD_PER_CORE * cores):
        return (f"1-minute load average {load:.1f} on {cores} cores, over the {UNSTABLE_LOAD_PER_CORE:g}x the "
                f"cores the benchmark's own threads can explain: other work shared the cores while timing")
    return None


def _slow_median(record: Mapping[str, Any], limit: float) -> str | None:
    """The p50-over-fastest rule of ``unstable_timing``."""
    if record.get("varied_calls"):
        return None
    samples = [float(x) for x in record.get("samples_ms") or [] if isinstance(x, (int, float))]
    if samples:
        p50, fastest = float(np.median(samples)), min(samples)
    else:
        p50, fastest = record.get("p50_ms"), record.get("min_ms")
        if not isinstance(p50, (int, float)) or not isinstance(fastest, (int, float)):
            return None
    if not (np.isfinite(p50) and np.isfinite(fastest)) or fastest <= 0 or p50 <= limit * fastest:
        return None
    load, cores = record.get("load_average"), record.get("cpu_count")
    busy = (f"; 1-minute load average {load:.1f}" + (f" on {cores} cores" if cores else "")
            if isinstance(load, (int, float)) else "")
    return (f"p50 {p50:.3g} ms is {p50 / fastest:.1f}x the fastest call ({fastest:.3g} ms), over the {limit:g}x "
            f"a quiet machine keeps: most likely other work loaded the machine while timing{busy}")
