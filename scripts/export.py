from ttskiln.export import export_component
from ttskiln.smk import job

with job(snakemake.log[0], snakemake.wildcards.model):
    export_component(
        family=snakemake.params.family,
        checkpoint=snakemake.params.checkpoint,
        options=dict(snakemake.params.options),
        component=snakemake.wildcards.component,
        opset=snakemake.params.opset,
        output=snakemake.output[0],
        metadata={
            "model": snakemake.wildcards.model,
            "family": snakemake.params.family,
            "checkpoint_sha256": snakemake.params.checkpoint_sha,
            "synthetic_weights": str(snakemake.params.synthetic).lower(),
            "code": snakemake.params.code,
        },
    )
