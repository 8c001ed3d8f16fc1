from ttskiln.reference import build_reference
from ttskiln.smk import job

model = snakemake.params.model
with job(snakemake.log[0], model["name"]):
    build_reference(
        family=model["family"],
        checkpoint=model["checkpoint"],
        options=dict(model["options"]),
        component=snakemake.wildcards.component,
        point=snakemake.wildcards.point,
        sizes=dict(snakemake.params.sizes),
        seed=snakemake.params.seed,
        sample_inputs=snakemake.params.sample_inputs,
        output=snakemake.output[0],
    )
