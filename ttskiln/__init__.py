"""ttskiln: a declarative build pipeline for text-to-speech models.

The package holds the logic; the Snakemake rules and scripts are thin layers over it.

Layers (``LAYERS``; tests/test_layers.py checks the import graph against them):

- ``bottom``: pure helpers (errors, files, tensors, timing, ONNX export and I/O, metrics,
  machine facts). They import only other bottom modules and the family interface
  (``ttskiln.families.base``), never the registry or a stage.
- ``families``: ``ttskiln.families`` (the registry), the interface and every family's code.
  A family module imports bottom modules and family modules only, never a stage, so a
  family's code hash never covers a stage's code.
- ``stage``: what a rule, the planner or the command line runs. Stages import the registry,
  bottom modules and, where one stage drives others (conformance, the CLI), stages.

A new top-level module names its layer here.
"""

__version__ = "0.1.0"

LAYERS: dict[str, tuple[str, ...]] = {
    "bottom": (
        "atomic",
        "audio_io",
        "audio_metrics",
        "checkpoint",
        "chunking",
        "config_check",
        "environment",
        "errors",
        "fingerprint",
        "flops",
        "gpu",
        "metrics",
        "onnx_export",
        "onnx_io",
        "ops",
        "reference_io",
        "rows",
        "runners",
        "runtime",
        "smk",
        "stats",
        "tensorrt_runtime",
        "timing",
    ),
    "families": ("families",),
    "stage": (
        "__main__",
        "benchmark",
        "chains",
        "conformance",
        "doctor",
        "engines",
        "export",
        "history",
        "parity",
        "plan",
        "precision",
        "reference",
        "report",
        "ship",
        "simplify",
        "validate",
    ),
}
