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
        code=stage_code("ttskiln.engines", family=False),
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
        backend="trt",
        code=stage_code("ttskiln.validate", "ttskiln.engines", family=False),
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


rule trtllm_checkpoint:
    """TensorRT-LLM checkpoint of an F5 DiT (CPU): config.json + rank0.safetensors."""
    input:
        checkpoint=get_checkpoint_input,
    output:
        directory("artifacts/{model}/trtllm/checkpoint/{dtype}"),
    log:
        "logs/trtllm_checkpoint/{model}/{dtype}.log",
    benchmark:
        "benchmarks/trtllm_checkpoint/{model}/{dtype}.tsv"
    conda:
        "../envs/cpu.yaml"
    params:
        family=lambda w: MODELS[w.model].family,
        checkpoint=lambda w: MODELS[w.model].checkpoint,
        checkpoint_sha=get_checkpoint_sha,
        options=lambda w: MODELS[w.model].options,
        limits=lambda w: MODELS[w.model].trtllm,
        code=stage_code("ttskiln.families.f5tts.trtllm"),
    script:
        "../scripts/trtllm_checkpoint.py"


rule trtllm_engine:
    """TensorRT-LLM 0.16 engine of the F5 DiT (Python build API, network registered in-process)."""
    input:
        "artifacts/{model}/trtllm/checkpoint/{dtype}",
    output:
        directory("artifacts/{model}/trtllm/{trtllm_tag}/{dtype}/engine"),
    log:
        "logs/trtllm_engine/{model}/{trtllm_tag}/{dtype}.log",
    benchmark:
        "benchmarks/trtllm_engine/{model}/{trtllm_tag}/{dtype}.tsv"
    conda:
        "../envs/tensorrt-llm.yaml"
    container:
        "docker://nvcr.io/nvidia/tritonserver:24.12-trtllm-python-py3"
    resources:
        gpu=1,
    params:
        limits=lambda w: MODELS[w.model].trtllm,
        code=stage_code(
            "ttskiln.families.f5tts.trtllm", "ttskiln.families.f5tts.trtllm_network"
        ),
    script:
        "../scripts/trtllm_engine.py"


rule trtllm_synth:
    """The synth chain with the TensorRT-LLM engine as its DiT backend, at one point."""
    input:
        engine="artifacts/{model}/trtllm/{trtllm_tag}/{dtype}/engine",
        artifacts=get_chain_artifacts,
        checkpoints=get_chain_checkpoints,
    output:
        directory("artifacts/{model}/trtllm/{trtllm_tag}/{dtype}/synth/{point}"),
    log:
        "logs/trtllm_synth/{model}/{trtllm_tag}/{dtype}/{point}.log",
    benchmark:
        "benchmarks/trtllm_synth/{model}/{trtllm_tag}/{dtype}/{point}.tsv"
    conda:
        "../envs/tensorrt-llm.yaml"
    container:
        "docker://nvcr.io/nvidia/tritonserver:24.12-trtllm-python-py3"
    threads: PLAN.benchmark["threads"]
    resources:
        gpu=1,
    params:
        family=lambda w: MODELS[w.model].family,
        checkpoint=lambda w: MODELS[w.model].checkpoint,
        checkpoint_sha=get_checkpoint_sha,
        options=lambda w: MODELS[w.model].options,
        sizes=get_point_sizes,
        artifacts=get_trtllm_chain_artifacts,
        linked=get_chain_links,
        tolerances=lambda w: MODELS[w.model].tolerances_for("fp32"),
        bench=PLAN.benchmark,
        seed=PLAN.seed,
        code=stage_code("ttskiln.chains", "ttskiln.families.f5tts.trtllm"),
        chain="synth",
    script:
        "../scripts/chain.py"


rule engines:
    """Named target: every TensorRT engine of the config."""
    input:
        get_engines(),
        [trtllm_engine_dir(n) for n, m in MODELS.items() if m.trtllm and GPU.trtllm],
