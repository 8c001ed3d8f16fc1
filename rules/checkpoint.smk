rule synthetic_checkpoint:
    """Seeded random weights in the family's released file format (demo and tests)."""
    output:
        directory(synthetic_dir("{model}")),
    log:
        "logs/synthetic_checkpoint/{model}.log",
    benchmark:
        "benchmarks/synthetic_checkpoint/{model}.tsv"
    conda:
        "../envs/cpu.yaml"
    params:
        model=model_ref,
        config=lambda w: MODELS[w.model].config,
        seed=lambda w: MODELS[w.model].synthetic["seed"],
        code=stage_code(),
    script:
        "../scripts/synthetic_checkpoint.py"
