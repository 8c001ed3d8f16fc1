"""The family registry: the one place that maps a family name to its implementation."""

from __future__ import annotations

from ttskiln.errors import ConfigError
from ttskiln.families.base import Family
from ttskiln.families.bigvgan import BigVGANFamily
from ttskiln.families.f5tts import F5TTSFamily
from ttskiln.families.sovits_v4 import SovitsV4Family
from ttskiln.families.tortoise_gpt import TortoiseGPTFamily
from ttskiln.families.vits import VitsFamily
from ttskiln.families.vocos import VocosFamily

FAMILIES: dict[str, Family] = {family.name: family for family in (VocosFamily(), BigVGANFamily(), SovitsV4Family(), F5TTSFamily(), TortoiseGPTFamily(), VitsFamily())}


def get_family(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise ConfigError(f"unknown family {name!r}; known families: {', '.join(sorted(FAMILIES))}") from None
