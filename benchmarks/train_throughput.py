"""Stage-1 training throughput: the real patch-store loader and torchio augmentations
against the same model fed pre-made tensors, same run.

Builds a patch store of N images on the 2 mm template grid (the template times a
smooth random field per image), then times stage-1 SimCLR steps of the paper-sized
PatchEncoder (widths 8-128, 64-d) on one box two ways:
- loader: rnce.ssl's PatchViews dataset (patch-store reads + two torchio views per
  image) through a DataLoader with one worker process, as a training job runs it;
- pre-made: the same number of steps on tensors already in memory.
Both use one thread for the model (the other core goes to the loader's worker).
The loader's cost is (loader step time - pre-made step time) / loader step time.
Last line:
    train_throughput: loader <x> of step time (goal < 0.10)

Run from the repo root: python benchmarks/train_throughput.py [--images N] [--steps S] [--box NAME]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out" / "train_throughput"
RESOLUTION = 2.0


def build(n: int) -> None:
    import pandas as pd
    from scipy import ndimage

    from rnce.imaging.patches import ShardWriter, box_slices, brain_box, normalise
    from rnce.imaging.segment import segment_tissue, template_priors
    from rnce.imaging.template import mni_template
    from rnce.regions import read_regions

    shard = OUT / "store" / "bench" / f"shard-{n:04d}"
    if shard.exists():
        return
    t1, mask = mni_template(RESOLUTION)
    regions = str(ROOT / "config" / "regions.tsv")
    boxes = box_slices(read_regions(regions), t1.affine, t1.shape)
    template, brain = t1.get_fdata(dtype=np.float32), mask.get_fdata() > 0.5
    rng = np.random.default_rng(0)
    writer = ShardWriter(shard, boxes, brain_box(brain), 32)
    for i in range(n):
        field = ndimage.gaussian_filter(rng.normal(size=template.shape).astype(np.float32), 3)
        image = normalise(template * (1 + field / field.std() * 0.3), brain)
        writer.add(f"p{i}", "1", f"{i:012x}", image, segment_tissue(image, brain, template_priors(None, RESOLUTION)))
    writer.close(pd.DataFrame())


def step(model, optimizer, v1, v2):
    from rnce.ssl.losses import nt_xent

    h1, h2 = model(torch.cat([v1, v2])).chunk(2)
    loss = nt_xent(h1, h2)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def timed(model, optimizer, batches, warmup: int = 2) -> float:
    """Seconds per step after ``warmup`` steps."""
    started = None
    for i, (v1, v2, *_) in enumerate(batches):
        if i == warmup:
            started = time.perf_counter()
        step(model, optimizer, v1, v2)
    return (time.perf_counter() - started) / (i + 1 - warmup)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=160)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--box", default="lh_parietal")
    args = parser.parse_args()
    from torch.utils.data import DataLoader

    from rnce.ssl.augment import patch_transform
    from rnce.ssl.data import EpochBatches, Images, PatchViews
    from rnce.ssl.models import PatchEncoder
    from rnce.ssl.train import _ignore_signals

    build(args.images)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    images = Images(OUT / "store", ["bench"])
    dataset = PatchViews(images, args.box, patch_transform(voxel_mm=RESOLUTION), None, seed=0)
    n_steps = args.steps + 2
    if n_steps * args.batch > len(images):
        raise SystemExit(f"--images must be at least {n_steps * args.batch}")
    model = PatchEncoder()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    loader = DataLoader(dataset, batch_sampler=EpochBatches(len(images), args.batch, 0, 0), num_workers=1,
                        worker_init_fn=_ignore_signals, prefetch_factor=2)
    batches = (b for _, b in zip(range(n_steps), loader, strict=False))
    with_loader = timed(model, optimizer, batches)
    shape = images.read(0, args.box).shape
    premade = [(torch.randn(args.batch, 1, *shape), torch.randn(args.batch, 1, *shape)) for _ in range(n_steps)]
    without = timed(model, optimizer, iter(premade))
    cost = max(0.0, (with_loader - without) / with_loader)
    print(f"box {args.box} {shape} at {RESOLUTION} mm, batch {args.batch}, PatchEncoder widths 8-128")
    print(f"pre-made tensors      : {args.batch / without:7.1f} samples/s ({without * 1000:.0f} ms per step)")
    print(f"patch store + torchio : {args.batch / with_loader:7.1f} samples/s ({with_loader * 1000:.0f} ms per step)")
    print(f"train_throughput: loader {cost:.3f} of step time (goal < 0.10)")


if __name__ == "__main__":
    main()
