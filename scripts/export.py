from ttskiln.export import export_component
from ttskiln.smk import job

model = snakemake.params.model
with job(snakemake.log[0], model["name"]):
    export_component(
        family=model["family"],
        checkpoint=model["checkpoint"],
        options=dict(model["options"]),
        component=snakemake.wildcards.component,
        opset=snakemake.params.opset,
        output=snakemake.output[0],
        metadata={
            "model": model["name"],
            "family": model["family"],
            "checkpoint_sha256": model["checkpoint_sha"],
            "synthetic_weights": str(model["synthetic"]).lower(),
            "code": snakemake.params.code,
        },
    )
