from ttskiln.reference import build_reference
from ttskiln.smk import job

with job(snakemake.log[0], snakemake.wildcards.model):
    build_reference(
        family=snakemake.params.family,
        checkpoint=snakemake.params.checkpoint,
        options=dict(snakemake.params.options),
        component=snakemake.wildcards.component,
        point=snakemake.wildcards.point,
        sizes=dict(snakemake.params.sizes),
        seed=snakemake.params.seed,
        sample_inputs=snakemake.params.sample_inputs,
        output=snakemake.output[0],
    )
