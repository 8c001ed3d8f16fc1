"""The F5 model's link to its vocoder: the role and component names, and the check that the
vocoder reads the F5 mel (bands, hop, sample rate). Model code: the plan-time link check
(``F5TTSFamily.check_links``) and the chain (``synthesis.check_vocoder``) run it, so it imports
nothing of the chain.
"""

from __future__ import annotations

from typing import Any

from ttskiln.errors import ConfigError
from ttskiln.families.f5tts.config import F5Config

#: The linked vocoder: its role in ``links`` and the component that turns mels into audio.
VOCODER_ROLE = "vocoder"
VOCODER_COMPONENT = "vocoder"


def check_vocoder_info(cfg: F5Config, info: Any, where: str) -> None:
    """ConfigError unless the vocoder described by ``info`` (its ``ModelInfo``) takes the F5
    model's mel: the ``vocoder`` input's bands, the hop and the sample rate of ``cfg``."""
    n_mels = info.component(VOCODER_COMPONENT).inputs[0].shape[1]
    got = (n_mels, info.hop_length, info.sample_rate)
    want = (cfg.mel_dim, cfg.hop_length, cfg.sample_rate)
    if got != want:
        raise ConfigError(
            f"vocoder {where} takes {n_mels} mels at hop {info.hop_length}, {info.sample_rate} Hz; the F5 model makes "
            f"{cfg.mel_dim} mels at hop {cfg.hop_length}, {cfg.sample_rate} Hz (for a synthetic Vocos use overrides "
            f"{{hop_length: {cfg.hop_length}, n_fft: {4 * cfg.hop_length}}})"
        )
