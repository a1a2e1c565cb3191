"""Per-image preprocessing at 1 mm: the pipeline's load -> register -> 18 patches -> write,
against the bare ants.registration call on the same image, same run.

Simulates a few 1 mm skull-on T1 images (random pose, any voxel order), then
for each image times, interleaved: (a) the bare `ants.registration(fixed=
template, moving=image, type_of_transform="Similarity")` with ANTs' defaults,
and (b) rnce.imaging.preprocess.preprocess_shard on that one image (checks,
two-stage registration, N4, QC, the tissue segmentation, 18 patches and their
labels, transform and shard written).
Prints per-image walls; the ratio is the sum of (b) over the sum of (a). Last line:
    preprocess: ratio <r> (goal <= 1.25)

Run from the repo root: python benchmarks/preprocess.py [--images N]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out" / "preprocess"


def simulate(n: int) -> list[Path]:
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import TINY_CONFIG, load_config

    from rnce.simulate import simulate_world

    world = OUT / "world"
    if not (world / "ground_truth.json").exists():
        cfg = load_config(TINY_CONFIG)["simulate"]
        cfg.update(voxel_size_mm=1.0, non_ras_fraction=0.5)
        cfg["cohorts"] = {"pretrain": {**cfg["cohorts"]["pretrain"], "n_subjects": n, "max_visits": 1}}
        simulate_world(cfg, world, threads=1)
    return sorted((world / "images" / "pretrain").glob("*.nii.gz"))[:n]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=3)
    args = parser.parse_args()
    import ants

    from rnce.imaging.preprocess import preprocess_shard
    from rnce.imaging.template import head_template

    images = simulate(args.images)
    template = ants.from_nibabel_nifti(head_template(1.0))
    regions = str(ROOT / "config" / "regions.tsv")
    bare_total = ours_total = 0.0
    for i, path in enumerate(images):
        t0 = time.perf_counter()
        ants.registration(fixed=template, moving=ants.image_read(str(path)), type_of_transform="Similarity")
        bare = time.perf_counter() - t0
        shard = OUT / "store" / "bench" / f"shard-{i:04d}"
        shutil.rmtree(shard, ignore_errors=True)
        row = {"participant_id": f"p{i}", "session_id": "1", "image_key": f"{i:012x}", "source": str(path),
               "brain_extracted": False}
        t0 = time.perf_counter()
        qc = preprocess_shard([row], str(shard), regions, resolution=1.0)
        ours = time.perf_counter() - t0
        bare_total += bare
        ours_total += ours
        print(f"{path.name}: bare ants.registration {bare:6.1f} s, pipeline {ours:6.1f} s "
              f"(template_correlation {qc['template_correlation'].iat[0]:.3f})")
    print(f"preprocess: ratio {ours_total / bare_total:.2f} (goal <= 1.25)")


if __name__ == "__main__":
    main()
