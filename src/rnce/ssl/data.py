"""What training reads: the pretrain images of the patch store, their auxiliary
features, and datasets of patch views, whole images and visit pairs.

Randomness is keyed, not streamed: the order of an epoch depends only on
(seed, epoch) and each sample's augmentation only on (seed, epoch, index), so a
run resumed from a checkpoint in the middle of an epoch sees exactly the
batches an uninterrupted run sees, whatever the number of loader workers.
"""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset, Sampler

from rnce.imaging.patches import WHOLE_IMAGE, PatchStore

log = logging.getLogger(__name__)
ID_COLUMNS = ["cohort", "participant_id", "session_id"]


def key_seed(*parts) -> int:
    """A 31-bit seed from any parts (stable across processes and runs)."""
    return zlib.crc32(json.dumps(parts).encode()) & 0x7FFFFFFF


class Images:
    """The images of some cohorts' patch stores, with one row each (``table``: cohort,
    participant_id, session_id, image_key) and fast per-image reads."""

    def __init__(self, patch_root: str | Path, cohorts: list[str]):
        self.stores = {c: PatchStore(patch_root, c) for c in cohorts}
        frames = [s.index.assign(cohort=c, store_row=np.arange(len(s))) for c, s in self.stores.items()]
        self.table = pd.concat(frames, ignore_index=True)[[*ID_COLUMNS, "image_key", "store_row"]]
        self._where = [(c, shard, int(pos)) for c, s in self.stores.items()
                       for shard, pos in zip(s.index["shard"], s.index["position"], strict=True)]

    def __len__(self) -> int:
        return len(self.table)

    def subset(self, keep: np.ndarray) -> Images:
        out = object.__new__(Images)
        out.stores = self.stores
        out.table = self.table[keep].reset_index(drop=True)
        out._where = [w for w, k in zip(self._where, keep, strict=True) if k]
        return out

    def read(self, i: int, box: str, dtype=np.float32) -> np.ndarray:
        """One image's patch of ``box`` (a copy; ``dtype`` float16 keeps the store's values as stored)."""
        cohort, shard, position = self._where[i]
        return np.array(self.stores[cohort].array(shard, box)[position], dtype=dtype)

    def batch(self, rows: list[int], box: str) -> np.ndarray:
        return np.stack([self.read(i, box) for i in rows])

    def read_labels(self, i: int, box: str) -> np.ndarray:
        """The image's own tissue labels in one box (uint8, 0 outside, 1 CSF, 2 GM, 3 WM)."""
        cohort, shard, position = self._where[i]
        return np.array(self.stores[cohort].label_array(shard, box)[position])  # a writable copy


def validation_mask(table: pd.DataFrame, fraction: float, seed: int = 0) -> np.ndarray:
    """Which rows (cohort, participant_id) belong to the validation share of the pretrain subjects: a
    ``fraction`` of the subjects, all of a subject's images together, drawn by a hash of the subject (the same
    subjects whatever the order, the other cohorts or the method). SSL training leaves them out; settings are
    judged on them (:mod:`rnce.ssl.validation`), never on the evaluation labels."""
    if not 0 <= fraction < 1:
        raise ValueError(f"ssl.validation_fraction must be in [0, 1), not {fraction}")
    keys = np.array([key_seed("validation", seed, c, p) % 10_000
                     for c, p in zip(table["cohort"].astype(str), table["participant_id"].astype(str), strict=True)])
    return keys < round(fraction * 10_000)


def nested_subset(table: pd.DataFrame, n: int) -> np.ndarray:
    """A mask of ``n`` rows: whole subjects in an order fixed by a hash of (cohort, participant_id), so the
    subset of a smaller ``n`` lies inside that of a larger one (the learning curve's pretraining sizes);
    the last subject taken may contribute only some of its images."""
    if not 0 < n <= len(table):
        raise ValueError(f"a training subset of {n} images is not between 1 and the {len(table)} pretrain images")
    keys = np.array([key_seed("subset", c, p) for c, p in zip(table["cohort"].astype(str),
                                                               table["participant_id"].astype(str), strict=True)])
    order = np.lexsort((np.arange(len(table)), keys))
    keep = np.zeros(len(table), dtype=bool)
    keep[order[:n]] = True
    return keep


def auxiliary(images: Images, aux_path: str | Path, boxes_path: str | Path) -> tuple[Images, pd.DataFrame, dict]:
    """Join the images to the auxiliary matrix; images without auxiliary features are
    left out (counted in the log). Returns the kept images, their rows of A (same
    order) and each box's auxiliary columns."""
    aux = pd.read_csv(aux_path, sep="\t", dtype={"participant_id": str, "session_id": str})
    info = json.loads(Path(boxes_path).read_text())
    missing = [c for c in info["columns"] if c not in aux.columns]
    if missing:
        raise ValueError(f"{aux_path}: auxiliary column(s) {missing[:5]} listed in {boxes_path} are missing")
    merged = images.table.merge(aux, on=ID_COLUMNS, how="left", indicator=True)
    keep = (merged["_merge"] == "both").to_numpy()
    if not keep.any():
        raise ValueError(f"none of the {len(images)} pretrain images has a row in {aux_path}")
    if not keep.all():
        log.warning("%d of %d pretrain images have no auxiliary features (excluded by the feature stage) "
                    "and are left out of R-NCE training", int((~keep).sum()), len(keep))
    table = merged[keep].reset_index(drop=True)
    if table[info["columns"]].isna().any().any():
        bad = table[table[info["columns"]].isna().any(axis=1)]
        first = bad.iloc[0]
        column = next(c for c in info["columns"] if pd.isna(first[c]))
        row = aux.index[(aux[ID_COLUMNS] == first[ID_COLUMNS].to_numpy()).all(axis=1)][0] + 2
        raise ValueError(f"{aux_path}: {len(bad)} image(s) have missing auxiliary features, e.g. row {row} "
                         f"(cohort {first['cohort']}), column {column}")
    return images.subset(keep), table[info["columns"]], info["boxes"]


class EpochBatches(Sampler):
    """Batches of one epoch: a permutation keyed by (seed, epoch), cut into batches of
    ``batch_size`` (the last partial one dropped), from batch ``start`` on; under DDP
    each rank takes its ``batch_size // world`` slice of every batch."""

    def __init__(self, n: int, batch_size: int, seed: int, epoch: int, start: int = 0, rank: int = 0,
                 world: int = 1):
        if batch_size > n:
            raise ValueError(f"batch size {batch_size} is larger than the {n} training images")
        if batch_size % world:
            raise ValueError(f"batch size {batch_size} is not divisible by {world} processes")
        order = torch.randperm(n, generator=torch.Generator().manual_seed(key_seed(seed, epoch))).tolist()
        per_rank = batch_size // world
        self.batches = [order[b * batch_size:(b + 1) * batch_size][rank * per_rank:(rank + 1) * per_rank]
                        for b in range(n // batch_size)][start:]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class PatchViews(Dataset):
    """Two augmented views of one box of each image (and its auxiliary row, or an empty vector); the
    tissue-label augmentation uses the image's own labels from the patch store."""

    def __init__(self, images: Images, box: str, transform, aux: np.ndarray | None, seed: int):
        self.images, self.box, self.transform, self.seed = images, box, transform, seed
        self.aux = torch.as_tensor(aux if aux is not None else np.zeros((len(images), 0)), dtype=torch.float32)
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        from rnce.ssl.augment import augment

        patch, labels = self.images.read(i, self.box), self.images.read_labels(i, self.box)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(key_seed(self.seed, self.epoch, i))
            return augment(patch, labels, self.transform), augment(patch, labels, self.transform), self.aux[i]


class Patches(Dataset):
    """One box of each image as stored (float16), its tissue labels and its auxiliary row (or an empty vector):
    the batched path's input, augmented on the training device (:mod:`rnce.ssl.batch_augment`), so the loader
    only reads the memory-mapped store."""

    def __init__(self, images: Images, box: str, aux: np.ndarray | None):
        self.images, self.box = images, box
        self.aux = torch.as_tensor(aux if aux is not None else np.zeros((len(images), 0)), dtype=torch.float32)
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return (torch.from_numpy(self.images.read(i, self.box, np.float16)),
                torch.from_numpy(self.images.read_labels(i, self.box)), self.aux[i])


class WholeImages(Dataset):
    """Models Genesis: (corrupted, original) whole images."""

    def __init__(self, images: Images, seed: int):
        self.images, self.seed, self.epoch = images, seed, 0

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        from rnce.ssl.augment import genesis_corrupt

        image = self.images.read(i, WHOLE_IMAGE)
        corrupted = genesis_corrupt(image, np.random.default_rng(key_seed(self.seed, self.epoch, i)))
        return torch.from_numpy(corrupted)[None], torch.from_numpy(image)[None]


def visit_pairs(images: Images, visits: pd.DataFrame) -> np.ndarray:
    """LSSL: index pairs (earlier, later) of consecutive visits of each subject, ordered by
    age (``visits``: cohort, participant_id, session_id, age)."""
    table = images.table.reset_index().merge(visits[[*ID_COLUMNS, "age"]], on=ID_COLUMNS, how="inner")
    table = table.sort_values(["cohort", "participant_id", "age"])
    pairs = []
    for _, subject in table.groupby(["cohort", "participant_id"], sort=False):
        idx = subject["index"].to_numpy()
        pairs += [(a, b) for a, b in zip(idx[:-1], idx[1:], strict=True)]
    if not pairs:
        raise ValueError("LSSL needs subjects with several visits in the pretrain cohorts; there are none")
    return np.asarray(pairs, dtype=int)


class VisitPairs(Dataset):
    """LSSL: the whole images of a subject's earlier and later visit."""

    def __init__(self, images: Images, pairs: np.ndarray):
        self.images, self.pairs, self.epoch = images, pairs, 0

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int):
        a, b = self.pairs[i]
        return (torch.from_numpy(self.images.read(int(a), WHOLE_IMAGE))[None],
                torch.from_numpy(self.images.read(int(b), WHOLE_IMAGE))[None])
