"""Run history and run-to-run comparison of reports.

Every report keeps a copy of its summary.json under ``reports/history/<UTC timestamp>.json``
(with the ttskiln version and source state). ``compare`` matches the rows of two summaries
(model, component, variant, backend, point) and calls a row a regression when it is slower
beyond noise by more than a threshold: the whole bootstrap interval of the ratio of median
latencies (new / old) above ``1 + threshold``, or when its validation went from pass to fail.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from ttskiln.atomic import write_json
from ttskiln.stats import median_ratio_ci, unstable_timing

THRESHOLD = 0.05
KEY = ("model", "component", "variant", "backend", "point")
ACCURACY = ("snr_db", "mrstft", "logmel_l1", "max_abs_err")


def source_state() -> dict[str, Any]:
    """The ttskiln version and, where its source is a git checkout, ``git describe`` and the commit."""
    from ttskiln import __version__

    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() or None if out.returncode == 0 else None

    return {"version": __version__, "source": git("describe", "--always", "--dirty", "--tags") or "unknown",
            "commit": git("rev-parse", "HEAD") or "unknown"}


def history_dir(summary_json: str | Path) -> Path:
    return Path(summary_json).parent / "history"


def write_history(summary: dict[str, Any], folder: str | Path) -> Path:
    """Keep ``summary`` as ``<folder>/<UTC timestamp>.json`` (microseconds: two runs never clash)."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"{time.time() % 1:.6f}"[1:] + "Z"
    path = Path(folder) / f"{stamp}.json"
    write_json(path, summary)
    return path


def previous_entry(folder: str | Path) -> Path | None:
    """The latest complete (not partial) history entry, or None."""
    for path in sorted(Path(folder).glob("*.json"), reverse=True):
        try:
            if not json.loads(path.read_text()).get("partial"):
                return path
        except (OSError, ValueError):
            continue
    return None


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):  # JSON keeps infinities as strings
        try:
            return float(value)
        except ValueError:
            return None
    return float(value)


def compare_summaries(old: dict[str, Any], new: dict[str, Any], threshold: float = THRESHOLD) -> dict[str, Any]:
    """Per matched row: latency ratio new/old with its interval, accuracy changes, and the verdict
    (``regression``, ``faster``, ``within noise``, ``unstable timing`` where either run's timing
    was disturbed by other load, ``not compared: the model changed`` (another checkpoint or
    layout under the same name) or ``... the input shape changed``, ``no samples``)."""
    before = {tuple(r.get(k) for k in KEY): r for r in old.get("rows", [])}
    after = {tuple(r.get(k) for k in KEY): r for r in new.get("rows", [])}
    rows = []
    for key in [k for k in after if k in before]:
        a, b = before[key], after[key]
        entry: dict[str, Any] = dict(zip(KEY, key))
        ci = median_ratio_ci([(b.get("samples_ms") or [], a.get("samples_ms") or [])])
        entry.update(old_p50_ms=a.get("p50_ms"), new_p50_ms=b.get("p50_ms"),
                     latency_ratio=ci[0] if ci else None, latency_ci=list(ci[1:]) if ci else None)
        problems = []
        changed = _model_changed(old, new, key[0]) or ("input shape" if a.get("shape") != b.get("shape") else None)
        unstable = a.get("unstable_timing") or unstable_timing(a) or b.get("unstable_timing") or unstable_timing(b)
        if ci is None:
            entry["latency"] = "no samples" if a.get("p50_ms") and b.get("p50_ms") else "not timed"
        elif changed:  # another model or input: its latency says nothing of a regression
            entry["latency"] = f"not compared: the {changed} changed"
        elif unstable:  # a median disturbed by other load is no evidence either way
            entry["latency"] = "unstable timing"
        elif ci[1] > 1 + threshold:
            entry["latency"] = "regression"
            problems.append(f"{100 * (ci[0] - 1):.0f} % slower, interval [{ci[1]:.2f}, {ci[2]:.2f}] above {1 + threshold:.2f}")
        elif ci[2] < 1:
            entry["latency"] = "faster"
        else:
            entry["latency"] = "within noise"
        for metric in ACCURACY:
            x, y = _num(a.get(metric)), _num(b.get(metric))
            entry[f"delta_{metric}"] = None if x is None or y is None else (0.0 if x == y else y - x)
        if a.get("passed") is True and b.get("passed") is False:
            problems.append("validation passed before, fails now")
        entry["regression"] = bool(problems)
        entry["problems"] = problems
        rows.append(entry)
    return {"threshold": threshold, "rows": rows,
            "regressions": [r for r in rows if r["regression"]],
            "faster": [r for r in rows if r["latency"] == "faster"],
            "added": [dict(zip(KEY, k)) for k in after if k not in before],
            "removed": [dict(zip(KEY, k)) for k in before if k not in after]}


#: Model facts in summary.json that do not change what is timed (limits are judged per row).
_NOT_MODEL = ("tolerances", "points")


def _model_changed(old: dict[str, Any], new: dict[str, Any], model: Any) -> str | None:
    """"model" when the two summaries describe different models of that name (another
    checkpoint, preset, parameters or layout), else None."""
    a, b = (s.get("models", {}).get(model) for s in (old, new))
    if not isinstance(a, dict) or not isinstance(b, dict):
        return None
    same = {k: v for k, v in a.items() if k not in _NOT_MODEL} == {k: v for k, v in b.items() if k not in _NOT_MODEL}
    return None if same else "model"


def row_name(row: dict[str, Any]) -> str:
    return f"{row['model']} / {row['component']} / {row['variant']} / {row['backend']} @ {row['point']}"


def describe(row: dict[str, Any]) -> str:
    """One line for a compared row: latency ratio with its interval and the accuracy changes."""
    if row.get("latency_ratio") is not None:
        lo, hi = row["latency_ci"]
        speed = f"latency x{row['latency_ratio']:.3f} [{lo:.3f}, {hi:.3f}] ({row['latency']})"
    else:
        speed = f"latency {row['latency']}"
    acc = ", ".join(f"Δ{m} {row[f'delta_{m}']:+.3g}" for m in ACCURACY if row.get(f"delta_{m}"))
    line = f"{row_name(row)}: {speed}" + (f", {acc}" if acc else "")
    if row.get("problems"):
        line += " — REGRESSION: " + "; ".join(row["problems"])
    return line


def render(result: dict[str, Any]) -> list[str]:
    lines = [describe(r) for r in result["rows"]]
    lines += [f"{row_name(r)}: new" for r in result["added"]] + [f"{row_name(r)}: gone" for r in result["removed"]]
    lines.append(f"{len(result['regressions'])} regression(s) beyond noise (threshold {100 * result['threshold']:.0f} %), "
                 f"{len(result['faster'])} row(s) faster beyond noise, {len(result['rows'])} row(s) compared")
    return lines


def main(old: str, new: str, threshold: float = THRESHOLD) -> int:
    """``python -m ttskiln compare OLD NEW``: 1 when any row regressed beyond noise."""
    import sys

    if not threshold >= 0:
        print(f"ttskiln compare: error: --threshold must be 0 or more, got {threshold}", file=sys.stderr)
        return 2
    summaries = []
    for path in (old, new):
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            print(f"ttskiln compare: error: {path}: cannot read a summary.json ({type(exc).__name__}: {exc})", file=sys.stderr)
            return 2
        if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
            print(f"ttskiln compare: error: {path} is not a ttskiln summary.json (no rows)", file=sys.stderr)
            return 2
        summaries.append(data)
    result = compare_summaries(summaries[0], summaries[1], threshold)
    print("\n".join(render(result)))
    if result["removed"]:  # a row that vanished is a check that no longer runs
        print(f"ttskiln compare: {len(result['removed'])} row(s) of OLD are missing from NEW", file=sys.stderr)
    return 1 if result["regressions"] or result["removed"] else 0
