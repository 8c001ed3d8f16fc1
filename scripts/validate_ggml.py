from ttskiln.families import get_family
from ttskiln.families.tortoise_gpt.ggml import validate
from ttskiln.smk import job

w = snakemake.wildcards
with job(snakemake.log[0], w.model):
    family = get_family(snakemake.params.family)
    checkpoint = snakemake.params.checkpoint
    validate(
        family=family,
        checkpoint=checkpoint,
        config=family.read_config(checkpoint, dict(snakemake.params.options)),
        artifact=snakemake.input.artifact,
        dtype=w.dtype,
        sizes=dict(snakemake.params.sizes),
        steps=snakemake.params.steps,
        tolerances=dict(snakemake.params.tolerances),
        seed=snakemake.params.seed,
        output=snakemake.output[0],
        labels={"model": w.model, "component": "ggml", "variant": w.dtype, "point": w.point},
    )
