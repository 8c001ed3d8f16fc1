from ttskiln.atomic import write_json
from ttskiln.flops import gemm_peak
from ttskiln.smk import job

with job(snakemake.log[0]):
    import datetime

    peak = gemm_peak(snakemake.params.threads)
    peak["measured_at"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"GEMM peaks ({peak['threads']} threads): " + ", ".join(f"{p} {v['gflops']:.1f} ({v['kernel']})" for p, v in peak["peaks"].items()))
    write_json(snakemake.output[0], peak)
