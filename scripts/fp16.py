from ttskiln.precision import to_fp16
from ttskiln.smk import job

with job(snakemake.log[0], snakemake.wildcards.model):
    kept = to_fp16(
        source=snakemake.input[0],
        output=snakemake.output[0],
        keep_fp32_ops=list(snakemake.params.keep_fp32_ops),
        keep_fp32_nodes=list(snakemake.params.keep_fp32_nodes),
    )
    print(f"kept fp32: {kept}")
