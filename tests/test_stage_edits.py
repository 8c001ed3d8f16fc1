"""Editing one stage module reruns that stage's jobs and no other, for every family.

A copy of the workflow plans the demo's models (one of each family, one profile, synthetic
checkpoints); each stage module gets a comment appended and the DAG is planned again. A job
reruns (``--rerun-triggers params``) when its params change, so the jobs whose params changed
are the jobs a dry run of a built pipeline would list as changed: comparing params avoids
building every family's artifacts for a question about cache keys. Jobs downstream of a
rerun job rerun because their inputs change, which is the stage's own business.

TensorRT and TensorRT-LLM jobs are not planned without a GPU; their code params come from the
same ``stage_code`` and are checked here through the stages they share modules with (an edit of
``engines.py`` changes no CPU job).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO, copy_workflow

pytestmark = pytest.mark.e2e

#: Stage module -> the rules whose jobs run it (a CPU plan: no engine jobs).
STAGES = {
    "export": {"export"},
    "reference": {"reference"},
    "simplify": {"simplify"},
    "precision": {"fp16", "int8"},
    "validate": {"validate", "validate_backend", "validate_chunked", "validate_ggml"},
    "benchmark": {"benchmark_torch", "benchmark_onnx", "benchmark_chunked"},
    "chains": {"chain"},
    "report": {"report"},
    "history": {"report"},
    "ship": {"report"},
    "engines": set(),
    "plan": set(),  # planning computes params; it is not a job's code
    "parity": set(),
    "conformance": set(),
}


def _config(destination: Path) -> Path:
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    for model in config["models"].values():
        first = next(iter(model["profiles"]))
        model["profiles"] = {first: model["profiles"][first]}
        model["variants"] = ["fp32", "fp16", "int8"] if model["family"] == "vocos" else ["fp32"]
    path = destination / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    root = tmp_path_factory.mktemp("stage-edits")
    snakefile = copy_workflow(root / "wf")
    workdir = root / "work"
    workdir.mkdir()
    configfile = _config(workdir)
    edits = root / "edits.json"
    edits.write_text(json.dumps([f"ttskiln/{name}.py" for name in STAGES]))
    out = root / "params.json"
    env = {**os.environ, "PYTHONPATH": str(snakefile.parent)}
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("stage_params.py")), str(snakefile), str(workdir),
         str(configfile), str(edits), str(out)],
        capture_output=True, text=True, env=env, cwd=root, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text()), yaml.safe_load(configfile.read_text())


def _rule(job: str) -> str:
    return job.split(" ", 1)[0]


def test_the_plan_holds_every_family_and_stage(planned):
    params, config = planned
    base = params["base"]
    families = {m["family"] for m in config["models"].values()}
    assert families == {"vocos", "f5tts", "bigvgan", "sovits_v4", "tortoise_gpt", "vits"}
    rules = {_rule(job) for job in base}
    assert set().union(*STAGES.values()) <= rules
    for name, model in config["models"].items():
        for rule in ("export", "reference", "simplify", "validate", "benchmark_onnx"):
            assert any(_rule(job) == rule and f"/{name}/" in job for job in base), (rule, name)


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_a_stage_edit_reruns_only_that_stage(planned, stage):
    params, _ = planned
    base, edited = params["base"], params[f"ttskiln/{stage}.py"]
    assert set(edited) == set(base), "an edit of code must not change which jobs exist"
    changed = {job for job in base if edited[job] != base[job]}
    expected = {job for job in base if _rule(job) in STAGES[stage]}
    assert sorted(changed - expected) == [], f"editing {stage}.py changes the params of other stages' jobs"
    assert sorted(expected - changed) == [], f"editing {stage}.py leaves some of its jobs' params as they were"
