"""Upstream parity for ``Vits.inference`` cases (YourTTS configuration).

The recorded inputs (blank-interspersed ids, raw d-vector, language id) run through the host
pipeline twice, on the PyTorch components and on their ONNX exports, once with the case's
fixed settings (noise scales 0) and once with the recorded noise of the ``noisy_*`` run.
Every recorded boundary tensor is compared (tolerance 1e-4; integer durations exactly).

Inputs by the model's kind: ``text_ids`` always; ``d_vector`` (d-vector models) or
``speaker_id`` (speaker-embedding models: upstream's ``aux_input["speaker_ids"]``);
``language_id`` only with a language embedding.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ttskiln.errors import InputError
from ttskiln.families.base import ParityCase, ParityCheck

TOLERANCE = 1e-4
EXACT = ("durations", "y_mask", "alignments", "enc_x_mask")
#: The speaker input a case holds, by speaker mode.
SPEAKER_INPUT = {"d_vector": "d_vector", "embedding": "speaker_id", "none": None}


def run_case(family: Any, case: ParityCase) -> list[ParityCheck]:
    from ttskiln.families.vits.backends import export_components, onnx_backend, torch_backend
    from ttskiln.families.vits.host import synthesize

    entry = str(case.manifest.get("entry_point", ""))
    if "Vits" not in entry or "inference" not in entry:
        raise InputError(f"{case.directory}: vits parity supports Vits.inference; manifest names {entry!r}")
    config = family.parity_config(case)
    info = family.describe(config)
    dims = family.host_dims(config)
    speaker_key = SPEAKER_INPUT[dims.speaker_mode]
    needed = ["text_ids"] + ([speaker_key] if speaker_key else []) + (["language_id"] if dims.num_languages else [])
    missing = [k for k in needed if k not in case.inputs]
    if missing:
        raise InputError(f"{case.directory}: inputs.npz lacks {missing}")
    speaker = case.inputs[speaker_key] if speaker_key else None
    language_id = case.inputs["language_id"] if dims.num_languages else None
    model = family.load(case.directory, config)
    fixed = (case.manifest.get("config") or {}).get("fixed_inference") or {}
    ids = case.inputs["text_ids"].astype(np.int64)
    lengths = np.full(ids.shape[0], ids.shape[1], dtype=np.int64)
    runs: list[tuple[str, dict[str, Any]]] = []
    scale_z = float(fixed.get("inference_noise_scale", 0.0))
    scale_dp = float(fixed.get("inference_noise_scale_dp", 0.0))
    if scale_z or scale_dp:
        raise InputError(f"{case.directory}: the plain run must be noise-free (noise scales {scale_z}, {scale_dp})")
    runs.append(("", {"noise_dp": np.zeros((ids.shape[0], 2, ids.shape[1]), np.float32),
                      "noise_z": lambda f: np.zeros((ids.shape[0], dims.hidden, f), np.float32),
                      "length_scale": float(fixed.get("length_scale", 1.0))}))
    if all(k in case.inputs for k in ("noisy_noise_dp", "noisy_noise_z", "noisy_noise_scales")):
        nz_scale, ndp_scale = (np.float32(v) for v in case.inputs["noisy_noise_scales"])
        runs.append(("noisy_", {"noise_dp": case.inputs["noisy_noise_dp"].astype(np.float32) * ndp_scale,
                                "noise_z": case.inputs["noisy_noise_z"].astype(np.float32) * nz_scale,
                                "length_scale": float(fixed.get("length_scale", 1.0))}))
    checks: list[ParityCheck] = []
    with tempfile.TemporaryDirectory() as tmp:
        backends = {
            "pytorch": torch_backend(family, model, info),
            "onnxruntime": onnx_backend(export_components(family, model, info, Path(tmp)), info),
        }
        lang_table = model.emb_l.weight.detach().numpy() if hasattr(model, "emb_l") else None
        spk_table = model.emb_g.weight.detach().numpy() if hasattr(model, "emb_g") else None
        for prefix, kwargs in runs:
            for backend, run in backends.items():
                got = synthesize(run, dims, ids, lengths, speaker, language_id, **kwargs)
                if backend == "pytorch":  # the graphs do not output these
                    if lang_table is not None:
                        got["lang_emb"] = lang_table[language_id.astype(np.int64)][:, :, None]
                    if spk_table is not None:
                        got["g"] = spk_table[speaker.astype(np.int64).reshape(-1)]
                if "g" in got:
                    got["g"] = got["g"][:, :, None]
                for name, value in got.items():
                    key = prefix + name
                    if key not in case.outputs:
                        continue
                    expected = case.outputs[key]
                    if value.shape != expected.shape and value.size == expected.size:
                        value = value.reshape(expected.shape)
                    tol = 0.0 if name in EXACT else TOLERANCE
                    checks.append(ParityCheck(key, backend, value, expected, tol))
    if not any(c.output == "waveform" for c in checks):
        raise InputError(f"{case.directory}: outputs.npz has no 'waveform'")
    return checks
