"""Deliberately broken versions of a real head scan (registration QC must fail every one), and two
legitimate variants it must pass: a head tilted in the scanner and a field of view down to the shoulders."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

BROKEN = ("upside_down", "ap_flip", "axes_permuted", "half_cropped", "inverted_contrast", "noise")
LEGITIMATE = ("tilted_25deg", "with_shoulders")


def broken_versions(path: str, folder: Path) -> dict[str, str]:
    """Write every version of the scan at ``path`` into ``folder``; returns name -> path.

    Broken: upside down and anterior-posterior flipped (mirrored data, same header), axes permuted under
    an unchanged header (a wrong orientation header), the upper half cropped, the contrast inverted (another
    modality), pure noise. Legitimate: tilted by 25 degrees about the left-right axis (the header says so),
    and 80 mm of bright "shoulders" below the head (the centre of mass moves centimetres down)."""
    src = nib.as_closest_canonical(nib.load(path))
    d, a = src.get_fdata().astype(np.float32), src.affine
    z = np.arange(d.shape[2])[None, None, :]
    bright = np.percentile(d[d > 0], 90)
    versions = {
        "upside_down": (d[:, :, ::-1], a), "ap_flip": (d[:, ::-1, :], a),
        "axes_permuted": (np.transpose(d, (1, 2, 0)), a),
        "half_cropped": (np.where(z < d.shape[2] // 2, d, 0), a),
        "inverted_contrast": ((d.max() - d) * (d > 0.05 * d.max()), a),
        "noise": (np.random.default_rng(0).random(d.shape) * d.max(), a)}
    tilt = np.eye(4)
    c, s = np.cos(np.deg2rad(25)), np.sin(np.deg2rad(25))
    tilt[1:3, 1:3] = [[c, -s], [s, c]]
    versions["tilted_25deg"] = (d, tilt @ a)
    slices = int(round(80 / abs(a[2, 2])))
    shoulders = np.zeros((*d.shape[:2], slices), np.float32)
    shoulders[d.shape[0] // 6: -d.shape[0] // 6, d.shape[1] // 6: -d.shape[1] // 6] = bright
    lowered = a.copy()
    lowered[:3, 3] -= a[:3, 2] * slices
    versions["with_shoulders"] = (np.concatenate([shoulders, d], axis=2), lowered)
    out = {}
    for name, (data, affine) in versions.items():
        out[name] = str(folder / f"{name}.nii.gz")
        nib.save(nib.Nifti1Image(np.ascontiguousarray(data, dtype=np.float32), affine), out[name])
    return out
