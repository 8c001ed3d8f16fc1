"""The VITS family (Coqui TTS, idiap/coqui-ai-TTS ``Vits``): YourTTS and plain VITS models.

Checkpoint: a folder in the layout of Coqui's released model zip —
``model_file.pth`` (trainer dict ``{"model": state_dict, "config": ..., ...}``, weight norm
in the legacy ``weight_g``/``weight_v`` or the parametrization layout, folded at load),
``config.json`` (coqpit) and, by the model's kind, ``speakers.json`` (d-vectors),
``speakers.pth`` (speaker name -> id; it gives the number of speakers, as upstream) and
``language_ids.json``; with the speaker encoder (``model_se.pth`` + ``config_se.json``,
``speaker.py``) when a d-vector model's folder holds both. The speaker is given as a d-vector
(``use_d_vector_file``, YourTTS), as a speaker id through ``emb_g`` (``use_speaker_embedding``
with speakers, multi-speaker VCTK models), or not at all (single-speaker); the language
embedding ``emb_l`` is optional. Only the stochastic duration predictor is supported.
``options``: ``max_tokens`` (the longest token sequence accepted; default the config's
``max_text_len`` or 1024); ``speaker_encoder: false`` leaves a speaker encoder out (present
files, or a synthetic preset's); ``reference_wav``: the voice the ``tts`` chain embeds (an
audio file; default a seeded clip); ``chain_texts`` (list of texts) and ``language`` (a name
from ``language_ids.json``): what the ``tts`` chain speaks (defaults in ``chain.py``).

Components, split where the output length depends on the data (the ceil of the durations).
The speaker input ``spk`` below is ``g`` [B, D] float (normalised d-vector), ``sid`` [B] int64
(the graphs look up ``emb_g``), or absent; ``language_id`` [B] int64 is present only with a
language embedding (``config.graph_inputs``):

* ``text_encoder``: tokens [B, T] int64, lengths [B] int64, language_id ->
  x [B, H+L, T], m_p, logs_p [B, H, T], x_mask [B, 1, T];
* ``duration_predictor``: stochastic DP in reverse; x, x_mask, spk (when the DP is
  conditioned on the speaker), language_id, noise [B, 2, T] (already times noise_scale_dp) ->
  logw [B, 1, T];
* host (numpy, ``host.py``): durations = ceil(exp(logw)), path, expansion of m_p/logs_p;
* ``flow``: m_p, logs_p, noise [B, H, F] (already times noise_scale), y_mask [B, 1, F], spk ->
  z_p, z (coupling flows in reverse);
* ``decoder``: HiFi-GAN, z [B, H, F], spk -> audio [B, F * hop];
* ``speaker_encoder`` (when present): waveform [B, ref_samples] -> unit d-vector [B, D], the
  spectrogram front end inside the graph. Its profile axis ``ref_samples`` defaults to
  0.5-2.5 s (2.5 s = the 250-frame windows upstream embeds) when a profile does not set it.

Text front end (``text.py``): Coqui's tokenizer from the config's ``characters``,
``text_cleaner`` and ``add_blank`` entries; ``python -m ttskiln tts`` speaks a text (``tts.py``).

Chain ``tts``: texts and language through the checkpoint's front end, and a speaker (with a
speaker encoder: the d-vector of a reference WAV, through the encoder) -> waveform through the ONNX graphs and through PyTorch
with the same noise (``chain.py``). Presets: ``yourtts`` (released sizes, with the released
encoder's layout), ``tiny``, ``demo`` (both with a small encoder). Synthetic overrides
``speakers: embedding|none`` (with ``num_speakers``, ``speaker_embedding_dim``) and
``languages: []`` make the other kinds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ttskiln.errors import CheckpointError, ConfigError
from ttskiln.families.base import ChainJob, ComponentSpec, Family, ModelInfo, Option, ParityCase, ParityCheck, STATIC_INT8, TensorSpec
from ttskiln.families.vits.config import PRESETS, VitsConfig, graph_inputs, make_config_dict, parameter_count
from ttskiln.families.vits.host import HostDims
from ttskiln.families.vits.config import SE_CONFIG_FILE, SE_WEIGHTS_FILE, SPEAKER_IDS_FILE
from ttskiln.families.vits.speaker_config import parameter_count as speaker_parameter_count

WEIGHTS_FILE = "model_file.pth"
CONFIG_FILE = "config.json"
SPEAKERS_FILE = "speakers.json"
LANGUAGES_FILE = "language_ids.json"
COMPONENTS = ("text_encoder", "duration_predictor", "flow", "decoder")
SPEAKER_ENCODER = "speaker_encoder"
#: Where the speaker encoder's config travels inside the model config (not a Coqui key).
SE_KEY = "_speaker_encoder"
CHAIN = "tts"


class VitsFamily(Family):
    name = "vits"
    parity_mode = "host"
    command_module = "ttskiln.families.vits.commands"
    chain_modules = ("ttskiln.families.vits.chain",)
    parity_modules = ("ttskiln.families.vits.parity",)
    # Convolutions throughout: static QDQ int8 (dynamic int8 would quantize nothing).
    int8_defaults = STATIC_INT8
    option_specs = {"max_tokens": Option(int, 1), "speaker_encoder": Option(bool), "reference_wav": Option(str),
                    "chain_texts": Option(list, item=str), "language": Option(str)}
    presets = PRESETS
    # Tolerances apply to every component; only the decoder (and the chain) make audio, so the
    # audio metrics are gated in the chain (``chain_tolerances``) and reported for the decoder.
    default_tolerances = {"max_abs_err": 1e-4, "cosine": 0.99999, "snr_db": 60.0}
    chain_tolerances = {"mrstft": 0.01, "logmel_l1": 0.01}
    default_profiles = {
        "speech": {
            "batch": {"min": 1, "opt": 1, "max": 2},
            "tokens": {"min": 3, "opt": 63, "max": 255},
            "frames": {"min": 8, "opt": 200, "max": 800},
        }
    }
    # The spline and flows are sensitive: keep their transcendental ops in fp32.
    fp16_defaults = {
        "keep_fp32_ops": ["LayerNormalization", "Softmax", "Exp", "Log", "Sqrt", "Softplus", "CumSum", "Div", "Tanh", "Sigmoid"],
        "keep_fp32_nodes": [],
    }

    # -- checkpoints -------------------------------------------------------------------------
    def checkpoint_files(self, checkpoint: Path) -> list[Path]:
        checkpoint = Path(checkpoint)
        files = [checkpoint / WEIGHTS_FILE, checkpoint / CONFIG_FILE]
        optional = (SPEAKERS_FILE, SPEAKER_IDS_FILE, LANGUAGES_FILE, SE_WEIGHTS_FILE, SE_CONFIG_FILE)
        files += [checkpoint / n for n in optional if (checkpoint / n).is_file()]
        return files

    def config_from_checkpoint(self, checkpoint: Path, options: dict[str, Any]) -> dict[str, Any]:
        checkpoint = Path(checkpoint)
        wanted = options.get("speaker_encoder", True)
        if not checkpoint.is_dir():
            raise CheckpointError(
                f"{checkpoint} is not a folder; a YourTTS checkpoint is a folder with {WEIGHTS_FILE} and {CONFIG_FILE}"
            )
        for path in (checkpoint / WEIGHTS_FILE, checkpoint / CONFIG_FILE):
            if not path.is_file():
                raise CheckpointError(f"{path} not found (a YourTTS checkpoint has {WEIGHTS_FILE} and {CONFIG_FILE})")
        try:
            data = json.loads((checkpoint / CONFIG_FILE).read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"{checkpoint / CONFIG_FILE} is not valid JSON: {exc}") from exc
        if "max_tokens" in options:
            data["max_text_len"] = int(options["max_tokens"])
        ids = _speaker_ids(checkpoint)
        if ids is not None and isinstance(data.get("model_args"), dict) and data["model_args"].get("use_speaker_embedding"):
            # As upstream: the speaker ids file, when present, gives the number of speakers.
            data["model_args"]["num_speakers"] = len(ids)
        cfg = VitsConfig.from_dict(data, str(checkpoint / CONFIG_FILE)).validate(str(checkpoint / CONFIG_FILE))
        data.pop(SE_KEY, None)
        se_files = [checkpoint / SE_WEIGHTS_FILE, checkpoint / SE_CONFIG_FILE]
        # A speaker encoder makes d-vectors: a model that takes speaker ids (or none) has no use for one.
        if wanted and cfg.speaker_mode == "d_vector" and any(p.is_file() for p in se_files):
            missing = [p.name for p in se_files if not p.is_file()]
            if missing:
                raise CheckpointError(f"{checkpoint}: the speaker encoder needs {SE_WEIGHTS_FILE} and {SE_CONFIG_FILE}; "
                                      f"{missing[0]} is missing (or set options.speaker_encoder: false)")
            from ttskiln.families.vits.speaker_config import SpeakerEncoderConfig, read_config_file

            se = read_config_file(checkpoint / SE_CONFIG_FILE)
            se_cfg = SpeakerEncoderConfig.from_dict(se, str(checkpoint / SE_CONFIG_FILE))
            if se_cfg.proj_dim != cfg.d_vector_dim:
                raise CheckpointError(
                    f"{checkpoint / SE_CONFIG_FILE}: the speaker encoder makes {se_cfg.proj_dim}-dim d-vectors, "
                    f"the model takes d_vector_dim {cfg.d_vector_dim}"
                )
            data[SE_KEY] = se
        return data

    def synthetic_config(self, preset: str, overrides: dict[str, Any]) -> dict[str, Any]:
        from ttskiln.families.vits.speaker_config import make_config_dict as make_se_config

        if preset not in self.presets:
            raise CheckpointError(f"unknown vits preset {preset!r}; choose from {sorted(self.presets)}")
        args = {**self.presets[preset], **overrides}
        encoder = args.pop("speaker_encoder", None)  # a dict of layout overrides, or None/False
        try:
            config = make_config_dict(**args)
            if not config["model_args"]["use_d_vector_file"]:
                encoder = None  # a speaker encoder makes d-vectors; this model takes none
            if isinstance(encoder, dict):
                config[SE_KEY] = make_se_config(proj_dim=config["model_args"]["d_vector_dim"], **encoder)
            elif encoder not in (None, False):
                raise CheckpointError(f"synthetic vits speaker_encoder must be a mapping or false, got {encoder!r}")
        except TypeError as exc:
            raise CheckpointError(f"synthetic vits overrides: {exc}") from exc
        return config

    def synthetic_options(self, config: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
        """``max_tokens`` and ``speaker_encoder: false`` apply as they do to a real checkpoint."""
        wanted = options.get("speaker_encoder", True)
        config = dict(config)
        if "max_tokens" in options:
            config["max_text_len"] = int(options["max_tokens"])
        if not wanted:
            config.pop(SE_KEY, None)
        self.config(config)
        return config

    def write_synthetic(self, config: dict[str, Any], destination: Path, seed: int) -> None:
        import torch

        from ttskiln.atomic import atomic_path, write_text
        from ttskiln.families.vits.weights import synthetic_state, unfold_weight_norm

        cfg = self.config(config)
        destination = Path(destination)
        destination.mkdir(parents=True, exist_ok=True)
        if config.get(SE_KEY):
            from ttskiln.families.vits.speaker import write_synthetic as write_speaker_encoder

            write_speaker_encoder(config[SE_KEY], destination, seed + 1)
        config = {k: v for k, v in config.items() if k != SE_KEY}
        state = unfold_weight_norm(synthetic_state(cfg, seed))
        trainer = {"config": config, "model": state, "optimizer": None, "scaler": None, "step": 0, "epoch": 0,
                   "date": "synthetic", "model_loss": None}
        with atomic_path(destination / WEIGHTS_FILE) as tmp:
            torch.save(trainer, tmp)
        write_text(destination / CONFIG_FILE, json.dumps(config, indent=2))
        rng = np.random.default_rng(seed)
        if cfg.speaker_mode == "d_vector":
            speakers = {f"spk{i}_clip.wav": {"name": f"spk{i}", "embedding": rng.standard_normal(cfg.d_vector_dim).round(5).tolist()}
                        for i in range(2)}
            write_text(destination / SPEAKERS_FILE, json.dumps(speakers))
        elif cfg.speaker_mode == "embedding":
            with atomic_path(destination / SPEAKER_IDS_FILE) as tmp:
                torch.save({f"spk{i}": i for i in range(cfg.num_speakers)}, tmp)
        if cfg.language_dim:
            write_text(destination / LANGUAGES_FILE, json.dumps({name: i for i, name in enumerate(config.get("languages", []))}))

    @staticmethod
    def config(config: dict[str, Any]) -> VitsConfig:
        return VitsConfig.from_dict(config).validate("vits config")

    @staticmethod
    def speaker_encoder_config(config: dict[str, Any]) -> Any:
        """The speaker encoder's ``SpeakerEncoderConfig``, or None when the model has none."""
        from ttskiln.families.vits.speaker_config import SpeakerEncoderConfig

        se = config.get(SE_KEY)
        return SpeakerEncoderConfig.from_dict(se, SE_CONFIG_FILE) if se else None

    def host_dims(self, config: dict[str, Any]) -> HostDims:
        cfg = self.config(config)
        return HostDims(cfg.hidden, cfg.d_vector_dim, cfg.num_chars, cfg.num_languages, cfg.max_tokens, cfg.hop_length,
                        cfg.speaker_mode, cfg.num_speakers)

    def describe(self, config: dict[str, Any]) -> ModelInfo:
        cfg = self.config(config)
        h, c, d = cfg.hidden, cfg.text_channels, cfg.d_vector_dim
        text_axes = {"batch": 1, "tokens": 1}
        frame_axes = {"batch": 1, "frames": 1}
        text_trace = {"batch": 2, "tokens": 17}
        frame_trace = {"batch": 2, "frames": 23}
        common: dict[str, Any] = {"time_axis": "frames", "audio_output": None}
        tensors = {
            "tokens": TensorSpec("tokens", ("batch", "tokens"), "int64"), "lengths": TensorSpec("lengths", ("batch",), "int64"),
            "language_id": TensorSpec("language_id", ("batch",), "int64"), "g": TensorSpec("g", ("batch", d)),
            "sid": TensorSpec("sid", ("batch",), "int64"),
        }

        def text(name: str) -> TensorSpec:
            return tensors.get(name) or TensorSpec(name, ("batch", {"x": c, "x_mask": 1, "noise": 2}[name], "tokens"))

        def frames(name: str) -> TensorSpec:
            return tensors.get(name) or TensorSpec(name, ("batch", 1 if name == "y_mask" else h, "frames"))

        specs = (
            ComponentSpec(
                "text_encoder",
                inputs=tuple(text(n) for n in graph_inputs(cfg, "text_encoder")),
                outputs=(TensorSpec("x", ("batch", c, "tokens")), TensorSpec("m_p", ("batch", h, "tokens")),
                         TensorSpec("logs_p", ("batch", h, "tokens")), TensorSpec("x_mask", ("batch", 1, "tokens"))),
                profile_axes=("batch", "tokens"), axis_min=text_axes, trace_sizes=text_trace, **common,
            ),
            ComponentSpec(
                "duration_predictor",
                inputs=tuple(text(n) for n in graph_inputs(cfg, "duration_predictor")),
                outputs=(TensorSpec("logw", ("batch", 1, "tokens")),),
                profile_axes=("batch", "tokens"), axis_min=text_axes, trace_sizes=text_trace, **common,
            ),
            ComponentSpec(
                "flow",
                inputs=tuple(frames(n) for n in graph_inputs(cfg, "flow")),
                outputs=(TensorSpec("z_p", ("batch", h, "frames")), TensorSpec("z", ("batch", h, "frames"))),
                profile_axes=("batch", "frames"), axis_min=frame_axes, trace_sizes=frame_trace, **common,
            ),
            ComponentSpec(
                "decoder",
                inputs=tuple(frames(n) for n in graph_inputs(cfg, "decoder")),
                outputs=(TensorSpec("audio", ("batch", "samples")),),
                profile_axes=("batch", "frames"), time_axis="frames", axis_min=frame_axes,
                audio_output="audio", trace_sizes=frame_trace,
            ),
        )
        se = self.speaker_encoder_config(config)
        axis_defaults = {}
        if se is not None:
            window = 250 * se.hop_length
            specs += (
                ComponentSpec(
                    SPEAKER_ENCODER,
                    inputs=(TensorSpec("waveform", ("batch", "ref_samples")),),
                    outputs=(TensorSpec("d_vector", ("batch", d)),),
                    profile_axes=("batch", "ref_samples"), axis_min={"batch": 1, "ref_samples": se.min_samples},
                    trace_sizes={"batch": 2, "ref_samples": 5 * se.hop_length + 37}, **common,
                ),
            )
            axis_defaults["ref_samples"] = {"min": min(window, se.sample_rate // 2), "opt": window, "max": window}
        return ModelInfo(
            family=self.name,
            sample_rate=cfg.sample_rate,
            hop_length=cfg.hop_length,
            components=specs,
            summary={
                "parameters": parameter_count(cfg),
                "hidden": cfg.hidden, "text_channels": cfg.text_channels, "layers": cfg.layers, "heads": cfg.heads,
                "flows": cfg.flows, "flow_layers": cfg.flow_layers, "resblock_type": cfg.resblock_type,
                "upsample_rates": list(cfg.upsample_rates), "upsample_initial": cfg.upsample_initial,
                "d_vector_dim": cfg.d_vector_dim, "languages": cfg.num_languages, "num_chars": cfg.num_chars,
                "speaker_mode": cfg.speaker_mode, "num_speakers": cfg.num_speakers, "speaker_dim": cfg.speaker_dim,
                "max_tokens": cfg.max_tokens,
                # A phoneme model's text needs a phonemizer this pipeline lacks: no tts chain.
                "reads_phonemes": bool(config.get("use_phonemes")),
                **({} if se is None else {"speaker_encoder": {
                    "sample_rate": se.sample_rate, "n_mels": se.n_mels, "hop_length": se.hop_length,
                    "proj_dim": se.proj_dim, "parameters": speaker_parameter_count(se)}}),
            },
            axis_defaults=axis_defaults,
        )

    def check_checkpoint(self, checkpoint: Path, config: dict[str, Any]) -> None:
        from ttskiln.families.vits.weights import load_network_state

        cfg = self.config(config)
        load_network_state(Path(checkpoint) / WEIGHTS_FILE, cfg)
        if config.get(SE_KEY):
            from ttskiln.families.vits.speaker import load_speaker_encoder

            load_speaker_encoder(Path(checkpoint), config[SE_KEY], cfg.d_vector_dim)

    def load(self, checkpoint: Path, config: dict[str, Any]) -> Any:
        from ttskiln.families.vits.modules import Vits
        from ttskiln.families.vits.weights import load_network_state

        cfg = self.config(config)
        state = load_network_state(Path(checkpoint) / WEIGHTS_FILE, cfg)
        model = Vits(cfg)
        model.load_state_dict(state, strict=True)
        if config.get(SE_KEY):
            from ttskiln.families.vits.speaker import load_speaker_encoder

            # Held as ``model.speaker_encoder``, where Coqui keeps the speaker-consistency encoder.
            model.speaker_encoder = load_speaker_encoder(Path(checkpoint), config[SE_KEY], cfg.d_vector_dim)
        return model.eval()

    def speakers(self, checkpoint: Path, config: dict[str, Any]) -> dict[str, np.ndarray]:
        """clip name -> raw d-vector from speakers.json (empty when the file is absent)."""
        path = Path(checkpoint) / SPEAKERS_FILE
        if not path.is_file():
            return {}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return {k: np.asarray(v["embedding"], dtype=np.float32) for k, v in data.items()}
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise CheckpointError(f"{path}: not a Coqui d-vector file ({exc})") from exc

    # -- components --------------------------------------------------------------------------
    def component_module(self, model: Any, component: str) -> Any:
        from ttskiln.families.vits.modules import graph

        if component == SPEAKER_ENCODER and getattr(model, "speaker_encoder", None) is not None:
            return model.speaker_encoder.eval()
        if component not in COMPONENTS:
            raise KeyError(f"vits components are {list(COMPONENTS)}; got {component!r}")
        return graph(model, component).eval()

    def make_inputs(
        self, info: ModelInfo, component: str, sizes: dict[str, int], rng: np.random.Generator
    ) -> dict[str, np.ndarray]:
        s = info.summary
        b = int(sizes["batch"])
        h, c, d = s["hidden"], s["text_channels"], s["d_vector_dim"]
        if component == SPEAKER_ENCODER:
            from ttskiln.families.vits.speaker import synthetic_reference

            n = int(sizes["ref_samples"])
            rate = s["speaker_encoder"]["sample_rate"]
            clips = [synthetic_reference(rate, n / rate + 0.01, int(rng.integers(0, 2**31 - 1)))[:n] for _ in range(b)]
            return {"waveform": np.stack(clips).astype(np.float32)}
        if component not in COMPONENTS:
            raise KeyError(f"vits components are {list(COMPONENTS)}; got {component!r}")
        g = rng.standard_normal((b, max(d, 1))).astype(np.float32)
        g /= np.linalg.norm(g, axis=1, keepdims=True)
        cond = {"g": g[:, :d],
                "sid": rng.integers(0, max(1, s.get("num_speakers", 0)), size=b).astype(np.int64),
                "language_id": rng.integers(0, max(1, s["languages"]), size=b).astype(np.int64)}
        wanted = info.component(component).input_names
        if component in ("text_encoder", "duration_predictor"):
            t = int(sizes["tokens"])
            lengths = np.maximum(1, t - np.arange(b) * (t // 4)).astype(np.int64)
            mask = (np.arange(t)[None, :] < lengths[:, None]).astype(np.float32)[:, None, :]
            if component == "text_encoder":
                tokens = rng.integers(0, s["num_chars"], size=(b, t)).astype(np.int64)
                made = {"tokens": tokens, "lengths": lengths}
            else:
                x = (rng.standard_normal((b, c, t)) * mask).astype(np.float32)
                noise = (0.8 * rng.standard_normal((b, 2, t))).astype(np.float32)
                made = {"x": x, "x_mask": mask, "noise": noise}
        else:
            f = int(sizes["frames"])
            if component == "flow":
                m_p = (0.6 * rng.standard_normal((b, h, f))).astype(np.float32)
                logs_p = (-0.5 + 0.3 * rng.standard_normal((b, h, f))).astype(np.float32)
                noise = (0.667 * rng.standard_normal((b, h, f))).astype(np.float32)
                made = {"m_p": m_p, "logs_p": logs_p, "noise": noise, "y_mask": np.ones((b, 1, f), dtype=np.float32)}
            else:
                made = {"z": (0.6 * rng.standard_normal((b, h, f))).astype(np.float32)}
        made.update(cond)
        return {name: made[name] for name in wanted}

    # -- chains ------------------------------------------------------------------------------
    def chains(self, info: ModelInfo, options: dict[str, Any]) -> list[str]:
        if (options or {}).get("reference_wav") and SPEAKER_ENCODER not in [c.name for c in info.components]:
            raise ConfigError("options.reference_wav needs a speaker encoder (model_se.pth + config_se.json in the checkpoint)")
        if info.summary.get("reads_phonemes"):
            return []  # its graphs are still exported, validated and timed; the chain needs a phonemizer
        return [CHAIN]

    def check_plan(self, info: ModelInfo, config: dict[str, Any], options: dict[str, Any],
                   points: list[Any], checkpoint: Path | None) -> None:
        """Each point's text tokens within the model's max_tokens (the text encoder's limit),
        the chain's texts and language readable by the model within the profiles' largest tokens, and the
        chain's reference recording present."""
        from ttskiln.families.vits.chain import resolve_texts

        limit = self.config(config).max_tokens
        for point in points:
            tokens = int(point.sizes.get("tokens", 0))
            if tokens > limit:
                raise ConfigError(f"point {point.name} has {tokens} text tokens, above the model's max_tokens {limit}; "
                                  "lower the profile's tokens (or raise options.max_tokens)")
        budgets = [int(p.sizes["tokens"]) for p in points if "tokens" in p.sizes]
        if not info.summary.get("reads_phonemes"):
            resolve_texts(config, options, checkpoint, max(budgets) if budgets else None)
        elif {"chain_texts", "language"} & set(options):
            raise ConfigError("options.chain_texts/language: this model reads phonemes (use_phonemes), which need a "
                              "phonemizer this pipeline does not have; it runs no tts chain")
        reference = options.get("reference_wav")
        if reference is not None and not Path(reference).is_file():
            raise ConfigError(f"options.reference_wav: {reference} not found (an audio file soundfile reads)")

    def run_chain(self, job: ChainJob) -> list[dict[str, Any]]:
        from ttskiln.families.vits.chain import run_tts_chain

        if job.chain != CHAIN:
            raise ConfigError(f"vits has one chain, {CHAIN!r}; got {job.chain!r}")
        return run_tts_chain(self, job)

    # -- upstream parity ---------------------------------------------------------------------
    def parity(self, case: ParityCase) -> list[ParityCheck]:
        from ttskiln.families.vits.parity import run_case

        return run_case(self, case)

    def frontend_parity(self, folder: Path) -> list[tuple[str, bool, str]]:
        """Coqui's ``text_to_ids`` on recorded texts and character configurations (``text.py``)."""
        from ttskiln.families.vits.text import frontend_parity

        return frontend_parity(folder)


def _speaker_ids(checkpoint: Path) -> dict[str, int] | None:
    """The ``{name: id}`` of the folder's speakers.pth (None when absent)."""
    import torch

    path = checkpoint / SPEAKER_IDS_FILE
    if not path.is_file():
        return None
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path} could not be read as a weights-only torch file: {str(exc).splitlines()[0]}") from exc
    if not isinstance(data, dict) or not data or not all(isinstance(v, int) for v in data.values()):
        raise CheckpointError(f"{path}: expected Coqui's speaker ids, a non-empty mapping of speaker name to integer id")
    return data
