from ttskiln.families import get_family
from ttskiln.smk import job

model = snakemake.params.model
with job(snakemake.log[0], model["name"]):
    family = get_family(model["family"])
    config = family.read_config(model["checkpoint"], dict(model["options"]))
    family.tensorrt_llm.convert(model["checkpoint"], config, snakemake.output[0], snakemake.wildcards.dtype,
                                dict(snakemake.params.settings))
