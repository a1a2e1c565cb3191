"""Stage-1 training throughput: one study job with the views made a batch at a time on the training device
(ssl.augment.backend: batched) against one view at a time by torchio (backend: torchio), same run.

1. The study job: a SimCLR stage-1 encoder of one box on a patch store of the study's 4 mm grid, with the
   study's widths and batch (config/study.yaml), one thread, as `snakemake` runs it on the study's machine:
   rnce.ssl.train.fit for one epoch, its samples/s from the job's own metrics, each path.
2. The share of step time outside forward/backward at 1 mm with the paper's widths (8-128) on the batched
   path: reading the batch, making the two views, against the forward, backward and optimiser step.
Last line:
    train_throughput: ratio <batched samples/s / torchio samples/s> (goal >= 3)

Run from the repo root: python benchmarks/train_throughput.py [--images 960] [--box lh_parietal]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out" / "train_throughput"
RESOLUTION = 4.0


def build(n: int) -> Path:
    """A patch store of ``n`` images on the 4 mm template grid (the template times a smooth random field each)."""
    import pandas as pd
    from scipy import ndimage

    from rnce.imaging.patches import ShardWriter, box_slices, brain_box, normalise, pass_all
    from rnce.imaging.segment import segment_tissue, template_priors
    from rnce.imaging.template import mni_template
    from rnce.regions import read_regions

    root = OUT / f"store-{n}"
    shard = root / "bench" / "shard-0000"
    if (root / "bench" / "passed.tsv").exists():
        return root
    t1, mask = mni_template(RESOLUTION)
    boxes = box_slices(read_regions(str(ROOT / "config" / "regions.tsv")), t1.affine, t1.shape)
    template, brain = t1.get_fdata(dtype=np.float32), mask.get_fdata() > 0.5
    priors = template_priors(None, RESOLUTION)
    rng = np.random.default_rng(0)
    writer = ShardWriter(shard, boxes, brain_box(brain), 24)
    for i in range(n):
        field = ndimage.gaussian_filter(rng.normal(size=template.shape).astype(np.float32), 2)
        image = normalise(template * (1 + field / field.std() * 0.3), brain)
        writer.add(f"p{i}", "1", f"{i:012x}", image, segment_tissue(image, brain, priors))
    writer.close(pd.DataFrame())
    pass_all(shard.parents[1], shard.parent.name)  # synthetic images: no registration QC
    return root


def study_job(root: Path, box: str, backend: str) -> dict:
    """The study's stage-1 job for ``box`` (SimCLR: R-NCE's auxiliary term costs nothing next to the views)."""
    from study_report import study_config

    from rnce.ssl.jobs import make_job, settings

    ssl = dict(study_config()["ssl"])
    ssl["stage1"] = {**ssl["stage1"], "epochs": 1}
    ssl["augment"] = {**ssl["augment"], "backend": backend}
    ssl["validation_fraction"] = 0.0
    name = f"{backend}_{box}"
    out = {"model": str(OUT / "jobs" / f"{name}.pt"), "metrics": str(OUT / "jobs" / f"{name}.tsv"),
           "checkpoints": str(OUT / "jobs" / "checkpoints" / name)}
    return make_job("simclr", "encoder", settings(ssl, "simclr", "encoder", RESOLUTION), str(root), ["bench"], out,
                    threads=1, box=box)


def samples_per_s(job: dict) -> float:
    from rnce.ssl.tasks import build as build_task
    from rnce.ssl.train import fit, setup

    _, _, device = setup(job)
    return float(fit(build_task(job, device), device)["samples_per_s"].iloc[-1])


def outside_share(box: str, batch: int, steps: int) -> tuple[float, float, float]:
    """(read + augment seconds, forward/backward/step seconds, share outside) per step at 1 mm, paper widths."""
    from augment import boxes

    from rnce.ssl.batch_augment import BatchAugment
    from rnce.ssl.losses import nt_xent
    from rnce.ssl.models import PatchEncoder

    patches, labels = boxes(batch, box)
    stored = torch.from_numpy(patches.astype(np.float16))
    model = PatchEncoder().to(memory_format=torch.channels_last_3d)  # as a CPU training job runs it
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    augmenter, generator = BatchAugment(), torch.Generator().manual_seed(0)
    outside = inside = 0.0
    for step in range(steps + 1):
        started = time.perf_counter()
        x, lab = stored.clone(), torch.from_numpy(labels.copy())  # what the loader hands over
        v1, v2 = augmenter(x, lab, generator), augmenter(x, lab, generator)
        middle = time.perf_counter()
        h1, h2 = model(torch.cat([v1, v2])).chunk(2)
        loss = nt_xent(h1, h2)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step:  # the first step warms up
            outside += middle - started
            inside += time.perf_counter() - middle
    return outside / steps, inside / steps, outside / (outside + inside)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=960, help="patch-store images (10 steps of the study batch, 96)")
    parser.add_argument("--box", default="lh_parietal")
    parser.add_argument("--fine-batch", type=int, default=8, help="batch of the 1 mm, paper-width steps")
    parser.add_argument("--fine-steps", type=int, default=2)
    args = parser.parse_args()
    root = build(args.images)
    rates = {backend: samples_per_s(study_job(root, args.box, backend)) for backend in ("torchio", "batched")}
    job = study_job(root, args.box, "batched")
    print(f"study job: {args.box} at {RESOLUTION:g} mm, widths {job['model']['encoder_widths']}, batch "
          f"{job['train']['batch_size']}, {args.images} images, one thread")
    for backend, rate in rates.items():
        print(f"  {backend:8s}: {rate:7.1f} samples/s")
    torch.set_num_threads(1)
    outside, inside, share = outside_share(args.box, args.fine_batch, args.fine_steps)
    print(f"1 mm, paper widths (8-128), batch {args.fine_batch}, batched path, one thread: read + views "
          f"{outside:.2f} s, forward/backward/step {inside:.2f} s per step: {share:.1%} of step time outside "
          "forward/backward")
    print(f"train_throughput: ratio {rates['batched'] / rates['torchio']:.2f} (goal >= 3)")


if __name__ == "__main__":
    main()
