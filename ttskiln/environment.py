"""The environment block of reports: machine, threads, library versions."""

from __future__ import annotations

import os
import platform
import socket
from importlib import metadata
from typing import Any

LIBRARIES = (
    "torch",
    "onnx",
    "onnxruntime",
    "onnxsim",
    "onnxslim",
    "openvino",
    "polygraphy",
    "numpy",
    "snakemake",
)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def environment(threads: int | None = None) -> dict[str, Any]:
    return {
        "hostname": socket.gethostname(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "threads": threads,
        "platform": platform.platform(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "versions": library_versions(),
    }
