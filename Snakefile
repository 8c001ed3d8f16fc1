# ttskiln: checkpoints -> ONNX -> simplified ONNX -> validation -> benchmarks -> report.
from snakemake.utils import min_version

min_version("9.0")


# The default (demo) config is used only when none is given with --configfile.
if not config:

    configfile: f"{workflow.basedir}/config/config.yaml"


include: "rules/common.smk"
include: "rules/checkpoint.smk"
include: "rules/reference.smk"
include: "rules/export.smk"
include: "rules/variants.smk"
include: "rules/validate.smk"
include: "rules/benchmark.smk"
include: "rules/chain.smk"
include: "rules/engines.smk"
include: "rules/ggml.smk"
include: "rules/report.smk"


rule all:
    default_target: True
    input:
        get_final_targets(),


# A failed run (a job that crashed, --keep-going or not) still gets a report: the records
# that exist, and each failed job with its one-line reason.
onerror:
    write_report_after_failure(log)


record_signatures(workflow.rules)
