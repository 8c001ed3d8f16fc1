"""Declared family capabilities: parity, TensorRT-LLM, linked models, command-line subcommands;
the pipeline asks the declaration, never a family's name; scripts take explicit params."""

import ast
import io
import json
import re
import subprocess
import sys
import tokenize
from pathlib import Path

import numpy as np
import pytest

from conftest import FAST_BENCH, REPO, UPSTREAM, tiny_model
from ttskiln.errors import ConfigError, InputError
from ttskiln.families import FAMILIES
from ttskiln.families.base import GGML, Command, Family, ParityCase, ParityCheck, TensorRTLLM
from ttskiln.fingerprint import _module_file
from ttskiln.plan import build_plan

#: The one family that has TensorRT-LLM engines today, and the one file outside its package
#: that may name it (the registry).
TRTLLM_FAMILY = "f5tts"
REGISTRY = REPO / "ttskiln" / "families" / "__init__.py"


def _overrides(family: Family, method: str) -> bool:
    return getattr(type(family), method) is not getattr(Family, method)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_every_family_declares_consistent_capabilities(name):
    family = FAMILIES[name]
    caps = family.capabilities
    assert caps <= {"parity", "tensorrt_llm", "links", "commands", "ggml"}
    # parity: the mode says which entry point the family implements, and only that one
    assert family.parity_mode in (None, "graphs", "host")
    assert ("parity" in caps) == (family.parity_mode is not None)
    assert _overrides(family, "parity_plan") == (family.parity_mode == "graphs")
    assert _overrides(family, "parity") == (family.parity_mode == "host")
    # TensorRT-LLM: an object with the four operations, naming a real chain and modules
    trt = family.tensorrt_llm
    assert ("tensorrt_llm" in caps) == (trt is not None)
    if trt is not None:
        assert isinstance(trt, TensorRTLLM)
        assert trt.graph and trt.chain
        assert trt.modules and all(_module_file(m) is not None for m in trt.modules)
    # ggml: an object with its entry points, naming real modules
    ggml = family.ggml
    assert ("ggml" in caps) == (ggml is not None)
    if ggml is not None:
        assert isinstance(ggml, GGML) and ggml.graph
        assert ggml.modules and all(_module_file(m) is not None for m in ggml.modules)
    # links: every linked family resolves through the registry; a family with links says which
    assert ("links" in caps) == bool(family.link_families)
    assert _overrides(family, "links") == bool(family.link_families)
    for role, other in family.link_families.items():
        assert family.linked_family(role) is FAMILIES[other]
    with pytest.raises(ConfigError, match="links no 'nothing' model"):
        family.linked_family("nothing")
    # commands: declared by module name, each a Command
    commands = family.commands()
    assert ("commands" in caps) == (family.command_module is not None) == bool(commands)
    assert all(isinstance(c, Command) and c.name for c in commands)


def test_command_names_are_unique_and_listed_in_help():
    names = [c.name for f in FAMILIES.values() for c in f.commands()]
    assert names and len(names) == len(set(names))
    proc = subprocess.run([sys.executable, "-m", "ttskiln", "--help"], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    listed = set(re.search(r"\{([^}]*)\}", proc.stdout).group(1).split(","))
    assert set(names) <= listed
    assert {"parity", "check-config", "doctor", "conformance", "compare"} <= listed


def test_a_family_command_parses_its_own_arguments(tmp_path):
    """A family's subcommand runs its own code: a bad ``--option`` is its one-line error."""
    family = next(f for f in FAMILIES.values() if any(c.name == "tts" for c in f.commands()))
    assert family.command_module
    proc = subprocess.run([sys.executable, "-m", "ttskiln", "tts", "--model-dir", str(tmp_path), "--text", "a",
                           "--out", str(tmp_path / "a.wav"), "--option", "novalue"],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 1
    assert proc.stderr.strip() == "ttskiln tts: error: --option takes key=value, got 'novalue'"


# -- parity --------------------------------------------------------------------------------
def _cases(name):
    root = UPSTREAM / name
    if not root.is_dir():
        return []
    found = []
    for manifest in sorted(root.glob("*/manifest.json")):
        data = json.loads(manifest.read_text())
        if data.get("kind") != "frontend":
            found.append(manifest.parent)
    return found


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_parity_runs_what_the_family_declares(name, monkeypatch):
    """Each fixture folder of a family goes to the entry point its ``parity_mode`` names."""
    from ttskiln import parity

    family = FAMILIES[name]
    cases = _cases(name)
    if family.parity_mode is None:
        assert not cases
        return
    if not cases:
        pytest.skip(f"no {name} parity fixtures here")
    seen = []
    check = ParityCheck("out", "pytorch", np.zeros(2), np.zeros(2), 1e-5)

    def graphs(fam, case, opset=18):
        seen.append(("graphs", fam.name, case.directory))
        return [check]

    def host(self, case):
        seen.append(("host", self.name, case.directory))
        return [check]

    monkeypatch.setattr(parity, "graph_parity", graphs)
    monkeypatch.setattr(type(family), "parity", host, raising=False)
    for case_dir in cases:
        assert parity.run_parity(parity.load_case(case_dir)) == [check]
    assert seen == [(family.parity_mode, name, c) for c in cases]


def test_a_family_without_parity_refuses_a_case_in_one_line(tmp_path, monkeypatch):
    from ttskiln import parity

    family = FAMILIES["vocos"]
    monkeypatch.setattr(type(family), "parity_mode", None)
    case = ParityCase(tmp_path, {"family": "vocos"}, {}, {})
    with pytest.raises(InputError, match="family 'vocos' has no upstream parity cases"):
        parity.run_parity(case)


def test_vocos_parity_fixture_still_passes():
    """A graph-parity family end to end (the other families' fixtures run in their own tests)."""
    from ttskiln.parity import load_case, max_abs_err, run_parity

    cases = _cases("vocos")
    if not cases:
        pytest.skip("no vocos parity fixtures here")
    checks = run_parity(load_case(cases[0]))
    assert {c.backend for c in checks} == {"pytorch", "onnxruntime"}
    assert all(max_abs_err(c) <= c.tolerance for c in checks)


# -- TensorRT-LLM --------------------------------------------------------------------------
def test_only_families_with_the_capability_declare_it():
    assert [n for n, f in FAMILIES.items() if f.tensorrt_llm is not None] == [TRTLLM_FAMILY]


def _vocos_config(trtllm):
    model = tiny_model()
    model["trtllm"] = trtllm
    return {"benchmark": FAST_BENCH, "gpu": {"stages": "off"}, "models": {"voc": model}}


def test_plan_asks_the_capability_not_the_family_name(tmp_path, monkeypatch):
    """A family given a TensorRT-LLM capability gets its trtllm block checked by it; the same
    family without one is refused, naming the families that have it."""
    calls = []

    class Fake(TensorRTLLM):
        graph = "the whole vocoder"
        chain = "none"

        def check(self, config, settings, points):
            calls.append((sorted(settings), [p.name for p in points]))
            return {"dtype": settings.get("dtype", "float16"), "max_frames": 64}

        def convert(self, checkpoint, config, output, dtype, settings):
            raise AssertionError

        def build(self, checkpoint_dir, engine_dir, settings, tag):
            raise AssertionError

        def runner(self, engine_dir, model):
            raise AssertionError

    vocos = type(FAMILIES["vocos"])
    with pytest.raises(ConfigError, match=r"model 'voc': trtllm is for f5tts models \(the F5 DiT\); this model is vocos"):
        build_plan(_vocos_config({"dtype": "float16"}), tmp_path)
    monkeypatch.setattr(vocos, "tensorrt_llm", Fake())
    plan = build_plan(_vocos_config({"dtype": "bfloat16"}), tmp_path)
    assert plan.models["voc"].trtllm == {"dtype": "bfloat16", "max_frames": 64}
    assert calls and calls[0][0] == ["dtype"] and calls[0][1] == [p.name for p in plan.models["voc"].points]
    # the refusal names whichever families declare the capability
    monkeypatch.setattr(type(FAMILIES[TRTLLM_FAMILY]), "tensorrt_llm", None)
    monkeypatch.setattr(vocos, "tensorrt_llm", None)
    with pytest.raises(ConfigError, match=r"model 'voc': trtllm is for no family here; this model is vocos"):
        build_plan(_vocos_config({}), tmp_path)


# -- ggml --------------------------------------------------------------------------------
def test_plan_asks_the_ggml_capability_not_the_family_name(tmp_path, monkeypatch):
    """A family given a ggml capability gets its ggml block checked by it; without one the
    refusal names the families that have it."""
    checked = []

    class Fake(GGML):
        graph = "the whole vocoder"
        modules = ("ttskiln.families.vocos.modules",)

        def check(self, settings):
            checked.append(dict(settings))
            return {"dtypes": ["float16"]}

        def convert(self, **kwargs):
            raise AssertionError

        def validate(self, **kwargs):
            raise AssertionError

        def tolerances(self, model, dtype):
            raise AssertionError

        def steps(self, model):
            raise AssertionError

    vocos = type(FAMILIES["vocos"])
    config = {"benchmark": FAST_BENCH, "gpu": {"stages": "off"}, "models": {"voc": tiny_model(ggml={"dtype": "float16"})}}
    with pytest.raises(ConfigError, match=r"model 'voc': ggml: the ggml model file is for tortoise_gpt models \(tortoise"):
        build_plan(config, tmp_path)
    monkeypatch.setattr(vocos, "ggml", Fake())
    assert build_plan(config, tmp_path).models["voc"].ggml == {"dtypes": ["float16"]}
    assert checked == [{"dtype": "float16"}]
    assert "ggml" in FAMILIES["vocos"].capabilities
    monkeypatch.setattr(type(FAMILIES["tortoise_gpt"]), "ggml", None)
    monkeypatch.setattr(vocos, "ggml", None)
    with pytest.raises(ConfigError, match=r"model 'voc': ggml: the ggml model file is for no family here; this model is vocos"):
        build_plan(config, tmp_path)


def test_doctor_describes_the_trtllm_stage_from_the_registry():
    from ttskiln.doctor import _detail

    trt = FAMILIES[TRTLLM_FAMILY].tensorrt_llm
    assert _detail("tensorrt_llm") == f" ({trt.graph.removeprefix('the ')} engine and {trt.uses})"
    assert _detail("ort-cuda") == ""


# -- no family named outside its package ---------------------------------------------------
def _docstring_lines(tree):
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = getattr(node, "body", [])
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                lines.update(range(body[0].lineno, body[0].end_lineno + 1))
    return lines


def _code_mentions(text, pattern):
    """Lines where ``pattern`` occurs in code: names and strings, not comments or docstrings."""
    try:
        docs = _docstring_lines(ast.parse(text))
    except SyntaxError:  # a Snakemake file: its rule docstrings are string statements too
        docs = {i + 1 for i, line in enumerate(text.splitlines()) if line.strip().startswith('"""')}
    found = set()
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type in (tokenize.NAME, tokenize.STRING) and pattern.search(tok.string):
            if tok.type == tokenize.STRING and tok.start[0] in docs:
                continue
            found.add(tok.start[0])
    return found


#: Families with a capability the pipeline used to name them for (TensorRT-LLM, ggml), and how
#: their name is spelled.
CAPABLE_FAMILIES = {TRTLLM_FAMILY: r"f5", "tortoise_gpt": r"tortoise"}


@pytest.mark.parametrize("family", sorted(CAPABLE_FAMILIES))
def test_no_file_outside_its_package_names_a_capable_family(family):
    pattern = re.compile(CAPABLE_FAMILIES[family], re.I)
    package = REPO / "ttskiln" / "families" / family
    files = [*(REPO / "ttskiln").rglob("*.py"), *(REPO / "rules").glob("*.smk"), *(REPO / "scripts").glob("*.py"),
             REPO / "Snakefile"]
    offenders = []
    for path in files:
        if package in path.parents or path == REGISTRY:
            continue
        text = path.read_text()
        hits = _code_mentions(text, pattern)
        offenders += [f"{path.relative_to(REPO)}:{n}: {text.splitlines()[n - 1].strip()}" for n in sorted(hits)]
    assert not offenders, "\n".join(offenders)


def test_the_grep_sees_a_name_in_code(tmp_path):
    """The check above finds a reference in code and skips docstrings and comments."""
    text = '"""Docs may say F5."""\nimport x  # F5 here is a comment\nfrom ttskiln.families.f5tts import y\n'
    assert _code_mentions(text, re.compile("f5", re.I)) == {3}


# -- rules and scripts ---------------------------------------------------------------------
SNIFFING = re.compile(r"wildcards\.get\(|\bw\.get\(|in snakemake\.wildcards|hasattr\(snakemake|getattr\(snakemake"
                      r"|params\.get\(|input\.get\(")


@pytest.mark.parametrize("script", sorted(p.name for p in (REPO / "scripts").glob("*.py")))
def test_no_script_sniffs_which_rule_runs_it(script):
    text = (REPO / "scripts" / script).read_text()
    assert not SNIFFING.search(text), SNIFFING.search(text).group(0)


def test_rules_pass_one_model_reference():
    """No rule passes a model's family, checkpoint or options as params of their own."""
    per_field = {"family", "checkpoint", "checkpoint_sha", "options", "synthetic"}
    found = []
    for path in sorted((REPO / "rules").glob("*.smk")):
        section = None
        for line in path.read_text().splitlines():
            if re.match(r"^    \w+:", line):
                section = line.strip().rstrip(":")
            elif section == "params" and (m := re.match(r"^        (\w+)=", line)) and m.group(1) in per_field:
                found.append(f"{path.name}: params.{m.group(1)}")
    assert not found, found


def test_output_patterns_are_spelled_once():
    """Every output path pattern appears once across the rule files (targets expand them)."""
    text = "\n".join(p.read_text() for p in sorted((REPO / "rules").glob("*.smk")))
    patterns = re.findall(r'"((?:artifacts|reports)/[^"]*\{[^"]*)"', text)
    assert len(patterns) > 20
    repeated = sorted({p for p in patterns if patterns.count(p) > 1})
    assert not repeated, repeated
