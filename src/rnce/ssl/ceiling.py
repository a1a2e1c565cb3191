"""The ceiling of what a linear read of the registered images can show of the auxiliary features.

Ridge regression of every auxiliary column (the harmonized, z-scored FreeSurfer features) on the raw
voxels of all boxes of the patch store, fitted on the pretrain images and scored on the evaluate images:
the best any linear read of the grid's voxels does, to judge a learned representation's auxiliary R^2
against (the planted study prints each representation's as a share of it). It runs in the dual: the
images x images Gram matrix of the voxels, z-scored per voxel over the pretrain images, is summed box by
box, so memory is one box of every image plus the Gram matrices, at any grid. Each column's penalty is
chosen by exact leave-one-out on the pretrain images from a log grid.

Output: one row: representation (raw_voxels), target (auxiliary), r2 (mean over the columns of the
evaluate images' R^2), r2_median, n_columns, n_fit, n_score, n_voxels.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd

from rnce.io import write_tsv
from rnce.ssl.data import ID_COLUMNS, Images

log = logging.getLogger(__name__)
ALPHA_GRID = np.logspace(-2, 4, 25)  # times the mean eigenvalue of the pretrain Gram matrix


def _aligned(images: Images, aux: pd.DataFrame, columns: list[str]) -> tuple[np.ndarray, np.ndarray]:
    values = images.table[ID_COLUMNS].astype(str).merge(aux, on=ID_COLUMNS, how="left")[columns].to_numpy(float)
    return values, np.isfinite(values).all(axis=1)


def kernel_ridge_scores(k_fit: np.ndarray, k_score: np.ndarray, y_fit: np.ndarray, y_score: np.ndarray,
                        ) -> np.ndarray:
    """R^2 on the scored rows of each column of ``y`` from the linear kernel (``k_fit``: fit x fit Gram,
    ``k_score``: score x fit), the penalty of each column chosen by exact leave-one-out on the fit rows."""
    mean = y_fit.mean(0)
    yc = y_fit - mean
    s, u = np.linalg.eigh(k_fit)
    s = np.clip(s, 0, None)
    uty = u.T @ yc
    scale = s.mean() if s.mean() > 0 else 1.0
    best_err, best_alpha = np.full(y_fit.shape[1], np.inf), np.full(y_fit.shape[1], ALPHA_GRID[-1] * scale)
    for alpha in ALPHA_GRID * scale:
        shrink = s / (s + alpha)
        fitted = u @ (shrink[:, None] * uty)
        leverage = (u**2 * shrink).sum(axis=1)
        err = (((yc - fitted) / (1 - leverage)[:, None]) ** 2).mean(0)
        better = err < best_err
        best_err[better], best_alpha[better] = err[better], alpha
    predicted = np.empty_like(y_score)
    for alpha in np.unique(best_alpha):
        cols = best_alpha == alpha
        dual = u @ ((1 / (s + alpha))[:, None] * uty[:, cols])
        predicted[:, cols] = k_score @ dual + mean[cols]
    residual = ((y_score - predicted) ** 2).sum(0)
    total = ((y_score - y_score.mean(0)) ** 2).sum(0)
    return 1 - residual / np.where(total > 0, total, np.nan)


def raw_voxel_ceiling(patch_root: str, fit_cohorts: list[str], score_cohorts: list[str], boxes: list[str],
                      auxiliary: str, auxiliary_boxes: str, out_path: str) -> pd.DataFrame:
    """Write the table of the module docstring: fitted on ``fit_cohorts`` (pretrain), scored on
    ``score_cohorts`` (evaluate), from the raw voxels of ``boxes``."""
    aux = pd.read_csv(auxiliary, sep="\t", dtype={"participant_id": str, "session_id": str})
    columns = sorted({c for cols in json.loads(open(auxiliary_boxes).read())["boxes"].values() for c in cols})
    missing = [c for c in [*ID_COLUMNS, *columns] if c not in aux.columns]
    if missing:
        raise ValueError(f"{auxiliary}: no column(s) {missing[:5]} (listed in {auxiliary_boxes})")
    fit, score = Images(patch_root, fit_cohorts), Images(patch_root, score_cohorts)
    y_fit, keep_fit = _aligned(fit, aux, columns)
    y_score, keep_score = _aligned(score, aux, columns)
    rows_fit, rows_score = np.flatnonzero(keep_fit).tolist(), np.flatnonzero(keep_score).tolist()
    if len(rows_fit) < 10 or len(rows_score) < 10:
        raise ValueError(f"{auxiliary}: the ceiling needs 10 images with auxiliary features on each side, got "
                         f"{len(rows_fit)} pretrain and {len(rows_score)} evaluate images")
    k_fit = np.zeros((len(rows_fit), len(rows_fit)))
    k_score = np.zeros((len(rows_score), len(rows_fit)))
    voxels = 0
    for box in boxes:
        a = fit.batch(rows_fit, box).reshape(len(rows_fit), -1).astype(np.float64)
        b = score.batch(rows_score, box).reshape(len(rows_score), -1).astype(np.float64)
        mean, sd = a.mean(0), a.std(0)
        sd[sd < 1e-6] = np.inf  # a voxel constant over the pretrain images carries nothing
        a, b = (a - mean) / sd, (b - mean) / sd
        k_fit += a @ a.T
        k_score += b @ a.T
        voxels += a.shape[1]
    r2 = kernel_ridge_scores(k_fit, k_score, y_fit[keep_fit], y_score[keep_score])
    table = pd.DataFrame([{"representation": "raw_voxels", "target": "auxiliary", "r2": round(float(np.nanmean(r2)), 4),
                           "r2_median": round(float(np.nanmedian(r2)), 4), "n_columns": len(columns),
                           "n_fit": len(rows_fit), "n_score": len(rows_score), "n_voxels": voxels}])
    write_tsv(table, out_path)
    log.info("raw-voxel ceiling of the %d auxiliary columns: mean R^2 %.3f on %d evaluate images (fitted on %d "
             "pretrain images, %d voxels)", len(columns), table["r2"].iat[0], len(rows_score), len(rows_fit), voxels)
    return table
