from pathlib import Path

from ttskiln.families import get_family
from ttskiln.smk import job

model = snakemake.params.model
with job(snakemake.log[0], model["name"]):
    family = get_family(model["family"])
    family.write_synthetic(dict(snakemake.params.config), Path(snakemake.output[0]), snakemake.params.seed)
