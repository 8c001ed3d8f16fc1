"""The architecture of a Coqui VITS / YourTTS model, read from Coqui's ``config.json``.

Only the fields that shape the inference graphs are read (``model_args`` plus the audio
sample rate and the characters); the rest of the trainer config is kept on disk untouched.
Synthetic checkpoints write a config.json in the same layout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ttskiln.errors import CheckpointError

#: The text encoder's relative-attention window (hard-coded upstream).
REL_WINDOW = 4
#: The stochastic duration predictor's width, kernel and flow count (hard-coded upstream).
SDP_CHANNELS = 192
SDP_KERNEL = 3
SDP_FLOWS = 4
SPLINE_BINS = 10
SPLINE_TAIL = 5.0
#: The speaker encoder's files in Coqui's released YourTTS folder (``speaker.py``).
SE_WEIGHTS_FILE = "model_se.pth"
SE_CONFIG_FILE = "config_se.json"
#: Speaker ids of a speaker-embedding model (``{name: id}``, torch-saved; Coqui's speakers.pth).
SPEAKER_IDS_FILE = "speakers.pth"
SPEAKER_MODES = ("d_vector", "embedding", "none")
#: Token sequences longer than this are refused when the config gives no finite max_text_len.
DEFAULT_MAX_TOKENS = 1024

_PUNCTUATIONS = "!'(),-.:;? "
_CHARACTERS = "abcdefghijklmnopqrstuvwxyz"


@dataclass(frozen=True)
class VitsConfig:
    num_chars: int
    hidden: int
    ffn: int
    heads: int
    layers: int
    kernel_text: int
    spec_channels: int
    posterior_kernel: int
    posterior_dilation: int
    posterior_layers: int
    flow_kernel: int
    flow_dilation: int
    flow_layers: int
    flows: int
    resblock_type: str
    resblock_kernels: tuple[int, ...]
    resblock_dilations: tuple[tuple[int, ...], ...]
    upsample_rates: tuple[int, ...]
    upsample_kernels: tuple[int, ...]
    upsample_initial: int
    d_vector_dim: int
    language_dim: int
    num_languages: int
    use_sdp: bool
    condition_dp_on_speaker: bool
    sample_rate: int
    max_tokens: int
    #: How the speaker is given: ``d_vector`` (g = normalised d-vector, YourTTS),
    #: ``embedding`` (g = emb_g(speaker id), multi-speaker VCTK-style) or ``none``.
    speaker_mode: str = "d_vector"
    num_speakers: int = 0
    speaker_embedding_dim: int = 0

    @property
    def speaker_dim(self) -> int:
        """Channels of the speaker conditioning g (0: no speaker conditioning at all)."""
        if self.speaker_mode == "d_vector":
            return self.d_vector_dim
        return self.speaker_embedding_dim if self.speaker_mode == "embedding" else 0

    @property
    def dp_speaker(self) -> bool:
        """Whether the duration predictor is conditioned on the speaker."""
        return self.speaker_dim > 0 and self.condition_dp_on_speaker

    @property
    def hop_length(self) -> int:
        return math.prod(self.upsample_rates)

    @property
    def text_channels(self) -> int:
        """Channels of the text encoder's transformer (hidden + language embedding)."""
        return self.hidden + self.language_dim

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "vits config") -> "VitsConfig":
        if not isinstance(data, dict) or not isinstance(data.get("model_args"), dict):
            raise CheckpointError(f"{source}: no 'model_args' block (expected Coqui's VitsConfig layout)")
        a = data["model_args"]
        try:
            use_d_vectors = bool(a.get("use_d_vector_file", data.get("use_d_vector_file", False)))
            use_ids = bool(a.get("use_speaker_embedding", data.get("use_speaker_embedding", False)))
            if use_d_vectors and use_ids:
                raise CheckpointError(f"{source}: use_speaker_embedding and use_d_vector_file are both set; "
                                      "a VITS takes speaker ids or d-vectors, not both")
            # Upstream builds emb_g only when it knows of at least one speaker.
            num_speakers = int(a.get("num_speakers") or data.get("num_speakers") or 0) if use_ids else 0
            mode = "d_vector" if use_d_vectors else "embedding" if num_speakers > 0 else "none"
            if a.get("encoder_sample_rate"):
                raise CheckpointError(f"{source}: encoder_sample_rate (z interpolation) is not supported")
            use_lang = bool(a.get("use_language_embedding", False))
            languages = data.get("languages") or []
            num_languages = int(a.get("num_languages") or len(languages) or 0) if use_lang else 0
            if use_lang and num_languages <= 0:
                raise CheckpointError(f"{source}: use_language_embedding is set but no languages are listed")
            max_text = data.get("max_text_len", math.inf)
            max_tokens = int(max_text) if isinstance(max_text, (int, float)) and math.isfinite(max_text) else DEFAULT_MAX_TOKENS
            return cls(
                num_chars=int(a["num_chars"]),
                hidden=int(a["hidden_channels"]),
                ffn=int(a["hidden_channels_ffn_text_encoder"]),
                heads=int(a["num_heads_text_encoder"]),
                layers=int(a["num_layers_text_encoder"]),
                kernel_text=int(a["kernel_size_text_encoder"]),
                spec_channels=int(a["out_channels"]),
                posterior_kernel=int(a["kernel_size_posterior_encoder"]),
                posterior_dilation=int(a["dilation_rate_posterior_encoder"]),
                posterior_layers=int(a["num_layers_posterior_encoder"]),
                flow_kernel=int(a["kernel_size_flow"]),
                flow_dilation=int(a["dilation_rate_flow"]),
                flow_layers=int(a["num_layers_flow"]),
                flows=int(a.get("num_flows", 4)),
                resblock_type=str(a["resblock_type_decoder"]),
                resblock_kernels=tuple(int(k) for k in a["resblock_kernel_sizes_decoder"]),
                resblock_dilations=tuple(tuple(int(d) for d in ds) for ds in a["resblock_dilation_sizes_decoder"]),
                upsample_rates=tuple(int(u) for u in a["upsample_rates_decoder"]),
                upsample_kernels=tuple(int(k) for k in a["upsample_kernel_sizes_decoder"]),
                upsample_initial=int(a["upsample_initial_channel_decoder"]),
                d_vector_dim=int(a.get("d_vector_dim") or data.get("d_vector_dim")) if use_d_vectors else 0,
                language_dim=int(a.get("embedded_language_dim", 4)) if use_lang else 0,
                num_languages=num_languages,
                use_sdp=bool(a.get("use_sdp", True)),
                condition_dp_on_speaker=bool(a.get("condition_dp_on_speaker", True)),
                sample_rate=int(data["audio"]["sample_rate"]),
                max_tokens=max_tokens,
                speaker_mode=mode,
                num_speakers=num_speakers if mode == "embedding" else 0,
                speaker_embedding_dim=int(a.get("speaker_embedding_channels", 256)) if mode == "embedding" else 0,
            )
        except CheckpointError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{source}: missing or malformed field {exc}") from exc

    def validate(self, source: str) -> "VitsConfig":
        if self.resblock_type not in ("1", "2"):
            raise CheckpointError(f"{source}: resblock_type_decoder must be '1' or '2', got {self.resblock_type!r}")
        if len(self.upsample_rates) != len(self.upsample_kernels):
            raise CheckpointError(f"{source}: upsample rates and kernel sizes differ in length")
        if self.text_channels % self.heads:
            raise CheckpointError(f"{source}: hidden + language dim {self.text_channels} is not divisible by {self.heads} heads")
        if self.speaker_mode == "d_vector" and self.d_vector_dim <= 0:
            raise CheckpointError(f"{source}: use_d_vector_file is set but d_vector_dim is {self.d_vector_dim}")
        if self.speaker_mode == "embedding" and self.speaker_embedding_dim <= 0:
            raise CheckpointError(f"{source}: speaker_embedding_channels must be positive, got {self.speaker_embedding_dim}")
        if not self.use_sdp:
            raise CheckpointError(f"{source}: only the stochastic duration predictor (use_sdp: true) is supported")
        return self


def make_config_dict(
    *,
    hidden: int = 192,
    ffn: int = 768,
    heads: int = 2,
    layers: int = 10,
    posterior_layers: int = 16,
    flow_layers: int = 4,
    resblock_type: str = "2",
    upsample_rates: tuple[int, ...] = (8, 8, 2, 2),
    upsample_kernels: tuple[int, ...] = (16, 16, 4, 4),
    upsample_initial: int = 512,
    d_vector_dim: int = 512,
    languages: tuple[str, ...] = ("en", "fr-fr", "pt-br"),
    sample_rate: int = 16000,
    spec_channels: int = 513,
    speakers: str = "d_vector",
    num_speakers: int = 4,
    speaker_embedding_dim: int = 16,
) -> dict[str, Any]:
    """A Coqui-layout config dict (the fields ttskiln and Coqui's loader read) for a YourTTS-like model.

    ``speakers``: ``d_vector`` (YourTTS), ``embedding`` (``num_speakers`` ids, an
    ``emb_g`` of ``speaker_embedding_dim``) or ``none``; an empty ``languages`` leaves the
    language embedding out (a monolingual VITS).
    """
    if speakers not in SPEAKER_MODES:
        raise TypeError(f"speakers must be one of {list(SPEAKER_MODES)}, got {speakers!r}")
    num_chars = 1 + len(_PUNCTUATIONS) + len(_CHARACTERS) + 1
    use_d_vectors, use_ids, use_lang = speakers == "d_vector", speakers == "embedding", bool(languages)
    config = {
        "model": "vits",
        "audio": {"sample_rate": sample_rate, "hop_length": math.prod(upsample_rates), "fft_size": 2 * (spec_channels - 1),
                  "win_length": 2 * (spec_channels - 1)},
        "model_args": {
            "num_chars": num_chars,
            "out_channels": spec_channels,
            "hidden_channels": hidden,
            "hidden_channels_ffn_text_encoder": ffn,
            "num_heads_text_encoder": heads,
            "num_layers_text_encoder": layers,
            "kernel_size_text_encoder": 3,
            "kernel_size_posterior_encoder": 5,
            "dilation_rate_posterior_encoder": 1,
            "num_layers_posterior_encoder": posterior_layers,
            "kernel_size_flow": 5,
            "dilation_rate_flow": 1,
            "num_layers_flow": flow_layers,
            "resblock_type_decoder": resblock_type,
            "resblock_kernel_sizes_decoder": [3, 7, 11],
            "resblock_dilation_sizes_decoder": [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
            "upsample_rates_decoder": list(upsample_rates),
            "upsample_kernel_sizes_decoder": list(upsample_kernels),
            "upsample_initial_channel_decoder": upsample_initial,
            "use_sdp": True,
            "inference_noise_scale": 0.667,
            "inference_noise_scale_dp": 0.8,
            "length_scale": 1.0,
            "init_discriminator": False,
            "use_speaker_embedding": use_ids,
            "num_speakers": num_speakers if use_ids else 0,
            "speaker_embedding_channels": speaker_embedding_dim,
            "speakers_file": SPEAKER_IDS_FILE if use_ids else None,
            "use_d_vector_file": use_d_vectors,
            "d_vector_file": ["speakers.json"] if use_d_vectors else None,
            "d_vector_dim": d_vector_dim,
            "use_language_embedding": use_lang,
            "embedded_language_dim": 4,
            "language_ids_file": "language_ids.json" if use_lang else None,
            "condition_dp_on_speaker": True,
            "encoder_sample_rate": None,
        },
        "languages": list(languages),
        # The released YourTTS character block: [pad, punctuations, characters, blank] ids.
        "characters": {"characters_class": "TTS.tts.models.vits.VitsCharacters", "pad": "_", "eos": None, "bos": None,
                       "blank": "<BLNK>", "characters": _CHARACTERS, "punctuations": _PUNCTUATIONS, "phonemes": None,
                       "is_unique": True, "is_sorted": True},
        "add_blank": True,
        "use_phonemes": False,
        "text_cleaner": "multilingual_cleaners",
        "enable_eos_bos_chars": False,
        "use_speaker_embedding": use_ids,
        "num_speakers": num_speakers if use_ids else 0,
        "use_d_vector_file": use_d_vectors,
        "d_vector_dim": d_vector_dim,
        "use_language_embedding": use_lang,
    }
    return config


PRESETS: dict[str, dict[str, Any]] = {
    # The released YourTTS (tts_models/multilingual/multi-dataset/your_tts) with its speaker
    # encoder (ResNet H/ASP, upstream's default depth and widths, 64 mels, 512-dim d-vectors).
    "yourtts": {"speaker_encoder": {}},
    # Small enough for unit tests.
    "tiny": {"hidden": 16, "ffn": 32, "heads": 2, "layers": 1, "posterior_layers": 1, "flow_layers": 1,
             "upsample_rates": (4, 4), "upsample_kernels": (8, 8), "upsample_initial": 16, "d_vector_dim": 8,
             "spec_channels": 9,
             "speaker_encoder": {"layers": (1, 1, 1, 1), "filters": (8, 8, 16, 16), "n_mels": 16}},
    # The pipeline demo: the released structure at reduced widths.
    "demo": {"hidden": 64, "ffn": 128, "heads": 2, "layers": 2, "posterior_layers": 2, "flow_layers": 2,
             "upsample_rates": (8, 8, 2, 2), "upsample_kernels": (16, 16, 4, 4), "upsample_initial": 64,
             "d_vector_dim": 64, "spec_channels": 65,
             "speaker_encoder": {"layers": (1, 1, 1, 1), "filters": (8, 16, 32, 64)}},
}


def _conv(cin: int, cout: int, kernel: int = 1, groups: int = 1, bias: bool = True) -> int:
    return cout * (cin // groups) * kernel + (cout if bias else 0)


def _wavenet(hidden: int, kernel: int, layers: int, cond: int) -> int:
    total = _conv(cond, 2 * hidden * layers) if cond > 0 else 0
    for i in range(layers):
        total += _conv(hidden, 2 * hidden, kernel) + _conv(hidden, 2 * hidden if i < layers - 1 else hidden)
    return total


def _dds(channels: int, kernel: int, layers: int) -> int:
    return layers * (_conv(channels, channels, kernel, groups=channels) + _conv(channels, channels) + 4 * channels)


def parameter_count(cfg: VitsConfig) -> int:
    """Parameters of ``modules.Vits(cfg)``, the loaded network (with the training-only posterior
    encoder and the SDP's posterior flows; without the discriminator and the speaker encoder)."""
    h, c = cfg.hidden, cfg.text_channels
    attention = 4 * _conv(c, c) + 2 * (2 * REL_WINDOW + 1) * (c // cfg.heads)
    feed_forward = _conv(c, cfg.ffn, cfg.kernel_text) + _conv(cfg.ffn, c, cfg.kernel_text)
    text = cfg.num_chars * h + cfg.layers * (attention + feed_forward + 4 * c) + _conv(c, 2 * h)
    coupling = _conv(h // 2, h) + _wavenet(h, cfg.flow_kernel, cfg.flow_layers, cfg.speaker_dim) + _conv(h, h // 2)
    posterior = (_conv(cfg.spec_channels, h) + _wavenet(h, cfg.posterior_kernel, cfg.posterior_layers, cfg.speaker_dim)
                 + _conv(h, 2 * h))
    s = SDP_CHANNELS
    conv_flow = _conv(1, s) + _dds(s, SDP_KERNEL, 3) + _conv(s, 3 * SPLINE_BINS - 1)
    flows = 4 + SDP_FLOWS * conv_flow  # an elementwise affine (2 x 2 values), then the ConvFlows
    sdp = 2 * (_dds(s, SDP_KERNEL, 3) + _conv(s, s) + flows) + _conv(c, s) + _conv(1, s)
    sdp += (_conv(cfg.speaker_dim, s) if cfg.dp_speaker else 0) + (_conv(cfg.language_dim, s) if cfg.language_dim else 0)
    init = cfg.upsample_initial
    decoder = _conv(h, init, 7) + _conv(init >> len(cfg.upsample_rates), 1, 7, bias=False)
    decoder += _conv(cfg.speaker_dim, init) if cfg.speaker_dim else 0
    for i, kernel in enumerate(cfg.upsample_kernels):
        cin, cout = init >> i, init >> (i + 1)
        decoder += cin * cout * kernel + cout
        for k, dilations in zip(cfg.resblock_kernels, cfg.resblock_dilations):
            convs = 2 * len(dilations[:3]) if cfg.resblock_type == "1" else len(dilations[:2])
            decoder += convs * _conv(cout, cout, k)
    embeddings = cfg.num_speakers * cfg.speaker_embedding_dim if cfg.speaker_mode == "embedding" else 0
    embeddings += cfg.num_languages * cfg.language_dim if cfg.language_dim else 0
    return text + cfg.flows * coupling + posterior + sdp + decoder + embeddings


SPEAKER_INPUT = {"d_vector": "g", "embedding": "sid", "none": None}


def graph_inputs(cfg: VitsConfig, component: str) -> tuple[str, ...]:
    """The input names of an exported component, in order; the speaker input (``g`` or ``sid``)
    and ``language_id`` appear only where the model uses them."""
    speaker = SPEAKER_INPUT[cfg.speaker_mode]
    spk = (speaker,) if speaker else ()
    lang = ("language_id",) if cfg.language_dim else ()
    if component == "text_encoder":
        return ("tokens", "lengths") + lang
    if component == "duration_predictor":
        return ("x", "x_mask") + (spk if cfg.dp_speaker else ()) + lang + ("noise",)
    if component == "flow":
        return ("m_p", "logs_p", "noise", "y_mask") + spk
    if component == "decoder":
        return ("z",) + spk
    raise KeyError(f"vits components are text_encoder, duration_predictor, flow, decoder; got {component!r}")
