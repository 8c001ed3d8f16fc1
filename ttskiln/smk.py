"""Glue for the Snakemake scripts: logging to the rule's log file and clear errors."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
from collections.abc import Iterator

from ttskiln.errors import TtskilnError, for_model


@contextlib.contextmanager
def job(log_path: str, model: str | None = None) -> Iterator[None]:
    """Send the job's stdout/stderr to its log; turn a TtskilnError into one clear line."""
    with open(log_path, "w") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        logging.basicConfig(stream=log, level=logging.INFO, force=True)
        # Where the job ran: a cluster run is checked (and debugged) from these lines.
        print(f"ttskiln job on {socket.gethostname()} slurm_job_id={os.environ.get('SLURM_JOB_ID', '-')}", file=log, flush=True)
        try:
            yield
        except TtskilnError as exc:
            err = for_model(model, exc) if model else exc
            print(f"ttskiln: {err}", file=log)
            print(f"ttskiln: {err}", file=sys.__stderr__)
            raise SystemExit(1) from None
