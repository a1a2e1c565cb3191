"""The MNI-152 template (ICBM 2009a, shipped inside nilearn) and a synthetic head around it.

nilearn's template is skull-stripped. To register a skull-on T1 to it (the ANTs
fallback, registration without FreeSurfer), :func:`head_template` puts a
synthetic head around the brain: a CSF rim (3 mm), a dark skull (4 mm) and a
bright scalp (6 mm), built from the distance to the brain mask. It is our
approximation, good enough for an affine start; it is not an anatomical head.
"""

from __future__ import annotations

from functools import cache

import nibabel as nib
import numpy as np
from scipy import ndimage

from rnce.imaging.io import nifti

RIM_MM, SKULL_MM, SCALP_MM = 3.0, 7.0, 13.0
HEAD_INTENSITY = {"rim": 0.15, "skull": 0.05, "scalp": 0.75}


@cache
def mni_template(resolution: float = 1.0) -> tuple[nib.Nifti1Image, nib.Nifti1Image]:
    """T1 (scaled to 0..1) and brain mask of ICBM 2009a at ``resolution`` mm."""
    from nilearn import datasets, image

    t1 = datasets.load_mni152_template(resolution=1)
    mask = datasets.load_mni152_brain_mask(resolution=1)
    if resolution != 1:
        affine, shape = template_grid(None, resolution)
        t1 = image.resample_img(t1, target_affine=affine, target_shape=shape, interpolation="continuous",
                                force_resample=True, copy_header=True)
        mask = image.resample_img(mask, target_affine=affine, target_shape=shape, interpolation="nearest",
                                  force_resample=True, copy_header=True)
    data = t1.get_fdata(dtype=np.float32)
    t1 = nifti(data / max(float(data.max()), 1e-6), t1.affine)
    mask = nifti((mask.get_fdata() > 0.5).astype(np.uint8), mask.affine)
    return t1, mask


def template_grid(path: str | None = None, resolution: float = 1.0) -> tuple[np.ndarray, tuple[int, int, int]]:
    """The affine and shape of the template grid at ``resolution`` mm (as :func:`load_template` makes it),
    from the header alone."""
    if path is None:
        from nilearn import datasets

        t1 = datasets.load_mni152_template(resolution=1)
        affine = np.diag([resolution] * 3 + [1.0])
        affine[:3, 3] = t1.affine[:3, 3]
        return affine, tuple(int(np.ceil(s / resolution)) for s in t1.shape[:3])
    t1 = nib.load(path)
    affine = np.diag([resolution] * 3 + [1.0])
    affine[:3, 3] = nib.as_closest_canonical(t1).affine[:3, 3]
    extent = np.abs(t1.affine[:3, :3] @ np.asarray(t1.shape[:3]))
    return affine, tuple(int(np.ceil(e / resolution)) for e in extent)


@cache
def load_template(path: str | None = None, resolution: float = 1.0) -> tuple[nib.Nifti1Image, nib.Nifti1Image]:
    """A skull-stripped T1 template and its brain mask: ICBM 2009a by default, or the image at ``path``
    (its non-zero voxels are the mask) resampled to ``resolution`` mm."""
    if path is None:
        return mni_template(resolution)
    from nilearn import image

    t1 = nib.load(path)
    affine, shape = template_grid(path, resolution)
    t1 = image.resample_img(nib.as_closest_canonical(t1), target_affine=affine, target_shape=shape,
                            interpolation="continuous", force_resample=True, copy_header=True)
    data = np.clip(t1.get_fdata(dtype=np.float32), 0, None)
    return (nifti(data / max(float(data.max()), 1e-6), affine),
            nifti((data > 0).astype(np.uint8), affine))


def with_head(t1: nib.Nifti1Image, mask: nib.Nifti1Image) -> nib.Nifti1Image:
    """``t1`` with a synthetic CSF rim, skull and scalp around the brain ``mask``."""
    brain = mask.get_fdata() > 0.5
    zooms = t1.header.get_zooms()[:3]
    distance = ndimage.distance_transform_edt(~brain, sampling=zooms)
    outside = np.select(
        [distance <= RIM_MM, distance <= SKULL_MM, distance <= SCALP_MM],
        [HEAD_INTENSITY["rim"], HEAD_INTENSITY["skull"], HEAD_INTENSITY["scalp"]], 0.0)
    data = np.where(brain, t1.get_fdata(dtype=np.float32), outside).astype(np.float32)
    return nifti(data, t1.affine)


@cache
def head_template(resolution: float = 1.0, path: str | None = None) -> nib.Nifti1Image:
    """The template (ICBM 2009a, or the one at ``path``) with a synthetic head (see :func:`with_head`)."""
    return with_head(*load_template(path, resolution))
