from ttskiln.families import get_family
from ttskiln.smk import job

model = snakemake.params.model
with job(snakemake.log[0], model["name"]):
    family = get_family(model["family"])
    family.ggml.convert(
        family=family,
        checkpoint=model["checkpoint"],
        config=family.read_config(model["checkpoint"], dict(model["options"])),
        dtype=snakemake.wildcards.dtype,
        output=snakemake.output.model,
        meta_output=snakemake.output.meta,
    )
