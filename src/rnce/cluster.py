"""Checks made before a cluster run submits anything.

Against an unreachable SLURM controller, snakemake-executor-plugin-slurm prints
`sacct` errors, then waits on `sbatch` and its status checks for many minutes.
:func:`check_executor` (the Snakefile's ``onstart``) asks the controller first,
with a short timeout, and stops the run with what to do.
"""

from __future__ import annotations

import shutil
import subprocess

PING_TIMEOUT_S = 20


class ClusterError(RuntimeError):
    """The cluster cannot take jobs: nothing was submitted."""

    plain = True


def check_slurm_controller(timeout: float = PING_TIMEOUT_S) -> None:
    """Raise :class:`ClusterError` unless ``scontrol ping`` reports a SLURM controller up within ``timeout``."""
    scontrol = shutil.which("scontrol")
    if scontrol is None:
        raise ClusterError("the SLURM executor is selected (--profile slurm), but `scontrol` is not on PATH: run "
                           "Snakemake on a login node of the cluster (after `module load slurm` where needed), or "
                           "run locally without --profile slurm. Nothing was submitted.")
    try:
        ping = subprocess.run([scontrol, "ping"], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ClusterError(f"the SLURM controller did not answer `scontrol ping` within {timeout:.0f} s. Check "
                           "that slurmctld is running and reachable from this machine (`sinfo`). Nothing was "
                           "submitted.") from None
    said = " ".join((ping.stdout + ping.stderr).split())
    if ping.returncode != 0 or " is UP" not in ping.stdout:
        raise ClusterError(f"the SLURM controller is not reachable (`scontrol ping`: {said or 'no output'}). Check "
                           "that slurmctld is running and reachable from this machine (`sinfo`), or run locally "
                           "without --profile slurm. Nothing was submitted.")


def check_executor(executor: str | None) -> None:
    """The check of the run's executor (``slurm``: the controller answers); others need none."""
    if executor == "slurm":
        check_slurm_controller()
