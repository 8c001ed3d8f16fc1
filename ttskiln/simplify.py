"""Stage 3: simplify an exported graph with onnxsim (default) or onnxslim."""

from __future__ import annotations

from ttskiln.errors import TtskilnError
from ttskiln.onnx_export import audit_ops
from ttskiln.onnx_io import EXTERNAL_DATA_BYTES, save_onnx, tensor_bytes

SIMPLIFIERS = ("onnxsim", "onnxslim")


def simplify_onnx(*, source: str, output: str, simplifier: str = "onnxsim") -> None:
    import onnx

    model = onnx.load(source)
    if simplifier == "onnxsim" and tensor_bytes(model) > EXTERNAL_DATA_BYTES:
        raise TtskilnError(f"{source} is over 2 GB: use simplifier: onnxslim for it (onnxsim serialises the whole graph)")
    if simplifier == "onnxsim":
        import onnxsim

        simplified, ok = onnxsim.simplify(model, check_n=0)
        if not ok:
            raise TtskilnError(f"onnxsim could not simplify {source}")
    elif simplifier == "onnxslim":
        import onnxslim

        simplified = onnxslim.slim(model)
    else:
        raise TtskilnError(f"simplifier must be one of {SIMPLIFIERS}, got {simplifier!r}")
    del simplified.metadata_props[:]
    simplified.metadata_props.extend(model.metadata_props)
    entry = simplified.metadata_props.add()
    entry.key, entry.value = "ttskiln.simplifier", simplifier
    audit_ops(simplified, output)
    save_onnx(simplified, output)
    onnx.checker.check_model(output, full_check=True)
