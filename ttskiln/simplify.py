"""Stage 3: simplify an exported graph with onnxsim (default) or onnxslim."""

from __future__ import annotations

from ttskiln.atomic import atomic_path
from ttskiln.errors import TtskilnError
from ttskiln.export import audit_ops

SIMPLIFIERS = ("onnxsim", "onnxslim")


def simplify_onnx(*, source: str, output: str, simplifier: str = "onnxsim") -> None:
    import onnx

    model = onnx.load(source)
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
    onnx.checker.check_model(simplified, full_check=True)
    audit_ops(simplified, output)
    with atomic_path(output, suffix=".onnx") as tmp:
        onnx.save(simplified, str(tmp))
