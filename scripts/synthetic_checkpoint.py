from pathlib import Path

from ttskiln.families import get_family
from ttskiln.smk import job

with job(snakemake.log[0], snakemake.wildcards.model):
    family = get_family(snakemake.params.family)
    family.write_synthetic(dict(snakemake.params.config), Path(snakemake.output[0]), snakemake.params.seed)
