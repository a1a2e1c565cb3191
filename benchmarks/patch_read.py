"""Patch reading: random batches of 64 images x one box from the patch store, against torchio + crop.

Builds a store of N registered images on the 2 mm template grid (the template
plus noise, one shard per 64 images) and the same images as .nii.gz, then
times random batches of 64 images of one box: PatchStore.batch against loading
each .nii.gz with torchio and cropping the box, same run. Last line:
    patch_read: <x>x faster (goal >= 20)

Run from the repo root: python benchmarks/patch_read.py [--images N] [--batches B]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import nibabel as nib
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out" / "patch_read"
RESOLUTION = 2.0


def build(n: int):
    from rnce.imaging.patches import ShardWriter, box_slices, brain_box, normalise
    from rnce.imaging.segment import template_labels
    from rnce.imaging.template import mni_template
    from rnce.regions import read_regions

    t1, mask = mni_template(RESOLUTION)
    labels = template_labels(None, RESOLUTION)
    boxes = box_slices(read_regions(ROOT / "config" / "regions.tsv"), t1.affine, t1.shape)
    rng = np.random.default_rng(0)
    template, brain = t1.get_fdata(dtype=np.float32), mask.get_fdata() > 0.5
    paths = []
    for start in range(0, n, 64):
        shard = OUT / "store" / "bench" / f"shard-{start // 64:04d}"
        writer = None if shard.exists() else ShardWriter(shard, boxes, brain_box(brain), 96)
        for i in range(start, min(n, start + 64)):
            path = OUT / "nifti" / f"img{i:05d}.nii.gz"
            volume = None
            if not path.exists() or writer is not None:
                volume = normalise(template + rng.normal(0, 0.05, template.shape).astype(np.float32), brain)
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                nib.save(nib.Nifti1Image(volume, t1.affine), path)
            if writer is not None:
                writer.add(f"p{i}", "1", f"{i:012x}", volume, labels)
            paths.append(path)
        if writer is not None:
            import pandas as pd

            writer.close(pd.DataFrame())
    from rnce.imaging.patches import pass_all

    pass_all(OUT / "store", "bench")  # synthetic images: no registration QC
    return paths, boxes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--batches", type=int, default=8)
    args = parser.parse_args()
    import torchio

    from rnce.imaging.patches import PatchStore

    paths, boxes = build(args.images)
    store = PatchStore(OUT / "store", "bench")
    rng = np.random.default_rng(1)
    names = sorted(boxes)
    draws = [(rng.choice(len(paths), 64, replace=False), names[rng.integers(len(names))]) for _ in range(args.batches)]

    t0 = time.perf_counter()
    for rows, box in draws:
        store.batch(rows, box)
    ours = time.perf_counter() - t0

    t0 = time.perf_counter()
    for rows, box in draws:
        sl = boxes[box]
        np.stack([torchio.ScalarImage(paths[i]).data[0].numpy()[sl] for i in rows])
    baseline = time.perf_counter() - t0
    print(f"torchio load + crop : {baseline / args.batches * 1000:8.1f} ms per batch of 64")
    print(f"PatchStore.batch    : {ours / args.batches * 1000:8.1f} ms per batch of 64")
    print(f"patch_read: {baseline / ours:.0f}x faster (goal >= 20)")


if __name__ == "__main__":
    main()
