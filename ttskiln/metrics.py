"""Tensor metrics between a reference and a candidate, and the tolerance check.

Directions: ``max_abs_err``, ``mse`` and the audio metrics (``mrstft``, ``logmel_l1``, see
``ttskiln.audio_metrics``) must stay at or below their tolerance; ``cosine`` and ``snr_db`` at or
above it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

UPPER_BOUND = ("max_abs_err", "mse", "mrstft", "logmel_l1")
LOWER_BOUND = ("cosine", "snr_db")
METRICS = UPPER_BOUND + LOWER_BOUND


def tensor_metrics(reference: np.ndarray, candidate: np.ndarray) -> dict[str, float]:
    """max abs error, MSE, cosine similarity and SNR (dB) of ``candidate`` against ``reference``."""
    ref = np.asarray(reference, dtype=np.float64).ravel()
    got = np.asarray(candidate, dtype=np.float64).ravel()
    if ref.shape != got.shape:
        raise ValueError(f"shapes differ: {np.shape(reference)} vs {np.shape(candidate)}")
    diff = got - ref
    noise = float(np.mean(diff**2)) if diff.size else 0.0
    signal = float(np.mean(ref**2)) if ref.size else 0.0
    norms = float(np.linalg.norm(ref) * np.linalg.norm(got))
    return {
        "max_abs_err": float(np.max(np.abs(diff))) if diff.size else 0.0,
        "mse": noise,
        "cosine": float(np.dot(ref, got) / norms) if norms > 0 else (1.0 if noise == 0 else 0.0),
        "snr_db": snr_db(signal, noise),
    }


def snr_db(signal_power: float, noise_power: float) -> float:
    if noise_power == 0:
        return math.inf
    if signal_power == 0:
        return -math.inf
    return 10.0 * math.log10(signal_power / noise_power)


def worst(per_output: list[dict[str, float]]) -> dict[str, float]:
    """The worst value of each metric over several outputs."""
    result = {}
    for name in METRICS:
        values = [m[name] for m in per_output if m.get(name) is not None]
        if values:
            result[name] = max(values) if name in UPPER_BOUND else min(values)
    return result


def failures(metrics: dict[str, float], tolerances: dict[str, float]) -> list[str]:
    """One line per broken tolerance, e.g. ``max_abs_err 3.1e-03 > 1.0e-04``."""
    broken = []
    for name, limit in tolerances.items():
        value = metrics.get(name)
        if not isinstance(limit, (int, float)) or not math.isfinite(limit):
            broken.append(f"{name} limit {limit!r} is not a finite number")
        elif value is None or (isinstance(value, float) and math.isnan(value)):
            broken.append(f"{name} is not a number")
        elif name in UPPER_BOUND and value > limit:
            broken.append(f"{name} {value:.3g} > {limit:.3g}")
        elif name in LOWER_BOUND and value < limit:
            broken.append(f"{name} {value:.6g} < {limit:.6g}")
    return broken


def non_finite(arrays: dict[str, np.ndarray], what: str) -> list[str]:
    """One line per array holding NaN or Inf, e.g. ``the artifact's output 'audio': 3 NaN``."""
    lines = []
    for name, value in arrays.items():
        value = np.asarray(value)
        if value.dtype.kind != "f":
            continue
        nan, inf = int(np.isnan(value).sum()), int(np.isinf(value).sum())
        if nan or inf:
            lines.append(f"{what} {name!r}: {nan} NaN, {inf} Inf of {value.size} values")
    return lines


def log_verdict(record: dict[str, Any]) -> None:
    """The verdict in the job's log: every metric against its limit, then PASS or FAIL."""
    print(f"ttskiln verdict: {record.get('variant')} {record['artifact']} at point {record.get('point')} "
          f"on {record['backend']}: {'PASS' if record['passed'] else 'FAIL'}")
    if record.get("error"):
        print(f"  {record['error']}")
    for name, value in sorted(record.get("metrics", {}).items()):
        limit = record["tolerances"].get(name)
        bound = "" if limit is None else f" (limit {'>=' if name in LOWER_BOUND else '<='} {limit:.6g})"
        print(f"  {name}: {value:.6g}{bound}")
    for line in record.get("failures", []):
        print(f"  failed: {line}")
