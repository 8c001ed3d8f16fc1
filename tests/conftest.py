"""Shared helpers: fixture locations, tiny configs, running Snakemake in a temporary folder."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
UPSTREAM = Path(os.environ.get("TTSKILN_UPSTREAM_FIXTURES", REPO.parent / "shared" / "fixtures" / "upstream"))
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
# Every Snakemake call in the tests has a hard limit, so a hang fails instead of stalling CI.
SNAKEMAKE_TIMEOUT = 600


def upstream_case(family: str, case: str) -> Path:
    path = UPSTREAM / family / case
    if not path.is_dir():
        pytest.skip(f"upstream fixture {path} is not present")
    return path


def vocos_cases() -> list[Path]:
    root = UPSTREAM / "vocos"
    return sorted(p for p in root.iterdir() if (p / "manifest.json").is_file()) if root.is_dir() else []


def write_config(workdir: Path, config: dict) -> Path:
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def snakemake(workdir: Path, *args: str, snakefile: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [
        SNAKEMAKE,
        "-s",
        str(snakefile or REPO / "Snakefile"),
        "-d",
        str(workdir),
        "--configfile",
        str(workdir / "config.yaml"),
        "--cores",
        "2",
        *args,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=SNAKEMAKE_TIMEOUT)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


_JOB = re.compile(r"^(?:local)?rule (\w+):\n((?:    .*\n)*)", re.M)


def planned_jobs(workdir: Path, snakefile: Path | None = None) -> list[tuple[str, str]]:
    """(rule, output) of every job a dry run would execute (``all`` left out)."""
    proc = snakemake(workdir, "-n", snakefile=snakefile)
    text = proc.stdout + proc.stderr
    jobs = []
    for match in _JOB.finditer(text):
        rule, body = match.group(1), match.group(2)
        if rule == "all":
            continue
        out = re.search(r"^    output: (.*)$", body, re.M)
        jobs.append((rule, out.group(1) if out else ""))
    if not jobs:
        assert "Nothing to be done" in text or "nothing to be done" in text.lower(), text[-2000:]
    return jobs


def copy_workflow(destination: Path) -> Path:
    """A copy of the workflow and package (to change ttskiln code without touching the repo)."""
    destination.mkdir(parents=True)
    for name in ("Snakefile", "rules", "scripts", "config", "ttskiln"):
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, destination / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, destination / name)
    return destination / "Snakefile"


def tiny_model(**extra) -> dict:
    return {
        "family": "vocos",
        "checkpoint": {"synthetic": "tiny", "seed": 1},
        "profiles": {"p": {"batch": {"min": 1, "opt": 1, "max": 2}, "frames": {"min": 8, "opt": 24, "max": 40}}},
        **extra,
    }


FAST_BENCH = {"threads": 1, "warmup": 1, "repeats": 3}
