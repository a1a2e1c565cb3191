"""Shared fixtures: the repository root, small images and participants tables, the tiny simulated world."""

from __future__ import annotations

import shutil
import stat
import subprocess
import sys
import textwrap
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


def run_snakemake(*args: str, cwd: Path = ROOT, check: bool = False, env: dict | None = None
                  ) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("snakemake")
    cmd = [str(exe) if exe.exists() else "snakemake", "--snakefile", str(ROOT / "Snakefile"), *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=check, env=env)


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


FAKE_RECON_ALL = textwrap.dedent('''\
    #!{python}
    """A fake recon-all: checks its arguments, writes real-format outputs."""
    import sys
    from pathlib import Path
    import numpy as np
    from rnce.simulate.freesurfer import write_subject
    args = sys.argv[1:]
    assert "-all" in args, args
    assert "-openmp" in args and int(args[args.index("-openmp") + 1]) >= 1, args
    subject, sd = args[args.index("-subjid") + 1], Path(args[args.index("-sd") + 1])
    t1 = args[args.index("-i") + 1]
    assert Path(t1).is_file(), t1
    assert not (sd / subject).exists(), "recon-all -i on an existing subject"
    with open(Path(__file__).with_name("calls.txt"), "a") as fh:
        fh.write(subject + "\\n")
    rng = np.random.default_rng(0)
    regions = ["bankssts", "caudalanteriorcingulate", "caudalmiddlefrontal", "cuneus", "entorhinal", "fusiform",
               "inferiorparietal", "inferiortemporal", "isthmuscingulate", "lateraloccipital", "lateralorbitofrontal",
               "lingual", "medialorbitofrontal", "middletemporal", "parahippocampal", "paracentral", "parsopercularis",
               "parsorbitalis", "parstriangularis", "pericalcarine", "postcentral", "posteriorcingulate",
               "precentral", "precuneus", "rostralanteriorcingulate", "rostralmiddlefrontal", "superiorfrontal",
               "superiorparietal", "superiortemporal", "supramarginal", "frontalpole", "temporalpole",
               "transversetemporal", "insula"]
    from rnce.simulate.freesurfer import ASEG_ROWS
    volumes = {{name: 1000.0 + i for i, (_, name) in enumerate(ASEG_ROWS)}}
    write_subject(sd / subject, volumes, np.full(34, 2.5), np.full(34, 2.6), regions, np.full(34, 1000.0),
                  1.5e6, rng)
    (sd / subject / "scripts" / "recon-all.log").write_text(f"recon-all -s {{subject}} finished without error\\n")
''')


def fake_recon_all(folder: Path) -> Path:
    """A folder holding the fake ``recon-all`` (put it first on PATH); it logs its calls to calls.txt."""
    bin_dir = folder / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "recon-all"
    fake.write_text(FAKE_RECON_ALL.format(python=sys.executable))
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    return bin_dir
