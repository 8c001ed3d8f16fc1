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
from ttskiln.onnx_io import EXTERNAL_DATA_BYTES


def export_component(
    *,
    family: str,
    checkpoint: str,
    options: dict[str, Any],
    component: str,
    opset: int,
    output: str,
    exporter: str = "dynamo",
    metadata: dict[str, str] | None = None,
    external_data_bytes: int = EXTERNAL_DATA_BYTES,
) -> None:
    export_family_component(
        get_family(family),
        checkpoint=checkpoint,
        options=options,
        component=component,
        opset=opset,
        output=output,
        exporter=exporter,
        metadata=metadata,
        external_data_bytes=external_data_bytes,
    )
