from ttskiln.chains import run_chain
from ttskiln.smk import job

model = snakemake.params.model
with job(snakemake.log[0], model["name"]):
    run_chain(
        model=model["name"],
        family=model["family"],
        chain=snakemake.params.chain,
        point=snakemake.wildcards.point,
        sizes=dict(snakemake.params.sizes),
        checkpoint=model["checkpoint"],
        options=dict(model["options"]),
        artifacts=dict(snakemake.params.artifacts),
        linked=dict(snakemake.params.linked),
        tolerances=dict(snakemake.params.tolerances),
        bench=dict(snakemake.params.bench),
        seed=snakemake.params.seed,
        directory=snakemake.output[0],
    )
