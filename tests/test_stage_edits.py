"""Editing one stage module reruns that stage's jobs and no other, for every family.

A copy of the workflow plans the demo's models (one of each family, one profile, synthetic
checkpoints); each stage module gets a comment appended and the DAG is planned again. A job
reruns (``--rerun-triggers params``) when its params change, so the jobs whose params changed
are the jobs a dry run of a built pipeline would list as changed: comparing params avoids
building every family's artifacts for a question about cache keys. Jobs downstream of a
rerun job rerun because their inputs change, which is the stage's own business.

TensorRT and TensorRT-LLM jobs are not planned without a GPU; their code params come from the
same ``stage_code`` and are checked here through the stages they share modules with (an edit of
``engines.py`` changes no CPU job; the TensorRT-LLM conversion is a CPU job).

Family modules: editing a family's model code reruns the jobs that run it (its models' exports,
references, benchmarks, synthetic checkpoints, ggml files and chains, and the chains of models
that link one of its models) and nothing of another family; editing a chain module reruns only
that family's chains; parity and command-line modules are no job's code.
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


#: Rules whose jobs run their model's family code (``stage_code`` with the model's code).
MODEL_CODE_RULES = {"export", "reference", "benchmark_torch", "benchmark_onnx", "benchmark_chunked",
                    "synthetic_checkpoint", "chain", "ggml", "validate_ggml", "trtllm_checkpoint"}
#: A model module of each family (what its exported graphs are made of).
MODEL_EDITS = {family: f"ttskiln/families/{family}/modules.py"
               for family in ("vocos", "bigvgan", "sovits_v4", "f5tts", "tortoise_gpt", "vits")}
#: A module each chain runs and no model stage does.
CHAIN_EDITS = {"f5tts": "ttskiln/families/f5tts/chain_job.py", "vits": "ttskiln/families/vits/chain.py",
               "tortoise_gpt": "ttskiln/families/tortoise_gpt/chain.py"}
#: Modules of an optional capability: the family's jobs of these rules run them.
CAPABILITY_EDITS = {"ttskiln/families/tortoise_gpt/ggml.py": ("tortoise_gpt", {"ggml", "validate_ggml"}),
                    "ttskiln/families/f5tts/trtllm.py": ("f5tts", {"trtllm_checkpoint"})}
#: Upstream parity and command-line modules: no job runs them (edited together: no job's params
#: may change).
NO_JOB_EDITS = [f"ttskiln/families/{family}/{module}.py" for family, module in (
    ("f5tts", "parity"), ("f5tts", "commands"), ("f5tts", "synth_command"), ("vits", "parity"), ("vits", "commands"),
    ("tortoise_gpt", "parity"), ("tortoise_gpt", "commands"), ("tortoise_gpt", "cli"))]
FAMILY_EDITS = [*MODEL_EDITS.values(), *CHAIN_EDITS.values(), *CAPABILITY_EDITS, NO_JOB_EDITS]


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
    edits.write_text(json.dumps([f"ttskiln/{name}.py" for name in STAGES] + FAMILY_EDITS))
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


def _changed(params, edit):
    base, edited = params["base"], params[edit]
    assert set(edited) == set(base), "an edit of code must not change which jobs exist"
    return {job for job in base if edited[job] != base[job]}


def _models_of(config, family):
    return {name for name, model in config["models"].items() if model["family"] == family}


def _jobs(base, rules, models):
    return {job for job in base if _rule(job) in rules and any(f"/{m}/" in job for m in models)}


def _linking(config, models):
    """Models whose chains link one of ``models`` (a text-to-mel model's vocoder)."""
    from ttskiln.families import FAMILIES

    return {name for name, model in config["models"].items()
            if set(FAMILIES[model["family"]].links(model.get("options") or {}).values()) & models}


@pytest.mark.parametrize("family", sorted(MODEL_EDITS))
def test_a_family_model_edit_reruns_only_that_familys_jobs(planned, family):
    params, config = planned
    base = params["base"]
    models = _models_of(config, family)
    expected = _jobs(base, MODEL_CODE_RULES, models) | _jobs(base, {"chain"}, _linking(config, models))
    assert _jobs(base, {"export", "reference", "benchmark_onnx"}, models), "the plan holds the family's jobs"
    changed = _changed(params, MODEL_EDITS[family])
    assert sorted(changed - expected) == [], f"editing {family}'s model code changes other jobs"
    assert sorted(expected - changed) == [], f"editing {family}'s model code leaves some of its jobs as they were"


def test_a_linked_vocoder_edit_reruns_the_linking_chain(planned):
    params, config = planned
    linking = _linking(config, _models_of(config, "vocos"))
    assert linking and _jobs(params["base"], {"chain"}, linking)
    assert _jobs(params["base"], {"chain"}, linking) <= _changed(params, MODEL_EDITS["vocos"])


@pytest.mark.parametrize("family", sorted(CHAIN_EDITS))
def test_a_chain_edit_reruns_only_that_familys_chains(planned, family):
    params, config = planned
    expected = _jobs(params["base"], {"chain"}, _models_of(config, family))
    assert expected, "the plan holds the family's chain jobs"
    assert _changed(params, CHAIN_EDITS[family]) == expected


@pytest.mark.parametrize("edit", sorted(CAPABILITY_EDITS))
def test_a_capability_edit_reruns_only_its_jobs(planned, edit):
    params, config = planned
    family, rules = CAPABILITY_EDITS[edit]
    expected = _jobs(params["base"], rules, _models_of(config, family))
    assert expected, "the plan holds the capability's jobs"
    assert _changed(params, edit) == expected


def test_parity_and_command_modules_are_no_jobs_code(planned):
    params, _ = planned
    assert sorted(_changed(params, "+".join(NO_JOB_EDITS))) == []
