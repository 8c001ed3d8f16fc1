"""Planning stays light: ``build_plan`` imports no torch, onnx or onnxruntime, and what it
computes without them (parameter counts, ONNX Runtime's providers, precision defaults) agrees
with what those libraries say."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import REPO
from ttskiln.families import FAMILIES, get_family

VITS = get_family("vits")
HEAVY = ("torch", "onnx", "onnxruntime")


def test_planning_the_demo_imports_no_heavy_library(tmp_path):
    """Every family (the demo config has one model of each) is planned, checks included."""
    script = f"""
import json, sys
from pathlib import Path
import yaml
from ttskiln.plan import build_plan
plan = build_plan(yaml.safe_load(open({str(REPO / "config" / "config.yaml")!r})), Path({str(tmp_path)!r}))
print(json.dumps({{"families": sorted({{m.family for m in plan.models.values()}}),
                  "heavy": [m for m in {HEAVY!r} if m in sys.modules]}}))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["families"] == sorted(FAMILIES)
    assert result["heavy"] == []


def _vits_cases():
    for preset in ("tiny", "demo"):
        yield preset, {}
        yield preset, {"speakers": "embedding"}
        yield preset, {"speakers": "none", "languages": ()}
        yield preset, {"resblock_type": "1"}


@pytest.mark.parametrize(("preset", "overrides"), list(_vits_cases()))
def test_vits_parameter_counts_match_the_modules(preset, overrides):
    import torch

    from ttskiln.families.vits.modules import Vits
    from ttskiln.families.vits.speaker import ResNetSpeakerEncoder

    config = VITS.synthetic_config(preset, overrides)
    summary = VITS.describe(config).summary
    with torch.device("meta"):
        model = Vits(VITS.config(config))
    assert summary["parameters"] == sum(p.numel() for p in model.parameters())
    encoder = VITS.speaker_encoder_config(config)
    assert ("speaker_encoder" in summary) == (encoder is not None)
    if encoder is not None:
        with torch.device("meta"):
            counted = sum(p.numel() for p in ResNetSpeakerEncoder(encoder).parameters())
        assert summary["speaker_encoder"]["parameters"] == counted


def test_vits_speaker_encoder_count_follows_its_layout():
    """SAP pooling and other widths (a released encoder's layout is read from its weights)."""
    import dataclasses

    import torch

    from ttskiln.families.vits.speaker import ResNetSpeakerEncoder
    from ttskiln.families.vits.speaker_config import parameter_count

    base = VITS.speaker_encoder_config(VITS.synthetic_config("tiny", {}))
    for changes in ({"encoder_type": "SAP"}, {"layers": (2, 1, 3, 1), "filters": (8, 16, 16, 32)}, {"n_mels": 24}):
        cfg = dataclasses.replace(base, **changes)
        with torch.device("meta"):
            assert parameter_count(cfg) == sum(p.numel() for p in ResNetSpeakerEncoder(cfg).parameters())


def test_ort_providers_without_importing_agree_on_gpu_providers():
    pytest.importorskip("onnxruntime")
    script = """
import json, sys
from ttskiln.gpu import PROVIDER_LIBRARIES, ort_providers
light = ort_providers()
imported = "onnxruntime" in sys.modules
full = ort_providers(load=True)
gpu = set(PROVIDER_LIBRARIES.values())
print(json.dumps({"imported": imported, "light": sorted(gpu & set(light)), "full": sorted(gpu & set(full)),
                  "cpu": "CPUExecutionProvider" in light}))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert not result["imported"]
    assert result["light"] == result["full"]
    assert result["cpu"]


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_family_precision_defaults_are_valid(name):
    """The planner checks only the config's fp16/int8 settings; the defaults are checked here."""
    from ttskiln.plan import _check_precision

    family = get_family(name)
    assert _check_precision("fp16", dict(family.fp16_defaults)) == family.fp16_defaults
    assert _check_precision("int8", dict(family.int8_defaults)) == family.int8_defaults


def test_checkpoint_hash_cache_is_parsed_once_per_change(tmp_path, monkeypatch):
    """Hashing many checkpoint files reads the cache file once, not once per file (that grew
    with the square of the number of real checkpoints), and still sees another process's writes."""
    from ttskiln import fingerprint

    files = []
    for i in range(12):
        files.append(tmp_path / f"w{i}.bin")
        files[-1].write_bytes(bytes([i]) * 100)
    cache = tmp_path / "cache" / "sha256-cache.json"
    first = [fingerprint.sha256_file(f, cache) for f in files]
    parsed = []
    real_loads = fingerprint.json.loads
    monkeypatch.setattr(fingerprint.json, "loads", lambda text: parsed.append(1) or real_loads(text))
    assert [fingerprint.sha256_file(f, cache) for f in files] == first
    assert len(parsed) <= 1
    # Another process records a hash: the changed file is read again.
    entries = real_loads(cache.read_text())
    key = next(k for k in entries if k.startswith(f"{files[0].resolve()}|"))
    cache.write_text(json.dumps({**entries, key: "recorded elsewhere"}) + "\n")
    assert fingerprint.sha256_file(files[0], cache) == "recorded elsewhere"


def test_code_hash_walk_finds_every_import():
    """The planner's import walk visits statements only; it finds what a full walk finds, for
    every module of the package and for imports nested in every kind of block."""
    import ast
    import textwrap

    from ttskiln import fingerprint

    nested = textwrap.dedent("""
        import a0
        def f():
            import a1
            class C:
                from a2 import x
                async def g(self):
                    async with y:
                        import a3
                    async for z in w:
                        import a4
        if c:
            import a5
        elif d:
            import a6
        else:
            import a7
        for i in r:
            import a8
        else:
            import a9
        while c:
            import b0
        else:
            import b1
        try:
            import b2
        except E:
            import b3
        else:
            import b4
        finally:
            import b5
        with m:
            import b6
        match v:
            case 1:
                import b7
        try:
            pass
        except* E:
            import b8
    """)
    sources = [nested] + [p.read_text() for p in sorted(fingerprint.PACKAGE_ROOT.rglob("*.py"))]
    for source in sources:
        tree = ast.parse(source)
        full = {id(n) for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))}
        walked = {id(n) for n in fingerprint._statements(tree.body) if isinstance(n, (ast.Import, ast.ImportFrom))}
        assert walked == full
    assert len([n for n in fingerprint._statements(ast.parse(nested).body) if isinstance(n, (ast.Import, ast.ImportFrom))]) == 19


def _vocos_config(frames_max: int = 40) -> dict:
    profile = {"batch": {"min": 1, "opt": 1, "max": 1}, "frames": {"min": 8, "opt": 24, "max": frames_max}}
    return {"models": {"v": {"family": "vocos", "checkpoint": {"synthetic": "tiny", "seed": 0}, "profiles": {"p": profile}}}}


def test_passed_family_checks_are_not_repeated(tmp_path, monkeypatch):
    from ttskiln.errors import ConfigError
    from ttskiln.plan import build_plan

    family = type(get_family("vocos"))
    real = family.check_plan
    calls = []
    monkeypatch.setattr(family, "check_plan", lambda self, *a: calls.append(1) or real(self, *a))
    build_plan(_vocos_config(), tmp_path)
    build_plan(_vocos_config(), tmp_path)
    assert len(calls) == 1
    build_plan(_vocos_config(frames_max=48), tmp_path)  # other points: checked again
    assert len(calls) == 2
    build_plan(_vocos_config(), tmp_path, check_files=False)  # a job process always checks
    assert len(calls) == 3

    def failing(self, *args):
        calls.append(1)
        raise ConfigError("head: refused")

    monkeypatch.setattr(family, "check_plan", failing)
    for _ in range(2):  # a failed check is never recorded: its error comes back every time
        with pytest.raises(ConfigError, match="refused"):
            build_plan(_vocos_config(frames_max=56), tmp_path)
    assert len(calls) == 5


def test_check_key_follows_files_the_options_name(tmp_path):
    from ttskiln.plan import _check_key

    family = get_family("vocos")
    named = tmp_path / "reference.wav"
    named.write_bytes(b"one")
    key = _check_key(family, {"a": 1}, {"reference_audio": str(named)}, [], None)
    assert _check_key(family, {"a": 1}, {"reference_audio": str(named)}, [], None) == key
    assert _check_key(family, {"a": 2}, {"reference_audio": str(named)}, [], None) != key
    named.write_bytes(b"two, longer")
    assert _check_key(family, {"a": 1}, {"reference_audio": str(named)}, [], None) != key
    named.unlink()
    assert _check_key(family, {"a": 1}, {"reference_audio": str(named)}, [], None) != key
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "w.bin").write_bytes(b"w")
    with_checkpoint = _check_key(family, {"a": 1}, {}, [], folder)
    (folder / "vocab.txt").write_text("a\n")
    assert _check_key(family, {"a": 1}, {}, [], folder) != with_checkpoint
