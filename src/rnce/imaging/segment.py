"""Each registered image's own tissue classes (CSF, GM, WM) on the template grid.

The SynthSeg-style augmentation (METHOD §6) maps tissue labels to random
intensities; the labels must be the image's own, or every subject's view is
the same picture of the template. :func:`segment_tissue` fits a 3-class
Gaussian mixture to the registered, bias-corrected image's intensities inside
the template brain mask, by EM with the template's tissue maps as a weak
spatial prior (each class's prior probability floored at ``prior_floor``, so
the image's intensities decide wherever they are clear). The means start at
the prior-weighted means of each class, and the classes are ordered by mean
intensity (T1: CSF < GM < WM). About a second per 1 mm image.

Where the subject has FreeSurfer's ``aseg.mgz``, :func:`aseg_tissue` moves it
with the image's own transform instead (its structures mapped to the three
classes); an aseg that does not match the image (another grid, no overlap with
the registered brain, classes the intensities do not order) raises
:class:`SegmentationError`, and the caller segments the image instead.

A segmentation in which a class holds fewer than ``min_fraction`` of the
mask's voxels, or whose class means are not CSF < GM < WM, raises
:class:`SegmentationError`: the image fails QC, it does not stop its shard.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np

CLASSES = ("csf", "gm", "wm")  # labels 1, 2, 3; 0 outside the brain


class SegmentationError(ValueError):
    """An image whose tissue classes cannot be told apart."""

    plain = True  # bad input the user must fix: scripts print the message, the traceback goes to the log


@cache
def template_priors(template: str | None = None, resolution: float = 1.0) -> np.ndarray:
    """(3, X, Y, Z) CSF, GM and WM probabilities of the template inside its brain mask (0 outside).

    ICBM 2009a's GM and WM maps (nilearn) by default; another template: soft classes from its
    intensity terciles inside the brain."""
    from nilearn import datasets, image

    from rnce.imaging.template import load_template

    t1, mask = load_template(template, resolution)
    inside = mask.get_fdata() > 0.5
    if template is None:
        gm, wm = (np.clip(image.resample_to_img(m, t1, interpolation="continuous", force_resample=True,
                                                copy_header=True).get_fdata(), 0, 1)
                  for m in (datasets.load_mni152_gm_template(1), datasets.load_mni152_wm_template(1)))
        total = np.maximum(gm + wm, 1.0)
        gm, wm = gm / total, wm / total
        priors = np.stack([1 - gm - wm, gm, wm])
    else:
        data = t1.get_fdata()
        cuts = np.quantile(data[inside], [1 / 3, 2 / 3])
        priors = np.stack([np.digitize(data, cuts) == k for k in range(3)]).astype(np.float64)
    return (priors * inside).astype(np.float32)


def template_labels(template: str | None = None, resolution: float = 1.0) -> np.ndarray:
    """The template's own hard classes (the prior's argmax; 0 outside the brain)."""
    priors = template_priors(template, resolution)
    return np.where(priors.sum(axis=0) > 0, np.argmax(priors, axis=0) + 1, 0).astype(np.uint8)


def segment_tissue(data: np.ndarray, mask: np.ndarray, priors: np.ndarray, prior_floor: float = 0.25,
                   iterations: int = 15, min_fraction: float = 0.02) -> np.ndarray:
    """uint8 labels (0 outside ``mask``, 1 CSF, 2 GM, 3 WM) of a registered image ``data``.

    ``priors``: (3, *data.shape) template class probabilities (:func:`template_priors`)."""
    x = np.asarray(data, dtype=np.float64)[mask]
    if x.size < 100 or not np.isfinite(x).all() or x.std() == 0:
        raise SegmentationError("the image is constant, empty or not finite inside the brain mask")
    prior = priors[:, mask].astype(np.float64) + prior_floor
    prior /= prior.sum(axis=0, keepdims=True)
    weights = prior / prior.sum(axis=1, keepdims=True)
    mean = weights @ x
    var = np.maximum((weights * (x[None, :] - mean[:, None]) ** 2).sum(axis=1), 1e-6 * x.var())
    for _ in range(iterations):
        log_like = -0.5 * ((x[None, :] - mean[:, None]) ** 2 / var[:, None] + np.log(var)[:, None])
        log_post = log_like + np.log(prior)
        log_post -= log_post.max(axis=0, keepdims=True)
        post = np.exp(log_post)
        post /= post.sum(axis=0, keepdims=True)
        size = post.sum(axis=1)
        if (size < 1e-9 * len(x)).any():
            break
        mean = post @ x / size
        var = np.maximum((post * (x[None, :] - mean[:, None]) ** 2).sum(axis=1) / size, 1e-6 * x.var())
    classes = np.argmax(post, axis=0)
    if not (np.diff(mean) > 0).all():
        raise SegmentationError(f"tissue classes out of order (means CSF {mean[0]:.2f}, GM {mean[1]:.2f}, "
                                f"WM {mean[2]:.2f}; T1 needs CSF < GM < WM)")
    _check_fractions(classes, min_fraction, "the segmentation")
    labels = np.zeros(data.shape, dtype=np.uint8)
    labels[mask] = classes + 1
    return labels


def _check_fractions(classes: np.ndarray, min_fraction: float, what: str) -> None:
    """Raise SegmentationError when a class (0 CSF, 1 GM, 2 WM) holds under ``min_fraction`` of ``classes``."""
    fractions = np.bincount(classes, minlength=3)[:3] / len(classes)
    if (fractions < min_fraction).any():
        found = int((fractions >= min_fraction).sum())
        raise SegmentationError(f"{what} found {found} of 3 tissue classes inside the brain mask "
                                f"(fractions CSF {fractions[0]:.3f}, GM {fractions[1]:.3f}, WM {fractions[2]:.3f})")


# FreeSurfer aseg labels (FreeSurferColorLUT) -> tissue class; labelled structures not listed here
# (vessels, optic chiasm, ...) and unlabelled voxels inside the template brain mask (sulcal CSF) are CSF.
ASEG_GM = (3, 8, 10, 11, 12, 13, 17, 18, 26, 42, 47, 49, 50, 51, 52, 53, 54, 58, 80, 81, 82)
ASEG_WM = (2, 7, 16, 28, 41, 46, 60, 77, 78, 79, 85, 251, 252, 253, 254, 255)


def aseg_tissue(aseg: str, source: str, transform, reference, mask: np.ndarray, image: np.ndarray,
                min_dice: float = 0.75, min_fraction: float = 0.02) -> np.ndarray:
    """The subject's FreeSurfer ``aseg`` moved to the template grid with the image's own ``transform``.

    ``source``: the image that was registered (``aseg`` must lie in its world space: FreeSurfer's
    ``brain.mgz`` shares the aseg's grid, a raw T1w its scanner coordinates); ``reference``: the
    template (nibabel); ``image``: the registered, normalised image (its intensities must order the
    aseg's classes CSF < GM < WM). Labels as :func:`segment_tissue`. Raises SegmentationError
    when the aseg cannot be read or does not match the image, so the caller can fall back to
    :func:`segment_tissue`."""
    import ants

    from rnce.imaging.io import ImageError, load_image, open_image

    try:
        header, src = open_image(aseg), open_image(source)
        if Path(source).parent == Path(aseg).parent and (
                header.shape[:3] != src.shape[:3] or not np.allclose(header.affine, src.affine, atol=1e-3)):
            raise SegmentationError(f"{aseg} is not on the grid of {source} ({header.shape[:3]} vs {src.shape[:3]})")
        seg = load_image(aseg)
    except ImageError as err:
        raise SegmentationError(str(err)) from err
    moved = transform.apply_to_image(ants.from_nibabel_nifti(seg), ants.from_nibabel_nifti(reference),
                                     interpolation="nearestneighbor").numpy()
    codes = np.rint(moved).astype(np.int64)
    brain = codes > 0
    dice = 2 * (brain & mask).sum() / max(brain.sum() + mask.sum(), 1)
    if dice < min_dice:
        raise SegmentationError(f"{aseg} does not overlap the registered brain (Dice {dice:.2f} < {min_dice}): "
                                "not this image's segmentation")
    classes = np.zeros(codes.shape, dtype=np.int64)
    classes[np.isin(codes, ASEG_GM)] = 1
    classes[np.isin(codes, ASEG_WM)] = 2
    inside = classes[mask]
    _check_fractions(inside, min_fraction, f"{aseg}")
    values = np.asarray(image, dtype=np.float64)[mask]
    mean = np.array([values[inside == k].mean() for k in range(3)])
    if not (np.diff(mean) > 0).all():
        raise SegmentationError(f"{aseg}: the image's intensities do not order its classes CSF < GM < WM "
                                f"(means {mean[0]:.2f}, {mean[1]:.2f}, {mean[2]:.2f}): not this image's segmentation")
    labels = np.zeros(mask.shape, dtype=np.uint8)
    labels[mask] = inside + 1
    return labels
