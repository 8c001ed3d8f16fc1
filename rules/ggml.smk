# ggml model files of models whose family has the ggml capability and that have a `ggml` block (CPU).


rule ggml:
    """The family's graph as a ggml model file (``Family.ggml``), with its provenance beside it."""
    input:
        checkpoint=get_checkpoint_input,
    output:
        model="artifacts/{model}/ggml/{dtype}/ggml-model.bin",
        meta="artifacts/{model}/ggml/{dtype}/ggml-model.json",
    log:
        "logs/ggml/{model}/{dtype}.log",
    benchmark:
        "benchmarks/ggml/{model}/{dtype}.tsv"
    conda:
        "../envs/cpu.yaml"
    params:
        model=model_ref,
        code=stage_code(family="ggml"),
    script:
        "../scripts/ggml.py"


rule validate_ggml:
    """The file's model against PyTorch from the checkpoint at one point (the capability's
    ``validate``)."""
    input:
        artifact=rules.ggml.output.model,
        checkpoint=get_checkpoint_input,
    output:
        "artifacts/{model}/ggml/validate/{dtype}/{point}.json",
    log:
        "logs/validate_ggml/{model}/{dtype}/{point}.log",
    benchmark:
        "benchmarks/validate_ggml/{model}/{dtype}/{point}.tsv"
    conda:
        "../envs/cpu.yaml"
    params:
        model=model_ref,
        sizes=get_point_sizes,
        steps=get_ggml_steps,
        tolerances=get_ggml_tolerances,
        seed=PLAN.seed,
        code=stage_code("ttskiln.validate", family="ggml"),
    script:
        "../scripts/validate_ggml.py"


rule ggml_files:
    """Named target: every ggml model file of the config."""
    input:
        get_ggml_files,
