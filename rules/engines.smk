# GPU stages. Scheduled only where the plan says they can run (gpu.stages: auto), or always
# with gpu.stages: on. Engine paths carry the GPU model and TensorRT version.


rule trt_engine:
    """A TensorRT engine for one component and precision, over the model's engine profiles."""
    input:
        lambda w: onnx_path(w.model, w.component, w.variant),
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
        timing_cache=get_timing_cache,
        code=stage_code("ttskiln.engines", family=False),
    script:
        "../scripts/trt_engine.py"


rule validate_trt:
    """Polygraphy TrtRunner outputs vs the stored PyTorch outputs."""
    input:
        artifact=rules.trt_engine.output[0],
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
        chunking=None,
        backend="trt",
        variant=lambda w: w.variant,
        code=stage_code("ttskiln.validate", "ttskiln.engines", family=False),
    script:
        "../scripts/validate.py"


rule benchmark_trt:
    """TensorRT engine latency at one point."""
    input:
        artifact=rules.trt_engine.output[0],
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
        model=model_ref,
        backend="trt",
        variant=lambda w: w.variant,
        bench=PLAN.benchmark,
        chunking=None,
        code=stage_code("ttskiln.benchmark", "ttskiln.engines"),
    script:
        "../scripts/benchmark.py"


rule trtllm_checkpoint:
    """TensorRT-LLM checkpoint of the family's graph (CPU; ``Family.tensorrt_llm``)."""
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
        model=model_ref,
        settings=lambda w: MODELS[w.model].trtllm,
        code=stage_code(family="tensorrt_llm"),
    script:
        "../scripts/trtllm_checkpoint.py"


rule trtllm_engine:
    """TensorRT-LLM engine from the converted checkpoint (the family's ``build``)."""
    input:
        rules.trtllm_checkpoint.output[0],
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
        model=model_ref,
        settings=lambda w: MODELS[w.model].trtllm,
        code=stage_code(family="tensorrt_llm"),
    script:
        "../scripts/trtllm_engine.py"


rule trtllm_synth:
    """The family's chain with the TensorRT-LLM engine as its backend, at one point."""
    input:
        engine=rules.trtllm_engine.output[0],
        artifacts=get_chain_artifacts,
        checkpoints=get_chain_checkpoints,
    output:
        directory("artifacts/{model}/trtllm/{trtllm_tag}/{dtype}/{chain}/{point}"),
    log:
        "logs/trtllm_synth/{model}/{trtllm_tag}/{dtype}/{chain}/{point}.log",
    benchmark:
        "benchmarks/trtllm_synth/{model}/{trtllm_tag}/{dtype}/{chain}/{point}.tsv"
    conda:
        "../envs/tensorrt-llm.yaml"
    container:
        "docker://nvcr.io/nvidia/tritonserver:24.12-trtllm-python-py3"
    threads: PLAN.benchmark["threads"]
    resources:
        gpu=1,
    params:
        model=model_ref,
        chain=lambda w: w.chain,
        sizes=get_point_sizes,
        artifacts=get_trtllm_chain_artifacts,
        linked=get_chain_links,
        tolerances=lambda w: MODELS[w.model].tolerances_for("fp32"),
        bench=PLAN.benchmark,
        seed=PLAN.seed,
        code=stage_code("ttskiln.chains", family=("chain", "tensorrt_llm")),
    script:
        "../scripts/chain.py"


rule engines:
    """Named target: every TensorRT engine of the config."""
    input:
        get_engines,
        get_trtllm_engines,
