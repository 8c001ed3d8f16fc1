rule reference:
    """PyTorch outputs for seeded (or sample) inputs at one profile point, stored once."""
    input:
        checkpoint=get_checkpoint_input,
        sample=get_sample_inputs,
    output:
        "artifacts/{model}/{component}/reference/{point}.npz",
    log:
        "logs/reference/{model}/{component}/{point}.log",
    benchmark:
        "benchmarks/reference/{model}/{component}/{point}.tsv"
    conda:
        "../envs/cpu.yaml"
    params:
        model=model_ref,
        sizes=get_point_sizes,
        seed=PLAN.seed,
        sample_inputs=lambda w: (
            MODELS[w.model].sample_inputs if w.point == "sample" else None
        ),
        code=stage_code("ttskiln.reference"),
    script:
        "../scripts/reference.py"
