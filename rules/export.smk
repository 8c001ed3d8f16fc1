rule export:
    """ONNX export (opset from config; dynamic batch and time axes; checker passes)."""
    input:
        checkpoint=get_checkpoint_input,
    output:
        "artifacts/{model}/{component}/export.onnx",
    log:
        "logs/export/{model}/{component}.log",
    benchmark:
        "benchmarks/export/{model}/{component}.tsv"
    conda:
        "../envs/cpu.yaml"
    params:
        model=model_ref,
        opset=PLAN.opset,
        code=stage_code("ttskiln.export"),
    script:
        "../scripts/export.py"


rule simplify:
    """onnxsim (default) or onnxslim over the raw export: the fp32 artifact."""
    input:
        rules.export.output[0],
    output:
        "artifacts/{model}/{component}/fp32.onnx",
    log:
        "logs/simplify/{model}/{component}.log",
    benchmark:
        "benchmarks/simplify/{model}/{component}.tsv"
    conda:
        "../envs/cpu.yaml"
    params:
        simplifier=lambda w: MODELS[w.model].simplifier,
        code=stage_code("ttskiln.simplify", family=False),
    script:
        "../scripts/simplify.py"


rule onnx:
    """Named target: every ONNX artifact, without validation or benchmarks."""
    input:
        get_onnx_artifacts,
