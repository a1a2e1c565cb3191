"""T1-weighted images of the simulated world, rendered from the MNI-152 template.

The ICBM 2009a template, GM and WM maps that nilearn ships give the tissue
layout. For each image:

1. atrophy in template space: grey matter is thinned by a smooth field built
   from each structure's relative loss (Gaussian kernels at the structures'
   MNI centroids; lost GM becomes CSF), and the lateral ventricles grow by
   scaling about their centre;
2. the planted disease signals that FreeSurfer's thickness and volumes do not
   measure, driven by the latent amyloid load: focal thinning, grey matter
   lost to CSF in a small sphere of the medial precuneus (too small a part of
   the region to move its mean thickness beyond FreeSurfer's noise; see
   :func:`focal_share`), and, as a second channel, a grey-matter intensity
   rise in a posterior cingulate / precuneus region (lower GM/WM contrast, no
   change of shape);
3. a head around the brain (CSF rim, dark skull, bright scalp);
4. a random pose (rotation, translation, and a scale that is the head size),
   then the site's intensity scale, a smooth bias field and Rician-like noise;
   some images are stored in a non-RAS voxel order (LIA, LAS, PSR ...).
"""

from __future__ import annotations

from dataclasses import dataclass

import nibabel as nib
import numpy as np
from scipy import ndimage

PCC_CENTRE = (0.0, -50.0, 32.0)  # MNI mm, posterior cingulate / precuneus
PCC_SIGMA = 12.0
VENTRICLE_CENTRE = (0.0, -12.0, 16.0)
VENTRICLE_RADII = (26.0, 42.0, 22.0)
FIELD_SPACING = 6.0  # mm, grid of the atrophy field before upsampling
OUTPUT_BOX = ((-125.0, 125.0), (-155.0, 115.0), (-100.0, 140.0))  # subject-space field of view, mm
ORIENTATIONS = ("RAS", "LAS", "LIA", "PSR", "LPI")

TISSUE = {"gm": 0.55, "wm": 0.85, "csf": 0.15, "skull": 0.05, "scalp": 0.75}


@dataclass
class TemplateSpace:
    """The template's tissue maps on the working grid, and the atrophy kernels."""

    affine: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    mask: np.ndarray
    head_distance: np.ndarray  # mm from the brain mask, 0 inside
    ventricle: np.ndarray  # CSF probability inside the ventricle window
    pcc: np.ndarray  # amyloid-signal kernel, 0..1
    focal: np.ndarray  # focal-thinning sphere, 0..1 (smooth edge)
    kernels: np.ndarray  # structures x coarse-field voxels, rows sum to <= 1 per voxel
    field_shape: tuple[int, int, int]
    voxel_size: float


def _world_coords(shape: tuple[int, ...], affine: np.ndarray) -> np.ndarray:
    idx = np.indices(shape, dtype=np.float32).reshape(3, -1)
    return (affine[:3, :3] @ idx + affine[:3, 3:4]).T  # voxels x 3


def load_template_space(voxel_size: float, centroids: np.ndarray, sigmas: np.ndarray,
                        focal_radius: float = 10.0) -> TemplateSpace:
    """Resample nilearn's packaged template maps to ``voxel_size`` mm and build the kernels.

    Parameters
    ----------
    voxel_size
        Isotropic working voxel size in mm (1 for full resolution).
    centroids
        MNI mm centroid of every structure (structures x 3).
    sigmas
        Kernel width in mm of every structure.
    """
    from nilearn import datasets, image

    gm_img = datasets.load_mni152_gm_template(resolution=1)
    target = np.diag([voxel_size, voxel_size, voxel_size, 1.0])
    target[:3, 3] = gm_img.affine[:3, 3]
    shape = tuple(int(np.ceil(s / voxel_size)) for s in gm_img.shape)

    def resample(img: nib.Nifti1Image) -> np.ndarray:
        data = image.resample_img(
            img, target_affine=target, target_shape=shape, interpolation="continuous",
            force_resample=True, copy_header=True,
        ).get_fdata(dtype=np.float32)
        return np.clip(data / max(float(data.max()), 1e-6), 0.0, 1.0)

    gm = resample(gm_img)
    wm = resample(datasets.load_mni152_wm_template(resolution=1))
    brain = resample(datasets.load_mni152_template(resolution=1))
    mask = ndimage.binary_fill_holes(brain > 0.05)
    total = gm + wm
    over = total > 1.0
    gm[over] /= total[over]
    wm[over] /= total[over]
    gm *= mask
    wm *= mask
    head_distance = ndimage.distance_transform_edt(~mask, sampling=voxel_size).astype(np.float32)

    coords = _world_coords(shape, target).reshape(*shape, 3)
    rel = (coords - np.array(VENTRICLE_CENTRE)) / np.array(VENTRICLE_RADII)
    window = (rel**2).sum(-1) <= 1.0
    csf = np.clip(mask - gm - wm, 0.0, 1.0)
    ventricle = (csf * window).astype(np.float32)
    distance = np.sqrt(((coords - np.array(PCC_CENTRE)) ** 2).sum(-1))
    pcc = np.exp(-distance**2 / (2 * PCC_SIGMA**2)).astype(np.float32)
    focal = np.clip((focal_radius + 1.0 - distance) / 2.0, 0.0, 1.0).astype(np.float32)  # 2 mm edge

    field_shape = tuple(int(np.ceil(s * voxel_size / FIELD_SPACING)) for s in shape)
    field_affine = np.diag([FIELD_SPACING] * 3 + [1.0])
    field_affine[:3, 3] = target[:3, 3]
    field_xyz = _world_coords(field_shape, field_affine)
    d2 = ((field_xyz[None, :, :] - centroids[:, None, :]) ** 2).sum(-1)
    # narrow kernels (small structures) get a larger amplitude so they dominate near their centre
    amplitude = (sigmas.max() / sigmas) ** 2
    k = amplitude[:, None] * np.exp(-d2 / (2 * sigmas[:, None] ** 2))
    kernels = (k / (k.sum(0, keepdims=True) + 0.05)).astype(np.float32)
    return TemplateSpace(target, gm, wm, mask, head_distance, ventricle, pcc, focal, kernels,
                         field_shape, voxel_size)


PRECUNEUS_GM_MM3 = 8800.0  # one hemisphere's precuneus grey matter: bert's area 3736 mm^2 x 2.36 mm


def focal_share(radius_mm: float) -> float:
    """Share of each precuneus' grey matter inside the focal sphere (half its volume is grey matter,
    split between the hemispheres): how much of the focal thinning the region's mean thickness shows."""
    return float(min(1.0, 0.5 * (4 / 3 * np.pi * radius_mm**3) / 2 / PRECUNEUS_GM_MM3))


def focal_thinning(space: TemplateSpace, gm: np.ndarray, fraction: float) -> np.ndarray:
    """Grey matter with ``fraction`` of it lost inside the focal sphere (the loss becomes CSF)."""
    return gm * (1.0 - fraction * space.focal)


def atrophied_tissue(space: TemplateSpace, loss: np.ndarray, ventricle_scale: float) -> tuple[np.ndarray, np.ndarray]:
    """GM and WM maps after regional GM loss (0..1 per structure) and ventricle growth."""
    field = (space.kernels.T @ loss.astype(np.float32)).reshape(space.field_shape)
    zoom = [t / f for t, f in zip(space.gm.shape, space.field_shape, strict=True)]
    thin = np.clip(ndimage.zoom(field, zoom, order=1), 0.0, 0.9)[tuple(slice(0, s) for s in space.gm.shape)]
    centre = np.linalg.solve(space.affine, np.r_[VENTRICLE_CENTRE, 1.0])[:3]
    scale = 1.0 / max(ventricle_scale, 1e-3)
    vent = ndimage.affine_transform(space.ventricle, np.eye(3) * scale,
                                    offset=centre - scale * centre, order=1)
    vent = np.maximum(vent, space.ventricle)
    gm = space.gm * (1.0 - thin) * (1.0 - vent)
    wm = space.wm * (1.0 - vent)
    return gm, wm


def template_intensity(space: TemplateSpace, gm: np.ndarray, wm: np.ndarray,
                       amyloid_signal: float, gm_contrast: float) -> np.ndarray:
    """Noise-free T1 intensity in template space, head included."""
    csf = np.clip(space.mask - gm - wm, 0.0, 1.0)
    i_gm = TISSUE["gm"] * gm_contrast * (1.0 + amyloid_signal * space.pcc)
    inside = gm * i_gm + wm * TISSUE["wm"] + csf * TISSUE["csf"]
    d = space.head_distance
    outside = np.where(d <= 3.0, TISSUE["csf"], np.where(d <= 7.0, TISSUE["skull"],
                       np.where(d <= 13.0, TISSUE["scalp"], 0.0)))
    return np.where(space.mask, inside, outside).astype(np.float32)


def pose_matrix(angles_deg: np.ndarray, translation: np.ndarray, scale: float) -> np.ndarray:
    """4x4 map from template (MNI) mm to subject scanner mm: rotate, scale, translate."""
    ax, ay, az = np.deg2rad(angles_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    m = np.eye(4)
    m[:3, :3] = rz @ ry @ rx * scale
    m[:3, 3] = translation
    return m


def subject_grid(voxel_size: float) -> tuple[tuple[int, int, int], np.ndarray]:
    """Shape and RAS affine of the scanner-space field of view."""
    lo = np.array([b[0] for b in OUTPUT_BOX])
    hi = np.array([b[1] for b in OUTPUT_BOX])
    shape = tuple(int(np.ceil(s)) for s in (hi - lo) / voxel_size)
    affine = np.diag([voxel_size] * 3 + [1.0])
    affine[:3, 3] = lo
    return shape, affine


def render(space: TemplateSpace, intensity: np.ndarray, pose: np.ndarray, rng: np.random.Generator,
           site_scale: float, bias_strength: float, noise_sd: float) -> tuple[np.ndarray, np.ndarray]:
    """Move the template-space image into a posed scanner space and add site effects."""
    shape, affine = subject_grid(space.voxel_size)
    # subject voxel -> subject mm -> template mm -> template voxel
    vox_map = np.linalg.inv(space.affine) @ np.linalg.inv(pose) @ affine
    img = ndimage.affine_transform(intensity, vox_map[:3, :3], offset=vox_map[:3, 3],
                                   output_shape=shape, order=1, cval=0.0)
    grid = [np.linspace(-1, 1, s, dtype=np.float32) for s in shape]
    x, y, z = np.meshgrid(*grid, indexing="ij", sparse=True)
    terms = [x, y, z, x * y, x * z, y * z, x**2 - 0.33, y**2 - 0.33, z**2 - 0.33]
    coef = rng.normal(0.0, 1.0, len(terms))
    log_bias = sum(c * t for c, t in zip(coef, terms, strict=True)) * (bias_strength / 2.0)
    img = img * np.exp(log_bias) * site_scale
    noisy = np.hypot(img + rng.normal(0.0, noise_sd, shape), rng.normal(0.0, noise_sd, shape))
    return noisy.astype(np.float32), affine


def to_nifti(data: np.ndarray, affine: np.ndarray, orientation: str) -> nib.Nifti1Image:
    """Store a RAS array in the given voxel order (e.g. 'LIA'), as int16 scaled to ~1000 for WM."""
    ras = nib.orientations.axcodes2ornt("RAS")
    target = nib.orientations.axcodes2ornt(tuple(orientation))
    transform = nib.orientations.ornt_transform(ras, target)
    reordered = nib.orientations.apply_orientation(data, transform)
    new_affine = affine @ nib.orientations.inv_ornt_aff(transform, data.shape)
    scaled = np.clip(np.round(reordered * 1000.0), 0, 32767).astype(np.int16)
    img = nib.Nifti1Image(scaled, new_affine)
    img.set_qform(new_affine, code=1)
    img.set_sform(new_affine, code=1)
    img.header.set_xyzt_units("mm", "sec")
    return img
