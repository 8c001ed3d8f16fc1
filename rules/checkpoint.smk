rule synthetic_checkpoint:
    """Seeded random weights in the family's released file format (demo and tests)."""
    output:
        directory("artifacts/{model}/checkpoint"),
    log:
        "logs/synthetic_checkpoint/{model}.log",
    benchmark:
        "benchmarks/synthetic_checkpoint/{model}.tsv"
    conda:
        "../envs/cpu.yaml"
    params:
        family=lambda w: MODELS[w.model].family,
        config=lambda w: MODELS[w.model].config,
        seed=lambda w: MODELS[w.model].synthetic["seed"],
        code=stage_code(),
    script:
        "../scripts/synthetic_checkpoint.py"
