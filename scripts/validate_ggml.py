from ttskiln.families import get_family
from ttskiln.smk import job

w = snakemake.wildcards
model = snakemake.params.model
with job(snakemake.log[0], model["name"]):
    family = get_family(model["family"])
    family.ggml.validate(
        family=family,
        checkpoint=model["checkpoint"],
        config=family.read_config(model["checkpoint"], dict(model["options"])),
        artifact=snakemake.input.artifact,
        dtype=w.dtype,
        sizes=dict(snakemake.params.sizes),
        steps=snakemake.params.steps,
        tolerances=dict(snakemake.params.tolerances),
        seed=snakemake.params.seed,
        output=snakemake.output[0],
        labels={"model": model["name"], "component": "ggml", "variant": w.dtype, "point": w.point},
    )
