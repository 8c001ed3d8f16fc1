"""Vocoder families: a log mel (B, n_mels, frames) -> audio (B, samples).

Vocos, BigVGAN and the GPT-SoVITS v4 generator share this shape: a ``vocoder`` graph whose
first input is the mel, a checkpoint of one weights file with (for most) a configuration file
beside it, synthetic presets that override the family's config builder, seeded synthetic mels
as example inputs, and an upstream parity case of one call. ``VocoderFamily`` holds those; a
vocoder family says what differs: how its configuration parses, its modules and weights, its
mel domain.
"""

from __future__ import annotations

import json
from abc import abstractmethod
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable

import numpy as np

from ttskiln.errors import CheckpointError
from ttskiln.families.base import STATIC_INT8, ComponentSpec, Family, ModelInfo, ParityCase, TensorSpec
from ttskiln.ops.mel import synthetic_clamped_log_mel

COMPONENT = "vocoder"


def mel_component(
    n_mels: int,
    *,
    name: str = COMPONENT,
    input_name: str = "mel",
    extra_inputs: tuple[TensorSpec, ...] = (),
    chunked: bool = False,
    min_frames: int = 1,
    trace_frames: int = 32,
) -> ComponentSpec:
    """A vocoder graph: ``input_name`` (B, n_mels, frames) [+ ``extra_inputs``] -> audio
    (B, samples). ``chunked``: chunked vocoding may cut the mel along time."""
    return ComponentSpec(
        name=name,
        inputs=(TensorSpec(input_name, ("batch", n_mels, "frames")), *extra_inputs),
        outputs=(TensorSpec("audio", ("batch", "samples")),),
        axis_min={"batch": 1, "frames": min_frames},
        trace_sizes={"batch": 2, "frames": trace_frames},
        chunk_input=input_name if chunked else None,
    )


def read_config_file(path: Path) -> Any:
    """A configuration file's mapping: JSON for ``.json``, else YAML."""
    if path.suffix == ".json":
        try:
            return json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"{path} is not valid JSON: {exc}") from exc
    import yaml

    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise CheckpointError(f"{path} is not valid YAML: {exc}") from exc


def config_file_text(path: Path, config: dict[str, Any]) -> str:
    """``config`` written as the released files are: JSON (indent 4) for ``.json``, else YAML."""
    if path.suffix == ".json":
        return json.dumps(config, indent=4) + "\n"
    import yaml

    return yaml.safe_dump(config, sort_keys=False)


def fan_in_init_(layers: Iterable[Any], gain: float) -> None:
    """Seeded fan-in scaled weights (std ``gain / sqrt(fan_in)``) and small biases for
    Conv1d/ConvTranspose1d layers. Upstream's N(0, 0.01) init gives a near-silent network."""
    import math

    import torch

    for layer in layers:
        if isinstance(layer, torch.nn.ConvTranspose1d):  # [in, out, k], stride s: in * k / s taps
            fan_in = layer.weight.shape[0] * layer.weight.shape[2] // layer.stride[0]
        else:
            fan_in = layer.weight[0].numel()
        torch.nn.init.normal_(layer.weight, std=gain / math.sqrt(fan_in))
        if layer.bias is not None:
            torch.nn.init.normal_(layer.bias, std=0.02)


def calibrate_output_(conv_post: Any, pre: Any, std: float) -> None:
    """Scale ``conv_post`` so that its output (``pre``, bias removed) has about ``std``: a
    random network's final squashing (tanh, clamp) is then not saturated."""
    if conv_post.bias is not None:
        pre = pre - conv_post.bias.view(1, -1, 1)
    conv_post.weight.mul_(std / max(float(pre.std()), 1e-6))


class VocoderFamily(Family):
    """A mel -> audio family: the ``vocoder`` component and what its families repeat."""

    #: The checkpoint folder's configuration file (None: the weights file carries none, and
    #: the checkpoint may be the weights file itself).
    config_file: ClassVar[str | None] = None
    weights_file: ClassVar[str]
    #: The format's name in messages ("a BigVGAN checkpoint is ...").
    title: ClassVar[str]
    #: Where released checkpoints are found, appended to "not a folder" messages.
    release_hint: ClassVar[str] = ""
    #: Upstream parity compares the one graph against the recorded outputs.
    parity_mode = "graphs"
    #: Parity: the substrings the manifest's entry point holds, the call's name in messages,
    #: and the vocoder's input and output -> the case's arrays.
    parity_entry: ClassVar[tuple[str, ...]] = ()
    parity_call: ClassVar[str] = ""
    parity_arrays: ClassVar[tuple[dict[str, str], dict[str, str]]] = ({"mel": "mel"}, {"audio": "wav"})
    parity_max_abs_err: ClassVar[float] = 1e-4
    #: ``synthetic_clamped_log_mel``'s shape of the family's mel domain (offset, tilt, ...).
    mel_domain: ClassVar[dict[str, float]] = {}
    default_tolerances = {"max_abs_err": 1e-4, "cosine": 0.99999, "snr_db": 60.0}
    # Convolutions throughout: static QDQ int8 (dynamic int8 would quantize nothing).
    int8_defaults = STATIC_INT8

    # -- what a vocoder family says ----------------------------------------------------------
    @abstractmethod
    def parse_config(self, config: Any, source: str) -> Any:
        """The family's config dataclass from a configuration mapping (CheckpointError naming
        the bad key)."""

    @abstractmethod
    def config_dict(self, **arguments: Any) -> dict[str, Any]:
        """A configuration mapping from the config builder's keyword arguments (TypeError or
        CheckpointError for a wrong one)."""

    @abstractmethod
    def synthetic_weights(self, cfg: Any, seed: int) -> Any:
        """Seeded random weights for ``cfg``, as the released weights file holds them."""

    @abstractmethod
    def component_modules(self, model: Any) -> dict[str, Callable[[Any], Any]]:
        """The model's components: name -> the wrapper class built on the loaded model."""

    # -- checkpoints -------------------------------------------------------------------------
    def weights_path(self, checkpoint: Path) -> Path:
        checkpoint = Path(checkpoint)
        if self.config_file is None and not checkpoint.is_dir():
            return checkpoint  # the weights file itself
        return checkpoint / self.weights_file

    def checkpoint_files(self, checkpoint: Path) -> list[Path]:
        config = [Path(checkpoint) / self.config_file] if self.config_file else []
        return config + [self.weights_path(checkpoint)]

    def config_from_checkpoint(self, checkpoint: Path, options: dict[str, Any]) -> dict[str, Any]:
        """A folder's configuration file, checked by ``parse_config``. Families whose weights
        carry no configuration override this."""
        names = " and ".join(p.name for p in self.checkpoint_files(checkpoint))
        if not checkpoint.is_dir():
            raise CheckpointError(f"{checkpoint} is not a folder; a {self.title} checkpoint is a folder with {names}"
                                  f"{self.release_hint}")
        for path in self.checkpoint_files(checkpoint):
            if not path.is_file():
                raise CheckpointError(f"{path} not found (a {self.title} checkpoint has {names})")
        path = checkpoint / str(self.config_file)
        data = read_config_file(path)
        self.parse_config(data, str(path))
        return data

    def synthetic_config(self, preset: str, overrides: dict[str, Any]) -> dict[str, Any]:
        if preset not in self.presets:
            raise CheckpointError(f"unknown {self.name} preset {preset!r}; choose from {sorted(self.presets)}")
        try:
            return self.config_dict(**{**self.presets[preset], **overrides})
        except TypeError as exc:
            raise CheckpointError(f"synthetic {self.name} overrides: {exc}") from exc

    def write_synthetic(self, config: dict[str, Any], destination: Path, seed: int) -> None:
        import torch

        from ttskiln.atomic import atomic_path

        weights = self.synthetic_weights(self.parse_config(config, "synthetic config"), seed)
        destination = Path(destination)
        destination.mkdir(parents=True, exist_ok=True)
        with atomic_path(destination / self.weights_file) as tmp:
            torch.save(weights, tmp)
        if self.config_file:
            with atomic_path(destination / self.config_file) as tmp:
                tmp.write_text(config_file_text(Path(self.config_file), config))

    # -- components --------------------------------------------------------------------------
    def component_module(self, model: Any, component: str) -> Any:
        modules = self.component_modules(model)
        if component not in modules:
            raise KeyError(f"{self.name} component {component!r} is not built; this model has {list(modules)}")
        return modules[component](model).eval()

    def synthetic_mel(self, batch: int, n_mels: int, frames: int, rng: np.random.Generator) -> np.ndarray:
        """A seeded natural-log mel (B, n_mels, frames) in the family's domain."""
        return synthetic_clamped_log_mel(batch, n_mels, frames, rng, **self.mel_domain)

    def make_inputs(
        self, info: ModelInfo, component: str, sizes: dict[str, int], rng: np.random.Generator
    ) -> dict[str, np.ndarray]:
        """The mel of the component's first input at ``sizes``."""
        spec = info.component(component).inputs[0]
        batch, n_mels, frames = spec.concrete(sizes)
        return {spec.name: self.synthetic_mel(batch, n_mels, frames, rng)}

    # -- upstream parity ---------------------------------------------------------------------
    def parity_plan(self, case: ParityCase) -> list[tuple[str, dict[str, str], dict[str, str]]]:
        entry = str(case.manifest.get("entry_point", ""))
        if not all(part in entry for part in self.parity_entry):
            raise CheckpointError(f"{self.name} parity supports {self.parity_call}; manifest names {entry!r}")
        inputs, outputs = self.parity_arrays
        return [(COMPONENT, dict(inputs), dict(outputs))]

    def parity_tolerance(self, case: ParityCase, output: str) -> float:
        return self.parity_max_abs_err
