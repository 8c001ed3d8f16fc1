import json

from ttskiln.families import get_family
from ttskiln.smk import job

model = snakemake.params.model
with job(snakemake.log[0], model["name"]):
    settings = get_family(model["family"]).tensorrt_llm.build(
        snakemake.input[0], snakemake.output[0], dict(snakemake.params.settings), tag=snakemake.wildcards.trtllm_tag
    )
    print(json.dumps(settings, indent=2))
