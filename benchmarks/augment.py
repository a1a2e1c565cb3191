"""Views per second per core: the batched augmentation (rnce.ssl.batch_augment) against torchio one view at a
time (rnce.ssl.augment), same run, same settings (the package defaults), on 1 mm parietal boxes.

The boxes are the parietal box of the 1 mm MNI template (about 60 x 65 x 60 voxels), each times its own smooth
random field, with tissue labels from the package's segmentation. Both paths run on one core (one torch thread,
one SimpleITK thread), so the figures are per core; a training job gives the batched path all its cores.
Prints the time of each transform of the batched path on the whole batch, then the last line
    augment: ratio <batched views/s per core / torchio views/s per core> (goal >= 2)

Run from the repo root: python benchmarks/augment.py [--batch 32] [--repeats 3] [--box lh_parietal]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def boxes(n: int, box: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` 1 mm patches of ``box`` (n x X x Y x Z float32) and their tissue labels (uint8)."""
    from scipy import ndimage

    from rnce.imaging.patches import box_slices, normalise
    from rnce.imaging.segment import segment_tissue, template_priors
    from rnce.imaging.template import mni_template
    from rnce.regions import read_regions

    t1, mask = mni_template(1.0)
    sl = box_slices(read_regions(str(ROOT / "config" / "regions.tsv")), t1.affine, t1.shape)[box]
    template, brain = t1.get_fdata(dtype=np.float32)[sl], mask.get_fdata()[sl] > 0.5
    priors = template_priors(None, 1.0)[(slice(None), *sl)]
    rng = np.random.default_rng(seed)
    patches, labels = [], []
    for _ in range(n):
        field = ndimage.gaussian_filter(rng.normal(size=template.shape).astype(np.float32), 4)
        image = normalise(template * (1 + field / field.std() * 0.2), brain)
        patches.append(image)
        labels.append(segment_tissue(image, brain, priors))
    return np.stack(patches), np.stack(labels).astype(np.uint8)


def best_of(repeats: int, run) -> float:
    run()  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--box", default="lh_parietal")
    args = parser.parse_args()
    import SimpleITK as sitk

    from rnce.ssl import batch_augment as ba
    from rnce.ssl.augment import augment, patch_transform
    from rnce.ssl.train import keep_freed_memory

    keep_freed_memory()  # as a CPU training job does (both paths run under it)
    torch.set_num_threads(1)
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    patches, labels = boxes(args.batch, args.box)
    x, lab = torch.from_numpy(patches), torch.from_numpy(labels)
    batched = ba.BatchAugment()
    g = torch.Generator().manual_seed(0)
    t_batched = best_of(args.repeats, lambda: batched(x, lab, g))
    transform = patch_transform()
    t_torchio = best_of(args.repeats, lambda: [augment(p, q, transform) for p, q in zip(patches, labels, strict=True)])

    n = len(x)
    k = max(1, ba.CPU_CHUNK_VOXELS // int(np.prod(x.shape[1:])))  # the views the batched path takes at once
    v = x[:k, None].clone()
    parts = {
        "tissue labels": lambda: ba.tissue_labels(v, lab[:k, None], torch.zeros(k, 3), torch.ones(k, 3), g),
        "rotation/crop": lambda: ba.affine(v, ba.affine_matrix(torch.full((k, 3), 1.03, dtype=torch.float64),
                                                               torch.full((k, 3), 2.0, dtype=torch.float64),
                                                               torch.full((k, 3), 1.0, dtype=torch.float64),
                                                               v.shape[2:])),
        "bias field": lambda: ba.bias_field(v.clone(), torch.full((k, ba.BIAS_TERMS), 0.1)),
        "contrast": lambda: ba.gamma(v, torch.full((k,), 1.0)),
        "blur (largest)": lambda: ba.blur(v, torch.full((k, 3), batched.s["blur_vox"])),
        "noise": lambda: v + torch.randn(v.shape, generator=g) * 0.1,
        "spike": lambda: ba.spike(v, torch.rand(k, 3, generator=g), torch.full((k,), 0.2)),
    }
    print(f"{n} views of {args.box} {tuple(x.shape[1:])} at 1 mm, one core, best of {args.repeats}")
    print(f"batched path, each transform on {k} views at once (ms per view):")
    for name, run in parts.items():
        print(f"  {name:15s} {best_of(args.repeats, run) / k * 1000:6.2f}")
    print(f"torchio, one view at a time : {n / t_torchio:7.1f} views/s ({t_torchio / n * 1000:.1f} ms per view)")
    print(f"batched on the device (CPU) : {n / t_batched:7.1f} views/s ({t_batched / n * 1000:.1f} ms per view)")
    print(f"augment: ratio {t_torchio / t_batched:.2f} (goal >= 2)")


if __name__ == "__main__":
    main()
