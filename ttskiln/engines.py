"""TensorRT engines: one per component x precision variant x profile set.

Engines are built with ``polygraphy convert`` rather than hand-written builder code: the
command line is the whole recipe (shapes, builder options, timing cache), it is logged next
to the engine and can be re-run by hand, and the same Polygraphy then validates the engine
(``TrtRunner``) the way ONNX Runtime artifacts are validated. fp16 and int8 variants carry
their precision in the graph (mixed fp16 / QDQ), so they build strongly typed.

A timing cache per GPU model and TensorRT version (``artifacts/trt/<tag>/timing.cache``) is
loaded and appended to by every build on that GPU; engine paths carry the same tag, so another
GPU or an upgrade builds new engines and never loads a stale one.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ttskiln.atomic import atomic_path, write_text
from ttskiln.errors import TtskilnError
from ttskiln.tensorrt_runtime import require_tensorrt

STRONGLY_TYPED = {"fp16", "int8"}


@dataclass(frozen=True)
class BuilderSettings:
    builder_optimization_level: int = 3
    hardware_compatibility_level: str | None = None
    version_compatible: bool = False
    workspace_mb: int = 4096

    @classmethod
    def from_config(cls, data: dict[str, Any]) -> "BuilderSettings":
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def shape_arg(name: str, shape: list[int] | tuple[int, ...]) -> str:
    return f"{name}:[{','.join(str(int(d)) for d in shape)}]"


def convert_command(
    *,
    onnx_path: str,
    engine_path: str,
    variant: str,
    profiles: list[dict[str, dict[str, list[int]]]],
    settings: BuilderSettings,
    timing_cache: str,
) -> list[str]:
    """The ``polygraphy convert`` command for one engine.

    ``profiles``: one entry per optimisation profile, mapping each input to its min/opt/max
    shapes ({"min": [...], "opt": [...], "max": [...]}).
    """
    cmd = [sys.executable, "-m", "polygraphy", "convert", onnx_path, "--convert-to", "trt", "-o", engine_path]
    for profile in profiles:
        for level in ("min", "opt", "max"):
            cmd.append(f"--trt-{level}-shapes")
            cmd += [shape_arg(name, shapes[level]) for name, shapes in profile.items()]
    if variant in STRONGLY_TYPED:
        cmd.append("--strongly-typed")
    cmd += ["--builder-optimization-level", str(settings.builder_optimization_level)]
    if settings.hardware_compatibility_level:
        cmd += ["--hardware-compatibility-level", settings.hardware_compatibility_level]
    if settings.version_compatible:
        cmd.append("--version-compatible")
    cmd += ["--pool-limit", f"workspace:{settings.workspace_mb}M"]
    cmd += ["--load-timing-cache", timing_cache, "--save-timing-cache", timing_cache]
    return cmd


def build_engine(*, command: list[str], engine: str, timing_cache: str, tag: str | None = None) -> None:
    """Run the convert command into a temporary engine file, then rename it into place.
    ``tag``: the engine path's GPU/TensorRT tag, checked against this node first."""
    require_tensorrt()
    if tag is not None:
        from ttskiln.gpu import check_node

        check_node(tag, "engine")
    Path(timing_cache).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(engine, suffix=".plan") as tmp:
        cmd = [str(tmp) if part == engine else part for part in command]
        write_text(f"{engine}.cmd", shlex.join(command) + "\n")
        proc = subprocess.run(cmd, text=True)
        if proc.returncode != 0:
            raise TtskilnError(f"polygraphy convert failed ({proc.returncode}) for {engine}; see the log")
        if not tmp.is_file() or tmp.stat().st_size == 0:
            raise TtskilnError(f"polygraphy convert wrote no engine for {engine}")
