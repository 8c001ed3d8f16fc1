"""Stage 1: PyTorch reference outputs for one component at one profile point.

Inputs are seeded (or the user's ``sample_inputs``); inputs and outputs are stored together in
one .npz (``input.<name>``, ``output.<name>``) that every comparison of that point reuses.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ttskiln.atomic import write_npz
from ttskiln.errors import CheckpointError, InputError
from ttskiln.families import get_family
from ttskiln.metrics import non_finite
from ttskiln.reference_io import INPUT, OUTPUT, load_reference  # noqa: F401  (re-exported)


def point_rng(seed: int, component: str, point: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(f"{component}/{point}".encode())])


def build_reference(
    *,
    family: str,
    checkpoint: str,
    options: dict[str, Any],
    component: str,
    point: str,
    sizes: dict[str, int],
    seed: int,
    sample_inputs: str | None,
    output: str,
) -> None:
    from ttskiln.runtime import torch_run

    fam = get_family(family)
    config = fam.read_config(Path(checkpoint), options)
    info = fam.describe(config)
    spec = info.component(component)
    if sample_inputs:
        with np.load(sample_inputs, allow_pickle=False) as data:
            inputs = {t.name: data[t.name].astype(t.dtype) for t in spec.inputs}
    else:
        inputs = fam.make_inputs(info, component, sizes, point_rng(seed, component, point))
    bad = non_finite(inputs, "input")
    if bad:
        raise InputError(f"component '{component}' at point '{point}': {'; '.join(bad)}; "
                         "inputs must be finite")
    module = fam.component_module(fam.load(Path(checkpoint), config), component)
    outputs = torch_run(module, spec, inputs)
    bad = non_finite(outputs, "output")
    if bad:
        raise CheckpointError(
            f"the PyTorch reference of component '{component}' at point '{point}' is not finite "
            f"({'; '.join(bad)}) with finite inputs: the checkpoint (or the family's module) is at fault, "
            "and no artifact can be validated against it")
    arrays = {INPUT + k: v for k, v in inputs.items()}
    arrays.update({OUTPUT + k: v for k, v in outputs.items()})
    write_npz(output, arrays)
