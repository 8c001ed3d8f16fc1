from ttskiln.report import write_report
from ttskiln.smk import job

with job(snakemake.log[0]):
    write_report(
        validations=list(snakemake.input.validations),
        benchmarks=list(snakemake.input.benchmarks),
        chains=list(snakemake.input.chains),
        trtllm_checkpoints=list(snakemake.input.trtllm_checkpoints),
        models=dict(snakemake.params.models),
        summary_json=snakemake.output.summary_json,
        summary_md=snakemake.output.summary_md,
        index_html=snakemake.output.index_html,
        plots=dict(snakemake.params.plots),
        gemm_peak=snakemake.input.gemm_peak,
        skipped=dict(snakemake.params.skipped),
        policy=dict(snakemake.params.policy),
    )
