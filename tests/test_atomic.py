"""Atomic writes: temporaries of killed jobs are cleaned, outputs keep the user's umask."""

import os
import stat
from pathlib import Path

import numpy as np
import pytest

from ttskiln.atomic import atomic_path, clean_stale, scratch_dir, write_json, write_npz, write_text


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield 0o027
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_outputs_get_the_umask_mode(tmp_path, umask_027):
    write_text(tmp_path / "summary.md", "x\n")
    write_json(tmp_path / "summary.json", {"a": 1})
    write_npz(tmp_path / "ref.npz", {"a": np.zeros(2)})
    with atomic_path(tmp_path / "latency.png", suffix=".png") as tmp:
        tmp.write_bytes(b"png")
    for name in ("summary.md", "summary.json", "ref.npz", "latency.png"):
        assert _mode(tmp_path / name) == 0o666 & ~umask_027, name


def test_outputs_follow_another_umask(tmp_path):
    old = os.umask(0o002)
    try:
        write_text(tmp_path / "index.html", "<p>")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "index.html") == 0o664


def _stale_tree(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    made = {
        "own_file": folder / ".latency.png.wlb4iaz4.tmp.png",
        "own_plain": folder / ".latency.png.x1y2z3_q.tmp",
        "own_dir": folder / ".latency.png.ab12cd34.tmp.d",
        "other_output": folder / ".latency.png.old.wlb4.tmp.png",
        "unrelated": folder / ".hidden",
        "other_prefix": folder / ".latency.pngx.abcd.tmp",
    }
    for key, path in made.items():
        if key == "own_dir":
            path.mkdir()
            (path / "named.onnx").write_bytes(b"x")
        else:
            path.write_bytes(b"")
    return made


def test_clean_stale_removes_only_the_outputs_own_temporaries(tmp_path):
    made = _stale_tree(tmp_path)
    removed = clean_stale(tmp_path / "latency.png")
    assert sorted(removed) == sorted(made[k] for k in ("own_file", "own_plain", "own_dir"))
    assert all(made[k].exists() for k in ("other_output", "unrelated", "other_prefix"))


def test_atomic_write_cleans_stale_temporaries_first(tmp_path):
    made = _stale_tree(tmp_path)
    with atomic_path(tmp_path / "latency.png", suffix=".png") as tmp:
        assert tmp.name.startswith(".latency.png.") and ".tmp" in tmp.name
        tmp.write_bytes(b"png")
    assert not any(made[k].exists() for k in ("own_file", "own_plain", "own_dir"))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["latency.png", made["other_output"].name, made["unrelated"].name, made["other_prefix"].name]
    )


def test_clean_stale_takes_extra_patterns(tmp_path):
    (tmp_path / ".export-2on0py3j").mkdir()
    (tmp_path / ".export-2on0py3j" / "raw.onnx").write_bytes(b"x")
    clean_stale(tmp_path / "export.onnx", [".export-*"])
    assert list(tmp_path.iterdir()) == []


def test_scratch_dir_is_beside_the_output_recognised_and_removed(tmp_path):
    output = tmp_path / "int8.onnx"
    with scratch_dir(output) as d:
        assert isinstance(d, Path) and d.is_dir() and d.parent == tmp_path
        (d / "prepared.onnx").write_bytes(b"x")
        # The job writes its output while the scratch is in use: the scratch stays.
        write_text(output, "graph")
        assert (d / "prepared.onnx").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["int8.onnx"]
    # A scratch left by a killed job is what clean_stale removes.
    left = tmp_path / f"{d.name}"
    left.mkdir()
    assert clean_stale(output) == [left]


def test_scratch_dir_is_removed_on_error(tmp_path):
    with pytest.raises(RuntimeError):
        with scratch_dir(tmp_path / "out.onnx") as d:
            (d / "raw.onnx").write_bytes(b"x")
            raise RuntimeError("job failed")
    assert list(tmp_path.iterdir()) == []


def test_failed_write_leaves_no_temporary(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "out.json") as tmp:
            tmp.write_text("{")
            raise RuntimeError("job failed")
    assert list(tmp_path.iterdir()) == []
