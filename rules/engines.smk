# GPU stages. Scheduled only where the plan says they can run (gpu.stages: auto), or always
# with gpu.stages: on. Engine paths carry the GPU model and TensorRT version.


rule trt_engine:
    """A TensorRT engine for one component and precision, over the model's engine profiles."""
    input:
        "artifacts/{model}/{component}/{variant}.onnx",
    output:
        "artifacts/{model}/{component}/trt/{engine_tag}/{variant}.plan",
    log:
        "logs/trt_engine/{model}/{component}/{engine_tag}/{variant}.log",
    benchmark:
        "benchmarks/trt_engine/{model}/{component}/{engine_tag}/{variant}.tsv"
    conda:
        "../envs/tensorrt.yaml"
    container:
        "docker://nvcr.io/nvidia/tensorrt:24.12-py3"
    resources:
        gpu=1,
    params:
        command=get_engine_command,
        timing_cache=lambda w: f"artifacts/trt/{w.engine_tag}/timing.cache",
        code=stage_code("ttskiln.engines"),
    script:
        "../scripts/trt_engine.py"


rule validate_trt:
    """Polygraphy TrtRunner outputs vs the stored PyTorch outputs."""
    input:
        artifact="artifacts/{model}/{component}/trt/{engine_tag}/{variant}.plan",
        reference=get_reference,
    output:
        "artifacts/{model}/{component}/trt/{engine_tag}/validate/{variant}/{point}.json",
    log:
        "logs/validate_trt/{model}/{component}/{engine_tag}/{variant}/{point}.log",
    benchmark:
        "benchmarks/validate_trt/{model}/{component}/{engine_tag}/{variant}/{point}.tsv"
    conda:
        "../envs/tensorrt.yaml"
    container:
        "docker://nvcr.io/nvidia/tensorrt:24.12-py3"
    resources:
        gpu=1,
    params:
        tolerances=lambda w: MODELS[w.model].tolerances_for(w.variant),
        audio=lambda w: MODELS[w.model].audio(w.component),
        backend="tensorrt",
        code=stage_code("ttskiln.validate", "ttskiln.engines"),
    script:
        "../scripts/validate.py"


rule benchmark_trt:
    """TensorRT engine latency at one point."""
    input:
        artifact="artifacts/{model}/{component}/trt/{engine_tag}/{variant}.plan",
        reference=get_reference,
    output:
        "artifacts/{model}/{component}/trt/{engine_tag}/benchmark/{variant}/{point}.json",
    log:
        "logs/benchmark_trt/{model}/{component}/{engine_tag}/{variant}/{point}.log",
    benchmark:
        "benchmarks/benchmark_trt/{model}/{component}/{engine_tag}/{variant}/{point}.tsv"
    conda:
        "../envs/tensorrt.yaml"
    container:
        "docker://nvcr.io/nvidia/tensorrt:24.12-py3"
    threads: PLAN.benchmark["threads"]
    resources:
        gpu=1,
    params:
        family=lambda w: MODELS[w.model].family,
        checkpoint=lambda w: MODELS[w.model].checkpoint,
        options=lambda w: MODELS[w.model].options,
        bench=PLAN.benchmark,
        backend="trt",
        code=stage_code("ttskiln.benchmark", "ttskiln.engines"),
    script:
        "../scripts/benchmark.py"


rule engines:
    """Named target: every TensorRT engine of the config."""
    input:
        get_engines(),
