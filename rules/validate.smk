rule validate:
    """Polygraphy: ONNX Runtime outputs vs the stored PyTorch outputs, against tolerances."""
    input:
        artifact="artifacts/{model}/{component}/{variant}.onnx",
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
        tolerances=lambda w: MODELS[w.model].tolerances,
        code=stage_code("ttskiln.validate"),
    script:
        "../scripts/validate.py"


rule validation:
    """Named target: every validation record."""
    input:
        get_validations(),
