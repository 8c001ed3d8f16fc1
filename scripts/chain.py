from ttskiln.chains import run_chain
from ttskiln.smk import job

w = snakemake.wildcards
with job(snakemake.log[0], w.model):
    run_chain(
        model=w.model,
        family=snakemake.params.family,
        chain=getattr(snakemake.params, "chain", None) or w.chain,  # trtllm_synth names its chain
        point=w.point,
        sizes=dict(snakemake.params.sizes),
        checkpoint=snakemake.params.checkpoint,
        options=dict(snakemake.params.options),
        artifacts=dict(snakemake.params.artifacts),
        linked=dict(snakemake.params.linked),
        tolerances=dict(snakemake.params.tolerances),
        bench=dict(snakemake.params.bench),
        seed=snakemake.params.seed,
        directory=snakemake.output[0],
    )
