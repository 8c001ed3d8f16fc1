rule validate:
    """Polygraphy: ONNX Runtime (CPU) outputs vs the stored PyTorch outputs, against tolerances."""
    input:
        artifact=lambda w: onnx_path(w.model, w.component, w.variant),
        reference=get_reference,
    output:
        "artifacts/{model}/{component}/validate/{variant}/{point}.json",
    log:
        "logs/validate/{model}/{component}/{variant}/{point}.log",
    benchmark:
        "benchmarks/validate/{model}/{component}/{variant}/{point}.tsv"
    conda:
        "../envs/cpu.yaml"
    params:
        tolerances=lambda w: MODELS[w.model].tolerances_for(w.variant),
        audio=lambda w: MODELS[w.model].audio(w.component),
        chunking=None,
        backend="ort-cpu",
        variant=lambda w: w.variant,
        code=stage_code("ttskiln.validate", family=False),
    script:
        "../scripts/validate.py"


rule validate_backend:
    """The same comparison on another CPU backend of the model (`backends:`, e.g. OpenVINO)."""
    input:
        artifact=lambda w: onnx_path(w.model, w.component, w.variant),
        reference=get_reference,
    output:
        "artifacts/{model}/{component}/validate/{backend}/{variant}/{point}.json",
    log:
        "logs/validate_backend/{model}/{component}/{backend}/{variant}/{point}.log",
    benchmark:
        "benchmarks/validate_backend/{model}/{component}/{backend}/{variant}/{point}.tsv"
    conda:
        "../envs/cpu.yaml"
    params:
        tolerances=lambda w: MODELS[w.model].tolerances_for(w.variant, w.backend),
        audio=lambda w: MODELS[w.model].audio(w.component),
        chunking=None,
        backend=lambda w: w.backend,
        variant=lambda w: w.variant,
        code=stage_code("ttskiln.validate", family=False),
    script:
        "../scripts/validate.py"


rule validate_chunked:
    """The fp32 graph run in overlapping windows vs the full-length PyTorch output."""
    input:
        artifact=lambda w: onnx_path(w.model, w.component, "fp32"),
        reference=get_reference,
    output:
        "artifacts/{model}/{component}/validate/fp32-chunked/{point}.json",
    log:
        "logs/validate_chunked/{model}/{component}/{point}.log",
    benchmark:
        "benchmarks/validate_chunked/{model}/{component}/{point}.tsv"
    conda:
        "../envs/cpu.yaml"
    params:
        tolerances=lambda w: MODELS[w.model].tolerances,
        audio=lambda w: MODELS[w.model].audio(w.component),
        chunking=lambda w: MODELS[w.model].chunk_params(w.component),
        backend="ort-cpu",
        variant=CHUNKED_VARIANT,
        code=stage_code("ttskiln.validate", family=False),
    script:
        "../scripts/validate.py"


rule validation:
    """Named target: every validation record."""
    input:
        get_validations,
