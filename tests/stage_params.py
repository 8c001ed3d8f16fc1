"""Every job's params as Snakemake's DAG computes them, before and after edits to the workflow's code.

Run in a copy of the workflow (``PYTHONPATH`` at the copy, so its ``ttskiln`` is imported):

    python stage_params.py SNAKEFILE WORKDIR CONFIGFILE EDITS.json OUT.json

``EDITS.json`` lists edits, each a file (relative to the copy) or a list of files edited
together: each file gets a comment appended, the DAG is built again, and the files are restored.
``OUT.json`` maps ``"base"`` and each edit (its files joined by ``+``) to ``{job: params}`` (a
job is ``rule output``). Snakemake reruns a job whose params
changed (``--rerun-triggers params``), so comparing these maps is comparing dry-run job lists of
a built pipeline, without building it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, DAGSettings, OutputSettings, Quietness, ResourceSettings


def job_params(snakefile: Path, workdir: Path, configfile: Path) -> dict[str, str]:
    from ttskiln.fingerprint import clear_cache

    clear_cache()
    with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
        workflow_api = api.workflow(
            snakefile=snakefile,
            workdir=workdir,
            config_settings=ConfigSettings(configfiles=[configfile]),
            resource_settings=ResourceSettings(cores=1),
        )
        workflow_api.dag(DAGSettings())
        workflow = workflow_api._workflow
        workflow._prepare_dag(forceall=False, ignore_incomplete=True, lock_warn_only=True, nolock=True)
        workflow._build_dag()
        return {
            f"{job.rule.name} {' '.join(map(str, job.output))}": json.dumps(dict(job.params.items()), sort_keys=True, default=str)
            for job in workflow.dag.jobs
            if job.rule.name != "all"
        }


def main(snakefile: str, workdir: str, configfile: str, edits: str, out: str) -> None:
    snakefile_path, root = Path(snakefile).resolve(), Path(snakefile).resolve().parent
    result = {"base": job_params(snakefile_path, Path(workdir), Path(configfile))}
    for entry in json.loads(Path(edits).read_text()):
        names = [entry] if isinstance(entry, str) else list(entry)
        originals = {name: (root / name).read_bytes() for name in names}
        try:
            for name, original in originals.items():
                (root / name).write_bytes(original + b"\n# an edit\n")
            result["+".join(names)] = job_params(snakefile_path, Path(workdir), Path(configfile))
        finally:
            for name, original in originals.items():
                (root / name).write_bytes(original)
    Path(out).write_text(json.dumps(result))


if __name__ == "__main__":
    main(*sys.argv[1:])
