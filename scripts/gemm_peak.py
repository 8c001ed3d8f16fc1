from ttskiln.atomic import write_json
from ttskiln.flops import gemm_peak
from ttskiln.smk import job

with job(snakemake.log[0]):
    write_json(snakemake.output[0], gemm_peak(snakemake.params.threads))
