"""What one box's stage-1 encoders carry, next to the simplest baseline: a ridge probe of the box's raw
registered voxels (their first 200 principal components). Probed on a finished study's evaluate images as
rnce.ssl.diagnostics does (5-fold CV R^2): the box's auxiliary features (mean over columns) and the planted
focal thinning. Reproduces docs/study.md stage-1 table from results_study/.

Probe encoders that exist:
    python scripts/probe_stage1.py results_study rh_parietal results_study/ssl/{rnce,simclr}/encoders/rh_parietal.pt
Train one variant first (config/study.yaml's ssl settings with overrides, on the study's pretrain store;
about 2 minutes on one core), then probe it:
    python scripts/probe_stage1.py results_study rh_parietal --train rnce --set aux_ridge=0 --set seed=1 \
        --set stage1.learning_rate=0.001
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
import yaml
from snakemake.utils import validate

from rnce.ssl import train
from rnce.ssl.data import Images
from rnce.ssl.diagnostics import box_targets, cv_r2
from rnce.ssl.jobs import make_job, settings
from rnce.ssl.tasks import box_representations

ROOT = Path(__file__).resolve().parents[1]


def study_ssl(overrides: list[str]) -> tuple[dict, float]:
    """config/study.yaml's ssl block (schema defaults filled in) with ``key=value`` overrides (YAML values;
    dotted keys reach into stage1/augment), and the register grid's voxel size."""
    config = yaml.safe_load((ROOT / "config" / "study.yaml").read_text())
    validate(config, str(ROOT / "workflow" / "schemas" / "config.schema.yaml"))
    ssl = config["ssl"]
    for item in overrides:
        key, _, value = item.partition("=")
        *parents, leaf = key.split(".")
        node = ssl
        for parent in parents:
            node = node.get(parent) if isinstance(node, dict) else None
        if not isinstance(node, dict) or leaf not in node or not value:
            raise SystemExit(f"--set {item!r}: not KEY=VALUE with KEY an ssl setting of config/study.yaml "
                             f"(e.g. aux_ridge, stage1.learning_rate, augment.flip)")
        node[leaf] = yaml.safe_load(value)
    return ssl, float(config["register"]["resolution_mm"])


def train_variant(results: Path, box: str, method: str, overrides: list[str], out: Path) -> str:
    ssl, voxel_mm = study_ssl(overrides)
    features = results / "features"
    job = make_job(method, "encoder", settings(ssl, method, "encoder", voxel_mm), str(results / "patches"),
                   ["pretrain"], {"model": str(out / "encoder.pt"), "metrics": str(out / "metrics.tsv"),
                                  "checkpoints": str(out / "checkpoints")}, box=box,
                   auxiliary=str(features / "auxiliary.tsv"), auxiliary_boxes=str(features / "auxiliary_boxes.json"))
    train.run(job)
    return job["out"]["model"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("box")
    parser.add_argument("encoders", nargs="*", help="stage-1 encoder files (.pt) of that box")
    parser.add_argument("--train", choices=["rnce", "simclr", "barlow_twins"],
                        help="train one encoder of this method first (study settings + --set)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override an ssl setting of config/study.yaml, e.g. stage1.learning_rate=0.001")
    parser.add_argument("--out", type=Path, help="where --train writes its encoder (default: a temporary folder)")
    parser.add_argument("--cohort", default="evaluate")
    parser.add_argument("--pcs", type=int, default=200)
    args = parser.parse_args()
    features = args.results / "features"
    with tempfile.TemporaryDirectory() as scratch:
        encoders = list(args.encoders)
        if args.train:
            encoders.append(train_variant(args.results, args.box, args.train, args.set, args.out or Path(scratch)))
        images = Images(args.results / "patches", [args.cohort])
        try:
            keep, aux, focal = box_targets(images, str(features / "auxiliary.tsv"),
                                           str(features / "auxiliary_boxes.json"), args.box,
                                           str(args.results / "demo" / "truth" / f"{args.cohort}_latent.tsv"))
        except ValueError as err:
            raise SystemExit(str(err)) from None
        voxels = images.batch(list(range(len(images))), args.box).reshape(len(images), -1).astype(float)
        u, s, _ = np.linalg.svd(voxels - voxels.mean(0), full_matrices=False)
        representations = {f"raw voxels, {args.pcs} principal components": u[:, :args.pcs] * s[:args.pcs]}
        labels = [*args.encoders, *([f"{args.train} {' '.join(args.set) or 'as in the study'}"] if args.train else [])]
        for label, path in zip(labels, encoders, strict=True):
            representations[label] = box_representations(images, {args.box: path}, torch.device("cpu"))[:, 0].numpy()
    print(f"{args.box}: {int(keep.sum())} {args.cohort} images; 5-fold CV R^2")
    for name, x in representations.items():
        r2_aux = float(np.nanmean(cv_r2(x[keep], aux[keep])))
        r2_focal = float(cv_r2(x[keep], focal[keep])[0])
        print(f"  {name}: auxiliary {r2_aux:.3f}, focal thinning {r2_focal:.3f}")

if __name__ == "__main__":
    main()
