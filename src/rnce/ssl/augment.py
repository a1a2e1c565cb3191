"""Augmentations (METHOD §6) and the Models Genesis corruptions.

Patch views for the contrastive methods are made on the training device, a
batch at a time, by :mod:`rnce.ssl.batch_augment` (``ssl.augment.backend:
batched``, the default), or one view at a time with torchio (``backend:
torchio``: the reference the batched path is tested against, and a fallback).
The list, in torchio's terms: rotation, crop
(a random zoom-in with translation, torchio's affine; the equivalent of a
random resized crop that keeps the box's shape), noise, Gaussian blur, bias
field, flip, spike, contrast (gamma), and GM/WM/CSF labels mapped to random
Gaussian intensities (SynthSeg style, ``RandomLabelsToImage``). The labels are
the image's own tissue classes, stored beside its patches in the patch store
(:mod:`rnce.imaging.segment`): a view so made keeps the subject's anatomy and
drops its contrast.

The spatial augmentations are sized to what differs between two scans of one
registered brain, the residual misregistration (a few mm, a few degrees), not to
natural-image crops: every box is cut from an MNI-registered image, so where a
change lies inside the box is part of what it means (a focal thinning of the
medial precuneus is the amyloid signal; the same thinning shifted by a centimetre
or mirrored is another region). The paper's list is kept whole, but a left-right
flip of a one-hemisphere box mirrors its medial and lateral sides, so it is off
by default (``flip``). Measured on the planted study's rh_parietal box: with
flip 0.5, 10 degrees, 15% zoom and 8 mm shifts the R-NCE encoder's linear probe
of the planted focal thinning reached CV R^2 0.04; with the defaults below, see
docs/study.md.
"""

from __future__ import annotations

import numpy as np
import torch

DEFAULTS = {"rotation_deg": 3.0, "crop_zoom": 0.05, "translation_mm": 2.0, "noise_std": 0.1, "blur_mm": 1.0,
            "bias_field": 0.3, "flip": 0.0, "spike": 0.1, "log_gamma": 0.3, "tissue_labels": 0.2, "probability": 0.5}
BACKENDS = ("batched", "torchio")  # batched: rnce.ssl.batch_augment on the training device; torchio: per view
LABEL_MEAN, LABEL_SD = (-1.5, 1.5), (0.05, 0.3)  # a tissue's random Gaussian: mean and SD drawn from these
SPIKE_INTENSITY = (0.1, 0.3)  # a spike's amplitude, as a share of the spectrum's largest
BIAS_ORDER = 2  # the bias field's polynomial order


def backend_of(settings: dict | None) -> str:
    """``settings["backend"]``: ``batched`` (the default) or ``torchio``."""
    backend = (settings or {}).get("backend", BACKENDS[0])
    if backend not in BACKENDS:
        raise ValueError(f"ssl.augment.backend must be one of {list(BACKENDS)}, not {backend!r}")
    return backend


def settings_of(settings: dict | None, voxel_mm: float) -> dict:
    """The augmentation settings (``settings`` over :data:`DEFAULTS`, checked), with the spatial magnitudes also
    in voxels of a grid of ``voxel_mm``: ``translation_vox``, ``blur_vox``."""
    s = {**DEFAULTS, **{k: v for k, v in (settings or {}).items() if k != "backend"}}
    unknown = set(s) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown augmentation setting(s) {sorted(unknown)}; known: {sorted(DEFAULTS)} and backend")
    backend_of(settings)
    if voxel_mm <= 0:
        raise ValueError(f"voxel_mm must be positive, not {voxel_mm}")
    return {**s, "translation_vox": s["translation_mm"] / voxel_mm, "blur_vox": s["blur_mm"] / voxel_mm}


def patch_transform(settings: dict | None = None, voxel_mm: float = 1.0):
    """The torchio pipeline of one patch view (``settings`` overrides :data:`DEFAULTS`).

    ``probability`` is the chance of each of rotation/crop, noise, blur, bias
    field and contrast; ``flip``, ``spike`` and ``tissue_labels`` are their own
    probabilities. Every spatial magnitude is in mm and converted by the patch
    grid's voxel size ``voxel_mm`` (the subject's affine is the identity, so
    torchio's "mm" are voxels): ``translation_mm``, the largest shift along each
    axis, and ``blur_mm``, the largest Gaussian blur SD. The same settings then
    mean the same anatomy on a 1 mm and a 4 mm grid (a blur of 1 voxel was 4 mm
    on the study's grid, 40% of the planted lesion's radius). Rotation (degrees),
    zoom (a fraction) and the intensity magnitudes have no unit of length. The
    subject holds ``image`` and ``labels`` (0 background, 1 CSF, 2 GM, 3 WM).
    """
    import torchio as tio

    s = settings_of(settings, voxel_mm)
    p = s["probability"]
    zoom = s["crop_zoom"]
    shift, blur = s["translation_vox"], s["blur_vox"]
    return tio.Compose([
        tio.RandomLabelsToImage(label_key="labels", image_key="image", used_labels=[1, 2, 3],
                                default_mean=LABEL_MEAN, default_std=LABEL_SD, p=s["tissue_labels"], copy=False),
        tio.RandomAffine(scales=(1.0, 1.0 + zoom), degrees=s["rotation_deg"], translation=shift, default_pad_value=0,
                         p=p, copy=False),
        tio.RandomFlip(axes=(0,), flip_probability=1.0, p=s["flip"], copy=False),
        tio.RandomBiasField(coefficients=s["bias_field"], order=BIAS_ORDER, p=p, copy=False),
        tio.RandomGamma(log_gamma=s["log_gamma"], p=p, copy=False),
        tio.RandomBlur(std=(0, blur), p=p, copy=False),
        tio.RandomNoise(std=(0, s["noise_std"]), p=p, copy=False),
        # exactly one spike: torchio reads num_spikes=1 as the range (0, 1), which made no spike half the time
        tio.RandomSpike(num_spikes=(1, 1), intensity=SPIKE_INTENSITY, p=s["spike"], copy=False),
    ], copy=False)


def augment(patch: np.ndarray, labels: np.ndarray, transform) -> torch.Tensor:
    """One augmented view (1 x X x Y x Z float32) of ``patch`` with its ``labels``.

    The subject is built from fresh tensors (never views of the memory-mapped store), so the
    transforms work on it in place (``copy=False``): torchio's default deep copy of the subject
    before each of the eight transforms was a quarter of a training step's time on CPU."""
    import torchio as tio

    subject = tio.Subject(image=tio.ScalarImage(tensor=torch.tensor(patch, dtype=torch.float32)[None]),
                          labels=tio.LabelMap(tensor=torch.tensor(np.asarray(labels))[None]))
    return transform(subject)["image"].data


def genesis_corrupt(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Models Genesis' corruptions of a whole image (Zhou et al. 2021): a random
    non-linear (Bezier) intensity curve (p 0.9), local voxel shuffling in small
    blocks (p 0.5), then in-painting (random boxes of noise inside) or
    out-painting (noise everywhere but one box), p 0.9 together, 4 to 1."""
    x = image.astype(np.float32).copy()
    lo, hi = float(x.min()), float(x.max())
    scale = hi - lo if hi > lo else 1.0
    if rng.random() < 0.9:
        t = np.linspace(0, 1, 1000)
        p1, p2 = rng.random(2), rng.random(2)
        xs = 3 * (1 - t) ** 2 * t * p1[0] + 3 * (1 - t) * t ** 2 * p2[0] + t ** 3
        ys = 3 * (1 - t) ** 2 * t * p1[1] + 3 * (1 - t) * t ** 2 * p2[1] + t ** 3
        order = np.argsort(xs)
        x = lo + scale * np.interp((x - lo) / scale, xs[order], ys[order])
    size = np.array(x.shape)
    if rng.random() < 0.5:
        for _ in range(max(1, int(np.prod(size) / 500))):
            block = rng.integers(1, np.maximum(size // 10, 2) + 1)
            start = rng.integers(0, size - block + 1)
            sl = tuple(slice(a, a + b) for a, b in zip(start, block, strict=True))
            x[sl] = rng.permutation(x[sl].ravel()).reshape(x[sl].shape)
    if rng.random() < 0.9:
        if rng.random() < 0.8:  # in-painting
            for _ in range(rng.integers(1, 6)):
                block = rng.integers(size // 8, size // 4 + 2)
                start = rng.integers(0, size - block + 1)
                sl = tuple(slice(a, a + b) for a, b in zip(start, block, strict=True))
                x[sl] = lo + scale * rng.random(x[sl].shape)
        else:  # out-painting
            block = rng.integers(size * 3 // 5, size * 4 // 5 + 1)
            start = rng.integers(0, size - block + 1)
            sl = tuple(slice(a, a + b) for a, b in zip(start, block, strict=True))
            keep = x[sl].copy()
            x = (lo + scale * rng.random(x.shape)).astype(np.float32)
            x[sl] = keep
    return x.astype(np.float32)
