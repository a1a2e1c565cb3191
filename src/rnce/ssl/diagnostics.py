"""What a contrastive method's representations carry, on images it never trained on (the evaluate cohorts).

For each box, the stage-1 encoder's representation of the box's patch; all boxes' stage-1 representations
side by side (box ``all``: what stage 2 has to work with); for the whole image, the stage-2 embedding (the
aggregator's output). Each is probed with 5-fold cross-validated ridge regression (the
penalty chosen inside each training part by exact leave-one-out from a log grid) for

- ``auxiliary``: the harmonized, z-scored FreeSurfer features of the box (stage 1) or all of them
  (embedding): the information R-NCE promises to keep; the mean R^2 over the columns;
- ``focal_thinning``: the planted image-only quantity of a simulated evaluate cohort
  (``truth/<cohort>_latent.tsv``), the one FreeSurfer's regional averages do not carry.

When R-NCE falls short of FreeSurfer on a task, this table says which stage lost the information.
Output: method, representation (stage1, embedding), box (``all`` for the embedding), target, cv_r2, n_images.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import torch

from rnce.io import write_tsv
from rnce.ssl.data import ID_COLUMNS, Images
from rnce.ssl.embed import image_representations
from rnce.ssl.tasks import box_representations

log = logging.getLogger(__name__)

L2_GRID = np.logspace(-3, 6, 19)
MAX_LEVERAGE = 0.95
COLUMNS = ["method", "representation", "box", "target", "cv_r2", "n_images"]


def _loo_ridge(x: np.ndarray, y: np.ndarray) -> float:
    """The penalty of the grid with the smallest exact leave-one-out error (x, y centred).

    Penalties under which some row's leverage exceeds ``MAX_LEVERAGE`` are skipped: with more columns than
    rows (all boxes' representations side by side) a small penalty interpolates, the residual and 1 - leverage
    both vanish, and their ratio, noise, would choose it."""
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    uty = u.T @ y
    best, best_err = L2_GRID[-1], np.inf
    for l2 in L2_GRID:
        shrink = s**2 / (s**2 + l2)
        leverage = (u**2 * shrink).sum(axis=1)
        if leverage.max() > MAX_LEVERAGE:
            continue
        fitted = u @ (shrink[:, None] * uty)
        err = (((y - fitted) / (1 - leverage)[:, None]) ** 2).mean()
        if err < best_err:
            best, best_err = l2, err
    return best


def cv_r2(x: np.ndarray, y: np.ndarray, folds: int = 5, seed: int = 0) -> np.ndarray:
    """Out-of-fold R^2 of each column of ``y`` from ``x`` (ridge, standardised on each training part)."""
    x, y = np.asarray(x, float), np.asarray(y, float).reshape(len(x), -1)
    order = np.random.default_rng(seed).permutation(len(x))
    predicted = np.empty_like(y)
    for k in range(folds):
        test = order[k::folds]
        train = np.setdiff1d(order, test)
        mx, sx = x[train].mean(0), x[train].std(0)
        sx[sx == 0] = 1.0
        my = y[train].mean(0)
        xt, yt = (x[train] - mx) / sx, y[train] - my
        l2 = _loo_ridge(xt, yt)
        coef = np.linalg.solve(xt.T @ xt + l2 * np.eye(x.shape[1]), xt.T @ yt)
        predicted[test] = ((x[test] - mx) / sx) @ coef + my
    residual = ((y - predicted) ** 2).sum(0)
    total = ((y - y.mean(0)) ** 2).sum(0)
    return 1 - residual / np.where(total > 0, total, np.nan)


def box_targets(images: Images, auxiliary: str, auxiliary_boxes: str, box: str, latent: str,
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One box's probe targets on ``images`` (``box`` "all": every auxiliary column): a mask of the images
    that have them, the box's auxiliary columns (images x k) and the planted focal thinning of a simulated
    cohort (``latent``: its ``truth/<cohort>_latent.tsv``), each for all images (rows outside the mask are NaN)."""
    ids = images.table[ID_COLUMNS].astype(str)
    table = pd.read_csv(auxiliary, sep="\t", dtype={"participant_id": str, "session_id": str})
    boxes = json.loads(open(auxiliary_boxes).read())["boxes"]
    if box != "all" and box not in boxes:
        raise ValueError(f"{auxiliary_boxes}: no box {box!r}; boxes: {sorted(boxes)}")
    columns = sorted({c for cols in boxes.values() for c in cols}) if box == "all" else boxes[box]
    missing = [c for c in [*ID_COLUMNS, *columns] if c not in table.columns]
    if missing:
        raise ValueError(f"{auxiliary}: no column(s) {missing[:5]} (listed in {auxiliary_boxes})")
    truth = pd.read_csv(latent, sep="\t", dtype={"participant_id": str, "session_id": str})
    if "focal_thinning" not in truth.columns:
        raise ValueError(f"{latent}: no column 'focal_thinning' (the planted truth of a simulated cohort)")
    focal = ids.merge(truth, on=["participant_id", "session_id"], how="left")["focal_thinning"].to_numpy(float)
    values = ids.merge(table, on=ID_COLUMNS, how="left")[columns].to_numpy(float)
    keep = np.isfinite(values).all(axis=1) & np.isfinite(focal)
    return keep, values, focal


def diagnostics(method: str, patch_root: str, cohorts: list[str], encoders: dict[str, str], aggregator: str,
                auxiliary: str, auxiliary_boxes: str, latents: list[str], out_path: str, threads: int = 1,
                ) -> pd.DataFrame:
    """Write the table of the module docstring for one contrastive ``method`` on the ``cohorts``' images."""
    torch.set_num_threads(max(1, threads))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    images = Images(patch_root, cohorts)
    ids = images.table[ID_COLUMNS].astype(str)
    aux = pd.read_csv(auxiliary, sep="\t", dtype={"participant_id": str, "session_id": str})
    aux = ids.merge(aux, on=ID_COLUMNS, how="left")
    boxes = json.loads(open(auxiliary_boxes).read())["boxes"]
    targets = {}
    if latents:
        truth = pd.concat([pd.read_csv(p, sep="\t", dtype={"participant_id": str, "session_id": str})
                           for p in latents], ignore_index=True)
        truth = ids[["participant_id", "session_id"]].merge(truth, on=["participant_id", "session_id"], how="left")
        if "focal_thinning" in truth and truth["focal_thinning"].notna().all():
            targets["focal_thinning"] = truth["focal_thinning"].to_numpy(float)
        else:
            log.warning("%s: no focal_thinning for every image in %s: that target is left out", method, latents)
    keep = aux[[c for cols in boxes.values() for c in cols]].notna().all(axis=1).to_numpy()
    if not keep.all():
        log.warning("%s: %d of %d images have no row in %s (excluded from the features): left out", method,
                    int((~keep).sum()), len(keep), auxiliary)
    if keep.sum() < 10:
        raise ValueError(f"{auxiliary}: only {int(keep.sum())} of the {len(keep)} images of cohorts {cohorts} in the "
                         "patch store have auxiliary features; the diagnostics need at least 10")
    n = int(keep.sum())

    def probes(representation: str, box: str, x: np.ndarray, columns: list[str]) -> list[list]:
        out = [[method, representation, box, "auxiliary", float(np.nanmean(cv_r2(x, aux.loc[keep, columns]))), n]]
        return out + [[method, representation, box, name, float(cv_r2(x, y[keep])[0]), n]
                      for name, y in targets.items()]

    box_reps = box_representations(images, encoders, device)
    reps = box_reps.numpy()
    rows = [row for b, box in enumerate(encoders) for row in probes("stage1", box, reps[keep, b, :], boxes[box])]
    columns = sorted({c for cols in boxes.values() for c in cols})
    rows += probes("stage1", "all", reps[keep].reshape(n, -1), columns)
    embedding = image_representations(method, images, encoders, aggregator, device, box_reps=box_reps)[keep]
    rows += probes("embedding", "all", embedding, columns)
    table = pd.DataFrame(rows, columns=COLUMNS).round({"cv_r2": 4})
    write_tsv(table, out_path)
    log.info("%s: %d images; embedding auxiliary CV R^2 %.3f", method, n,
             table.loc[table["representation"] == "embedding", "cv_r2"].iat[0])
    return table
