from ttskiln.benchmark import benchmark
from ttskiln.smk import job

w = snakemake.wildcards
backend = w.get("backend", snakemake.params.get("backend", "torch"))
with job(snakemake.log[0], w.model):
    benchmark(
        backend=backend,
        artifact=snakemake.input.get("artifact", snakemake.params.checkpoint),
        reference=snakemake.input.reference,
        family=snakemake.params.family,
        checkpoint=snakemake.params.checkpoint,
        options=dict(snakemake.params.options),
        component=w.component,
        threads=snakemake.params.bench["threads"],
        warmup=snakemake.params.bench["warmup"],
        repeats=snakemake.params.bench["repeats"],
        chunking=snakemake.params.get("chunking"),
        output=snakemake.output[0],
        labels={
            "model": w.model,
            "component": w.component,
            "variant": w.get("variant", "fp32-chunked" if snakemake.params.get("chunking") else "reference"),
            "point": w.point,
        },
    )
