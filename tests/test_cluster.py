"""A SLURM run whose controller cannot be reached stops at once with what to do, submitting nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, TINY_CONFIG

from rnce.cluster import ClusterError, check_executor, check_slurm_controller


def _fake_slurm(folder: Path, body: str) -> dict:
    """PATH with scontrol, sinfo, sacct, squeue and sbatch all running ``body`` (and a log of their calls)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("scontrol", "sinfo", "sacct", "squeue", "sbatch"):
        path = folder / name
        path.write_text(f"#!/bin/sh\necho {name} \"$@\" >> {folder}/calls.log\n{body}\n")
        path.chmod(0o755)
    return {**os.environ, "PATH": f"{folder}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def test_controller_down_or_silent_is_a_clear_error(tmp_path, monkeypatch):
    env = _fake_slurm(tmp_path / "down", 'echo "Unable to contact slurm controller (connect failure)" >&2; exit 1')
    monkeypatch.setenv("PATH", env["PATH"])
    with pytest.raises(ClusterError, match=r"not reachable \(`scontrol ping`: Unable to contact slurm controller"):
        check_executor("slurm")
    check_executor("local")  # nothing to check
    env = _fake_slurm(tmp_path / "silent", "sleep 30")
    monkeypatch.setenv("PATH", env["PATH"])
    start = time.monotonic()
    with pytest.raises(ClusterError, match="did not answer `scontrol ping` within 1 s"):
        check_slurm_controller(timeout=1)
    assert time.monotonic() - start < 10
    env = _fake_slurm(tmp_path / "up", 'echo "Slurmctld(primary) at head is UP"')
    monkeypatch.setenv("PATH", env["PATH"])
    check_slurm_controller()
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    with pytest.raises(ClusterError, match="`scontrol` is not on PATH"):
        check_slurm_controller()


def test_slurm_profile_against_an_unreachable_controller_fails_fast_and_submits_nothing(tmp_path):
    env = _fake_slurm(tmp_path / "bin", 'echo "Unable to contact slurm controller (connect failure)" >&2; exit 1')
    start = time.monotonic()
    result = subprocess.run(["snakemake", "results_tiny/demo/ground_truth.json", "--snakefile", str(ROOT / "Snakefile"),
                             "--profile", str(ROOT / "profiles" / "slurm"), "--configfile", str(TINY_CONFIG)],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0 and time.monotonic() - start < 60
    assert "the SLURM controller is not reachable" in result.stdout + result.stderr
    calls = (tmp_path / "bin" / "calls.log").read_text()
    assert "sbatch" not in calls
