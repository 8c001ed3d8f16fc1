from ttskiln.precision import to_int8
from ttskiln.smk import job

settings = dict(snakemake.params.settings)
with job(snakemake.log[0], snakemake.wildcards.model):
    done = to_int8(
        source=snakemake.input.model,
        output=snakemake.output[0],
        method=settings["method"],
        op_types=settings.get("op_types"),
        exclude_nodes=list(settings.get("exclude_nodes") or []),
        calibration=list(snakemake.input.calibration),
        per_channel=bool(settings.get("per_channel", True)),
    )
    print(f"int8: {done}")
