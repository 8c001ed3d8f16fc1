"""Glue for the Snakemake scripts: logging to the rule's log file, one clear line on failure.

A job that fails leaves three things: its full traceback in its own log, one line on stderr
(``ttskiln: model 'm': export failed: RuntimeError: ...``), and a failure record beside the
log (``<log>.failed.json``) from which a report written after a failed run names the job and
its reason. A job that succeeds removes any failure record an earlier run of it left.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path

from ttskiln.errors import TtskilnError, for_model, one_line

FAILURE_SUFFIX = ".failed.json"


def failure_record_path(log_path: str | os.PathLike[str]) -> Path:
    return Path(f"{log_path}{FAILURE_SUFFIX}")


def stage_of(log_path: str | os.PathLike[str]) -> str:
    """The rule a log belongs to (``logs/<rule>/...``)."""
    parts = Path(log_path).parts
    return parts[1] if len(parts) > 2 and parts[0] == "logs" else Path(log_path).stem


@contextlib.contextmanager
def job(log_path: str, model: str | None = None) -> Iterator[None]:
    """Send the job's stdout/stderr to its log; on any exception, the traceback goes to the
    log and one line (a TtskilnError's message, or the exception's type and first line) to
    stderr, and the job exits 1."""
    record = failure_record_path(log_path)
    record.unlink(missing_ok=True)
    with open(log_path, "w") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        logging.basicConfig(stream=log, level=logging.INFO, force=True)
        # Where the job ran: a cluster run is checked (and debugged) from these lines.
        print(f"ttskiln job on {socket.gethostname()} slurm_job_id={os.environ.get('SLURM_JOB_ID', '-')}", file=log, flush=True)
        try:
            yield
        except TtskilnError as exc:
            err = for_model(model, exc) if model else exc
            _fail(log, record, log_path, model, str(err), None)
        except Exception as exc:  # a bug or an environment fault: keep the traceback with the job
            what = f"{stage_of(log_path)} failed: {type(exc).__name__}: {one_line(exc)}"
            _fail(log, record, log_path, model, f"model '{model}': {what}" if model else what, traceback.format_exc())


def _fail(log, record: Path, log_path: str, model: str | None, line: str, trace: str | None) -> None:
    if trace:
        print(trace, file=log)
    print(f"ttskiln: {line}", file=log, flush=True)
    print(f"ttskiln: {line}", file=sys.__stderr__, flush=True)
    try:
        record.write_text(json.dumps({"model": model, "stage": stage_of(log_path), "log": str(log_path), "error": line}) + "\n")
    except OSError:  # a full disk must not hide the original error
        pass
    raise SystemExit(1) from None
