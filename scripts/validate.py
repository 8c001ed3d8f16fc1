from ttskiln.smk import job
from ttskiln.validate import validate_artifact

w = snakemake.wildcards
with job(snakemake.log[0], w.model):
    validate_artifact(
        artifact=snakemake.input.artifact,
        reference=snakemake.input.reference,
        tolerances=dict(snakemake.params.tolerances),
        audio=snakemake.params.audio,
        chunking=snakemake.params.get("chunking"),
        backend=snakemake.params.get("backend", "ort-cpu"),
        output=snakemake.output[0],
        labels={"model": w.model, "component": w.component, "variant": w.get("variant", "fp32-chunked"), "point": w.point},
    )
