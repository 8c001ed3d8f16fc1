from ttskiln.report import gate
from ttskiln.smk import job

with job(snakemake.log[0], snakemake.wildcards.model):
    gate(
        validations=list(snakemake.input.validations),
        benchmarks=list(snakemake.input.benchmarks),
        chains=list(snakemake.input.chains),
        model=snakemake.wildcards.model,
        output=snakemake.output[0],
    )
