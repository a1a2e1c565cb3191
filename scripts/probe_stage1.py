"""What one box's stage-1 encoders carry, next to the simplest baseline: a ridge probe of the box's raw
registered voxels (their first 200 principal components). Probed on a finished study's evaluate images as
rnce.ssl.diagnostics does (5-fold CV R^2): the box's auxiliary features (mean over columns) and the planted
focal thinning. Reproduces the README's *Does it work?* stage-1 table from results_study/.

    python scripts/probe_stage1.py results_study rh_parietal results_study/ssl/{rnce,simclr}/encoders/rh_parietal.pt
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from rnce.ssl.data import ID_COLUMNS, Images
from rnce.ssl.diagnostics import cv_r2
from rnce.ssl.tasks import box_representations

IDS = {"participant_id": str, "session_id": str}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("box")
    parser.add_argument("encoders", nargs="*", help="stage-1 encoder files (.pt) of that box")
    parser.add_argument("--cohort", default="evaluate")
    parser.add_argument("--pcs", type=int, default=200)
    args = parser.parse_args()
    images = Images(args.results / "patches", [args.cohort])
    ids = images.table[ID_COLUMNS].astype(str)
    aux = ids.merge(pd.read_csv(args.results / "features" / "auxiliary.tsv", sep="\t", dtype=IDS), on=ID_COLUMNS,
                    how="left")
    boxes_path = args.results / "features" / "auxiliary_boxes.json"
    boxes = json.loads(boxes_path.read_text())["boxes"]
    if args.box not in boxes:
        raise SystemExit(f"{boxes_path}: no box {args.box!r}; boxes: {sorted(boxes)}")
    columns = boxes[args.box]
    latent = pd.read_csv(args.results / "demo" / "truth" / f"{args.cohort}_latent.tsv", sep="\t", dtype=IDS)
    focal = ids.merge(latent, on=["participant_id", "session_id"], how="left")["focal_thinning"].to_numpy(float)
    keep = aux[columns].notna().all(axis=1).to_numpy() & np.isfinite(focal)
    voxels = images.batch(list(range(len(images))), args.box).reshape(len(images), -1).astype(float)
    u, s, _ = np.linalg.svd(voxels - voxels.mean(0), full_matrices=False)
    representations = {f"raw voxels, {args.pcs} principal components": u[:, :args.pcs] * s[:args.pcs]}
    for path in args.encoders:
        representations[path] = box_representations(images, {args.box: path}, torch.device("cpu"))[:, 0].numpy()
    print(f"{args.box}: {int(keep.sum())} {args.cohort} images; 5-fold CV R^2")
    for name, x in representations.items():
        r2_aux = float(np.nanmean(cv_r2(x[keep], aux.loc[keep, columns].to_numpy(float))))
        r2_focal = float(cv_r2(x[keep], focal[keep])[0])
        print(f"  {name}: auxiliary {r2_aux:.3f}, focal thinning {r2_focal:.3f}")


if __name__ == "__main__":
    main()
