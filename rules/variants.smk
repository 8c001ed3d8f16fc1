rule fp16:
    """Mixed fp16 in the graph (onnxconverter-common); listed ops and nodes stay fp32."""
    input:
        rules.simplify.output[0],
    output:
        "artifacts/{model}/{component}/fp16.onnx",
    log:
        "logs/fp16/{model}/{component}.log",
    benchmark:
        "benchmarks/fp16/{model}/{component}.tsv"
    conda:
        "../envs/cpu.yaml"
    params:
        keep_fp32_ops=lambda w: MODELS[w.model].fp16["keep_fp32_ops"],
        keep_fp32_nodes=lambda w: MODELS[w.model].fp16["keep_fp32_nodes"],
        code=stage_code("ttskiln.precision", family=False),
    script:
        "../scripts/fp16.py"


rule int8:
    """ONNX Runtime int8 quantization: dynamic, or static QDQ calibrated on references."""
    input:
        model=rules.simplify.output[0],
        calibration=get_calibration,
    output:
        "artifacts/{model}/{component}/int8.onnx",
    log:
        "logs/int8/{model}/{component}.log",
    benchmark:
        "benchmarks/int8/{model}/{component}.tsv"
    conda:
        "../envs/cpu.yaml"
    params:
        settings=lambda w: MODELS[w.model].int8,
        code=stage_code("ttskiln.precision", family=False),
    script:
        "../scripts/int8.py"
