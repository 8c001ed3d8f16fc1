# Benchmark jobs reserve benchmark.threads cores, the threads every backend runs with. With
# benchmark.threads equal to --cores (the demo: 2 and 2) nothing runs beside a benchmark.


rule benchmark_torch:
    """PyTorch eager latency at one point: the baseline every speedup is against."""
    input:
        checkpoint=get_checkpoint_input,
        reference=get_reference,
    output:
        "artifacts/{model}/{component}/benchmark/torch/{point}.json",
    log:
        "logs/benchmark_torch/{model}/{component}/{point}.log",
    benchmark:
        "benchmarks/benchmark_torch/{model}/{component}/{point}.tsv"
    conda:
        "../envs/cpu.yaml"
    threads: PLAN.benchmark["threads"]
    params:
        model=model_ref,
        backend="torch",
        variant="reference",
        bench=PLAN.benchmark,
        chunking=None,
        code=stage_code("ttskiln.benchmark"),
    script:
        "../scripts/benchmark.py"


rule benchmark_onnx:
    """Latency of one ONNX artifact at one point on ONNX Runtime or another CPU backend (OpenVINO)."""
    input:
        artifact=lambda w: onnx_path(w.model, w.component, w.variant),
        reference=get_reference,
    output:
        "artifacts/{model}/{component}/benchmark/{backend}/{variant}/{point}.json",
    log:
        "logs/benchmark_onnx/{model}/{component}/{backend}/{variant}/{point}.log",
    benchmark:
        "benchmarks/benchmark_onnx/{model}/{component}/{backend}/{variant}/{point}.tsv"
    conda:
        "../envs/cpu.yaml"
    threads: PLAN.benchmark["threads"]
    params:
        model=model_ref,
        backend=lambda w: w.backend,
        variant=lambda w: w.variant,
        bench=PLAN.benchmark,
        chunking=None,
        code=stage_code("ttskiln.benchmark"),
    script:
        "../scripts/benchmark.py"


rule benchmark_chunked:
    """ONNX Runtime latency of the fp32 graph run in overlapping windows."""
    input:
        artifact=lambda w: onnx_path(w.model, w.component, "fp32"),
        reference=get_reference,
    output:
        "artifacts/{model}/{component}/benchmark/{backend}/fp32-chunked/{point}.json",
    log:
        "logs/benchmark_chunked/{model}/{component}/{backend}/{point}.log",
    benchmark:
        "benchmarks/benchmark_chunked/{model}/{component}/{backend}/{point}.tsv"
    conda:
        "../envs/cpu.yaml"
    threads: PLAN.benchmark["threads"]
    params:
        model=model_ref,
        backend=lambda w: w.backend,
        variant=CHUNKED_VARIANT,
        bench=PLAN.benchmark,
        chunking=lambda w: MODELS[w.model].chunk_params(w.component),
        code=stage_code("ttskiln.benchmark"),
    script:
        "../scripts/benchmark.py"


rule gemm_peak:
    """The machine's fp32 GEMM peak, measured once per run with the benchmark threads."""
    output:
        GEMM_PEAK,
    log:
        "logs/gemm_peak/gemm_peak.log",
    conda:
        "../envs/cpu.yaml"
    threads: PLAN.benchmark["threads"]
    params:
        threads=PLAN.benchmark["threads"],
        code=stage_code("ttskiln.flops"),
    script:
        "../scripts/gemm_peak.py"


rule benchmarks:
    """Named target: every benchmark record."""
    input:
        get_benchmarks,
