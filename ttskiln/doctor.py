"""``python -m ttskiln doctor``: what this machine offers and which stages will run."""

from __future__ import annotations

from ttskiln.environment import library_versions
from ttskiln.gpu import detect, ort_providers
from ttskiln.runners import openvino_cpu_bf16

CPU_STAGES = ("reference", "export", "simplify", "fp16", "int8", "validate", "benchmark (PyTorch, ONNX Runtime CPU, {openvino})",
              "trtllm_checkpoint ({} -> TensorRT-LLM checkpoint)", "report")


def _trtllm_graphs() -> list:
    """The registry's TensorRT-LLM capabilities (what each builds, what runs over it)."""
    from ttskiln.families import FAMILIES

    return [f.tensorrt_llm for f in FAMILIES.values() if f.tensorrt_llm is not None]


def main() -> int:
    machine = detect()
    versions = library_versions()
    print("ttskiln doctor")
    print(f"  CUDA devices:        {', '.join(machine.gpus) or 'none'}" + (f" (driver {machine.driver})" if machine.driver else ""))
    print(f"  TensorRT:            {machine.tensorrt or 'not installed'}")
    print(f"  TensorRT-LLM:        {machine.tensorrt_llm or 'not installed'}")
    print(f"  ONNX Runtime:        {versions.get('onnxruntime')} providers {', '.join(ort_providers(load=True))}")
    print(f"  OpenVINO:            {versions.get('openvino')}")
    print(f"  PyTorch:             {versions.get('torch')}")
    print(f"  engine tag:          {machine.tag()}")
    print(f"  TensorRT-LLM tag:    {machine.trtllm_tag()}")
    print("stages:")
    graphs = " / ".join(c.graph.removeprefix("the ") for c in _trtllm_graphs()) or "none"
    for stage in CPU_STAGES:
        print(f"  run   {stage.format(graphs, openvino=_openvino())}")
    skipped = machine.skipped_stages()
    for stage in ("tensorrt_engines", "tensorrt_llm", "ort-cuda", "ort-trt"):
        if stage in skipped:
            print(f"  skip  {stage}{_detail(stage)}: {skipped[stage]}")
        else:
            print(f"  run   {stage}{_detail(stage)}")
    if skipped:
        print("(force skipped GPU stages with `gpu: {stages: on}` in the config to see their real error)")
    return 0


def _openvino() -> str:
    """The OpenVINO part of the benchmark line: its CPU backends, bf16 only where the CPU has it."""
    bf16 = openvino_cpu_bf16()
    if bf16 is None:
        return "no OpenVINO: not installed"
    return "OpenVINO CPU fp32" + (", OpenVINO CPU bf16 (the CPU has bf16)" if bf16 else "; no bf16: the CPU lacks it")


def _detail(stage: str) -> str:
    if stage != "tensorrt_llm":
        return ""
    parts = [f"{c.graph.removeprefix('the ')} engine" + (f" and {c.uses}" if c.uses else "") for c in _trtllm_graphs()]
    return f" ({'; '.join(parts)})" if parts else ""
