"""Shared fixtures: the repository root, small images and participants tables, the tiny simulated world."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
TINY_CONFIG = ROOT / "tests" / "configs" / "tiny.yaml"


def load_config(path: Path) -> dict:
    """A workflow config, validated and completed with the schema's defaults, as Snakemake does."""
    from snakemake.utils import validate

    config = yaml.safe_load(Path(path).read_text())
    validate(config, str(ROOT / "workflow" / "schemas" / "config.schema.yaml"))
    return config


def write_image(path: Path, shape=(8, 9, 10), affine=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.random.default_rng(0).random(shape).astype(np.float32)
    nib.save(nib.Nifti1Image(data, np.eye(4) if affine is None else affine), path)
    return path


def good_table(folder: Path, n: int = 4) -> pd.DataFrame:
    rows = []
    for i in range(n):
        write_image(folder / "img" / f"s{i}.nii.gz")
        rows.append({"participant_id": f"sub{i}", "session_id": "ses-1", "t1w": f"img/s{i}.nii.gz",
                     "age": 60 + i, "sex": "MF"[i % 2], "site": "siteA", "diagnosis": "CN",
                     "amyloid": "", "genotype_id": f"G{i}"})
    return pd.DataFrame(rows)


def run_snakemake(*args: str, cwd: Path = ROOT, check: bool = False) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("snakemake")
    cmd = [str(exe) if exe.exists() else "snakemake", "--snakefile", str(ROOT / "Snakefile"), *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=check)


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory) -> tuple[Path, dict, dict]:
    """The tiny simulated world (tests/configs/tiny.yaml), written once per session."""
    from rnce.simulate import simulate_world

    out = tmp_path_factory.mktemp("world")
    cfg = load_config(TINY_CONFIG)["simulate"]
    truth = simulate_world(cfg, out, threads=2)
    return out, cfg, truth


def plink_tools() -> None:
    for tool in ("plink2", "plink1.9"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not on PATH (make test installs it)")
