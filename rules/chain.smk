rule chain:
    """A family's multi-graph run (e.g. text -> waveform) at one point: rows and audio."""
    input:
        artifacts=get_chain_artifacts,
        checkpoints=get_chain_checkpoints,
        references=get_chain_references,
    output:
        report(
            directory("artifacts/{model}/chain/{chain}/{point}"),
            patterns=["{name}.wav"],
            category="{model}",
            subcategory="{chain} audio",
            labels={"point": "{point}", "file": "{name}"},
        ),
    log:
        "logs/chain/{model}/{chain}/{point}.log",
    benchmark:
        "benchmarks/chain/{model}/{chain}/{point}.tsv"
    conda:
        "../envs/cpu.yaml"
    threads: PLAN.benchmark["threads"]
    params:
        model=model_ref,
        chain=lambda w: w.chain,
        sizes=get_point_sizes,
        artifacts=lambda w: fp32_artifacts(w.model),
        linked=get_chain_links,
        tolerances=lambda w: MODELS[w.model].tolerances_for("fp32"),
        bench=PLAN.benchmark,
        seed=PLAN.seed,
        code=stage_code("ttskiln.chains", family="chain"),
    script:
        "../scripts/chain.py"
