"""Stage 6: the report — summary.json, summary.md and index.html with a latency plot per model.

One row per model x component x variant x backend x profile point (``ttskiln.rows``). A timed
artifact's row joins its benchmark record (speed) with the validation record (accuracy) of the
same artifact, point and backend; a backend without a validation of its own has no verdict
and says so ("not validated"), never borrowing another backend's. PyTorch eager rows are the
reference (no error metrics, speedup 1). A row whose timings were disturbed by other load
(``unstable_timing``) keeps its numbers, marked, is listed under "Unstable timings", and no
comparison beyond noise is made with it.
"""

from __future__ import annotations

import html
import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from ttskiln.atomic import atomic_path, write_json, write_text
from ttskiln.environment import environment
from ttskiln.history import compare_summaries, describe, history_dir, previous_entry, source_state, write_history
from ttskiln.rows import ROW_FIELDS  # noqa: F401  (the row keys, for readers of summary.json)
from ttskiln.rows import REFERENCE_BACKEND, Row, accuracy_row, latency_row, not_validated_reason
from ttskiln.runners import BACKENDS
from ttskiln.ship import DEFAULT_POLICY, reproduce_command, ship_table
from ttskiln.stats import MARGIN, UNSTABLE_LOAD_PER_CORE, UNSTABLE_P50_OVER_MIN, faster_beyond_noise, median_ratio_ci, unstable_timing

SYNTHETIC_NOTE = (
    "SYNTHETIC WEIGHTS: {models} use seeded random weights in the released file format, "
    "not trained checkpoints. Accuracy and speed are real measurements of these graphs; the audio is not speech."
)


PARTIAL_NOTE = (
    "PARTIAL REPORT: some jobs failed (listed under Failed jobs); the rows below are the records "
    "that exist. Artifacts of the failed jobs were not built, validated or timed."
)


#: What a benchmark job measures about deploying the artifact (``ttskiln.benchmark.deployment_facts``).
DEPLOYMENT_FIELDS = ("file_bytes", "load_ms", "first_call_ms", "peak_rss_mb", "batch", "requests_per_s", "audio_s_per_s")


def deployment_table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per artifact (model, component, variant, backend): size on disk, load time and first-call
    latency (medians over its points), the benchmark process's peak memory (max), and its best
    throughput at batch 1 and at its largest batch, with whether batching pays (> 10 % more
    audio seconds per second)."""
    groups: dict[tuple[str, str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row.get("load_ms") is not None and not row.get("chain"):
            groups[(row["model"], row["component"], row["variant"], row["backend"])].append(row)
    table = []
    for (model, component, variant, backend), group in sorted(groups.items()):
        def median(key: str) -> float | None:
            values = sorted(r[key] for r in group if r.get(key) is not None)
            return values[len(values) // 2] if values else None

        def best(rows_: list[dict[str, Any]]) -> float | None:
            values = [r["audio_s_per_s"] or r["requests_per_s"] for r in rows_ if (r.get("audio_s_per_s") or r.get("requests_per_s"))]
            return max(values) if values else None

        largest = max((r.get("batch") or 1) for r in group)
        single, batched = best([r for r in group if (r.get("batch") or 1) == 1]), best([r for r in group if (r.get("batch") or 1) == largest])
        table.append({
            "model": model, "component": component, "variant": variant, "backend": backend,
            "file_bytes": group[0].get("file_bytes"), "load_ms": median("load_ms"), "first_call_ms": median("first_call_ms"),
            "peak_rss_mb": max((r["peak_rss_mb"] for r in group if r.get("peak_rss_mb")), default=None),
            "throughput_batch1": single, "largest_batch": largest, "throughput_largest_batch": batched if largest > 1 else None,
            "batching_pays": (batched > 1.1 * single) if largest > 1 and single and batched else None,
            "throughput_unit": "audio s/s" if any(r.get("audio_s_per_s") for r in group) else "requests/s",
        })
    return table


DEPLOYMENT_COLUMNS: tuple[tuple[str, Any], ...] = (
    ("component", lambda d: d["component"]),
    ("variant", lambda d: d["variant"]),
    ("backend", lambda d: d["backend"]),
    ("size MB", lambda d: _fmt(d["file_bytes"] / 1e6 if d["file_bytes"] else None, ".2f")),
    ("load ms", lambda d: _fmt(d["load_ms"], ".1f")),
    ("first call ms", lambda d: _fmt(d["first_call_ms"], ".1f")),
    ("peak RSS MB", lambda d: _fmt(d["peak_rss_mb"], ".0f")),
    ("throughput, batch 1", lambda d: f"{_fmt(d['throughput_batch1'], '.1f')} {d['throughput_unit']}"),
    ("at largest batch", lambda d: f"{_fmt(d['throughput_largest_batch'], '.1f')} (batch {d['largest_batch']})"
     if d["throughput_largest_batch"] else "–"),
    ("batching pays", lambda d: {True: "yes", False: "no", None: "–"}[d["batching_pays"]]),
)


def _load(paths: list[str]) -> list[dict[str, Any]]:
    return [json.loads(Path(p).read_text()) for p in paths]


def _load_records(paths: list[str]) -> list[dict[str, Any]]:
    """Records with their own path (``record``) for the reproduce commands."""
    return [{**json.loads(Path(p).read_text()), "record": str(p)} for p in paths]


def build_rows(validations: list[dict[str, Any]], benchmarks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows from validation and benchmark records; a record's own path (``record``, set by
    ``write_report``) goes into the row's reproduce command. A timed artifact takes the
    validation of its own backend only: where there is none, the row has no verdict and says
    why (``not_validated``); PyTorch eager rows are the reference (no verdict)."""
    checks = {(v["model"], v["component"], v["variant"], v["point"], v["backend"]): v for v in validations}
    validated_on: dict[tuple[str, str, str, str], list[str]] = defaultdict(list)
    for key in checks:
        validated_on[key[:4]].append(key[4])
    torch_p50 = {
        (b["model"], b["component"], b["point"]): b["p50_ms"] for b in benchmarks
        if b["backend"] == REFERENCE_BACKEND and b.get("p50_ms")
    }
    torch_samples = {
        (b["model"], b["component"], b["point"]): b.get("samples_ms") for b in benchmarks
        if b["backend"] == REFERENCE_BACKEND and b.get("p50_ms")
    }
    torch_rows = {
        (b["model"], b["component"], b["point"]): b for b in benchmarks
        if b["backend"] == REFERENCE_BACKEND and b.get("p50_ms")
    }
    rows = []
    for bench in benchmarks:
        key = (bench["model"], bench["component"], bench["variant"], bench["point"], bench["backend"])
        check = checks.get(key, {})
        records = [p for p in (check.get("record"), bench.get("record")) if p]
        row = latency_row(
            model=bench["model"], component=bench["component"], variant=bench["variant"], backend=bench["backend"],
            point=bench["point"], artifact=bench["artifact"], timing=bench,
            reference_ms=torch_p50.get((bench["model"], bench["component"], bench["point"])),
            audio_seconds=bench["audio_seconds"],
            not_validated=None if check else not_validated_reason(bench["backend"], validated_on.get(key[:4], [])),
            speedup_ci=_speedup_ci(torch_samples.get((bench["model"], bench["component"], bench["point"])),
                                   bench.get("samples_ms")),
            samples_ms=bench.get("samples_ms"),
            threads=bench.get("threads"),
            records=records,
            shape=bench["shape"],
            gflop=bench.get("gflop"),
            node=bench.get("environment", {}).get("hostname"),
            slurm_job_id=bench.get("environment", {}).get("slurm_job_id"),
            quantized=check.get("quantized"),
            **{k: bench.get(k) for k in DEPLOYMENT_FIELDS},
            reproduce=reproduce_command(records, bench.get("threads")),
        )
        reference = torch_rows.get((bench["model"], bench["component"], bench["point"]))
        if bench["backend"] != REFERENCE_BACKEND and reference is not None and row.speedup_vs_torch is not None:
            shaky = unstable_timing(reference)
            if shaky:  # the speedup divides by a disturbed median: shown, marked, not trusted
                row.extra["reference_unstable_timing"] = f"{REFERENCE_BACKEND} baseline: {shaky}"
        if check:
            row = row.with_accuracy(check.get("metrics", {}), check.get("failures", []), passed=check.get("passed"))
        if bench.get("error"):  # an artifact that cannot run has no verdict but "failed"
            row.passed, row.error = False, bench["error"]
            row.failures = row.failures + [bench["error"]]
        if "chunking" in check:
            chunk = check["chunking"]
            row.extra["chunking"] = {k: chunk.get(k) for k in ("window", "overlap", "crossfade", "chunks")}
            row.extra["chunk_boundary_max_abs_err"] = chunk.get("boundary_max_abs_err")
            row.extra["chunk_interior_max_abs_err"] = chunk.get("interior_max_abs_err")
        rows.append(row.to_dict())
    # Validated artifacts without a benchmark (none today) still get their accuracy row.
    benched = {(r["model"], r["component"], r["variant"], r["point"], r["backend"]) for r in rows}
    for key, check in checks.items():
        if key not in benched:
            records = [check["record"]] if check.get("record") else []
            rows.append(accuracy_row(
                model=key[0], component=key[1], variant=key[2], point=key[3], backend=key[4],
                artifact=check["artifact"], metrics=check["metrics"], failures=check["failures"], passed=check["passed"],
                shape=check.get("shape"), quantized=check.get("quantized"),
                # a file artifact (the ggml model file) says its size and tensor count
                **{k: check[k] for k in ("file_bytes", "tensors") if k in check},
                records=records, reproduce=reproduce_command(records, None),
            ).to_dict())
    rows.sort(key=lambda r: (r["model"], r["component"], r["point"], r["backend"] != REFERENCE_BACKEND, r["variant"]))
    return rows


def _speedup_ci(torch: list[float] | None, samples: list[float] | None) -> list[float] | None:
    """The interval of median(PyTorch) / median(this row) over the raw samples."""
    ci = median_ratio_ci([(torch, samples)]) if torch and samples else None
    return list(ci[1:]) if ci else None


def chain_rows(directories: list[str]) -> list[dict[str, Any]]:
    """Rows written by chain jobs (``rows.json`` in each chain output folder)."""
    from ttskiln.rows import ROWS_FILE

    rows = []
    for directory in directories:
        for row in json.loads((Path(directory) / ROWS_FILE).read_text()):
            rows.append(Row.from_dict(row).to_dict(complete=True))
    return rows


#: The GEMM peak a row's variant is scored against (see ``ttskiln.flops.gemm_peak``).
PEAK_PRECISION = {"int8": "int8", "fp16": "fp16"}


def backend_precision(backend_label: str | None) -> str | None:
    """The arithmetic a backend forces on the graph (OpenVINO's precision hint: ``bf16`` over
    the fp32 graph), or None where the backend runs the graph's own precision."""
    for entry in BACKENDS.values():
        if backend_label in (entry.name, entry.label, *entry.aliases):
            return entry.precision
    return None


def no_peak_reason(peak: dict[str, Any] | None, backend_label: str | None) -> str | None:
    """Why a row of ``backend_label`` gets no share of a peak although one is measured: its
    arithmetic (bf16) has no measured peak, and the fp32 one would overstate the share."""
    precision = backend_precision(backend_label)
    if not peak or precision is None or precision in (peak.get("peaks") or {"fp32": None}):
        return None
    return f"{precision} arithmetic ({backend_label}): no {precision} GEMM peak is measured"


def row_peak(peak: dict[str, Any] | None, variant: str, backend_label: str | None = None) -> float | None:
    """The measured peak (GFLOP/s, or GOP/s for int8) for rows of ``variant`` on ``backend_label``;
    None where the backend's arithmetic has no measured peak (``no_peak_reason``)."""
    if not peak or no_peak_reason(peak, backend_label):
        return None
    per = peak.get("peaks") or {"fp32": {"gflops": peak.get("gflops")}}
    precision = backend_precision(backend_label) or PEAK_PRECISION.get(variant, "fp32")
    entry = per.get(precision) or per.get("fp32") or {}
    return entry.get("gflops")


def add_speed_context(rows: list[dict[str, Any]], peak: dict[str, Any] | None) -> list[str]:
    """GFLOP/s (work counted from the fp32 graph at the point's shapes) against the machine's
    GEMM peak in the row's own precision (none for bf16 arithmetic: no bf16 peak is measured, and
    the fp32 one would overstate its share; ``no_peak`` says so), and the star (``fastest_within_tolerance``): at each
    model/component/point, the row within tolerance that is faster than every other such row
    beyond noise, or no row at all when none is (nor when one of them has unstable timings).
    Returns a line per row whose share of its peak exceeds 100 %
    (then the peak is wrong; the share is shown as measured, never clipped)."""
    work = {(r["model"], r["component"], r["point"]): r.get("gflop") for r in rows if r["variant"] == "fp32" and r.get("gflop")}
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    over = []
    for row in rows:
        key = (row["model"], row["component"], row["point"])
        groups[key].append(row)
        gflop = work.get(key) if row["variant"] != "fp32-chunked" else None
        row["gflop"] = gflop
        row["gflops"] = gflop / (row["p50_ms"] / 1e3) if gflop and row.get("p50_ms") else None
        limit = row_peak(peak, row["variant"], row.get("backend"))
        row["peak_fraction"] = row["gflops"] / limit if row["gflops"] and limit else None
        row["no_peak"] = no_peak_reason(peak, row.get("backend")) if row["gflops"] else None
        if row["peak_fraction"] and row["peak_fraction"] > 1:
            over.append(f"{row['model']} / {row['component']} / {row['variant']} @ {row['point']}: "
                        f"{row['gflops']:.1f} GFLOP/s is {100 * row['peak_fraction']:.0f} % of the measured "
                        f"{backend_precision(row.get('backend')) or PEAK_PRECISION.get(row['variant'], 'fp32')} peak {limit:.1f}")
        row["fastest_within_tolerance"] = False
    for group in groups.values():
        # Chain rows time different things per variant (one step, a whole run): not comparable.
        eligible = [r for r in group if r.get("p50_ms") and not r.get("chain")
                    and (r["passed"] is True or r["backend"] == REFERENCE_BACKEND)]
        if any(r.get("unstable_timing") for r in eligible):
            continue  # a disturbed median beats nothing and is beaten by nothing
        # The star needs a win beyond noise over every other eligible row (a bootstrap interval of
        # the ratio of medians wholly below 1); where none wins so, nothing is starred.
        for row in eligible:
            if all(faster_beyond_noise(row.get("samples_ms") or [], other.get("samples_ms") or [])
                   for other in eligible if other is not row):
                row["fastest_within_tolerance"] = True
                break
    return over


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "inf" if value > 0 else ("-inf" if value < 0 else "nan")
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def write_report(
    *,
    validations: list[str],
    benchmarks: list[str],
    models: dict[str, dict[str, Any]],
    summary_json: str,
    summary_md: str,
    index_html: str,
    plots: dict[str, str],
    gemm_peak: str | None = None,
    chains: list[str] | None = None,
    skipped: dict[str, str] | None = None,
    trtllm_checkpoints: list[str] | None = None,
    failed_jobs: list[dict[str, Any]] | None = None,
    partial: bool = False,
    policy: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write summary.json, summary.md, index.html and the plots from the records given.

    ``failed_jobs`` (model, stage, log, error) are jobs that ended without a record; with
    ``partial`` the report says it covers only the records that exist (a failed run).
    ``policy`` (the config's ``policy``) picks the ship table's artifacts. A copy of the
    summary is kept under ``history/`` beside summary.json and compared with the last one.
    """
    policy = {**DEFAULT_POLICY, **(policy or {})}
    bench_records = _load_records(benchmarks)
    models = {name: dict(meta) for name, meta in models.items()}
    for folder in trtllm_checkpoints or []:
        model = Path(folder).parts[1] if Path(folder).parts[0] == "artifacts" else None
        if model in models:
            models[model]["trtllm_checkpoint"] = _trtllm_checkpoint(folder)
    rows = build_rows(_load_records(validations), bench_records) + chain_rows(chains or [])
    peak = json.loads(Path(gemm_peak).read_text()) if gemm_peak else None
    over_peak = add_speed_context(rows, peak)
    synthetic = sorted(name for name, meta in models.items() if meta.get("synthetic"))
    hosts = sorted({b["environment"]["hostname"] for b in bench_records})
    env = bench_records[0]["environment"] if bench_records else environment()
    provenance = source_state()
    summary = {
        "synthetic_weights": bool(synthetic),
        "notes": ([PARTIAL_NOTE] if partial else []) + ([SYNTHETIC_NOTE.format(models=", ".join(synthetic))] if synthetic else []),
        "models": models,
        "environment": {**env, "hosts": hosts, "gemm_peak": peak, "provenance": provenance},
        "skipped_stages": [f"{stage}: skipped, {why}" for stage, why in sorted((skipped or {}).items())],
        "over_peak": over_peak,
        "deployment": deployment_table(rows),
        "partial": partial,
        "failed_jobs": sorted(failed_jobs or [], key=lambda f: (str(f.get("model")), f.get("stage", ""), f.get("log", ""))),
        "provenance": provenance,
        "policy": policy,
        "ship": ship_table(rows, policy),
        "since_last_run": None,
        "rows": rows,
    }
    summary = _json_safe(summary)
    history = history_dir(summary_json)
    previous = previous_entry(history) if history.is_dir() else None
    if previous is not None:
        result = compare_summaries(json.loads(previous.read_text()), summary)
        summary["since_last_run"] = {
            "previous": previous.name, "threshold": result["threshold"], "compared": len(result["rows"]),
            "regressions": [describe(r) for r in result["regressions"]],
            "faster": [describe(r) for r in result["faster"]],
            "added": len(result["added"]), "removed": len(result["removed"]),
        }
    write_json(summary_json, summary)
    write_history(summary, history)
    for model, path in plots.items():
        plot_latency(model, [r for r in rows if r["model"] == model], path)
    write_text(summary_md, render_markdown(summary))
    write_text(index_html, render_html(summary, {m: Path(p).name for m, p in plots.items()}))
    return summary


def plot_latency(model: str, rows: list[dict[str, Any]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for row in rows:
        if row.get("audio_seconds") and row.get("p50_ms"):
            label = f"{row['component']} {row['backend']} {row['variant']}"
            series[label].append((row["audio_seconds"], row["p50_ms"]))
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for label, points in sorted(series.items()):
        points.sort()
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
    ax.set_xlabel("audio produced per call (s, all batch items)")
    ax.set_ylabel("p50 latency (ms)")
    ax.set_title(f"{model}: latency vs length")
    ax.grid(True, alpha=0.3)
    if series:
        ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def _fmt(value: Any, spec: str = ".3g") -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "pass" if value else "FAIL"
    if isinstance(value, float):
        return format(value, spec) if math.isfinite(value) else ("inf" if value > 0 else str(value))
    return str(value)


def _shape(row: dict[str, Any]) -> str:
    return ";".join("x".join(str(d) for d in s) for s in (row.get("shape") or {}).values())


def _verdict(row: dict[str, Any]) -> str:
    """pass / FAIL; "not validated" for a row without a validation on its own backend (the
    reason is listed under the table), "reference" for the PyTorch eager rows."""
    if row["passed"] is None and row.get("not_validated"):
        return "not validated"
    if row["passed"] is None and row["backend"] == REFERENCE_BACKEND and not row.get("chain"):
        return "reference"
    return _fmt(row["passed"])


#: How a latency (or a speedup computed from one) with unstable timings is marked in the tables.
UNSTABLE_MARK = "(unstable)"
UNSTABLE_ADVICE = (
    f"{UNSTABLE_MARK}: the median of these timings is more than {UNSTABLE_P50_OVER_MIN:g}x the fastest call, or the "
    f"load average was over {UNSTABLE_LOAD_PER_CORE:g}x the cores, so other work loaded the machine while they ran; their numbers, and speedups computed from them, are not evidence. "
    "Rerun those benchmark jobs on an idle machine: `snakemake --forcerun benchmark_torch benchmark_onnx` "
    "(the whole benchmark stage), or each row's reproduce command."
)


def _unstable_lines(rows: list[dict[str, Any]]) -> list[str]:
    return [f"{r['model']} / {r['component']} / {r['variant']} / {r['backend']} @ {r['point']}: {r['unstable_timing']}"
            + (f" (reproduce: `{r['reproduce']}`)" if r.get("reproduce") else "")
            for r in rows if r.get("unstable_timing")]


def _failure_line(row: dict[str, Any]) -> str:
    """A failed row, named with its backend (a bf16 run of the fp32 graph is not an fp32 failure)."""
    return (f"{row['model']} / {row['component']} / {row['variant']} / {row['backend']} @ {row['point']}: "
            f"{'; '.join(row['failures'])}")


def _not_validated_lines(rows: list[dict[str, Any]]) -> list[str]:
    return [f"{r['model']} / {r['component']} / {r['variant']} / {r['backend']} @ {r['point']}: {r['not_validated']}"
            for r in rows if r["passed"] is None and r.get("not_validated")]


#: Result table columns: (header, cell).
COLUMNS: tuple[tuple[str, Any], ...] = (
    ("component", lambda r: r["component"]),
    ("variant", lambda r: r["variant"]),
    ("backend", lambda r: r["backend"]),
    ("point", lambda r: r["point"]),
    ("shape", _shape),
    ("max_abs_err", lambda r: _fmt(r["max_abs_err"])),
    ("mse", lambda r: _fmt(r["mse"])),
    ("cosine", lambda r: _fmt(r["cosine"], ".7f")),
    ("snr_db", lambda r: _fmt(r["snr_db"], ".1f")),
    ("mrstft", lambda r: _fmt(r.get("mrstft"))),
    ("logmel_l1", lambda r: _fmt(r.get("logmel_l1"))),
    ("passed", lambda r: _verdict(r)),
    ("int8 ops", lambda r: r.get("quantized") or ""),
    ("p50_ms", lambda r: _fmt(r["p50_ms"], ".2f") + (f" {UNSTABLE_MARK}" if r.get("unstable_timing") else "")),
    ("p90_ms", lambda r: _fmt(r["p90_ms"], ".2f")),
    ("p99_ms", lambda r: _fmt(r["p99_ms"], ".2f")),
    ("rtf", lambda r: _fmt(r["rtf"], ".4f")),
    ("speedup_vs_torch", lambda r: _fmt(r["speedup_vs_torch"], ".2f")
     + (f" {UNSTABLE_MARK}" if r["speedup_vs_torch"] is not None
        and (r.get("unstable_timing") or r.get("reference_unstable_timing")) else "")),
    ("GFLOP/s", lambda r: _fmt(r.get("gflops"), ".1f")),
    ("% of peak", lambda r: _fmt(100 * r["peak_fraction"], ".0f") if r.get("peak_fraction") else "–"),
    ("fastest beyond noise", lambda r: "★" if r.get("fastest_within_tolerance") else ""),
)


def _trtllm_checkpoint(folder: str) -> dict[str, Any]:
    """What a converted TensorRT-LLM checkpoint holds (for the model's header line)."""
    from safetensors import safe_open

    config = json.loads((Path(folder) / "config.json").read_text())
    weights = Path(folder) / "rank0.safetensors"
    with safe_open(str(weights), "np") as fh:
        count = len(list(fh.keys()))
    return {"path": str(folder), "dtype": config["dtype"], "tensors": count, "bytes": weights.stat().st_size}


def _trtllm_line(meta: dict[str, Any]) -> str | None:
    ck = meta.get("trtllm_checkpoint")
    if not ck:
        return None
    return (f"TensorRT-LLM checkpoint `{ck['path']}`: {ck['dtype']}, {ck['tensors']} tensors, "
            f"{ck['bytes'] / 1e6:.1f} MB (engine and its synth rows only where the GPU stages run)")


def _weights(meta: dict[str, Any]) -> str:
    if meta.get("synthetic"):
        return f"synthetic (seeded random weights, preset {meta.get('synthetic_preset')})"
    return f"checkpoint sha256 {str(meta.get('checkpoint_sha256'))[:12]}"


def _environment_lines(env: dict[str, Any]) -> list[str]:
    return [
        f"CPU: {env['cpu']} ({env['cpu_count']} logical cores), threads per backend: {env['threads']}",
        f"hosts: {', '.join(env.get('hosts', [])) or env['hostname']}",
        "versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()),
        _peak_line(env.get("gemm_peak")),
        *([f"ttskiln {env['provenance']['version']}, source {env['provenance']['source']}"] if env.get("provenance") else []),
        "RTF = p50 compute seconds / seconds of audio produced per call (all batch items); "
        "speedup = PyTorch eager p50 / this p50.",
    ]


def _peak_line(peak: dict[str, Any] | None) -> str:
    if not peak:
        return "GEMM peaks: not measured"
    per = peak.get("peaks") or {"fp32": {"gflops": peak["gflops"], "kernel": peak.get("library")}}
    parts = [f"{p} {v['gflops']:.1f} ({v['kernel']})" for p, v in per.items()]
    theory = peak.get("theoretical") or {}
    line = (f"GEMM peaks, measured at {peak.get('measured_at', 'an earlier run')} on {peak['threads']} threads "
            f"({peak['size']}^3): " + ", ".join(parts) + " GFLOP/s (int8: GOP/s); each row is scored against its precision's peak"
            "; bf16 rows (OpenVINO's bf16 hint) get no share (–): no bf16 peak is measured")
    if theory:
        line += (f"; theoretical at {theory['clock_ghz']:.2f} GHz with {theory['vector_bits']}-bit vectors: "
                 f"fp32 {theory['fp32']:.0f}, int8 {theory['int8']:.0f} ({theory['assumes']})")
    return line


SHIP_COLUMNS: tuple[tuple[str, Any], ...] = (
    ("model", lambda s: s["model"]),
    ("component", lambda s: s["component"]),
    ("artifact", lambda s: s["artifact"] or "–"),
    ("backend", lambda s: s["backend"] or "–"),
    ("variant", lambda s: s["variant"] or "–"),
    ("size", lambda s: f"{s['size_bytes'] / 1e6:.2f} MB" if s.get("size_bytes") is not None else "–"),
    ("speedup vs PyTorch [95 % CI]", lambda s: (f"{_fmt(s['speedup_vs_torch'], '.2f')}x"
                                                + (f" [{s['speedup_ci'][0]:.2f}, {s['speedup_ci'][1]:.2f}]" if s.get("speedup_ci") else ""))
                                               if s.get("speedup_vs_torch") is not None else "–"),
    ("Δ SNR vs fp32 (dB)", lambda s: _fmt(s.get("delta_snr_db"), "+.1f")),
    ("mrstft", lambda s: _fmt(s.get("mrstft"))),
    ("logmel_l1", lambda s: _fmt(s.get("logmel_l1"))),
    ("reason", lambda s: s["reason"]),
)


def _policy_line(policy: dict[str, Any]) -> str:
    limits = ", ".join(f"{k} {v}" for k, v in policy.items() if k != "objective" and v is not None) or "no limits"
    return (f"Policy: objective {policy['objective']}, {limits}. An artifact counts as faster only when the 95 % "
            f"bootstrap interval of the ratio of median latencies lies below {1 - MARGIN:.2f} (a {100 * MARGIN:.0f} % margin "
            "over one job's jitter); otherwise the most accurate is shipped. "
            "Accuracy is the worst over the points, against PyTorch; Δ SNR against the fp32 artifact.")


def _since_lines(since: dict[str, Any] | None) -> list[str]:
    if not since:
        return ["No earlier run in the history to compare with."]
    return ([f"Compared with {since['previous']}: {since['compared']} row(s), {len(since['regressions'])} regression(s) "
             f"beyond noise (threshold {100 * since['threshold']:.0f} %), {len(since['faster'])} faster beyond noise, "
             f"{since['added']} new, {since['removed']} gone."]
            + since["regressions"] + since["faster"])


def render_markdown(summary: dict[str, Any]) -> str:
    lines = ["# ttskiln report", ""]
    for note in summary["notes"]:
        lines += [f"> **{note}**", ""]
    if summary.get("ship"):
        lines += ["## What to ship", "", _policy_line(summary["policy"]), ""]
        lines += ["| " + " | ".join(h for h, _ in SHIP_COLUMNS) + " |", "|" + "---|" * len(SHIP_COLUMNS)]
        lines += ["| " + " | ".join(str(cell(s)).replace("|", "\\|") for _, cell in SHIP_COLUMNS) + " |" for s in summary["ship"]]
        lines.append("")
        lines += [f"- reproduce {s['model']} / {s['component']}: `{s['reproduce']}`" for s in summary["ship"] if s.get("reproduce")]
        lines.append("")
    lines += ["## Since the last run", ""] + [f"- {line}" for line in _since_lines(summary.get("since_last_run"))] + [""]
    for model, meta in summary["models"].items():
        lines += [f"## {model}", "", f"family {meta['family']}, checkpoint `{meta['checkpoint']}`, {_weights(meta)}, "
                  f"parameters {meta.get('parameters', '–')}", ""]
        if _trtllm_line(meta):
            lines += [_trtllm_line(meta), ""]
        lines += ["| " + " | ".join(h for h, _ in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        for row in (r for r in summary["rows"] if r["model"] == model):
            lines.append("| " + " | ".join(str(cell(row)) for _, cell in COLUMNS) + " |")
        lines.append("")
        facts = [d for d in summary.get("deployment", []) if d["model"] == model]
        if facts:
            lines += ["Deployment facts (each backend measured in its own benchmark process):", "",
                      "| " + " | ".join(h for h, _ in DEPLOYMENT_COLUMNS) + " |", "|" + "---|" * len(DEPLOYMENT_COLUMNS)]
            lines += ["| " + " | ".join(str(cell(d)) for _, cell in DEPLOYMENT_COLUMNS) + " |" for d in facts] + [""]
    if summary.get("over_peak"):
        lines += ["## Rows above their measured peak (the peak measurement is wrong)", ""]
        lines += [f"- {line}" for line in summary["over_peak"]] + [""]
    if summary.get("failed_jobs"):
        lines += ["## Failed jobs", ""]
        lines += [f"- {f.get('model') or '-'} / {f['stage']}: {f['error']} (log: `{f['log']}`)" for f in summary["failed_jobs"]]
        lines.append("")
    failed = [r for r in summary["rows"] if r.get("passed") is False]
    if failed:
        lines += ["## Failed validations", ""]
        lines += [f"- {_failure_line(r)}" for r in failed]
        lines.append("")
    unvalidated = _not_validated_lines(summary["rows"])
    if unvalidated:
        lines += ["## Not validated (no verdict on their own backend)", ""] + [f"- {line}" for line in unvalidated] + [""]
    unstable = _unstable_lines(summary["rows"])
    if unstable:
        lines += ["## Unstable timings", "", UNSTABLE_ADVICE, ""] + [f"- {line}" for line in unstable] + [""]
    if summary.get("skipped_stages"):
        lines += ["## Skipped stages", ""] + [f"- {line}" for line in summary["skipped_stages"]] + [""]
    lines += ["## Environment", ""] + [f"- {line}" for line in _environment_lines(summary["environment"])] + [""]
    return "\n".join(lines)


def render_html(summary: dict[str, Any], plots: dict[str, str]) -> str:
    esc = html.escape
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>ttskiln report</title>",
             "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;font-size:13px}"
             "td,th{border:1px solid #ccc;padding:3px 6px;text-align:right;vertical-align:top}td{max-width:28em;overflow-wrap:anywhere}th{background:#eee}"
             ".fail{background:#fdd}.banner{background:#fff3cd;border:1px solid #e0c060;padding:0.8em;margin:1em 0}</style>",
             "</head><body><h1>ttskiln report</h1>"]
    for note in summary["notes"]:
        parts.append(f"<div class='banner'><strong>{esc(note)}</strong></div>")
    if summary.get("ship"):
        parts.append(f"<h2>What to ship</h2><p>{esc(_policy_line(summary['policy']))}</p><table><tr>"
                     + "".join(f"<th>{esc(h)}</th>" for h, _ in SHIP_COLUMNS) + "</tr>")
        for entry in summary["ship"]:
            cls = " class='fail'" if entry.get("artifact") is None else ""
            parts.append(f"<tr{cls}>" + "".join(f"<td>{esc(str(cell(entry)))}</td>" for _, cell in SHIP_COLUMNS) + "</tr>")
        parts.append("</table>")
        # The commands are long: below the table, so that it fits a 1,400 px window.
        parts.append("<details><summary>Reproduce each recommendation</summary><ul>" + "".join(
            f"<li>{esc(e['model'])} / {esc(e['component'])}: <code>{esc(e['reproduce'])}</code></li>"
            for e in summary["ship"] if e.get("reproduce")) + "</ul></details>")
    parts.append("<h2>Since the last run</h2><ul>" + "".join(
        f"<li>{esc(line)}</li>" for line in _since_lines(summary.get("since_last_run"))) + "</ul>")
    for model, meta in summary["models"].items():
        parts.append(f"<h2>{esc(model)}</h2><p>family {esc(meta['family'])}; checkpoint {esc(str(meta['checkpoint']))}; "
                     f"{esc(_weights(meta))}; parameters {meta.get('parameters', '–')}</p>")
        if _trtllm_line(meta):
            parts.append(f"<p>{esc(_trtllm_line(meta).replace('`', ''))}</p>")
        if model in plots:
            parts.append(f"<img src='{esc(plots[model])}' alt='latency vs length for {esc(model)}'>")
        parts.append("<table><tr>" + "".join(f"<th>{h}</th>" for h, _ in COLUMNS) + "</tr>")
        for row in (r for r in summary["rows"] if r["model"] == model):
            cls = " class='fail'" if row.get("passed") is False else ""
            parts.append(f"<tr{cls}>" + "".join(f"<td>{esc(str(cell(row)))}</td>" for _, cell in COLUMNS) + "</tr>")
        parts.append("</table>")
        facts = [d for d in summary.get("deployment", []) if d["model"] == model]
        if facts:
            parts.append("<p>Deployment facts (each backend measured in its own benchmark process):</p><table><tr>"
                         + "".join(f"<th>{h}</th>" for h, _ in DEPLOYMENT_COLUMNS) + "</tr>"
                         + "".join("<tr>" + "".join(f"<td>{esc(str(cell(d)))}</td>" for _, cell in DEPLOYMENT_COLUMNS) + "</tr>"
                                   for d in facts) + "</table>")
        commands = [r for r in summary["rows"] if r["model"] == model and r.get("reproduce")]
        if commands:
            parts.append("<details><summary>Reproduce each row</summary><ul>" + "".join(
                f"<li>{esc(r['component'])} / {esc(r['variant'])} / {esc(r['backend'])} @ {esc(r['point'])}: "
                f"<code>{esc(r['reproduce'])}</code></li>" for r in commands) + "</ul></details>")
        for row in (r for r in summary["rows"] if r["model"] == model and r.get("audio")):
            parts.append(f"<p>{esc(row['component'])} / {esc(row['backend'])} @ {esc(row['point'])}: "
                         f"<audio controls src='../{esc(row['audio'])}'></audio> <code>{esc(row['audio'])}</code></p>")
    if summary.get("over_peak"):
        parts.append("<h2>Rows above their measured peak (the peak measurement is wrong)</h2><ul>"
                     + "".join(f"<li class='fail'>{esc(line)}</li>" for line in summary["over_peak"]) + "</ul>")
    if summary.get("failed_jobs"):
        parts.append("<h2>Failed jobs</h2><ul>" + "".join(
            f"<li class='fail'>{esc(str(f.get('model') or '-'))} / {esc(f['stage'])}: {esc(f['error'])} "
            f"(log: <code>{esc(f['log'])}</code>)</li>" for f in summary["failed_jobs"]) + "</ul>")
    failed = [r for r in summary["rows"] if r.get("passed") is False]
    if failed:
        parts.append("<h2>Failed validations</h2><ul>" + "".join(
            f"<li>{esc(_failure_line(r))}</li>" for r in failed) + "</ul>")
    unvalidated = _not_validated_lines(summary["rows"])
    if unvalidated:
        parts.append("<h2>Not validated (no verdict on their own backend)</h2><ul>"
                     + "".join(f"<li>{esc(line)}</li>" for line in unvalidated) + "</ul>")
    unstable = _unstable_lines(summary["rows"])
    if unstable:
        parts.append(f"<h2>Unstable timings</h2><p>{esc(UNSTABLE_ADVICE.replace('`', ''))}</p><ul>"
                     + "".join(f"<li class='fail'>{esc(line.replace('`', ''))}</li>" for line in unstable) + "</ul>")
    if summary.get("skipped_stages"):
        parts.append("<h2>Skipped stages</h2><ul>" + "".join(f"<li>{esc(line)}</li>" for line in summary["skipped_stages"]) + "</ul>")
    parts.append("<h2>Environment</h2><ul>" + "".join(f"<li>{esc(line)}</li>" for line in _environment_lines(summary["environment"])) + "</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)


def gate(*, validations: list[str], model: str, output: str, chains: list[str] | None = None,
         benchmarks: list[str] | None = None) -> None:
    """Fail if any artifact of ``model`` broke a tolerance or could not run, naming each."""
    from ttskiln.errors import ValidationFailed

    records = _load(validations) + [r for r in chain_rows(chains or []) if r.get("passed") is not None]
    records += [b | {"passed": False, "failures": [b["error"]]} for b in _load(benchmarks or []) if b.get("error")]
    failed = [v for v in records if not v["passed"]]
    if failed:
        lines = [f"{v['variant']} {v.get('component', '')} artifact {v['artifact']} at point {v['point']}"
                 f"{' on ' + v['backend'] if v.get('backend') else ''}: {'; '.join(v['failures'])}" for v in failed]
        raise ValidationFailed(f"model '{model}': {len(failed)} check(s) failed:\n  " + "\n  ".join(lines))
    write_text(output, f"{model}: {len(records)} validations passed\n")


def collect_failed_jobs(models: list[str], snakemake_log: str | None = None) -> list[dict[str, Any]]:
    """Jobs of this run that failed: their failure records (``logs/**/*.failed.json``), and
    failed jobs Snakemake's own log names that left none (killed, out of memory)."""
    import re

    from ttskiln.smk import FAILURE_SUFFIX

    found = []
    for path in sorted(Path("logs").rglob(f"*{FAILURE_SUFFIX}")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if record.get("model") in models or record.get("model") is None:
            found.append(record)
    seen = {f["log"] for f in found}
    if snakemake_log and Path(snakemake_log).is_file():
        text = Path(snakemake_log).read_text(errors="replace")
        for block in re.finditer(r"^Error in rule (\w+):\n((?:    .*\n)*)", text, re.M):
            body = block.group(2)
            log = re.search(r"^    log: (\S+)", body, re.M)
            wild = re.search(r"^    wildcards: (.*)$", body, re.M)
            model = re.search(r"model=([^,\s]+)", wild.group(1)) if wild else None
            if log and log.group(1) not in seen:
                seen.add(log.group(1))
                found.append({"model": model.group(1) if model else None, "stage": block.group(1), "log": log.group(1),
                              "error": "the job failed without a ttskiln error (killed, out of memory, or an executor fault); see its log"})
    return found
