from ttskiln.smk import job
from ttskiln.validate import validate_artifact

w = snakemake.wildcards
with job(snakemake.log[0], w.model):
    validate_artifact(
        artifact=snakemake.input.artifact,
        reference=snakemake.input.reference,
        tolerances=dict(snakemake.params.tolerances),
        audio=snakemake.params.audio,
        chunking=snakemake.params.chunking,
        backend=snakemake.params.backend,
        output=snakemake.output[0],
        labels={"model": w.model, "component": w.component, "variant": snakemake.params.variant, "point": w.point},
    )
