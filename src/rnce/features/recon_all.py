"""FreeSurfer recon-all through nipype, one subject at a time.

A subject that finished cleanly is reused as it is. An unfinished or failed
one (see :func:`rnce.features.freesurfer.recon_all_status`) is removed and run
again from the start: a half-written FreeSurfer subject cannot be trusted, and
recon-all refuses ``-i`` for a subject that exists. Only the subjects
directory the pipeline owns (``results/freesurfer/{cohort}`` by default) is
ever written to.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from rnce.features.freesurfer import recon_all_status

log = logging.getLogger(__name__)


class ReconAllError(RuntimeError):
    """recon-all did not finish a subject."""


def freesurfer_available() -> bool:
    """Whether ``recon-all`` is on PATH."""
    return shutil.which("recon-all") is not None


def run_recon_all(t1w: str | Path, subjects_dir: str | Path, subject_id: str, threads: int = 1) -> Path:
    """Run (or reuse) recon-all -all for one image; return the subject directory."""
    from nipype.interfaces.freesurfer import ReconAll

    subjects_dir = Path(subjects_dir)
    subject_dir = subjects_dir / subject_id
    status = recon_all_status(subject_dir)
    if status is None:
        log.info("recon-all: subject %s already finished, reused", subject_id)
        return subject_dir
    if subject_dir.exists():
        log.warning("recon-all: subject %s is unusable (%s); removing it and running again", subject_id, status)
        shutil.rmtree(subject_dir)
    subjects_dir.mkdir(parents=True, exist_ok=True)
    interface = ReconAll(subject_id=subject_id, directive="all", subjects_dir=str(subjects_dir.resolve()),
                         T1_files=[str(Path(t1w).resolve())], openmp=threads)
    log.info("recon-all: %s", interface.cmdline)
    try:
        interface.run()
    except Exception as err:  # nipype wraps the command's failure in several exception kinds
        raise ReconAllError(f"recon-all failed for subject {subject_id} ({t1w}): {err}") from err
    status = recon_all_status(subject_dir)
    if status is not None:
        raise ReconAllError(f"recon-all ran for subject {subject_id} ({t1w}) but the subject is unusable: {status}")
    return subject_dir
