"""Report rows: one schema for every row the report shows, and the builders that make them.

A row is one model x component x variant x backend x profile point. It carries the accuracy
of the artifact on that backend against PyTorch (``ACCURACY_METRICS``, ``passed``,
``failures``), its latency (``p50_ms`` ..., ``rtf``), its speedup over PyTorch eager, and what
the source adds (shape, texts, deployment facts ...) in ``extra``. Per-component rows are
built by ``ttskiln.report`` from the validation and benchmark records; chain rows by the
families' chains (``Family.run_chain``).

Builders:

* ``accuracy_row``: a verdict against tolerances (``passed`` is ``not failures``);
* ``latency_row``: timings, with ``rtf`` and ``speedup_vs_torch`` worked out here;
* ``error_row``: a row that could not be measured (``status`` "error", failed);
* ``Row.with_accuracy``: a latency row that also carries a verdict.

A row without a verdict of its own says why in ``not_validated`` (a backend with no
validation of the artifact); the PyTorch eager rows are the reference and have no verdict.
A row whose timings were disturbed by other work on the machine says why in
``unstable_timing`` (``ttskiln.stats.unstable_timing``, worked out by ``latency_row``); its
latency is shown, marked, and compared with nothing.

``speedup`` and ``real_time_factor`` are the one place latencies are divided: a missing, zero
or non-finite latency gives no number (None), never inf or NaN.

Serialised (``Row.to_dict``) a row has the keys of the records and of ``summary.json``: the
``ROW_FIELDS`` and ``failures`` always, the identity keys and the optional keys (``status``,
``error``, ``not_validated``, ``unstable_timing``, ``tolerances``, ``audio``) where set, and
``extra`` as top-level keys.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ttskiln.runners import label
from ttskiln.stats import unstable_timing

#: The file a chain job writes its rows into (``ttskiln.chains``; the report reads it).
ROWS_FILE = "rows.json"

#: The backend every speedup is measured against (its label in ``ttskiln.runners.BACKENDS``);
#: its rows are the reference (no verdict).
REFERENCE_BACKEND = label("torch")
ACCURACY_METRICS = ("max_abs_err", "mse", "cosine", "snr_db", "mrstft", "logmel_l1")
LATENCY_FIELDS = ("p50_ms", "p90_ms", "p99_ms")
IDENTITY_FIELDS = ("model", "component", "variant", "backend", "point", "artifact")
#: Keys every row of the report has (None where not measured), in table order.
ROW_FIELDS = (*IDENTITY_FIELDS, *ACCURACY_METRICS, "passed", *LATENCY_FIELDS, "rtf", "speedup_vs_torch")
#: Keys written only where set.
OPTIONAL_FIELDS = ("status", "error", "not_validated", "unstable_timing", "tolerances", "audio")


def _positive(value: Any) -> float | None:
    """``value`` as a float when it is a finite number above zero, else None."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def speedup(reference_ms: Any, ms: Any) -> float | None:
    """How many times faster than the reference: ``reference_ms / ms``; None where either
    latency is missing, zero or not finite."""
    ref, this = _positive(reference_ms), _positive(ms)
    return ref / this if ref is not None and this is not None else None


def real_time_factor(p50_ms: Any, audio_seconds: Any) -> float | None:
    """Compute seconds per second of audio produced (``p50_ms / 1e3 / audio_seconds``); None
    where the latency or the audio length is missing, zero or not finite."""
    ms, seconds = _positive(p50_ms), _positive(audio_seconds)
    return ms / 1e3 / seconds if ms is not None and seconds is not None else None


@dataclass
class Row:
    """One report row (see the module doc); ``extra`` holds the source's own keys."""

    component: str | None = None
    variant: str | None = None
    backend: str | None = None
    model: str | None = None
    point: str | None = None
    artifact: str | None = None
    max_abs_err: float | None = None
    mse: float | None = None
    cosine: float | None = None
    snr_db: float | None = None
    mrstft: float | None = None
    logmel_l1: float | None = None
    passed: bool | None = None
    failures: list[str] = field(default_factory=list)
    status: str | None = None
    error: str | None = None
    not_validated: str | None = None
    unstable_timing: str | None = None
    tolerances: dict[str, float] | None = None
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    rtf: float | None = None
    speedup_vs_torch: float | None = None
    audio_seconds: float | None = None
    audio: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        clash = sorted(set(self.extra) & _FIELD_NAMES)
        if clash:
            raise ValueError(f"row extra keys {clash} are row fields; set the fields instead")

    def to_dict(self, complete: bool = False) -> dict[str, Any]:
        """The row's keys (see the module doc); ``complete`` writes unset identity keys too (as
        None), as the report's rows have them, where a chain leaves them to the chain stage."""
        out: dict[str, Any] = {k: getattr(self, k) for k in IDENTITY_FIELDS if complete or getattr(self, k) is not None}
        out.update({k: getattr(self, k) for k in ROW_FIELDS if k not in IDENTITY_FIELDS})
        out["failures"] = list(self.failures)
        out["audio_seconds"] = self.audio_seconds
        out.update({k: getattr(self, k) for k in OPTIONAL_FIELDS if getattr(self, k) is not None})
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Row:
        """A row from its serialised form (or a chain's ``rows.json`` entry): known keys to
        fields, the rest to ``extra``."""
        known = {k: v for k, v in data.items() if k in _FIELD_NAMES}
        known["failures"] = list(known.get("failures") or [])
        return cls(**known, extra={k: v for k, v in data.items() if k not in _FIELD_NAMES})

    def with_accuracy(self, metrics: Mapping[str, Any], failures: Sequence[str],
                      tolerances: Mapping[str, float] | None = None, passed: bool | None = None) -> Row:
        """This row with a verdict: ``metrics`` (the accuracy metrics to their fields, others to
        ``extra``), ``failures`` and ``passed`` (default: no failures)."""
        fields, others = _split_metrics(metrics)
        return dataclasses.replace(
            self, **fields, failures=list(failures), passed=(not failures) if passed is None else passed,
            tolerances=dict(tolerances) if tolerances is not None else self.tolerances,
            not_validated=None, extra={**self.extra, **others},
        )


_FIELD_NAMES = frozenset(f.name for f in dataclasses.fields(Row)) - {"extra"}


def _split_metrics(metrics: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    return ({k: v for k, v in metrics.items() if k in ACCURACY_METRICS},
            {k: v for k, v in metrics.items() if k not in ACCURACY_METRICS})


def accuracy_row(*, component: str | None, variant: str, backend: str, metrics: Mapping[str, Any],
                 failures: Sequence[str], tolerances: Mapping[str, float] | None = None, passed: bool | None = None,
                 model: str | None = None, point: str | None = None, artifact: str | None = None,
                 audio_seconds: float | None = None, audio: str | None = None, status: str | None = None,
                 error: str | None = None, **extra: Any) -> Row:
    """A row with a verdict against tolerances: ``passed`` is ``not failures`` unless given."""
    row = Row(component=component, variant=variant, backend=backend, model=model, point=point, artifact=artifact,
              audio_seconds=audio_seconds, audio=audio, status=status, error=error, extra=dict(extra))
    return row.with_accuracy(metrics, failures, tolerances, passed)


def latency_row(*, component: str | None, variant: str, backend: str, timing: Mapping[str, Any],
                reference_ms: float | None, audio_seconds: float | None = None, all_stats: bool = False,
                model: str | None = None, point: str | None = None, artifact: str | None = None,
                not_validated: str | None = None, **extra: Any) -> Row:
    """A row of timings (``timing``: p50_ms, p90_ms, p99_ms, as ``time_calls`` gives them):
    ``rtf`` over ``audio_seconds`` and ``speedup_vs_torch`` against ``reference_ms`` (the
    PyTorch eager p50 at the same point), None where they cannot be had. ``all_stats`` keeps
    the timing's other keys (mean, min, the samples) in ``extra``. ``unstable_timing`` says why
    the timing was disturbed by other load, where it was (see ``ttskiln.stats.unstable_timing``)."""
    p50 = timing.get("p50_ms")
    more = {k: v for k, v in timing.items() if k not in LATENCY_FIELDS} if all_stats else {}
    return Row(component=component, variant=variant, backend=backend, model=model, point=point, artifact=artifact,
               p50_ms=p50, p90_ms=timing.get("p90_ms"), p99_ms=timing.get("p99_ms"),
               rtf=real_time_factor(p50, audio_seconds), speedup_vs_torch=speedup(reference_ms, p50),
               audio_seconds=audio_seconds, not_validated=not_validated, unstable_timing=unstable_timing(timing),
               extra={**more, **extra})


def error_row(*, variant: str, backend: str, error: str, failure: str | None = None, component: str | None = None,
              **extra: Any) -> Row:
    """A row that could not be measured: status "error", failed, with ``failure`` (default the
    error) as its one failure."""
    return Row(component=component, variant=variant, backend=backend, status="error", error=error, passed=False,
               failures=[failure or error], extra=dict(extra))


def not_validated_reason(backend: str, validated_on: Sequence[str]) -> str | None:
    """Why a row of ``backend`` has no verdict: None for the PyTorch reference; else which
    backends do have a validation of the artifact (those results are not this backend's)."""
    if backend == REFERENCE_BACKEND:
        return None
    others = sorted(set(validated_on) - {backend})
    where = f"; validated on {', '.join(others)} only, which says nothing of {backend}" if others else ""
    return f"no validation on {backend}{where}"
