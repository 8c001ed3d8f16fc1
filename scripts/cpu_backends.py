"""Side by side in one process: the CPU backends on one Vocos graph, against PyTorch.

    python scripts/cpu_backends.py [--preset vocos-mel-24khz] [--frames 1024] [--threads 2]

Writes a synthetic checkpoint of the preset (seeded weights), exports and simplifies the
vocoder graph as the pipeline does, then times ONNX Runtime fp32, OpenVINO fp32 and OpenVINO
bf16 (``ttskiln.runners``) on one mel input and prints each one's median latency and its max
abs error against PyTorch eager. A measurement to read, not a test.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from ttskiln.benchmark import time_calls
from ttskiln.errors import ConfigError, TtskilnError, one_line
from ttskiln.families import get_family
from ttskiln.runners import TorchRunner, artifact_runner, label

BACKENDS = ("ort-cpu", "openvino-cpu", "openvino-cpu-bf16")


def ratio(base: float | None, p50: float | None) -> str:
    """``base / p50`` to two significant digits (0.0040x, 1.3x, 12x), or "–" without a timing."""
    if not base or not p50:
        return "–"
    value = base / p50
    return f"{value:.0f}x" if value >= 10 else f"{value:#.2g}x"


def main() -> int:
    try:
        run()
    except TtskilnError as exc:
        print(f"cpu_backends: {one_line(exc)}", file=sys.stderr)
        return 2
    return 0


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="vocos-mel-24khz")
    parser.add_argument("--frames", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    if args.frames < 1:
        raise ConfigError(f"--frames: {args.frames} frames; give at least 1")

    from ttskiln.export import export_component
    from ttskiln.simplify import simplify_onnx

    fam = get_family("vocos")
    config = fam.synthetic_config(args.preset, {})
    info = fam.describe(config)
    spec = info.component("vocoder")
    feed = fam.make_inputs(info, "vocoder", {"batch": 1, "frames": args.frames}, np.random.default_rng(0))
    with tempfile.TemporaryDirectory() as tmp:
        ckpt, raw, onnx = Path(tmp) / "ckpt", Path(tmp) / "export.onnx", Path(tmp) / "fp32.onnx"
        fam.write_synthetic(config, ckpt, seed=0)
        export_component(family="vocos", checkpoint=str(ckpt), options={}, component="vocoder", opset=18,
                         output=str(raw))
        simplify_onnx(source=str(raw), output=str(onnx))
        torch_runner = TorchRunner(fam.component_module(fam.load(ckpt, config), "vocoder"), spec.input_names,
                                   spec.output_names, threads=args.threads)
        rows = []
        with torch_runner:
            expected = torch_runner.infer(feed)
            rows.append(("pytorch-eager", time_calls(torch_runner.timed_call(feed), args.warmup, args.repeats)["p50_ms"], 0.0))
        for name in BACKENDS:
            with artifact_runner(name, onnx, threads=args.threads) as runner:
                got = runner.infer(feed)
                p50 = time_calls(runner.timed_call(feed), args.warmup, args.repeats)["p50_ms"]
            err = max(float(np.abs(got[k] - expected[k]).max()) for k in expected)
            rows.append((label(name), p50, err))
    base = rows[1][1]
    print(f"vocos {args.preset}, {args.frames} frames, batch 1, {args.threads} thread(s), "
          f"{args.warmup} warm-up + {args.repeats} timed calls")
    print(f"{'backend':<20} {'p50 ms':>9} {'vs ort fp32':>12} {'max abs err vs torch':>22}")
    for name, p50, err in rows:
        print(f"{name:<20} {p50:>9.2f} {ratio(base, p50):>12} {err:>22.3g}")


if __name__ == "__main__":
    sys.exit(main())
