"""The ANTs fallback when there is no FreeSurfer: tissue volumes and cortical thickness per box.

For one T1w image (antspyx): N4 bias correction; affine registration of the
MNI-152 template (with a synthetic head, :mod:`rnce.imaging.template`) to the
image and the template's brain mask carried over (brain extraction); Atropos
3-class k-means segmentation (CSF, GM, WM) inside the mask; KellyKapowski
(DiReCT) cortical thickness; every image voxel mapped to MNI mm to find the 18
boxes of ``config/regions.tsv``. Features, all named ``ants_...`` (they are not
FreeSurfer's and never pass for them):

- ``ants_{box}_gm_volume`` (mm^3) and ``ants_{box}_thickness`` (mean DiReCT
  thickness of the box's cortex, mm) for every box,
- ``ants_ventricle_csf_volume`` (CSF inside the lateral-ventricle region),
  ``ants_csf_volume`` (all CSF in the brain mask), ``ants_icv`` (the mask's volume).
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from rnce.imaging.template import head_template, mni_template

log = logging.getLogger(__name__)

VENTRICLE_BOX = {"x": (-25.0, 25.0), "y": (-45.0, 25.0), "z": (0.0, 35.0)}  # MNI mm, lateral ventricles
TEMPLATE_MM = 2.0  # the template is registered at this resolution (or the image's, if coarser)


def ants_feature_names(regions: pd.DataFrame) -> list[str]:
    per_box = [f"ants_{b}_{m}" for b in regions["name"] for m in ("gm_volume", "thickness")]
    return per_box + ["ants_ventricle_csf_volume", "ants_csf_volume", "ants_icv"]


def _mni_coordinates(image, transform_file: str) -> np.ndarray:
    """MNI (RAS) mm of every voxel of ``image``, through the affine image -> template."""
    import ants

    idx = np.indices(image.shape).reshape(3, -1).T.astype(float)
    direction = np.asarray(image.direction)
    lps = (idx * np.asarray(image.spacing)) @ direction.T + np.asarray(image.origin)
    tx = ants.read_transform(transform_file)
    matrix = np.asarray(tx.parameters[:9]).reshape(3, 3)
    translation = np.asarray(tx.parameters[9:12])
    centre = np.asarray(tx.fixed_parameters)
    moved = (lps - centre) @ matrix.T + centre + translation
    return (moved * np.array([-1.0, -1.0, 1.0])).reshape(*image.shape, 3)


def _inside(xyz: np.ndarray, bounds: dict[str, tuple[float, float]]) -> np.ndarray:
    keep = np.ones(xyz.shape[:3], bool)
    for axis, key in enumerate("xyz"):
        keep &= (xyz[..., axis] >= bounds[key][0]) & (xyz[..., axis] <= bounds[key][1])
    return keep


def ants_features(t1w: str | Path, regions: pd.DataFrame, kk_iterations: int = 45) -> dict[str, float]:
    """ANTs features of one image (see the module docstring)."""
    import ants

    image = ants.image_read(str(t1w))
    resolution = max(TEMPLATE_MM, float(min(image.spacing)))
    template = ants.from_nibabel_nifti(head_template(resolution))
    template_mask = ants.from_nibabel_nifti(mni_template(resolution)[1])
    n4 = ants.n4_bias_field_correction(image)
    with tempfile.TemporaryDirectory(prefix="rnce-ants-") as scratch:  # see rnce.imaging.register
        reg = ants.registration(fixed=n4, moving=template, type_of_transform="Affine",
                                outprefix=os.path.join(scratch, "reg_"))
        mask = ants.apply_transforms(n4, template_mask, reg["fwdtransforms"], interpolator="nearestNeighbor")
        mni = _mni_coordinates(image, reg["fwdtransforms"][0])
    seg = ants.atropos(a=n4, x=mask, i="kmeans[3]", m="[0.2,1x1x1]", c="[3,0]")
    csf, gm, wm = seg["probabilityimages"]
    thickness = ants.kelly_kapowski(s=seg["segmentation"], g=gm, w=wm, its=kk_iterations, r=0.025, m=1.5)
    voxel = float(np.prod(image.spacing))
    gm_np, thick_np, csf_np = gm.numpy(), thickness.numpy(), csf.numpy()
    mask_np = mask.numpy() > 0.5

    out: dict[str, float] = {}
    for rec in regions.itertuples():
        in_box = mask_np & _inside(mni, {"x": (rec.x_min, rec.x_max), "y": (rec.y_min, rec.y_max),
                                         "z": (rec.z_min, rec.z_max)})
        out[f"ants_{rec.name}_gm_volume"] = float(gm_np[in_box].sum() * voxel)
        cortex = in_box & (thick_np > 0)
        out[f"ants_{rec.name}_thickness"] = float(thick_np[cortex].mean()) if cortex.any() else float("nan")
    ventricles = mask_np & _inside(mni, VENTRICLE_BOX)
    out["ants_ventricle_csf_volume"] = float(csf_np[ventricles].sum() * voxel)
    out["ants_csf_volume"] = float(csf_np[mask_np].sum() * voxel)
    out["ants_icv"] = float(mask_np.sum() * voxel)
    log.info("ANTs features of %s: ICV %.0f mm^3", t1w, out["ants_icv"])
    return out
