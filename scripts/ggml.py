from ttskiln.families import get_family
from ttskiln.families.tortoise_gpt.ggml import convert
from ttskiln.smk import job

w = snakemake.wildcards
with job(snakemake.log[0], w.model):
    family = get_family(snakemake.params.family)
    checkpoint = snakemake.params.checkpoint
    convert(
        family=family,
        checkpoint=checkpoint,
        config=family.read_config(checkpoint, dict(snakemake.params.options)),
        dtype=w.dtype,
        output=snakemake.output.model,
        meta_output=snakemake.output.meta,
    )
