"""``python -m ttskiln doctor``: what this machine offers and which stages will run."""

from __future__ import annotations

from ttskiln.environment import library_versions
from ttskiln.gpu import detect

CPU_STAGES = ("reference", "export", "simplify", "fp16", "int8", "validate", "benchmark (PyTorch, ONNX Runtime CPU)",
              "trtllm_checkpoint (F5 DiT -> TensorRT-LLM checkpoint)", "report")


def main() -> int:
    machine = detect()
    versions = library_versions()
    print("ttskiln doctor")
    print(f"  CUDA devices:        {', '.join(machine.gpus) or 'none'}" + (f" (driver {machine.driver})" if machine.driver else ""))
    print(f"  TensorRT:            {machine.tensorrt or 'not installed'}")
    print(f"  TensorRT-LLM:        {machine.tensorrt_llm or 'not installed'}")
    print(f"  ONNX Runtime:        {versions.get('onnxruntime')} providers {', '.join(machine.ort_providers)}")
    print(f"  PyTorch:             {versions.get('torch')}")
    print(f"  engine tag:          {machine.tag()}")
    print(f"  TensorRT-LLM tag:    {machine.trtllm_tag()}")
    print("stages:")
    for stage in CPU_STAGES:
        print(f"  run   {stage}")
    skipped = machine.skipped_stages()
    for stage in ("tensorrt_engines", "tensorrt_llm", "ort-cuda", "ort-trt"):
        if stage in skipped:
            print(f"  skip  {stage}{_detail(stage)}: {skipped[stage]}")
        else:
            print(f"  run   {stage}{_detail(stage)}")
    if skipped:
        print("(force skipped GPU stages with `gpu: {stages: on}` in the config to see their real error)")
    return 0


def _detail(stage: str) -> str:
    return {"tensorrt_llm": " (F5 DiT engine and the synth chain over it)"}.get(stage, "")
