from ttskiln.simplify import simplify_onnx
from ttskiln.smk import job

with job(snakemake.log[0], snakemake.wildcards.model):
    simplify_onnx(source=snakemake.input[0], output=snakemake.output[0], simplifier=snakemake.params.simplifier)
