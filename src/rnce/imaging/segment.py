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

A segmentation in which a class holds fewer than ``min_fraction`` of the
mask's voxels, or whose class means are not CSF < GM < WM, raises
:class:`SegmentationError`: the image fails QC, it does not stop its shard.
"""

from __future__ import annotations

from functools import cache

import numpy as np

CLASSES = ("csf", "gm", "wm")  # labels 1, 2, 3; 0 outside the brain


class SegmentationError(ValueError):
    """An image whose tissue classes cannot be told apart."""


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
    fractions = np.bincount(classes, minlength=3) / len(x)
    if not (np.diff(mean) > 0).all():
        raise SegmentationError(f"tissue classes out of order (means CSF {mean[0]:.2f}, GM {mean[1]:.2f}, "
                                f"WM {mean[2]:.2f}; T1 needs CSF < GM < WM)")
    if (fractions < min_fraction).any():
        found = int((fractions >= min_fraction).sum())
        raise SegmentationError(f"the segmentation found {found} of 3 tissue classes inside the brain mask "
                                f"(fractions CSF {fractions[0]:.3f}, GM {fractions[1]:.3f}, WM {fractions[2]:.3f})")
    labels = np.zeros(data.shape, dtype=np.uint8)
    labels[mask] = classes + 1
    return labels
