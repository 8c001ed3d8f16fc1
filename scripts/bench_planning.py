"""How long Snakemake takes to plan: ``snakemake --version``, a no-op rerun of a built demo, and
dry runs of generated configs of N Vocos models x 4 profile points x 3 variants.

    python scripts/bench_planning.py [--demo-dir DIR] [--models 25 50 100] [--profile-out DIR] [--print-jobs]

A measurement, not a test: it prints a table (and ``--json`` writes it). The demo no-op rerun
needs a folder where the demo was built (``make demo``); without ``--demo-dir`` it is skipped.
With ``--profile-out`` each dry run also runs under cProfile and leaves its ``.prof`` there.
Dry runs use ``--quiet rules`` (the job table, not each job's block: printing thousands of
jobs is output, not planning); ``--print-jobs`` times them with every job printed.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def generated_config(models: int) -> dict:
    """``models`` tiny synthetic Vocos models, two profiles (opt and max: 4 points), 3 variants."""
    profile = {"batch": {"min": 1, "opt": 1, "max": 2}, "frames": {"min": 8, "opt": 24, "max": 40}}
    return {
        "models": {
            f"vocos_{i:03d}": {
                "family": "vocos",
                "checkpoint": {"synthetic": "tiny", "seed": i},
                "profiles": {"short": profile, "long": {**profile, "frames": {"min": 8, "opt": 48, "max": 64}}},
                "variants": ["fp32", "fp16", "int8"],
            }
            for i in range(models)
        }
    }


def timed(cmd: list[str], repeats: int, cwd: Path | None = None) -> tuple[float, str]:
    """The fastest of ``repeats`` runs (seconds) and the last run's output."""
    best, out = float("inf"), ""
    for _ in range(repeats):
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)
        elapsed = time.perf_counter() - start
        out = proc.stdout + proc.stderr
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{out[-3000:]}")
        best = min(best, elapsed)
    return best, out


def planned(output: str) -> int:
    """Jobs a dry run would execute (the ``total`` line of its job table, 0 when none)."""
    match = re.search(r"^total\s+(\d+)", output, re.M)
    return int(match.group(1)) if match else 0


def demo_line(seconds: float, version_s: float, jobs: int) -> str:
    """The demo figure: a no-op rerun only when nothing is planned; a folder that is not up to
    date plans a real run, and its time is no no-op figure."""
    timing = f"{seconds:.2f} s ({seconds / version_s:.2f}x --version)"
    if jobs:
        return f"demo dry run: {timing}, not a no-op: {jobs} jobs planned (rebuild the demo first)"
    return f"demo no-op dry run: {timing}, 0 jobs planned"


def dry_run(workdir: Path, configfile: Path | None, profile: Path | None, print_jobs: bool = False) -> list[str]:
    """A dry run; without ``print_jobs``, ``--quiet rules`` leaves out each job's block (the
    job table with its ``total`` line stays), so that what is timed is planning, not printing."""
    head = [sys.executable, "-m", "cProfile", "-o", str(profile), "-m", "snakemake"] if profile else [SNAKEMAKE]
    cmd = [*head, "-s", str(REPO / "Snakefile"), "-d", str(workdir), "-n", "--cores", "2"]
    cmd += [] if print_jobs else ["--quiet", "rules"]
    return cmd + (["--configfile", str(configfile)] if configfile else [])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo-dir", type=Path, help="a folder where the demo was built")
    parser.add_argument("--models", type=int, nargs="*", default=[25, 50, 100])
    parser.add_argument("--repeats", type=int, default=2, help="runs per measurement (the fastest counts)")
    parser.add_argument("--profile-out", type=Path, help="also profile each dry run into this folder")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--print-jobs", action="store_true",
                        help="let the dry runs print every job (by default --quiet rules: the job table only)")
    args = parser.parse_args(argv)

    results: dict = {"print_jobs": args.print_jobs}
    version_s, _ = timed([SNAKEMAKE, "--version"], max(args.repeats, 3))
    results["snakemake_version_s"] = round(version_s, 3)
    print(f"snakemake --version: {version_s:.2f} s")

    if args.profile_out:
        args.profile_out.mkdir(parents=True, exist_ok=True)
    if args.demo_dir:
        demo = args.demo_dir.resolve()
        seconds, out = timed(dry_run(demo, None, None, args.print_jobs), args.repeats)
        jobs = planned(out)
        results["demo_noop"] = {"seconds": round(seconds, 3), "jobs": jobs, "noop": jobs == 0,
                                "ratio_to_version": round(seconds / version_s, 2)}
        print(demo_line(seconds, version_s, jobs))
        if args.profile_out:
            timed(dry_run(demo, None, args.profile_out / "demo.prof", args.print_jobs), 1)

    results["generated"] = []
    with tempfile.TemporaryDirectory(prefix="ttskiln-bench-plan-") as tmp:
        for n in args.models:
            workdir = Path(tmp) / f"m{n}"
            workdir.mkdir()
            configfile = workdir / "config.yaml"
            configfile.write_text(yaml.safe_dump(generated_config(n), sort_keys=False))
            seconds, out = timed(dry_run(workdir, configfile, None, args.print_jobs), args.repeats)
            jobs = planned(out)
            results["generated"].append({"models": n, "jobs": jobs, "seconds": round(seconds, 3),
                                         "ms_per_job": round(1e3 * seconds / max(jobs, 1), 3)})
            print(f"{n:4d} models x 4 points x 3 variants: {jobs:6d} jobs, dry run {seconds:6.2f} s "
                  f"({1e3 * seconds / max(jobs, 1):.2f} ms/job)")
            if args.profile_out:
                timed(dry_run(workdir, configfile, args.profile_out / f"models-{n}.prof", args.print_jobs), 1)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
