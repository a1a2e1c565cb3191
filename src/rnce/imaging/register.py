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

Initialisation. ANTs' default start (the centres of mass) fails on real scans
whose field of view holds the neck and shoulders (the centre of mass sits
centimetres below the brain's) and on heads tilted by more than about 15
degrees. The start here is the centre of the top :data:`HEAD_SLAB_MM` of the
head (the same in the template's synthetic head); when the result scores below
``retry_below``, the coarse stage is run again from the rotated starts of
:data:`STARTS` (pitch up to 25 degrees, roll and yaw 15) and the best is
refined. The search stays within what a head can be turned in a scanner: an
image whose axes are permuted or mirrored is not "found" and fails QC.

Skull-on images are registered to the template with a synthetic head
(:mod:`rnce.imaging.template`) and skull-stripped afterwards with the
template's brain mask (template-mask skull strip), then bias-corrected with N4
inside the mask, on the template grid. Skull-stripped inputs (FreeSurfer's
``brain.mgz``) go to the brain-only template and skip N4.

``template_correlation`` is the Pearson correlation of the registered image
with the template inside the template's brain mask, both smoothed inside the
mask (normalised convolution: the mask's edge contributes nothing) with a
Gaussian of ``QC_SMOOTHING_MM`` (2 mm SD). A smoothing that let the zeros
outside the mask in (as before 2026-12) rewarded any bright blob filling the
mask: pure noise scored above real scans. On the real dev scans at 2 mm, real
heads score 0.44-0.64 and deliberately broken registrations of them at most
0.29 (``scripts/qc_broken_registrations.py``). Whether a score passes is
decided per site by :mod:`rnce.imaging.qc`, not here.

ANTs' affine metric samples voxels at random; the sampling is seeded
(``SEED``), so one image registers the same way each run.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import dataclass

import nibabel as nib
import numpy as np

from rnce.imaging.io import ImageError, field_of_view_problem, load_image, nifti
from rnce.imaging.template import head_template, load_template

log = logging.getLogger(__name__)

TRANSFORMS = ("Rigid", "Similarity", "Affine")
QC_SMOOTHING_MM = 2.0
RETRY_BELOW = 0.4  # a first registration scoring below this is tried again from the rotated starts
HEAD_SLAB_MM = 150.0  # the start aligns the centres of the top 150 mm of the heads
STARTS = ((None, 0.0), (0, -25.0), (0, 25.0), (0, -12.0), (0, 12.0), (1, -15.0), (1, 15.0), (2, -15.0), (2, 15.0))
AXIS_NAMES = {0: "pitch", 1: "roll", 2: "yaw"}  # rotation about the L-R, A-P and S-I axes
COARSE_ITERATIONS = (1000, 500, 100, 0)  # shrink factors 6, 4, 2, 1 (ANTs' default levels)
FINE_ITERATIONS = (100, 20)  # shrink factors 2, 1, brain mask only
FAST_ITERATIONS = (200, 100, 0, 0)  # one stage, no refinement: enough on coarse grids (>= 3 mm), not at 1 mm
COARSE_SHRINK, COARSE_SIGMAS = (6, 4, 2, 1), (3, 2, 1, 0)
COARSEST_LEVEL_MM = 24.0  # pyramid levels coarser than this (on coarse grids) are dropped
SEED = 20251125


def _pyramid(resolution: float, iterations: tuple[int, ...]) -> dict:
    """ANTs' affine pyramid without the levels whose voxels would exceed COARSEST_LEVEL_MM; the
    iteration counts move down with it (the coarsest kept level gets the first count)."""
    keep = [i for i, f in enumerate(COARSE_SHRINK) if f * resolution <= COARSEST_LEVEL_MM] or [len(COARSE_SHRINK) - 1]
    return {"aff_shrink_factors": tuple(COARSE_SHRINK[i] for i in keep),
            "aff_smoothing_sigmas": tuple(COARSE_SIGMAS[i] for i in keep),
            "aff_iterations": tuple(iterations[: len(keep)])}


@dataclass
class RegistrationResult:
    """``image``: the registered, skull-stripped image on the template grid (nibabel);
    ``transform``: the ANTs transform image -> template; ``template_correlation``: QC;
    ``mask``: the template brain mask (nibabel); ``start``: the start that won (``head centre`` or a
    rotation such as ``pitch -25``)."""

    image: nib.Nifti1Image
    transform: object
    template_correlation: float
    mask: nib.Nifti1Image
    start: str = "head centre"


def _smooth_inside(image: np.ndarray, mask: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing inside ``mask`` by normalised convolution (voxels outside count for nothing)."""
    from scipy import ndimage

    weight = ndimage.gaussian_filter(mask.astype(np.float32), sigma)
    smooth = ndimage.gaussian_filter(np.where(mask, image, 0).astype(np.float32), sigma)
    return np.where(mask, smooth / np.maximum(weight, 1e-3), 0)


def template_correlation(image: np.ndarray, template: np.ndarray, mask: np.ndarray, voxel_mm: float = 1.0,
                         smoothing_mm: float = QC_SMOOTHING_MM) -> float:
    """Pearson correlation of two images inside a mask, after Gaussian smoothing inside it (SD in mm)."""
    if smoothing_mm > 0:
        image = _smooth_inside(image, mask, smoothing_mm / voxel_mm)
        template = _smooth_inside(template, mask, smoothing_mm / voxel_mm)
    a, b = image[mask].astype(float), template[mask].astype(float)
    a, b = a - a.mean(), b - b.mean()
    denominator = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denominator) if denominator > 0 else 0.0


def head_centre(image, slab_mm: float = HEAD_SLAB_MM) -> np.ndarray:
    """Physical (LPS) centre of the head's top ``slab_mm`` in an ANTs image: the mean position of the voxels
    above a tenth of the 99th percentile that lie within ``slab_mm`` of the highest of them."""
    data = image.numpy()
    index = np.argwhere(data > 0.1 * np.percentile(data, 99))
    if len(index) == 0:
        index = np.argwhere(np.ones(data.shape, bool))
    points = np.asarray(image.origin) + (index * np.asarray(image.spacing)) @ np.asarray(image.direction).T
    top = np.percentile(points[:, 2], 99.9)  # LPS z points up
    return points[points[:, 2] > top - slab_mm].mean(axis=0)


def _rotation(axis: int | None, degrees: float) -> np.ndarray:
    out = np.eye(3)
    if axis is not None:
        i, j = (k for k in range(3) if k != axis)
        c, s = np.cos(np.deg2rad(degrees)), np.sin(np.deg2rad(degrees))
        out[i, i], out[j, j], out[i, j], out[j, i] = c, c, -s, s
    return out


def _start_name(axis: int | None, degrees: float) -> str:
    return "head centre" if axis is None else f"{AXIS_NAMES[axis]} {degrees:+.0f}"


def register_to_template(path, transform: str = "Similarity", template: str | None = None,
                         brain_extracted: bool = False, resolution: float = 1.0,
                         n4: bool = True, fast: bool = False, retry_below: float = RETRY_BELOW) -> RegistrationResult:
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
    retry_below
        A first result scoring below this is tried again from the rotated :data:`STARTS`.
    """
    import ants

    if transform not in TRANSFORMS:
        raise ValueError(f"transform must be one of {TRANSFORMS}, got {transform!r}")
    img = load_image(path)
    too_small = field_of_view_problem(img)
    if too_small:
        raise ImageError(f"{path}: {too_small}")
    t1, mask = load_template(template, resolution)
    brain = ants.from_nibabel_nifti(t1)
    fixed = brain if brain_extracted else ants.from_nibabel_nifti(head_template(resolution, template))
    moving = ants.from_nibabel_nifti(img)
    ants.config._random_seed = SEED  # antspyx reads its seed from here (set_ants_deterministic would also force 1 thread)
    mask_np = mask.get_fdata() > 0.5
    mask_ants = ants.from_nibabel_nifti(nifti(mask_np.astype(np.float32), mask.affine))
    template_np = t1.get_fdata(dtype=np.float32)
    centres = head_centre(fixed), head_centre(moving)

    def score(warped) -> float:
        return template_correlation(warped.numpy() * mask_np, template_np, mask_np, resolution)

    # antspyx globs its output prefix: in the shared temp folder that lists every file there, and it
    # leaves its transforms behind; a private folder keeps both cheap and clean
    with tempfile.TemporaryDirectory(prefix="rnce-reg-") as scratch:
        def coarse(n: int):
            axis, degrees = STARTS[n]
            start = ants.create_ants_transform(transform_type="AffineTransform", dimension=3,
                                               matrix=_rotation(axis, degrees), translation=centres[1] - centres[0],
                                               center=centres[0])
            ants.write_transform(start, os.path.join(scratch, f"start{n}.mat"))
            return ants.registration(fixed=fixed, moving=moving, type_of_transform=transform,
                                     initial_transform=os.path.join(scratch, f"start{n}.mat"),
                                     outprefix=os.path.join(scratch, f"coarse{n}_"),
                                     **_pyramid(resolution, FAST_ITERATIONS if fast else COARSE_ITERATIONS))

        def refine(reg, n: int):
            if fast:
                return reg
            return ants.registration(fixed=brain, moving=moving, type_of_transform=transform,
                                     initial_transform=reg["fwdtransforms"][0], mask=mask_ants,
                                     outprefix=os.path.join(scratch, f"fine{n}_"), aff_shrink_factors=(2, 1),
                                     aff_smoothing_sigmas=(1, 0), aff_iterations=FINE_ITERATIONS)

        clock = time.perf_counter()
        best, best_n = refine(coarse(0), 0), 0
        best_score = score(best["warpedmovout"])
        log.info("%s: head-centre start scores %.3f (%.1f s)", path, best_score, time.perf_counter() - clock)
        if best_score < retry_below:
            clock = time.perf_counter()
            coarse_results = {n: coarse(n) for n in range(1, len(STARTS))}
            scores = {n: score(reg["warpedmovout"]) for n, reg in coarse_results.items()}
            n = max(scores, key=scores.get)
            retry = refine(coarse_results[n], n)
            retry_score = score(retry["warpedmovout"])
            log.info("%s: below %.2f, %d rotated starts tried; the best (%s) scores %.3f (%.1f s)", path,
                     retry_below, len(scores), _start_name(*STARTS[n]), retry_score, time.perf_counter() - clock)
            if retry_score > best_score:
                best, best_n = retry, n
        moved = ants.read_transform(best["fwdtransforms"][0])
    warped = best["warpedmovout"]
    if n4 and not brain_extracted:
        warped = ants.n4_bias_field_correction(warped, mask=mask_ants, shrink_factor=4,
                                               convergence={"iters": [20, 20], "tol": 1e-6})
    data = warped.numpy().astype(np.float32) * mask_np
    correlation = template_correlation(data, template_np, mask_np, resolution)
    log.info("%s -> template (%s, start %s): correlation %.3f", path, transform, _start_name(*STARTS[best_n]),
             correlation)
    return RegistrationResult(nifti(data, t1.affine), moved, correlation, mask, _start_name(*STARTS[best_n]))
