"""Every config mistake stops at plan time in one line naming the file position, model and key;
limits a family knows are checked before any job; nothing a config names leaves the workdir."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from conftest import snakemake, tiny_model, write_config
from ttskiln.config_check import check_config, load_config_file
from ttskiln.errors import CheckpointError, ConfigError, InputError, TtskilnError
from ttskiln.plan import build_plan, machine_memory


def plan(models, tmp_path, **top):
    return build_plan({"models": models, **top}, tmp_path)


def refused(models, tmp_path, error=TtskilnError, **top) -> str:
    with pytest.raises(error) as info:
        plan(models, tmp_path, **top)
    message = str(info.value)
    assert "\n" not in message
    return message


# -- 1: schema and YAML errors are one line with their place ---------------------------------
def test_misspelt_key_names_file_line_and_suggestion(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("models:\n  voc:\n    family: vocos\n    checkpoint: {synthetic: tiny}\n    profile: {}\n")
    with pytest.raises(ConfigError) as info:
        check_config(load_config_file(path), sources=[path])
    assert str(info.value).startswith(f"{path}:5:5: model 'voc': profile: unknown key 'profile' (did you mean 'profiles'?)")


def test_yaml_syntax_error_has_a_location(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("models:\n  voc:\n    family: [vocos\n    checkpoint: x\n")
    with pytest.raises(ConfigError) as info:
        load_config_file(path)
    assert str(info.value).startswith(f"{path}:4:")
    assert "not valid YAML" in str(info.value)


def test_later_config_file_locates_the_key(tmp_path):
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text("models:\n  voc: {family: vocos, checkpoint: {synthetic: tiny}}\n")
    second.write_text("seed: 0\nopset: 17\n")
    config = {**load_config_file(first), **load_config_file(second)}
    with pytest.raises(ConfigError, match=rf"^{second}:2:8: opset: must be >= 18, got 17$"):
        check_config(config, sources=[first, second])


# -- 2: no tracebacks ------------------------------------------------------------------------
FRAMES = {"batch": {"min": 1, "opt": 1, "max": 2}}


@pytest.mark.parametrize(
    "entry, message",
    [
        (tiny_model(profiles={"p": {"frames": {"min": 8, "opt": 16, "max": float("inf")}}}),
         "model 'm': profiles.p.frames.max: must be a finite number, got inf"),
        (tiny_model(profiles={"p": {"seconds": {"min": 0.1, "opt": float("nan"), "max": 1}}}),
         "profiles.p.seconds.opt: must be a finite number, got nan"),
        (tiny_model(profiles={"p": {"frames": {"min": 8, "opt": 16, "max": 32}, "extra_points": [{"frames": float("inf")}]}}),
         "profiles.p.extra_points[0].frames: must be a finite number"),
        (tiny_model(tolerances={"int8": {"cosine": float("nan")}}), "tolerances.int8.cosine: must be a finite number, got nan"),
        (tiny_model(tolerances={"fp16": {"max_abs_err": float("nan")}}), "tolerances.fp16.max_abs_err: must be a finite number"),
        (tiny_model(tolerances={"int8": {"max_abs_error": 1e-9}}),
         "tolerances.int8.max_abs_error: unknown key 'max_abs_error' (did you mean 'max_abs_err'?); known keys: cosine, "),
        (tiny_model(tolerances={"fp16": {"checkpoints": 1}}), "tolerances.fp16.checkpoints: unknown key"),
        ({"family": "vocos", "checkpoint": True}, "model 'm': checkpoint: must be a path or a mapping with synthetic:, got True"),
        ({"family": "vocos", "checkpoint": [{"synthetic": "tiny"}]}, "checkpoint: must be a path or a mapping"),
        ({"family": "vocos", "checkpoint": {"synthetic": "tiny", "sed": 1}}, "checkpoint.sed: unknown key 'sed' (did you mean 'seed'?)"),
        ({"family": "tortoise_gpt", "checkpoint": {"synthetic": "tiny"}, "options": {"decode_steps": "many"}},
         "options.decode_steps: must be an integer, got 'many'"),
        ({"family": "vits", "checkpoint": {"synthetic": "tiny"}, "options": {"max_tokens": "x"}},
         "options.max_tokens: must be an integer, got 'x'"),
        ({"family": "vocos", "checkpoint": {"synthetic": "tiny", "overrides": {"dim": "abc"}}},
         "checkpoint.overrides.dim: must be an integer like the preset's 32, got 'abc'"),
        ({"family": "vocos", "checkpoint": {"synthetic": "tiny", "overrides": {"n_mels": "abc"}}},
         "checkpoint.overrides {'n_mels': 'abc'} do not make a vocos model: ValueError"),
        ({"family": "vocos", "checkpoint": {"synthetic": "tiny"}}, None),
        ({"family": "sovits_v4", "checkpoint": {"synthetic": "tiny", "overrides": {"upsample_initial_channel": 10**12}}},
         "checkpoint.overrides.upsample_initial_channel: 1000000000000 is beyond 65536"),
        ({"family": "vocos", "checkpoint": "x" * 300}, "File name too long"),
        ({"family": "vocos", "checkpoint": {"synthetic": "tiny"}, 1: 2}, "model 'm': key 1 must be a string"),
    ],
)
def test_no_traceback(tmp_path, entry, message):
    if message is None:  # the unmutated entry plans
        plan({"m": entry}, tmp_path)
    else:
        assert message in refused({"m": entry}, tmp_path)


# -- 3: no wrong acceptance ------------------------------------------------------------------
@pytest.mark.parametrize(
    "models, top, message",
    [
        ({"m": tiny_model()}, {"opset": 17}, "opset: must be >= 18, got 17"),
        ({"m": tiny_model()}, {"seed": -1}, "seed: must be >= 0, got -1"),
        ({"m": tiny_model()}, {"benchmark": {"warmup": 40.0}}, "benchmark.warmup: must be an integer, got 40.0"),
        ({"m": tiny_model(checkpoint={"synthetic": "tiny", "seed": -2})}, {}, "checkpoint.seed: must be >= 0"),
        ({"t": {"family": "tortoise_gpt", "checkpoint": {"synthetic": "tiny"}, "options": {"decode_step": 4}}}, {},
         "model 't': unknown tortoise_gpt options ['decode_step'] (did you mean 'decode_steps'?)"),
        ({"v": {"family": "vocos", "checkpoint": {"synthetic": "tiny"}, "options": {"preset": "tiny"}}}, {},
         "model 'v': options: vocos takes no options; got ['preset']"),
        ({"b": {"family": "bigvgan", "checkpoint": {"synthetic": "tiny"}, "options": {"anything": 1}}}, {},
         "bigvgan takes no options"),
        ({"y": {"family": "vits", "checkpoint": {"synthetic": "tiny"}, "options": {"speaker_encoderr": False}}}, {},
         "(did you mean 'speaker_encoder'?)"),
        ({"f": {"family": "f5tts", "checkpoint": {"synthetic": "tiny"}, "options": {"vocoder": "b"}},
          "b": {"family": "bigvgan", "checkpoint": {"synthetic": "tiny"}}}, {},
         "model 'f': options.vocoder: 'b' is a bigvgan model; it must be a vocos model"),
        ({"m": tiny_model(fp16={"keep_fp32_ops": ["LayerNorm"]})}, {},
         "fp16.keep_fp32_ops: 'LayerNorm' is not an ONNX op type (did you mean 'LayerNormalization'?)"),
        ({"m": tiny_model(int8={"op_types": ["NoSuchOp"]})}, {}, "int8.op_types: 'NoSuchOp' is not an ONNX op type"),
        ({"m": tiny_model(fp16={"keep_fp32_nodes": ["after:["]})}, {}, "fp16.keep_fp32_nodes: pattern 'after:[' opens a '['"),
        ({"m": tiny_model(int8={"exclude_nodes": ["after:"]})}, {}, "int8.exclude_nodes: pattern 'after:' has an empty glob"),
    ],
)
def test_wrong_values_are_refused(tmp_path, models, top, message):
    assert message in refused(models, tmp_path, **top)


def test_valid_patterns_and_ops_still_plan(tmp_path):
    m = plan({"m": tiny_model(variants=["fp32", "fp16", "int8"], fp16={"keep_fp32_ops": ["LayerNormalization"],
                                                                      "keep_fp32_nodes": ["after:head.istft.*", "x[[]y"]},
                              int8={"op_types": ["MatMul"], "exclude_nodes": ["conv[!a]*"]})}, tmp_path).models["m"]
    assert m.fp16["keep_fp32_nodes"] == ["after:head.istft.*", "x[[]y"]


# -- 4: limits the family knows --------------------------------------------------------------
def test_tortoise_text_tokens_and_decode_steps(tmp_path):
    entry = {"family": "tortoise_gpt", "checkpoint": {"synthetic": "tiny"},
             "profiles": {"p": {"batch": {"min": 1, "opt": 1, "max": 1}, "tokens": {"min": 4, "opt": 8, "max": 41}}}}
    assert "point p-max has 41 text tokens, above the model's max_text_tokens 40" in refused({"t": entry}, tmp_path)
    entry["profiles"]["p"]["tokens"]["max"] = 40
    plan({"t": entry}, tmp_path)
    assert "options.decode_steps 200 is above the 59 mel tokens" in refused(
        {"t": {**entry, "options": {"decode_steps": 200}}}, tmp_path)


def _f5(**options):
    return {"family": "f5tts", "checkpoint": {"synthetic": "tiny"}, "options": {"vocoder": "voc", **options},
            "profiles": {"p": {"batch": {"min": 2, "opt": 2, "max": 2}, "frames": {"min": 32, "opt": 64, "max": 64}}}}


def test_f5_chain_texts_against_the_vocabulary(tmp_path):
    voc = {"family": "vocos", "checkpoint": {"synthetic": "tiny", "overrides": {"hop_length": 256, "n_fft": 1024}}}
    plan({"f": _f5(), "voc": voc}, tmp_path)
    plan({"f": _f5(reference_text="ABC, 12.", chain_texts=["BAD 7."]), "voc": voc}, tmp_path)
    message = refused({"f": _f5(reference_text="Hello World"), "voc": voc}, tmp_path, ConfigError)
    assert message.startswith("model 'f': the options.reference_text holds ")
    assert "'H'" in message and "'W'" in message
    assert "options.chain_texts" in refused({"f": _f5(chain_texts=["xyz"]), "voc": voc}, tmp_path)
    assert "beyond options.max_frames 48" in refused({"f": _f5(max_frames=48), "voc": voc}, tmp_path)


def test_f5_default_texts_drawn_from_a_vocabulary_without_them():
    from ttskiln.families.f5tts.chain import chain_texts

    vocab = {t: i for i, t in enumerate([" ", "!", ",", ".", *"abcdefghij", "zhong1"])}
    ref, texts = chain_texts({}, vocab)
    assert ref and texts
    assert set("".join((ref, *texts))) <= set(vocab)


def test_vocos_head_that_overlap_add_cannot_invert(tmp_path):
    entry = {"family": "vocos", "checkpoint": {"synthetic": "tiny", "overrides": {"n_fft": 64, "hop_length": 64}}}
    assert "cannot be inverted by overlap-add" in refused({"v": entry}, tmp_path)
    entry["checkpoint"]["overrides"]["n_fft"] = 128
    plan({"v": entry}, tmp_path)


def test_point_larger_than_the_machine(tmp_path):
    total = machine_memory()
    if not total:
        pytest.skip("physical memory is unknown here")
    frames = 100_000_000
    entry = tiny_model(profiles={"p": {"batch": {"min": 1, "opt": 1, "max": 64}, "frames": {"min": 8, "opt": 64, "max": frames}}})
    message = refused({"m": entry}, tmp_path, ConfigError)
    assert "point p-max (batch 64, frames 100000000) needs about" in message and "more than this machine's" in message


def test_sample_inputs_of_a_multi_graph_model(tmp_path):
    np.savez(tmp_path / "s.npz", text_ids=np.zeros((1, 4), np.int64))
    entry = {"family": "tortoise_gpt", "checkpoint": {"synthetic": "tiny"}, "sample_inputs": "s.npz",
             "profiles": {"p": {"batch": {"min": 1, "opt": 1, "max": 1}, "tokens": {"min": 4, "opt": 8, "max": 8}}}}
    assert "sample_inputs: they feed one graph, and tortoise_gpt has 2 (prefill, decode)" in refused({"t": entry}, tmp_path)


def test_sample_inputs_values(tmp_path):
    mel = np.zeros((1, 100, 20), np.float32)
    mel[0, 0, 3] = np.nan
    np.savez(tmp_path / "nan.npz", mel=mel)
    assert "sample_inputs nan.npz: 'mel' holds 1 non-finite value(s)" in refused(
        {"m": tiny_model(sample_inputs="nan.npz")}, tmp_path, InputError)

    from ttskiln.families import get_family

    fam = get_family("f5tts")
    info = fam.describe(fam.synthetic_config("tiny", {}))
    good = fam.make_inputs(info, "dit", {"batch": 2, "frames": 16}, np.random.default_rng(0))
    entry = {"family": "f5tts", "checkpoint": {"synthetic": "tiny"}, "sample_inputs": "f.npz"}
    np.savez(tmp_path / "f.npz", **good)
    assert plan({"f": entry}, tmp_path).models["f"].point("sample").sizes["frames"] == 16
    np.savez(tmp_path / "f.npz", **{**good, "text": good["text"].astype(np.float32) + 0.5})
    assert "'text' is an int64 input, but holds fractional values" in refused({"f": entry}, tmp_path, InputError)
    bad = good["text"].copy()
    bad[0, 0] = 3000
    np.savez(tmp_path / "f.npz", **{**good, "text": bad})
    assert "'text' holds 1 value(s) outside 0..40 (e.g. 3000)" in refused({"f": entry}, tmp_path, InputError)


# -- 6: nothing escapes the working directory ------------------------------------------------
@pytest.mark.parametrize(
    "models, top, message",
    [
        ({"m": tiny_model()}, {"gpu": {"engine_tag": "../../x"}}, "gpu.engine_tag: '../../x' is not allowed"),
        ({"m": tiny_model()}, {"gpu": {"trtllm_tag": "a/b"}}, "gpu.trtllm_tag: 'a/b' is not allowed"),
        ({"m": tiny_model()}, {"gpu": {"engine_tag": "h100(trt|x)*"}}, "gpu.engine_tag: 'h100(trt|x)*' is not allowed"),
        ({"../m": tiny_model()}, {}, "models: name '../m' is not allowed"),
        ({"m.*": tiny_model()}, {}, "models: name 'm.*' is not allowed"),
        ({"m": tiny_model(profiles={"p/../../q": {"frames": {"min": 8, "opt": 9, "max": 10}}})}, {},
         "model 'm': profiles: name 'p/../../q' is not allowed"),
        ({"m": tiny_model(engines={"profiles": ["../p"]})}, {}, "model 'm': engines.profiles[0]: '../p' is not allowed"),
    ],
)
def test_names_that_would_leave_the_workdir(tmp_path, models, top, message):
    assert message in refused(models, tmp_path, ConfigError, **top)


def test_engine_tag_escape_stops_snakemake_in_one_line(tmp_path):
    write_config(tmp_path, {"gpu": {"stages": "on", "engine_tag": "../../x"}, "models": {"m": tiny_model()}})
    proc = snakemake(tmp_path, "-n", check=False)
    assert proc.returncode != 0
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("ttskiln: ")]
    assert len(lines) == 1 and "gpu.engine_tag: '../../x' is not allowed" in lines[0]
    assert not (tmp_path.parent / "x").exists() and not (tmp_path / "logs").exists()


def test_tag_with_regex_characters_is_matched_literally(tmp_path):
    # '+' and '.' are regex characters: the wildcard constraint escapes them.
    tag = "h100+trt10.7.0"
    write_config(tmp_path, {"gpu": {"stages": "on", "engine_tag": tag},
                            "models": {"m": tiny_model(profiles={"p": {"frames": {"min": 8, "opt": 16, "max": 16}}})}})
    proc = snakemake(tmp_path, "-n", check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"/{tag}/" in proc.stdout
    assert "../" not in proc.stdout


def test_check_config_command_names_the_place(tmp_path, capsys, monkeypatch):
    from ttskiln.__main__ import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.yaml").write_text("models:\n  voc:\n    family: [vocos\n")
    assert main(["check-config", "bad.yaml"]) == 1
    assert capsys.readouterr().err.strip().startswith("ttskiln: bad.yaml:4:1: not valid YAML")
    (tmp_path / "good.yaml").write_text(yaml.safe_dump({"models": {"voc": tiny_model()}}))
    assert main(["check-config", "good.yaml"]) == 0


def test_override_keeps_the_presets_kind(tmp_path):
    entry = {"family": "vocos", "checkpoint": {"synthetic": "tiny", "overrides": {"num_layers": False}}}
    assert "checkpoint.overrides.num_layers: must be an integer like the preset's 1, got False" in refused({"v": entry}, tmp_path)
    entry["checkpoint"]["overrides"]["num_layers"] = 2
    assert plan({"v": entry}, tmp_path).models["v"].info.summary["layers"] == 2


# -- found by trying the pipeline as a new user -------------------------------------------------
@pytest.mark.parametrize(
    "entry, message",
    [
        ({"family": "vits", "checkpoint": {"synthetic": "tiny"}, "options": {"max_tokens": 10}},
         "point speech-opt has 63 text tokens, above the model's max_tokens 10"),
        ({"family": "vits", "checkpoint": {"synthetic": "tiny"}, "options": {"reference_wav": "missing.wav"}},
         "options.reference_wav: missing.wav not found"),
        ({"family": "f5tts", "checkpoint": {"synthetic": "tiny"}, "options": {"chain_texts": [1, 2]}},
         "options.chain_texts: item 0 must be a non-empty string, got 1"),
        ({"family": "sovits_v4", "checkpoint": {"synthetic": "tiny"}, "options": {"preset": "enormous"}},
         "options ['preset'] describe a checkpoint folder and do nothing for a synthetic checkpoint"),
        ({"family": "tortoise_gpt", "checkpoint": {"synthetic": "tiny"}, "options": {"unified_voice": {"layrs": 2}}},
         "options ['unified_voice'] describe a checkpoint folder"),
        ({"family": "f5tts", "checkpoint": {"synthetic": "tiny"}, "options": {"vocab": "missing/vocab.txt"}},
         "options ['vocab'] describe a checkpoint folder"),
        ({"family": "vocos", "checkpoint": {"synthetic": "tiny"}, "int8": {"op_types": []}},
         "int8.op_types: [] should be non-empty"),
    ],
)
def test_options_that_would_be_ignored_or_fail_later_are_refused(tmp_path, entry, message):
    with pytest.raises(TtskilnError) as info:
        config = {"models": {"m": entry}}
        check_config(config)
        plan(config["models"], tmp_path)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_unquoted_on_off_for_gpu_stages_mean_the_words(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("gpu: {stages: off}\nmodels:\n  v: {family: vocos, checkpoint: {synthetic: tiny}}\n")
    config = load_config_file(path)
    assert config["gpu"]["stages"] is False  # YAML 1.1 reads off as false
    check_config(config, sources=[path])
    assert config["gpu"]["stages"] == "off"
    assert plan(config["models"], tmp_path, gpu=config["gpu"]).gpu.tensorrt is False
