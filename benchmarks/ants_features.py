"""The ANTs fallback (rnce.features.ants) per 1 mm image on one core, against one default ANTs registration of
the same image, same run.

Simulates a few 1 mm skull-on T1 images (benchmarks/preprocess.py's world) and, with RNCE_REAL_DATA set, adds
the real 0.88 mm head (T1/chris_t1.nii.gz). ITK runs one thread. For each image, interleaved: (a) the bare
`ants.registration(fixed=template head, moving=image, type_of_transform="Similarity")` with ANTs' defaults,
(b) `ants_features` with the workflow's defaults (its log lines give each step's time). Prints per-image walls
and measures; with --reference R,ITS also the features at grid R mm and ITS thickness iterations, and how far the
defaults' features lie from them (correlation over images x boxes, median relative difference). Last line:
    ants_features: <s> s/image at 1 mm on one core, <ratio>x a default registration (goal <= 120 s/image)

Run from the repo root: python benchmarks/ants_features.py [--images N] [--reference 1.5,45]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = "1"  # one core, before ITK loads

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "src"))

from preprocess import simulate  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1)
    parser.add_argument("--reference", default="", help="grid mm and thickness iterations to compare with, e.g. 1.5,45")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="  %(message)s")
    logging.getLogger("rnce.imaging.register").setLevel(logging.WARNING)
    import ants
    import numpy as np
    import pandas as pd

    from rnce.features.ants import ants_features
    from rnce.imaging.template import head_template
    from rnce.regions import read_regions

    images = simulate(args.images)
    real = Path(os.environ.get("RNCE_REAL_DATA", "")) / "T1" / "chris_t1.nii.gz"
    if os.environ.get("RNCE_REAL_DATA") and real.exists():
        images.append(real)
    regions = read_regions(ROOT / "config" / "regions.tsv")
    template = ants.from_nibabel_nifti(head_template(1.0))
    bare_total = ours_total = 0.0
    ours, reference = [], []
    for path in images:
        t0 = time.perf_counter()
        ants.registration(fixed=template, moving=ants.image_read(str(path)), type_of_transform="Similarity")
        bare = time.perf_counter() - t0
        t0 = time.perf_counter()
        features, measures = ants_features(path, regions)
        wall = time.perf_counter() - t0
        bare_total, ours_total = bare_total + bare, ours_total + wall
        ours.append(features)
        print(f"{path.name}: default registration {bare:6.1f} s, ANTs features {wall:6.1f} s; "
              + ", ".join(f"{k} {v:.3g}" for k, v in measures.items()), flush=True)
        if args.reference:
            grid, iterations = args.reference.split(",")
            t0 = time.perf_counter()
            reference.append(ants_features(path, regions, int(iterations), float(grid))[0])
            print(f"  reference ({grid} mm, {iterations} iterations): {time.perf_counter() - t0:.1f} s", flush=True)
    if reference:
        a, b = pd.DataFrame(ours), pd.DataFrame(reference)
        for kind in ("thickness", "gm_volume"):
            cols = [c for c in a.columns if c.endswith(kind)]
            x, y = a[cols].to_numpy().ravel(), b[cols].to_numpy().ravel()
            print(f"{kind}: r {np.corrcoef(x, y)[0, 1]:.3f} over images x boxes, median relative difference "
                  f"{np.median(np.abs(x - y) / np.abs(y)):.3f}, mean ratio {np.mean(x) / np.mean(y):.3f}")
    per_image = ours_total / len(images)
    print(f"ants_features: {per_image:.1f} s/image at 1 mm on one core, {ours_total / bare_total:.2f}x a default "
          f"registration (goal <= 120 s/image)")


if __name__ == "__main__":
    main()
