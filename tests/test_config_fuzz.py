"""Property: any mutation of a valid config ends in one clean ``ttskiln`` line or a plan.

Mutations change types, drop and add keys, put huge, negative, zero and non-finite numbers,
unicode and path-like names anywhere, and nest values wrongly. Every outcome must be either a
TtskilnError whose message is one line, or a plan whose names stay inside the working
directory and whose numbers are finite. Synthetic checkpoints only: nothing heavy loads.
"""

from __future__ import annotations

import copy
import math
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ttskiln.config_check import check_config
from ttskiln.errors import TtskilnError
from ttskiln.plan import build_plan

EXAMPLES = 400
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")

BASE: dict[str, Any] = {
    "seed": 0,
    "opset": 18,
    "benchmark": {"threads": 1, "warmup": 1, "repeats": 3},
    "gpu": {"stages": "off"},
    "models": {
        "voc": {
            "family": "vocos",
            "checkpoint": {"synthetic": "tiny", "seed": 1, "overrides": {"num_layers": 1, "hop_length": 256, "n_fft": 1024}},
            "variants": ["fp32", "fp16", "int8"],
            "profiles": {"p": {"batch": {"min": 1, "opt": 1, "max": 2}, "frames": {"min": 8, "opt": 16, "max": 32},
                               "extra_points": [{"frames": 20}]}},
            "tolerances": {"max_abs_err": 1e-4, "int8": {"cosine": 0.9}},
            "fp16": {"keep_fp32_ops": ["Exp"], "keep_fp32_nodes": ["after:head.istft.*"]},
            "chunking": {"window": 16, "overlap": 4, "crossfade": 2},
        },
        "gpt": {
            "family": "tortoise_gpt",
            "checkpoint": {"synthetic": "tiny"},
            "options": {"decode_steps": 4},
            "profiles": {"s": {"batch": {"min": 1, "opt": 1, "max": 1}, "tokens": {"min": 4, "opt": 8, "max": 16}}},
        },
        "f5": {
            "family": "f5tts",
            "checkpoint": {"synthetic": "tiny"},
            "options": {"vocoder": "voc", "max_frames": 64},
            "profiles": {"q": {"batch": {"min": 2, "opt": 2, "max": 2}, "frames": {"min": 32, "opt": 48, "max": 64}}},
        },
    },
}

ODD_VALUES = st.one_of(
    st.none(), st.booleans(),
    st.sampled_from([0, -1, 1, 2**31, 10**12, -(10**9), 0.5, 1e308, -0.0, 3.7]),
    st.sampled_from([math.inf, -math.inf, math.nan]),
    st.sampled_from(["", "x", "many", "../../etc", "/abs/path", "a" * 300, "名前", "a b", "(.*)", "after:[", "LayerNorm"]),
    st.sampled_from([[], {}, [1, 2], {"a": 1}, [{"synthetic": "tiny"}], {"min": 1}]),
)
ODD_KEYS = st.sampled_from(["profile", "sed", "max_abs_error", "名前", "../x", "a.b", "", "1", "options", "synthetic"])


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path of a nested value (mappings and lists)."""
    found = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            found += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += _paths(v, (*prefix, i))
    return found


@st.composite
def mutated(draw) -> dict[str, Any]:
    config = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(config) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = config
        for step in path[:-1]:
            parent = parent[step]
        key = path[-1]
        action = draw(st.sampled_from(["replace", "drop", "add", "nest", "rename", "number", "number"]))
        if action == "number" and isinstance(parent[key], (int, float)) and not isinstance(parent[key], bool):
            # Numbers the schema may accept: the plan's own checks must catch the wrong ones.
            parent[key] = draw(st.one_of(st.integers(-3, 10**9), st.integers(0, 300), st.floats(0, 1e9)))
        elif action == "drop":
            del parent[key]
        elif action == "add" and isinstance(parent[key], dict):
            parent[key][draw(ODD_KEYS)] = copy.deepcopy(draw(ODD_VALUES))
        elif action == "nest":
            parent[key] = [parent[key]] if draw(st.booleans()) else {"value": parent[key]}
        elif action == "rename" and isinstance(parent, dict):
            parent[draw(ODD_KEYS)] = parent.pop(key)
        else:
            parent[key] = copy.deepcopy(draw(ODD_VALUES))
    return config


def _outcome(config: dict[str, Any], workdir: Path) -> str:
    try:
        check_config(config)
        plan = build_plan(config, workdir, check_files=True)
    except TtskilnError as exc:
        message = str(exc)
        assert message and "\n" not in message and len(message) < 1200, message
        return "clean error"
    names = [*plan.models, plan.gpu.engine_tag, plan.gpu.trtllm_tag]
    names += [p.name for m in plan.models.values() for p in m.points]
    for name in names:
        assert SAFE_NAME.match(name) and ".." not in name.split("/"), f"unsafe name {name!r} accepted"
    for m in plan.models.values():
        for p in m.points:
            assert all(isinstance(v, int) and v >= 1 for v in p.sizes.values()), (m.name, p)
        for limits in (m.tolerances, *m.variant_tolerances.values()):
            assert all(math.isfinite(v) for v in limits.values()), (m.name, limits)
    assert isinstance(plan.seed, int) and plan.seed >= 0 and 18 <= plan.opset
    return "plan"


def test_base_config_plans(tmp_path):
    assert _outcome(copy.deepcopy(BASE), tmp_path) == "plan"


@pytest.mark.filterwarnings("ignore")
def test_mutated_configs_fail_cleanly_or_plan(tmp_path):
    counts: Counter[str] = Counter()

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(mutated())
    def check(config):
        counts[_outcome(config, tmp_path)] += 1

    check()
    # Both outcomes occur: the mutations reach past the schema into planning.
    assert counts["clean error"] > 0 and counts["plan"] > 0, counts
    print(f"fuzz: {sum(counts.values())} configs, {counts['clean error']} clean errors, {counts['plan']} plans")
