"""Registration QC scores of the real dev scans and of deliberately broken versions of one of them.

    RNCE_REAL_DATA=../shared/data/real .venv/bin/python scripts/qc_broken_registrations.py [--resolution 2]

Broken versions of the first IXI scan (tests/broken_scans.py): upside down, anterior-posterior flipped, axes
permuted under an unchanged header, the upper half cropped, pure noise, inverted contrast; and two legitimate
variants (tilted 25 degrees, a field of view down to the shoulders). Each is registered as the workflow registers
an image (rnce.imaging.register) and its template_correlation printed. Issue 31 (item 1): a QC score must pass
every real scan and fail every broken one. With the score of 2026-12-07 (smoothing inside the mask, head-centre
start, retry from rotated starts) at 2 mm: real 0.45-0.64, tilted 0.45, shoulders 0.44; broken at most 0.30.
(The score before it, smoothed with the mask's zeros: IXI 0.75-0.81, chris 0.91, broken 0.37-0.64, noise 0.84.)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))

from broken_scans import broken_versions  # noqa: E402

from rnce.imaging.register import register_to_template  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolution", type=float, default=2.0)
    args = parser.parse_args()
    real = Path(os.environ.get("RNCE_REAL_DATA", ROOT.parent / "shared" / "data" / "real")).resolve()
    scans = sorted((real / "T1").rglob("*.nii.gz"))
    if not scans:
        sys.exit(f"no real scans under {real}/T1 (set RNCE_REAL_DATA)")
    with tempfile.TemporaryDirectory() as tmp:
        paths = {p.name.split(".")[0]: str(p) for p in scans}
        paths.update(broken_versions(str(next(p for p in scans if "IXI" in p.name)), Path(tmp)))
        for name, path in paths.items():
            start = time.perf_counter()
            result = register_to_template(path, resolution=args.resolution)
            print(f"{name:28s} template_correlation {result.template_correlation:.3f}  "
                  f"({time.perf_counter() - start:.1f} s)", flush=True)


if __name__ == "__main__":
    main()
