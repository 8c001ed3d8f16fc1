"""Stage 2: export a component to ONNX (named inputs/outputs, dynamic batch and time axes).

The stage looks the family up in the registry; the export itself is ``ttskiln.onnx_export``'s.
"""

from __future__ import annotations

from typing import Any

from ttskiln.families import get_family
from ttskiln.onnx_export import (  # noqa: F401  (re-exported: the stage's public names)
    EXPORTERS,
    FORBIDDEN_OPS,
    LEGACY_SCRATCH,
    audit_ops,
    export_family_component,
    export_module,
    finish_onnx,
)
from ttskiln.onnx_io import EXTERNAL_DATA_BYTES  # noqa: F401  (re-exported)


def export_component(*, family: str, **kwargs: Any) -> None:
    """The export stage: ``export_family_component`` for the registry's family named ``family``
    (the other keyword arguments are that function's)."""
    export_family_component(get_family(family), **kwargs)
