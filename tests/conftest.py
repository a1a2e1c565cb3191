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


def write_patch_store(root: Path, n: int = 48, resolution: float = 6.0, seed: int = 0) -> Path:
    """A synthetic patch store (cohort ``pre``) at ``resolution`` mm and its auxiliary tables:
    image i is the template with its cortex scaled by 1 + 0.3 * signal_i, plus a smooth
    random field of its own (what makes images tell apart) and noise, and
    each box's auxiliary columns are that signal (one column per box's first DK region)
    plus a little noise. Two visits per subject (``ses-1``, ``ses-2``)."""
    import json

    from scipy import ndimage

    from rnce.imaging.patches import ShardWriter, box_slices, brain_box, normalise, pass_all
    from rnce.imaging.segment import segment_tissue, template_priors
    from rnce.imaging.template import mni_template
    from rnce.io import write_tsv
    from rnce.regions import read_regions

    rng = np.random.default_rng(seed)
    t1, mask = mni_template(resolution)
    regions = read_regions(ROOT / "config" / "regions.tsv")
    boxes = box_slices(regions, t1.affine, t1.shape)
    template, brain = t1.get_fdata(dtype=np.float32), mask.get_fdata() > 0.5
    signal = rng.normal(size=n)
    priors = template_priors(None, resolution)
    rows = []
    for half in range(2):
        writer = ShardWriter(root / "pre" / f"shard-{half:04d}", boxes, brain_box(brain), 16)
        for i in range(half, n, 2):
            field = ndimage.gaussian_filter(rng.normal(size=template.shape), 1.5)
            field *= 0.4 / field.std()
            anatomy = template * (1 + 0.3 * signal[i] * (template < 0.6))
            image = anatomy + template * field + rng.normal(0, 0.03, template.shape)
            pid, ses = f"s{i // 2:03d}", f"ses-{i % 2 + 1}"
            # labels from the anatomy (the field's +-40% would blur the classes beyond a 3-class mixture)
            labels = segment_tissue(normalise(anatomy.astype(np.float32), brain), brain, priors)
            writer.add(pid, ses, f"{i:012x}", normalise(image.astype(np.float32), brain), labels)
            rows.append({"participant_id": pid, "session_id": ses, "image_key": f"{i:012x}", "cohort": "pre",
                         "age": 50 + i % 2 + i / 10, "signal": signal[i]})
        writer.close(pd.DataFrame({"reason": [""]}))
    table = pd.DataFrame(rows)
    pass_all(root, "pre")  # synthetic images: all pass QC
    columns = {}
    for rec in regions.itertuples():
        column = f"{rec.name}_feature"
        table[column] = table["signal"] + rng.normal(0, 0.1, len(table))
        columns[rec.name] = [column]
    aux_columns = [c for cols in columns.values() for c in cols]
    write_tsv(table[["participant_id", "session_id", "cohort", *aux_columns]], root / "auxiliary.tsv")
    (root / "auxiliary_boxes.json").write_text(json.dumps({"boxes": columns, "columns": aux_columns}))
    write_tsv(table[["cohort", "participant_id", "session_id", "age", "signal"]], root / "visits.tsv")
    return root


def ssl_job(root: Path, method: str, stage: str, out: Path, box: str | None = "lh_parietal", epochs: int = 2,
            batch_size: int = 16, augment: dict | None = None, **extra) -> dict:
    """A small CPU job over :func:`write_patch_store`'s store (``augment`` overrides its augmentations)."""
    from rnce.ssl.jobs import make_job

    ssl = {"rep_dim": 8, "encoder_widths": [4, 8, 8, 16, 16], "aggregator_depth": 1, "aggregator_heads": 2,
           "unet_base": 2, "unet_depth": 2, "temperature": 0.2, "aux_weight": 1.0, "aux_ridge": 1.0,
           "barlow_lambda": 5e-3, "lssl_weight": 1.0, "seed": 0, "deterministic": True, "bf16": False,
           "stage1": {"epochs": epochs, "batch_size": batch_size, "learning_rate": 3e-3, "weight_decay": 0.0},
           "stage2": {"epochs": epochs, "batch_size": batch_size, "learning_rate": 3e-3, "weight_decay": 0.0},
           "reconstruction": {"epochs": epochs, "batch_size": 4, "learning_rate": 3e-3, "weight_decay": 0.0},
           "augment": {"probability": 0.2, "tissue_labels": 0.05, **(augment or {})}}
    from rnce.ssl.jobs import settings

    visits = pd.read_csv(root / "visits.tsv", sep="\t").to_dict("records")
    name = f"{method}_{stage}_{box}"
    outputs = {"model": str(out / f"{name}.pt"), "metrics": str(out / f"{name}.tsv"),
               "checkpoints": str(out / "checkpoints" / name)}
    return make_job(method, stage, settings(ssl, method, stage), str(root), ["pre"], outputs, box=box,
                    auxiliary=str(root / "auxiliary.tsv"), auxiliary_boxes=str(root / "auxiliary_boxes.json"),
                    visits=visits, **extra)
