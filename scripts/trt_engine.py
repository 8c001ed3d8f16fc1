from ttskiln.engines import build_engine
from ttskiln.smk import job

with job(snakemake.log[0], snakemake.wildcards.model):
    build_engine(
        command=list(snakemake.params.command),
        engine=snakemake.output[0],
        timing_cache=snakemake.params.timing_cache,
        tag=snakemake.wildcards.engine_tag,
    )
