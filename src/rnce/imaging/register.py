"""Linear registration of a T1w image to the MNI-152 template (antspyx), the same code the rules run.

The image (moving) goes to the template (fixed) with ANTs' ``Rigid`` (6 DOF),
``Similarity`` (7 DOF: rotation, translation, one isotropic scale; the
default) or ``Affine`` (12 DOF), in two stages that together cost about one
default ANTs registration: a coarse-to-medium stage on the whole head, then a
refinement at the two finest levels with the metric restricted to the
template's brain mask (skull and neck no longer pull). The paper says
"similarity (9 degrees of freedom)", which is rigid plus three scales; ANTs has
no 9-DOF transform, so ``Similarity`` is the default and ``Affine`` the choice
for anisotropic scaling (METHOD 3).

Skull-on images are registered to the template with a synthetic head
(:mod:`rnce.imaging.template`) and skull-stripped afterwards with the
template's brain mask (template-mask skull strip), then bias-corrected with N4
inside the mask, on the template grid. Skull-stripped inputs (FreeSurfer's
``brain.mgz``) go to the brain-only template and skip N4.

``template_correlation`` is the Pearson correlation of the registered image
with the template inside the template's brain mask, both smoothed with a
Gaussian of ``QC_SMOOTHING_MM`` (4 mm SD): at the voxel level a linearly
registered brain differs from the (average) template by its folding, which
says nothing of the registration; after smoothing, well-registered real scans
score about 0.9, and the same scans shifted by 10 mm or flipped about 0.7.

ANTs' affine metric samples voxels at random; the sampling is seeded
(``SEED``), so one image registers the same way each run.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass

import nibabel as nib
import numpy as np

from rnce.imaging.io import ImageError, field_of_view_problem, load_image, nifti
from rnce.imaging.template import head_template, load_template

log = logging.getLogger(__name__)

TRANSFORMS = ("Rigid", "Similarity", "Affine")
QC_SMOOTHING_MM = 4.0
COARSE_ITERATIONS = (1000, 500, 100, 0)  # shrink factors 6, 4, 2, 1 (ANTs' default levels)
FINE_ITERATIONS = (100, 20)  # shrink factors 2, 1, brain mask only
FAST_ITERATIONS = (200, 100, 0, 0)  # one stage, no refinement: enough on coarse grids (>= 3 mm), not at 1 mm
COARSE_SHRINK, COARSE_SIGMAS = (6, 4, 2, 1), (3, 2, 1, 0)
COARSEST_LEVEL_MM = 24.0  # pyramid levels coarser than this (on coarse grids) are dropped


def _pyramid(resolution: float, iterations: tuple[int, ...]) -> dict:
    """ANTs' affine pyramid without the levels whose voxels would exceed COARSEST_LEVEL_MM; the
    iteration counts move down with it (the coarsest kept level gets the first count)."""
    keep = [i for i, f in enumerate(COARSE_SHRINK) if f * resolution <= COARSEST_LEVEL_MM] or [len(COARSE_SHRINK) - 1]
    return {"aff_shrink_factors": tuple(COARSE_SHRINK[i] for i in keep),
            "aff_smoothing_sigmas": tuple(COARSE_SIGMAS[i] for i in keep),
            "aff_iterations": tuple(iterations[: len(keep)])}
SEED = 20251125


@dataclass
class RegistrationResult:
    """``image``: the registered, skull-stripped image on the template grid (nibabel);
    ``transform``: the ANTs transform image -> template; ``template_correlation``: QC;
    ``mask``: the template brain mask (nibabel)."""

    image: nib.Nifti1Image
    transform: object
    template_correlation: float
    mask: nib.Nifti1Image


def template_correlation(image: np.ndarray, template: np.ndarray, mask: np.ndarray, voxel_mm: float = 1.0,
                         smoothing_mm: float = QC_SMOOTHING_MM) -> float:
    """Pearson correlation of two images inside a mask, after Gaussian smoothing (SD in mm)."""
    from scipy import ndimage

    if smoothing_mm > 0:
        sigma = smoothing_mm / voxel_mm
        image = ndimage.gaussian_filter(image.astype(np.float32), sigma)
        template = ndimage.gaussian_filter(template.astype(np.float32), sigma)
    a, b = image[mask].astype(float), template[mask].astype(float)
    a, b = a - a.mean(), b - b.mean()
    denominator = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denominator) if denominator > 0 else 0.0


def register_to_template(path, transform: str = "Similarity", template: str | None = None,
                         brain_extracted: bool = False, resolution: float = 1.0,
                         n4: bool = True, fast: bool = False) -> RegistrationResult:
    """Register one image to the template; see the module docstring.

    Parameters
    ----------
    path
        NIfTI or MGZ image (checked by :func:`rnce.imaging.io.load_image`).
    transform
        ``Rigid``, ``Similarity`` or ``Affine``.
    template
        A skull-stripped T1 template; default the ICBM 2009a template shipped with nilearn.
    brain_extracted
        The input is already skull-stripped (e.g. FreeSurfer's brain.mgz).
    resolution
        Voxel size (mm) of the template grid the image is resampled to.
    n4
        Bias-correct skull-on inputs with N4 inside the brain mask.
    fast
        One stage with fewer iterations (:data:`FAST_ITERATIONS`) and no brain-mask refinement:
        for coarse grids such as the demo's, not for 1 mm.
    """
    import ants

    if transform not in TRANSFORMS:
        raise ValueError(f"transform must be one of {TRANSFORMS}, got {transform!r}")
    img = load_image(path)
    too_small = field_of_view_problem(img)
    if too_small:
        raise ImageError(f"{path}: {too_small}")
    t1, mask = load_template(template, resolution)
    if brain_extracted:
        fixed = ants.from_nibabel_nifti(t1)
    else:
        fixed = ants.from_nibabel_nifti(head_template(resolution, template))
    moving = ants.from_nibabel_nifti(img)
    ants.config._random_seed = SEED  # antspyx reads its seed from here (set_ants_deterministic would also force 1 thread)
    mask_np = mask.get_fdata() > 0.5
    mask_ants = ants.from_nibabel_nifti(nifti(mask_np.astype(np.float32), mask.affine))
    # antspyx globs its output prefix: in the shared temp folder that lists every file there, and it
    # leaves its transforms behind; a private folder keeps both cheap and clean
    with tempfile.TemporaryDirectory(prefix="rnce-reg-") as scratch:
        reg = ants.registration(fixed=fixed, moving=moving, type_of_transform=transform,
                                outprefix=os.path.join(scratch, "coarse_"),
                                **_pyramid(resolution, FAST_ITERATIONS if fast else COARSE_ITERATIONS))
        if not fast:
            reg = ants.registration(fixed=ants.from_nibabel_nifti(t1), moving=moving, type_of_transform=transform,
                                    initial_transform=reg["fwdtransforms"][0], mask=mask_ants,
                                    outprefix=os.path.join(scratch, "fine_"), aff_shrink_factors=(2, 1),
                                    aff_smoothing_sigmas=(1, 0), aff_iterations=FINE_ITERATIONS)
        moved = ants.read_transform(reg["fwdtransforms"][0])
    warped = reg["warpedmovout"]
    if n4 and not brain_extracted:
        warped = ants.n4_bias_field_correction(warped, mask=mask_ants, shrink_factor=4,
                                               convergence={"iters": [20, 20], "tol": 1e-6})
    data = warped.numpy().astype(np.float32) * mask_np
    correlation = template_correlation(data, t1.get_fdata(dtype=np.float32), mask_np, resolution)
    log.info("%s -> template (%s): correlation %.3f", path, transform, correlation)
    return RegistrationResult(nifti(data, t1.affine), moved, correlation, mask)
