"""Checkpoint files as users have them: trainer dicts with pickled objects, hostile pickles,
integer data for float parameters, re-zipped archives, files named for another format."""

import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from ttskiln.checkpoint import load_tensors
from ttskiln.errors import CheckpointError
from ttskiln.families import get_family

VOCOS = get_family("vocos")
VITS = get_family("vits")
MARKER_ENV = "TTSKILN_TEST_MARKER"


class TrainerConfig:
    """A config class of some training code (outside torch's allow-list). Building it for real
    would run ``__setstate__``, which leaves a marker: a safe read never does."""

    def __init__(self, **fields):
        self.__dict__.update(fields)

    def __setstate__(self, state):
        Path(os.environ[MARKER_ENV]).touch()
        self.__dict__.update(state)


def touch(path):
    Path(path).touch()


class RunsCode:
    """Unpickling this calls a function of this module (not one torch blocks by module name)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (touch, (self.marker,))


class RunsShell:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def marker(tmp_path, monkeypatch):
    path = tmp_path / "pickled-code-ran"
    monkeypatch.setenv(MARKER_ENV, str(path))
    yield path
    assert not path.exists(), "pickled code ran while reading a checkpoint"


@pytest.fixture(scope="module")
def vocos_ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("vocos")
    VOCOS.write_synthetic(VOCOS.synthetic_config("tiny", {}), path, seed=1)
    return path


@pytest.fixture
def vocos_copy(vocos_ckpt, tmp_path):
    dst = tmp_path / "vocos"
    dst.mkdir()
    for p in vocos_ckpt.iterdir():
        (dst / p.name).write_bytes(p.read_bytes())
    return dst


@pytest.fixture(scope="module")
def vits_ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("vits") / "ckpt"
    VITS.write_synthetic(VITS.synthetic_config("tiny", {}), path, seed=2)
    return path


def _rewrite_trainer_file(src: Path, dst: Path, **extra) -> Path:
    dst.mkdir()
    for p in src.iterdir():
        (dst / p.name).write_bytes(p.read_bytes())
    data = torch.load(dst / "model_file.pth", weights_only=True)
    torch.save({**data, **extra}, dst / "model_file.pth")
    return dst


def _assert_one_clean_line(message: str) -> None:
    assert "\n" not in message and "\x1b" not in message
    assert "weights_only=False" not in message and "weights_only` set to `False" not in message


# -- refusals name what is refused ---------------------------------------------------------------
def test_hostile_pickle_names_the_blocked_global(vocos_copy, marker):
    weights = vocos_copy / "pytorch_model.bin"
    state = torch.load(weights, weights_only=True)
    torch.save({**state, "evil": RunsShell(marker)}, weights)
    with pytest.raises(CheckpointError) as err:
        VOCOS.check_checkpoint(vocos_copy, VOCOS.read_config(vocos_copy, {}))
    message = str(err.value)
    _assert_one_clean_line(message)
    assert str(weights) in message and f"{os.name if os.name == 'nt' else 'posix'}.system" in message
    assert "with safetensors" in message


def test_foreign_class_in_a_flat_state_dict_is_named(vocos_copy, marker):
    weights = vocos_copy / "pytorch_model.bin"
    state = torch.load(weights, weights_only=True)
    torch.save({**state, "config": TrainerConfig(sample_rate=24000)}, weights)
    with pytest.raises(CheckpointError) as err:
        VOCOS.check_checkpoint(vocos_copy, VOCOS.read_config(vocos_copy, {}))
    message = str(err.value)
    _assert_one_clean_line(message)
    assert f"{__name__}.TrainerConfig" in message and str(weights) in message
    assert "safetensors" in message


def test_not_a_checkpoint_says_so(tmp_path):
    path = tmp_path / "pytorch_model.bin"
    path.write_text("root:x:0:0:root:/root:/bin/bash\n")
    with pytest.raises(CheckpointError, match="neither a torch.save file"):
        load_tensors(path)


# -- trainer dicts give up their weights -----------------------------------------------------------
def test_trainer_config_object_is_dropped_and_weights_load(vits_ckpt, tmp_path, marker):
    folder = _rewrite_trainer_file(vits_ckpt, tmp_path / "obj", config=TrainerConfig(model="vits", sample_rate=16000))
    config = VITS.read_config(folder, {})
    VITS.check_checkpoint(folder, config)
    loaded = VITS.load(folder, config).state_dict()
    reference = VITS.load(vits_ckpt, VITS.read_config(vits_ckpt, {})).state_dict()
    assert loaded.keys() == reference.keys()
    assert all(torch.equal(loaded[k], reference[k]) for k in reference)


def test_trainer_numpy_scalars_load(vits_ckpt, tmp_path):
    from ttskiln.families.vits.weights import read_trainer_file

    folder = _rewrite_trainer_file(
        vits_ckpt, tmp_path / "np", step=np.int64(120000), model_loss=np.float32(21.5), epoch=np.int32(3)
    )
    data = read_trainer_file(folder / "model_file.pth")
    assert int(data["step"]) == 120000 and float(data["model_loss"]) == 21.5 and int(data["epoch"]) == 3
    VITS.check_checkpoint(folder, VITS.read_config(folder, {}))


@pytest.mark.parametrize("payload", [RunsCode, RunsShell])
def test_trainer_code_payload_is_refused_and_never_runs(vits_ckpt, tmp_path, marker, payload):
    folder = _rewrite_trainer_file(vits_ckpt, tmp_path / "payload", config=payload(str(marker)))
    with pytest.raises(CheckpointError) as err:
        VITS.check_checkpoint(folder, VITS.read_config(folder, {}))
    message = str(err.value)
    _assert_one_clean_line(message)
    named = f"{__name__}.touch" if payload is RunsCode else "system"
    assert named in message and "model_file.pth" in message


def test_foreign_object_inside_the_needed_entry_is_named(tmp_path, marker):
    path = tmp_path / "model_file.pth"
    torch.save({"model": {"a": torch.zeros(2), "b": TrainerConfig()}, "step": 3}, path)
    with pytest.raises(CheckpointError, match=rf"entry 'model' holds a pickled {__name__}\.TrainerConfig"):
        load_tensors(path, entries=("model",))
    with pytest.raises(CheckpointError, match=r"key 'model' holds"):  # no such entry: all must be plain
        load_tensors(path, entries=("other",))


# -- data that a cast would silently change -------------------------------------------------------
def test_float_parameter_stored_as_integers_is_refused(vocos_copy):
    from safetensors.torch import save_file

    weights = vocos_copy / "pytorch_model.bin"
    state = torch.load(weights, weights_only=True)
    key = "backbone.embed.weight"
    state[key] = (state[key] * 100).to(torch.int32)
    save_file(state, str(weights))  # a safetensors file under the torch name
    with pytest.raises(CheckpointError, match=rf"{key}: stored as int32, the parameter is float32"):
        VOCOS.check_checkpoint(vocos_copy, VOCOS.read_config(vocos_copy, {}))


def test_safetensors_under_a_torch_name_loads(vocos_copy, vocos_ckpt):
    from safetensors.torch import save_file

    weights = vocos_copy / "pytorch_model.bin"
    save_file(torch.load(weights, weights_only=True), str(weights))
    config = VOCOS.read_config(vocos_copy, {})
    a = VOCOS.load(vocos_copy, config).state_dict()
    b = VOCOS.load(vocos_ckpt, config).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in b)


# -- archives ------------------------------------------------------------------------------------
@pytest.mark.parametrize("compression", [zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED])
def test_rezipped_checkpoint_reads_its_true_values(vocos_copy, vocos_ckpt, compression):
    weights = vocos_copy / "pytorch_model.bin"
    original = torch.load(vocos_ckpt / "pytorch_model.bin", weights_only=True)
    with zipfile.ZipFile(vocos_ckpt / "pytorch_model.bin") as src, zipfile.ZipFile(weights, "w", compression) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
    state = load_tensors(weights)
    assert state.keys() == original.keys()
    assert all(torch.equal(state[k], original[k]) for k in original)
    VOCOS.load(vocos_copy, VOCOS.read_config(vocos_copy, {}))


def test_damaged_archive_is_refused_with_the_reason(vocos_copy):
    weights = vocos_copy / "pytorch_model.bin"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="pytorch_model.bin") as err:
        load_tensors(weights)
    _assert_one_clean_line(str(err.value))
