from ttskiln.benchmark import benchmark
from ttskiln.smk import job

w = snakemake.wildcards
model = snakemake.params.model
backend = snakemake.params.backend
with job(snakemake.log[0], model["name"]):
    benchmark(
        backend=backend,
        # PyTorch runs the checkpoint; every other backend the artifact this rule takes.
        artifact=model["checkpoint"] if backend == "torch" else snakemake.input.artifact,
        reference=snakemake.input.reference,
        family=model["family"],
        checkpoint=model["checkpoint"],
        options=dict(model["options"]),
        component=w.component,
        threads=snakemake.params.bench["threads"],
        warmup=snakemake.params.bench["warmup"],
        repeats=snakemake.params.bench["repeats"],
        chunking=snakemake.params.chunking,
        output=snakemake.output[0],
        labels={"model": model["name"], "component": w.component, "variant": snakemake.params.variant, "point": w.point},
    )
