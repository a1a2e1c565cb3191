"""The intensity baseline: per box, the mean normalised intensity of each of the image's tissue classes.

54 numbers per image (18 boxes x CSF, GM, WM), read from the patch store (its
patches and each image's own tissue labels). It is the simplest summary of
what the encoders see, and the control every learned representation must
beat: an SSL embedding that a linear probe reads no better than these is not
learning anatomy. Columns ``{box}_{csf|gm|wm}_mean``.

A class absent from a box of an image (rare: the boxes are several cm wide)
takes that class's mean over the image's other boxes.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from rnce.imaging.patches import PatchStore
from rnce.imaging.segment import CLASSES
from rnce.io import write_tsv

log = logging.getLogger(__name__)
ID_COLUMNS = ["participant_id", "session_id", "cohort"]


def class_means(patches: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(images, 3) mean intensity of labels 1, 2, 3 in each patch, and the voxel counts behind them."""
    flat_x = patches.reshape(len(patches), -1).astype(np.float64)
    flat_l = labels.reshape(len(labels), -1)
    sums = np.stack([(flat_x * (flat_l == c)).sum(axis=1) for c in (1, 2, 3)], axis=1)
    counts = np.stack([(flat_l == c).sum(axis=1) for c in (1, 2, 3)], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts, counts


def intensity_features(patch_root: str, cohorts: list[str], out_path: str, batch: int = 64) -> pd.DataFrame:
    """Write the intensity baseline of every image of ``cohorts``' patch stores to ``out_path``."""
    frames = []
    for cohort in cohorts:
        store = PatchStore(patch_root, cohort)
        columns, blocks, counts = [], [], []
        for box in store.boxes:
            means, n = [], []
            for start in range(0, len(store), batch):
                rows = list(range(start, min(start + batch, len(store))))
                m, c = class_means(store.batch(rows, box), _labels(store, rows, box))
                means.append(m)
                n.append(c)
            blocks.append(np.concatenate(means))
            counts.append(np.concatenate(n))
            columns += [f"{box}_{c}_mean" for c in CLASSES]
        values = np.stack(blocks, axis=1)  # images x boxes x 3
        voxels = np.stack(counts, axis=1)
        missing = voxels == 0
        if missing.any():
            log.warning("%s: %d (image, box, class) cells have no voxel of the class; they take the class's mean "
                        "over the image's other boxes", cohort, int(missing.sum()))
            fill = (np.nan_to_num(values) * voxels).sum(axis=1) / np.maximum(voxels.sum(axis=1), 1)
            values = np.where(missing, fill[:, None, :], values)
        table = pd.DataFrame(values.reshape(len(store), -1), columns=columns)
        table.insert(0, "cohort", cohort)
        table.insert(0, "session_id", store.index["session_id"].to_numpy())
        table.insert(0, "participant_id", store.index["participant_id"].to_numpy())
        frames.append(table)
    result = pd.concat(frames, ignore_index=True).sort_values(ID_COLUMNS)
    write_tsv(result, out_path)
    log.info("intensity baseline: %d images x %d features", len(result), len(columns))
    return result


def _labels(store: PatchStore, rows: list[int], box: str) -> np.ndarray:
    sub = store.index.iloc[rows]
    return np.stack([store.label_array(shard, box)[position]
                     for shard, position in zip(sub["shard"], sub["position"], strict=True)])
