"""Reading a stored reference (inputs and outputs in one ``.npz``): a bottom-layer module.

The reference stage writes these files; the stages that compare against them (precision,
validate, benchmark) read them through this module, so their code hashes do not cover the
reference stage's code.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

INPUT = "input."
OUTPUT = "output."


def load_reference(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(inputs, outputs) of a stored reference."""
    with np.load(path, allow_pickle=False) as data:
        inputs = {k[len(INPUT):]: data[k] for k in data.files if k.startswith(INPUT)}
        outputs = {k[len(OUTPUT):]: data[k] for k in data.files if k.startswith(OUTPUT)}
    return inputs, outputs
