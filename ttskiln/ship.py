"""The ship table: one recommended artifact per model and component, under the user's policy.

Candidates are the timed artifacts of a model's component (one per variant and backend, over
its profile points). An artifact is eligible when it passed validation at every point and
meets the policy's limits (worst case over the points). Among the eligible, those that no
other beats beyond noise form the top set (see ``ttskiln.stats``); the recommendation is the
most accurate of the top set (fp32 before fp16 before int8, then the higher worst SNR). So a
faster variant is shipped only when it is faster beyond noise; otherwise the most accurate.

Timings disturbed by other load (a row's ``unstable_timing``, see ``ttskiln.stats``) decide
nothing: two candidates either of which is unstable at a compared point are not compared
(neither beats the other), a speedup over an unstable PyTorch eager timing (or of an unstable
candidate) is not given, and ``min_speedup`` cannot be checked against it. The reason says so.
"""

from __future__ import annotations

import math
import os
import shlex
from collections import defaultdict
from typing import Any

from ttskiln.rows import REFERENCE_BACKEND
from ttskiln.stats import beyond_noise, median_ratio_ci

DEFAULT_POLICY: dict[str, Any] = {"objective": "latency", "max_mrstft": None, "min_snr_db": None, "min_speedup": None}
TORCH = REFERENCE_BACKEND
#: Most accurate first: the order the recommendation prefers among artifacts within noise.
VARIANT_ORDER = ("fp32", "fp16", "int8")


def reproduce_command(records: list[str], cores: int | None) -> str | None:
    """The Snakemake command that reruns exactly the jobs writing ``records`` (validation or
    benchmark JSON), rebuilding the artifact first only where it is missing or out of date."""
    if not records:
        return None
    return f"snakemake --cores {int(cores or 1)} --force " + " ".join(shlex.quote(p) for p in records)


def size_on_disk(artifact: str | None) -> int | None:
    """Bytes of an artifact's files (``a.onnx + a.onnx.data``), None where one is missing."""
    if not artifact:
        return None
    files = [p.strip() for p in str(artifact).split(" + ")]
    try:
        return sum(os.path.getsize(p) for p in files)
    except OSError:
        return None


def _finite(values: list[Any]) -> list[float]:
    return [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(v)]


def _worst(rows: list[dict[str, Any]], key: str, lowest: bool) -> float | None:
    values = _finite([r.get(key) for r in rows])
    if not values:
        return None
    return min(values) if lowest else max(values)


def _samples(row: dict[str, Any] | None) -> list[float]:
    return list((row or {}).get("samples_ms") or [])


def _ratio(a: dict[str, dict[str, Any]], b: dict[str, dict[str, Any]], points: list[str]) -> tuple[float, float, float] | None:
    """Ratio of medians a / b (geometric mean over the points both have) with its interval."""
    common = [p for p in points if p in a and p in b]
    if not common:
        return None
    return median_ratio_ci([(_samples(a[p]), _samples(b[p])) for p in common])


def _unstable_points(rows: dict[str, dict[str, Any]], points: list[str]) -> list[str]:
    """The compared points at which these rows' timings are unstable (``unstable_timing``)."""
    return [p for p in points if p in rows and rows[p].get("unstable_timing")]


def _label(c: dict[str, Any]) -> str:
    return f"{c['variant']} on {c['backend']}"


def _fmt_ci(ci: tuple[float, float, float]) -> str:
    return f"{ci[0]:.2f}x [{ci[1]:.2f}, {ci[2]:.2f}]"


def _candidates(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by: dict[tuple[str, str], dict[str, dict[str, Any]]] = defaultdict(dict)
    for row in rows:
        if (row["backend"] == TORCH or row.get("chain") or str(row["variant"]).endswith("-chunked")
                or not row.get("p50_ms")):
            continue
        by[(row["variant"], row["backend"])][row["point"]] = row
    order = {v: i for i, v in enumerate(VARIANT_ORDER)}
    return [{"variant": v, "backend": b, "rows": pts} for (v, b), pts in
            sorted(by.items(), key=lambda kv: (order.get(kv[0][0], len(order)), kv[0][1]))]


def _limits(c: dict[str, Any], policy: dict[str, Any]) -> list[str]:
    """Why a candidate is not eligible (empty: eligible)."""
    why = []
    unchecked = sorted(p for p, r in c["rows"].items() if r.get("passed") is None)
    failed = sorted(p for p, r in c["rows"].items() if r.get("passed") is not True and p not in unchecked)
    if failed:
        why.append(f"failed validation at {', '.join(failed)}")
    if unchecked:
        why.append(f"not validated on {c['backend']} at {', '.join(unchecked)}")
    if policy.get("max_mrstft") is not None and c["mrstft"] is not None and c["mrstft"] > policy["max_mrstft"]:
        why.append(f"mrstft {c['mrstft']:.3g} > max_mrstft {policy['max_mrstft']}")
    if policy.get("min_snr_db") is not None and c["snr_db"] is not None and c["snr_db"] < policy["min_snr_db"]:
        why.append(f"SNR {c['snr_db']:.1f} dB < min_snr_db {policy['min_snr_db']}")
    if policy.get("min_speedup") is not None:
        if c["speedup_unstable"]:
            why.append(f"min_speedup not checked: {c['speedup_unstable']}")
        elif c["speedup"] is None:
            why.append("no PyTorch timing to check min_speedup against")
        elif c["speedup"][0] < policy["min_speedup"]:
            why.append(f"speedup {c['speedup'][0]:.2f}x < min_speedup {policy['min_speedup']}")
    return why


def _compare_points(rows: list[dict[str, Any]], objective: str) -> list[str]:
    points = sorted({r["point"] for r in rows})
    if objective != "throughput" or not points:
        return points
    # Throughput: the point with the most audio per call (batch x length), where it is known.
    work = {r["point"]: r.get("audio_seconds") or 0.0 for r in rows}
    return [max(points, key=lambda p: (work.get(p) or 0.0, p))]


def ship_table(rows: list[dict[str, Any]], policy: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """One recommendation per model and component that has timed artifacts (see the module doc)."""
    policy = {**DEFAULT_POLICY, **(policy or {})}
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[(row["model"], row["component"])].append(row)
    table = []
    for (model, component), group in groups.items():
        candidates = _candidates(group)
        if not candidates:
            continue
        points = _compare_points([r for c in candidates for r in c["rows"].values()], policy["objective"])
        torch = {r["point"]: r for r in group if r["backend"] == TORCH and r.get("p50_ms")}
        torch_unstable = _unstable_points(torch, points)
        fp32 = next((c for c in candidates if c["variant"] == "fp32"), None)
        fp32_snr = _worst(list(fp32["rows"].values()), "snr_db", lowest=True) if fp32 else None
        for c in candidates:
            measured = list(c["rows"].values())
            c["snr_db"] = _worst(measured, "snr_db", lowest=True)
            c["mrstft"] = _worst(measured, "mrstft", lowest=False)
            c["logmel_l1"] = _worst(measured, "logmel_l1", lowest=False)
            c["speedup"] = _ratio(torch, c["rows"], points)  # median(torch) / median(candidate)
            c["unstable"] = _unstable_points(c["rows"], points)
            shaky = [f"{TORCH} timing unstable at {', '.join(torch_unstable)}"] if torch_unstable else []
            shaky += [f"{_label(c)} timing unstable at {', '.join(c['unstable'])}"] if c["unstable"] else []
            c["speedup_unstable"] = "; ".join(shaky)
            c["excluded"] = _limits(c, policy)
        eligible = [c for c in candidates if not c["excluded"]]
        entry: dict[str, Any] = {"model": model, "component": component, "objective": policy["objective"],
                                 "points": points}
        if not eligible:
            entry.update(artifact=None, backend=None, variant=None, size_bytes=None, speedup_vs_torch=None,
                         speedup_ci=None, snr_db=None, delta_snr_db=None, mrstft=None, logmel_l1=None, reproduce=None,
                         reason="nothing to ship: " + "; ".join(f"{_label(c)}: {', '.join(c['excluded'])}" for c in candidates))
        else:
            beats = {}  # (i, j): candidate i faster than j beyond noise
            for i, a in enumerate(eligible):
                for j, b in enumerate(eligible):
                    if i != j:  # an unstable timing on either side is no evidence: no win
                        ci = _ratio(a["rows"], b["rows"], points)
                        beats[(i, j)] = beyond_noise(ci) and not a["unstable"] and not b["unstable"]
            top = [i for i in range(len(eligible)) if not any(beats[(j, i)] for j in range(len(eligible)) if j != i)]
            best = min(top, key=lambda i: (VARIANT_ORDER.index(eligible[i]["variant"]) if eligible[i]["variant"]
                                           in VARIANT_ORDER else len(VARIANT_ORDER), -(eligible[i]["snr_db"] or 0.0)))
            chosen = eligible[best]
            others = [c for k, c in enumerate(eligible) if k != best]
            if not others:
                reason = "the only artifact passing validation and the policy"
            elif all(beats[(best, k)] for k in range(len(eligible)) if k != best):
                next_best = min(others, key=lambda c: _ratio(chosen["rows"], c["rows"], points)[0])
                ratio = _ratio(next_best["rows"], chosen["rows"], points)
                reason = (f"faster beyond noise than every other eligible artifact ({_label(next_best)} is "
                          f"{_fmt_ci(ratio)} its latency)")
            elif len(top) == 1:
                reason = "the only eligible artifact no other is faster than beyond noise"
            else:
                ties = [i for i in top if i != best]
                # A tie with an unstable timing on either side is no comparison at all: say so.
                within = [i for i in ties if not chosen["unstable"] and not eligible[i]["unstable"]]
                unsure = [i for i in ties if i not in within]
                parts = [f"within noise of {', '.join(_label(eligible[i]) for i in within)}"] if within else []
                if unsure:
                    parts.append("not compared beyond noise with " + ", ".join(_label(eligible[i]) for i in unsure)
                                 + " because timing was unstable (other load while timing) at "
                                 + "; ".join(f"{_label(c)}: {', '.join(c['unstable'])}"
                                             for c in eligible if c["unstable"])
                                 + ", rerun its benchmark jobs on an idle machine")
                reason = ", ".join(parts) + ": the most accurate of them"
            if chosen["speedup_unstable"]:
                reason += (f"; speedup vs {TORCH} not given: {chosen['speedup_unstable']} (other load while timing); "
                           "rerun the benchmark jobs on an idle machine")
            excluded = [f"{_label(c)}: {', '.join(c['excluded'])}" for c in candidates if c["excluded"]]
            if excluded:
                reason += "; excluded " + "; ".join(excluded)
            row0 = chosen["rows"][sorted(chosen["rows"])[0]]
            delta = None
            if chosen["snr_db"] is not None and fp32_snr is not None:
                delta = 0.0 if chosen["snr_db"] == fp32_snr else chosen["snr_db"] - fp32_snr
            records = [p for r in chosen["rows"].values() for p in r.get("records") or []]
            trusted = None if chosen["speedup_unstable"] else chosen["speedup"]
            entry.update(artifact=row0.get("artifact"), backend=chosen["backend"], variant=chosen["variant"],
                         size_bytes=size_on_disk(row0.get("artifact")),
                         speedup_vs_torch=trusted[0] if trusted else None,
                         speedup_ci=list(trusted[1:]) if trusted else None,
                         snr_db=chosen["snr_db"], delta_snr_db=delta, mrstft=chosen["mrstft"],
                         logmel_l1=chosen["logmel_l1"], reason=reason,
                         reproduce=reproduce_command(records, row0.get("threads")))
        entry["candidates"] = [{"variant": c["variant"], "backend": c["backend"],
                                "speedup_vs_torch": (c["speedup"][0] if c["speedup"] and not c["speedup_unstable"]
                                                     else None),
                                "excluded": c["excluded"]} for c in candidates]
        table.append(entry)
    return table
