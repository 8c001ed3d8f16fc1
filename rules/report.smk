rule report:
    """summary.json, summary.md and index.html with a latency plot per model."""
    input:
        validations=get_validations(),
        benchmarks=get_benchmarks(),
        chains=get_chains(),
        trtllm_checkpoints=get_trtllm_checkpoints(),
        gemm_peak=GEMM_PEAK,
    output:
        summary_json="reports/summary.json",
        summary_md=report(
            "reports/summary.md", category="ttskiln report", labels={"file": "summary"}
        ),
        index_html=report(
            "reports/index.html", category="ttskiln report", labels={"file": "page"}
        ),
        plots=[
            report(
                path,
                category=model,
                subcategory="latency",
                labels={"plot": "latency vs length"},
            )
            for model, path in get_plots().items()
        ],
    log:
        "logs/report/report.log",
    benchmark:
        "benchmarks/report/report.tsv"
    conda:
        "../envs/cpu.yaml"
    params:
        models=get_models_meta(),
        skipped=GPU.skipped,
        plots=get_plots(),
        policy=PLAN.policy,
        code=stage_code("ttskiln.report"),
    script:
        "../scripts/report.py"


rule gate:
    """Fails, naming each, if any of the model's artifacts failed or could not run.

    It waits for its own model's records only: under --keep-going a broken model does not
    keep the others' validation.ok from being written."""
    input:
        validations=lambda w: get_model_validations(w.model),
        benchmarks=lambda w: get_model_benchmarks(w.model),
        chains=lambda w: get_model_chains(w.model),
    output:
        "artifacts/{model}/validation.ok",
    log:
        "logs/gate/{model}.log",
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/gate.py"
