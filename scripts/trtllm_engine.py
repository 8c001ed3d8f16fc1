import json

from ttskiln.families.f5tts.trtllm import EngineLimits, build
from ttskiln.smk import job

with job(snakemake.log[0], snakemake.wildcards.model):
    limits = {k: v for k, v in dict(snakemake.params.limits).items() if k != "dtype"}
    settings = build(
        snakemake.input[0], snakemake.output[0], EngineLimits.from_config(limits), tag=snakemake.wildcards.trtllm_tag
    )
    print(json.dumps(settings, indent=2))
