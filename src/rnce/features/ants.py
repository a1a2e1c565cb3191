"""The ANTs fallback when there is no FreeSurfer: tissue volumes and cortical thickness per box, about a minute
per image.

For one T1w image:

1. registration to MNI-152 with the code and start of :mod:`rnce.imaging.register` on a ``resolution`` mm
   grid (default 2 mm: the transform of a 1 mm image barely moves), skull strip with the template's brain mask
   and N4 inside it;
2. the image's own tissue classes (CSF, GM, WM) on that grid: :func:`rnce.imaging.segment.segment_tissue`
   (EM with the template's tissue maps as a weak prior);
3. KellyKapowski (DiReCT) cortical thickness on that grid, ``thickness_iterations`` iterations;
4. per box of ``config/regions.tsv`` (the boxes are MNI mm, so on the template grid they are slices), back to
   the image's own size through the registration's scale: volumes times ``|det A|`` and thicknesses times
   ``|det A|^(1/3)`` (``A``: the linear part of the transform template -> image).

``ants_icv`` is the template's brain mask (ICBM 2009a: 1.883 l) times ``|det A|``: the registration-based
intracranial volume FreeSurfer's eTIV also is (Buckner et al. 2004), with our template and transform. The
previous fallback (template registered to the N4-corrected head with ANTs' default affine, Atropos and
DiReCT at the image's resolution) took 10.5 min per 2 mm image and its mask, moved onto the head, measured
2.6-3.0 l.

Features, all named ``ants_...`` (they are not FreeSurfer's and never pass for them): ``ants_{box}_gm_volume``
(mm^3) and ``ants_{box}_thickness`` (mean DiReCT thickness of the box's cortex, mm) for every box,
``ants_ventricle_csf_volume`` (CSF inside the lateral-ventricle region), ``ants_csf_volume`` (all CSF in the
brain mask), ``ants_icv``.

Plausibility (:data:`PLAUSIBLE`): an image whose ICV, tissue fractions or mean cortical thickness lie outside
adult ranges is excluded from harmonization onward with the reason (:func:`implausible`); every image's
measures are written to the features' exclusions table, as a note where it is kept.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

VENTRICLE_BOX = {"x": (-25.0, 25.0), "y": (-45.0, 25.0), "z": (0.0, 35.0)}  # MNI mm, lateral ventricles
RESOLUTION_MM = 2.0
# adult ranges; the 5 real dev scans (2 and 0.88 mm, ages 24-47) measure ICV 1.26-1.67 l, GM 0.47-0.49,
# WM 0.34-0.36, CSF 0.16-0.19, and thickness 1.63 and 2.53 mm (the two measured at 15 iterations)
PLAUSIBLE = {"icv_litres": (1.0, 2.2), "gm_fraction": (0.25, 0.65), "wm_fraction": (0.2, 0.55),
             "csf_fraction": (0.03, 0.45), "thickness_mm": (1.0, 5.0)}


def ants_feature_names(regions: pd.DataFrame) -> list[str]:
    per_box = [f"ants_{b}_{m}" for b in regions["name"] for m in ("gm_volume", "thickness")]
    return per_box + ["ants_ventricle_csf_volume", "ants_csf_volume", "ants_icv"]


def implausible(measures: dict[str, float]) -> list[str]:
    """The measures outside :data:`PLAUSIBLE`, as reasons (empty: plausible)."""
    out = []
    for key, (low, high) in PLAUSIBLE.items():
        value = measures[key]
        if not low <= value <= high:
            out.append(f"{key} {value:.3g} outside {low}-{high}")
    return out


def ants_features(t1w: str | Path, regions: pd.DataFrame, thickness_iterations: int = 15,
                  resolution: float = RESOLUTION_MM) -> tuple[dict[str, float], dict[str, float]]:
    """(features, measures) of one image (see the module docstring); measures: ``icv_litres``,
    ``gm_fraction``, ``wm_fraction``, ``csf_fraction``, ``thickness_mm`` (the mean over the boxes)."""
    import ants

    from rnce.imaging.patches import box_slices, normalise
    from rnce.imaging.register import register_to_template
    from rnce.imaging.segment import segment_tissue, template_priors

    clock = time.perf_counter()

    def step(name: str) -> None:
        nonlocal clock
        log.info("%s: %s %.1f s", t1w, name, time.perf_counter() - clock)
        clock = time.perf_counter()

    result = register_to_template(t1w, resolution=resolution)
    step(f"registration to MNI-152 at {resolution} mm (correlation {result.template_correlation:.3f})")
    mask = result.mask.get_fdata() > 0.5
    labels = segment_tissue(normalise(result.image.get_fdata(dtype=np.float32), mask), mask,
                            template_priors(None, resolution))
    step("tissue classes")
    spacing = (resolution,) * 3
    thickness = ants.kelly_kapowski(s=ants.from_numpy(labels.astype(np.float32), spacing=spacing),
                                    g=ants.from_numpy((labels == 2).astype(np.float32), spacing=spacing),
                                    w=ants.from_numpy((labels == 3).astype(np.float32), spacing=spacing),
                                    its=thickness_iterations, r=0.025, m=1.5).numpy()
    step(f"thickness (KellyKapowski, {thickness_iterations} iterations)")

    scale = abs(float(np.linalg.det(np.asarray(result.transform.parameters[:9]).reshape(3, 3))))
    voxel = resolution ** 3 * scale  # mm^3 of the image per template voxel
    length = scale ** (1 / 3)
    affine = result.image.affine
    out: dict[str, float] = {}
    for name, box in box_slices(regions, affine, labels.shape).items():
        gm, cortex = labels[box] == 2, thickness[box] > 0
        out[f"ants_{name}_gm_volume"] = float(gm.sum() * voxel)
        out[f"ants_{name}_thickness"] = float(thickness[box][cortex].mean() * length) if cortex.any() else np.nan
    bounds = pd.DataFrame([{"name": "ventricles", **{f"{a}_{e}": VENTRICLE_BOX[a][i] for a in "xyz"
                                                     for i, e in enumerate(("min", "max"))}}])
    ventricles = box_slices(bounds, affine, labels.shape)["ventricles"]
    out["ants_ventricle_csf_volume"] = float((labels[ventricles] == 1).sum() * voxel)
    out["ants_csf_volume"] = float((labels == 1).sum() * voxel)
    out["ants_icv"] = float(mask.sum() * voxel)
    brain = max(int(mask.sum()), 1)
    measures = {"icv_litres": out["ants_icv"] / 1e6, "gm_fraction": float((labels == 2).sum() / brain),
                "wm_fraction": float((labels == 3).sum() / brain), "csf_fraction": float((labels == 1).sum() / brain),
                "thickness_mm": float(np.nanmean([v for k, v in out.items() if k.endswith("_thickness")]))}
    step("features")
    log.info("ANTs features of %s: ICV %.2f l, GM %.2f, WM %.2f, CSF %.2f, thickness %.2f mm", t1w,
             *measures.values())
    return out, measures
