"""The chain stage: a family's multi-graph run (text -> waveform, prefill + decode, ...).

Chains use the exported fp32 graphs of the model (and of linked models, e.g. a vocoder) and
the family's host code. They return report rows (accuracy against the PyTorch chain, latency)
that the report merges with the per-component rows, and may write audio next to them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ttskiln.atomic import write_json
from ttskiln.errors import TtskilnError, one_line
from ttskiln.families import get_family
from ttskiln.families.base import ChainJob
from ttskiln.rows import ROWS_FILE, error_row
from ttskiln.runners import label



def run_chain(
    *,
    model: str,
    family: str,
    chain: str,
    point: str,
    sizes: dict[str, int],
    checkpoint: str,
    options: dict[str, Any],
    artifacts: dict[str, str],
    linked: dict[str, dict[str, Any]],
    tolerances: dict[str, float],
    bench: dict[str, int],
    seed: int,
    directory: str,
) -> list[dict[str, Any]]:
    fam = get_family(family)
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    job = ChainJob(
        model=model,
        chain=chain,
        point=point,
        sizes=dict(sizes),
        checkpoint=Path(checkpoint),
        config=fam.read_config(Path(checkpoint), options),
        options=dict(options),
        artifacts=dict(artifacts),
        linked={role: dict(meta) for role, meta in linked.items()},
        tolerances=dict(tolerances),
        bench=dict(bench),
        seed=seed,
        directory=out,
    )
    try:
        rows = fam.run_chain(job)
    except MemoryError:
        raise
    except Exception as exc:  # a chain that cannot run is a failed row with its reason
        import traceback

        traceback.print_exc()
        reason = one_line(exc) if isinstance(exc, TtskilnError) else f"{type(exc).__name__}: {one_line(exc)}"
        print(f"ttskiln verdict: chain {chain} at point {point}: FAIL: {reason}")
        rows = [error_row(variant="fp32", backend=label("ort-cpu"), error=reason,
                          failure=f"chain cannot run: {reason}").to_dict()]
    for row in rows:
        row.setdefault("model", model)
        row.setdefault("component", chain)
        row["chain"] = chain
        row.setdefault("point", point)
        row.setdefault("artifact", ", ".join(sorted(artifacts.values())))
    write_json(out / ROWS_FILE, rows)
    return rows
