rule report:
    """summary.json, summary.md and index.html with a latency plot per model."""
    input:
        validations=get_validations(),
        benchmarks=get_benchmarks(),
    output:
        summary_json="reports/summary.json",
        summary_md="reports/summary.md",
        index_html="reports/index.html",
        plots=list(get_plots().values()),
    params:
        models=get_models_meta(),
        plots=get_plots(),
        code=stage_code("ttskiln.report"),
    log:
        "logs/report/report.log",
    benchmark:
        "benchmarks/report/report.tsv"
    script:
        "../scripts/report.py"


rule gate:
    """Fails, after the report has marked them, if any of the model's artifacts failed."""
    input:
        report="reports/summary.json",
        validations=lambda w: get_model_validations(w.model),
    output:
        "artifacts/{model}/validation.ok",
    log:
        "logs/gate/{model}.log",
    script:
        "../scripts/gate.py"
