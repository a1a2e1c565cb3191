"""The 18-box patch store: per cohort and box, memory-mappable float16 arrays written shard by shard.

Layout, one folder per shard (written under a temporary name and renamed
into place when complete, so a killed job leaves nothing half-written)::

    {root}/{cohort}/shard-{shard}/index.tsv      participant_id, session_id, image_key, position
    {root}/{cohort}/shard-{shard}/{box}.npy      float16, images x X x Y x Z (np.load(mmap_mode="r"))
    {root}/{cohort}/shard-{shard}/labels/{box}.npy  uint8, images x X x Y x Z: each image's own tissue
                                                 classes (0 outside the brain, 1 CSF, 2 GM, 3 WM;
                                                 :mod:`rnce.imaging.segment`)
    {root}/{cohort}/shard-{shard}/whole_image.npy  float16, images x S x S x S: the brain's bounding
                                                 box resampled to S^3 (the reconstruction baselines' input)
    {root}/{cohort}/shard-{shard}/qc.tsv         registration QC of every image of the shard
    {root}/{cohort}/shard-{shard}/qc_slices.npz  mid-slices of each registered image (QC montage)
    {root}/{cohort}/shard-{shard}/transforms/{image_key}.mat   image -> template (ANTs)
    {root}/{cohort}/passed.tsv                   the images that passed registration QC (participant_id,
                                                 session_id, image_key), written by :mod:`rnce.imaging.qc`

Every image that registered is stored, passed or not; there is no merge step:
:class:`PatchStore` reads all shards of a cohort and serves the images of
``passed.tsv`` only, so a QC setting changes what is served without a new
registration.

Boxes are cut from the registered, skull-stripped image on the template grid
at the MNI mm bounds of ``config/regions.tsv``. Intensities are normalised per
image: z-scored over the template's brain mask (mean 0, SD 1 inside; 0
outside), so sites' intensity scales do not reach the encoders.
"""

from __future__ import annotations

import logging
import os
import shutil
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from rnce.io import stale_temporaries, write_tsv

log = logging.getLogger(__name__)

INDEX_COLUMNS = ["participant_id", "session_id", "image_key", "position"]
WHOLE_IMAGE = "whole_image"
LABELS = "labels"
PASSED = "passed.tsv"
PASSED_COLUMNS = ["participant_id", "session_id", "image_key"]


def box_slices(regions: pd.DataFrame, affine: np.ndarray, shape: tuple[int, ...]) -> dict[str, tuple[slice, ...]]:
    """Voxel slices of every box on a RAS grid (``affine``, ``shape``), from its MNI mm bounds."""
    inverse = np.linalg.inv(affine)
    out = {}
    for rec in regions.itertuples():
        lo = inverse @ np.array([rec.x_min, rec.y_min, rec.z_min, 1.0])
        hi = inverse @ np.array([rec.x_max, rec.y_max, rec.z_max, 1.0])
        start = np.floor(np.minimum(lo, hi)[:3]).astype(int)
        stop = np.ceil(np.maximum(lo, hi)[:3]).astype(int) + 1
        start, stop = np.clip(start, 0, shape[:3]), np.clip(stop, 0, shape[:3])
        if np.any(stop - start < 2):
            raise ValueError(f"box {rec.name} lies outside the template grid")
        out[rec.name] = tuple(slice(a, b) for a, b in zip(start, stop, strict=True))
    return out


def normalise(data: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Z-score over the mask; 0 outside it."""
    inside = data[mask]
    sd = float(inside.std())
    out = (data - float(inside.mean())) / (sd if sd > 0 else 1.0)
    return np.where(mask, out, 0.0).astype(np.float32)


def brain_box(mask: np.ndarray) -> tuple[slice, ...]:
    """The bounding box of the template's brain mask."""
    where = np.argwhere(mask)
    return tuple(slice(int(a), int(b) + 1) for a, b in zip(where.min(0), where.max(0), strict=True))


def whole_image(normalised: np.ndarray, box: tuple[slice, ...], size: int) -> np.ndarray:
    """The image inside the brain's bounding box, resampled (linear) to ``size``^3."""
    from scipy import ndimage

    cropped = normalised[box]
    return ndimage.zoom(cropped, [size / s for s in cropped.shape], order=1, grid_mode=True, mode="nearest")


def mid_slices(data: np.ndarray) -> dict[str, np.ndarray]:
    x, y, z = (s // 2 for s in data.shape)
    return {"axial": data[:, :, z], "coronal": data[:, y, :], "sagittal": data[x, :, :]}


def _write_stack(path: Path, items: list[np.ndarray], shape: tuple[int, ...], dtype) -> None:
    array = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
    for i, item in enumerate(items):
        array[i] = item
    array.flush()
    del array


class ShardWriter:
    """Collects one shard's patches, then writes them all under a temporary folder renamed at the end."""

    def __init__(self, out_dir: str | Path, boxes: dict[str, tuple[slice, ...]], brain: tuple[slice, ...],
                 whole_size: int):
        self.out_dir = Path(out_dir)
        self.tmp = self.out_dir.with_name(f".tmp-{os.getpid()}-{self.out_dir.name}")
        for stale in stale_temporaries(self.out_dir):  # a SIGKILLed job's, or ours
            shutil.rmtree(stale, ignore_errors=True)
        (self.tmp / "transforms").mkdir(parents=True)
        (self.tmp / LABELS).mkdir()
        self.boxes = boxes
        self.brain, self.whole_size = brain, whole_size
        self.patches: dict[str, list[np.ndarray]] = {b: [] for b in [*boxes, WHOLE_IMAGE]}
        self.labels: dict[str, list[np.ndarray]] = {b: [] for b in boxes}
        self.index: list[dict] = []
        self.slices: dict[str, np.ndarray] = {}

    def add(self, participant_id: str, session_id: str, image_key: str, normalised: np.ndarray,
            labels: np.ndarray) -> None:
        """One image: its normalised intensities and tissue labels on the template grid."""
        for box, sl in self.boxes.items():
            self.patches[box].append(normalised[sl].astype(np.float16))
            self.labels[box].append(labels[sl].astype(np.uint8))
        self.patches[WHOLE_IMAGE].append(whole_image(normalised, self.brain, self.whole_size).astype(np.float16))
        self.index.append({"participant_id": participant_id, "session_id": session_id, "image_key": image_key,
                           "position": len(self.index)})

    def add_slices(self, image_key: str, normalised: np.ndarray) -> None:
        """Mid-slices of a registered image, kept for the QC montage."""
        for view, plane in mid_slices(normalised).items():
            self.slices[f"{image_key}/{view}"] = plane.astype(np.float16)

    def transform_path(self, image_key: str) -> Path:
        return self.tmp / "transforms" / f"{image_key}.mat"

    def close(self, qc: pd.DataFrame) -> None:
        shapes = {box: tuple(s.stop - s.start for s in sl) for box, sl in self.boxes.items()}
        shapes[WHOLE_IMAGE] = (self.whole_size,) * 3
        for box, box_shape in shapes.items():
            _write_stack(self.tmp / f"{box}.npy", self.patches[box], (len(self.index), *box_shape), np.float16)
            if box in self.labels:
                _write_stack(self.tmp / LABELS / f"{box}.npy", self.labels[box], (len(self.index), *box_shape),
                             np.uint8)
        write_tsv(pd.DataFrame(self.index, columns=INDEX_COLUMNS), self.tmp / "index.tsv")
        write_tsv(qc, self.tmp / "qc.tsv")
        np.savez(self.tmp / "qc_slices.npz", **self.slices)
        if self.out_dir.exists():
            shutil.rmtree(self.out_dir)
        os.replace(self.tmp, self.out_dir)

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


class PatchStore:
    """Random access to one cohort's patches, by image and box, across all its shards: the images that
    passed registration QC (``passed.tsv``).

    >>> store = PatchStore("results/patches", "pretrain")
    >>> store.get("sub-01", "ses-1", "lh_parietal").shape  # doctest: +SKIP
    >>> store.batch([0, 5, 9], "lh_parietal").shape        # doctest: +SKIP
    """

    def __init__(self, root: str | Path, cohort: str):
        self.folder = Path(root) / cohort
        self.shards = sorted(p for p in self.folder.glob("shard-*") if p.is_dir())
        if not self.shards:
            raise FileNotFoundError(f"no patch shards under {self.folder}")
        frames = []
        for shard in self.shards:
            index = pd.read_csv(shard / "index.tsv", sep="\t", dtype={"participant_id": str, "session_id": str,
                                                                        "image_key": str})
            index["shard"] = shard.name
            frames.append(index)
        passed_path = self.folder / PASSED
        if not passed_path.exists():
            raise FileNotFoundError(f"{passed_path} is missing: the cohort's registration QC (rule registration_qc, "
                                    "rnce.imaging.qc) writes the list of images that passed")
        passed = pd.read_csv(passed_path, sep="\t", dtype=str, keep_default_na=False)
        keys = set(zip(passed["participant_id"], passed["session_id"], strict=True))
        index = pd.concat(frames, ignore_index=True)
        self.index = index[[k in keys for k in zip(index["participant_id"], index["session_id"], strict=True)]
                           ].reset_index(drop=True)
        self._lookup = {(p, s): i for i, (p, s) in
                        enumerate(zip(self.index["participant_id"], self.index["session_id"], strict=True))}
        self._arrays: dict[tuple[str, str], np.ndarray] = {}

    @cached_property
    def boxes(self) -> list[str]:
        first = next(s for s in self.shards if (s / "index.tsv").exists())
        return sorted(p.stem for p in first.glob("*.npy") if p.stem != WHOLE_IMAGE)

    def __len__(self) -> int:
        return len(self.index)

    def array(self, shard: str, box: str) -> np.ndarray:
        """The memory-mapped array of one shard and box (images x X x Y x Z)."""
        key = (shard, box)
        if key not in self._arrays:
            self._arrays[key] = np.load(self.folder / shard / f"{box}.npy", mmap_mode="r")
        return self._arrays[key]

    def label_array(self, shard: str, box: str) -> np.ndarray:
        """The memory-mapped tissue labels of one shard and box (images x X x Y x Z, uint8)."""
        key = (shard, f"{LABELS}/{box}")
        if key not in self._arrays:
            path = self.folder / shard / LABELS / f"{box}.npy"
            if not path.exists():
                raise FileNotFoundError(f"{path} is missing: the patch store {self.folder} was made without tissue "
                                        "labels (before they were stored); rerun its preprocess_shard jobs")
            self._arrays[key] = np.load(path, mmap_mode="r")
        return self._arrays[key]

    def row(self, participant_id: str, session_id: str) -> int:
        try:
            return self._lookup[(participant_id, session_id)]
        except KeyError:
            raise KeyError(f"{participant_id} {session_id} is not in the patch store {self.folder}") from None

    def get(self, participant_id: str, session_id: str, box: str) -> np.ndarray:
        """One patch (float16, X x Y x Z)."""
        rec = self.index.iloc[self.row(participant_id, session_id)]
        return np.asarray(self.array(rec["shard"], box)[rec["position"]])

    def batch(self, rows, box: str, dtype=np.float32) -> np.ndarray:
        """Patches of the images at ``rows`` (positions in :attr:`index`) for one box (or
        :data:`WHOLE_IMAGE`): B x X x Y x Z."""
        sub = self.index.iloc[list(rows)]
        first = self.array(sub["shard"].iat[0], box)
        out = np.empty((len(sub), *first.shape[1:]), dtype=dtype)
        for i, (shard, position) in enumerate(zip(sub["shard"], sub["position"], strict=True)):
            out[i] = self.array(shard, box)[position]
        return out


def pass_all(root: str | Path, cohort: str) -> None:
    """Write ``passed.tsv`` listing every image of the cohort's shards: for a store made outside the workflow
    (benchmarks, synthetic stores), where no registration QC runs."""
    folder = Path(root) / cohort
    index = pd.concat([pd.read_csv(s / "index.tsv", sep="\t", dtype=str, keep_default_na=False)
                       for s in sorted(folder.glob("shard-*"))], ignore_index=True)
    write_tsv(index[PASSED_COLUMNS], folder / PASSED)


def save_registered(image, path: Path) -> None:
    """Write a registered image (a nibabel image) atomically."""
    import nibabel as nib  # here, not at the top: training reads the store where nibabel may be missing

    from rnce.io import atomic_path

    with atomic_path(path) as tmp:
        nib.save(image, tmp)
