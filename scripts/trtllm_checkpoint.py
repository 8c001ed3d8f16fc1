from ttskiln.families import get_family
from ttskiln.families.f5tts.trtllm import EngineLimits, convert
from ttskiln.smk import job

w = snakemake.wildcards
with job(snakemake.log[0], w.model):
    family = get_family(snakemake.params.family)
    checkpoint = snakemake.params.checkpoint
    config = family.read_config(checkpoint, dict(snakemake.params.options))
    limits = {k: v for k, v in dict(snakemake.params.limits).items() if k != "dtype"}
    convert(checkpoint, config, snakemake.output[0], w.dtype, EngineLimits.from_config(limits))
