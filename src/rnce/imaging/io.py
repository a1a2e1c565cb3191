"""Image input: NIfTI or MGZ in, a checked 3D RAS image out, or an error naming the file.

Rules:

- the image is reoriented to the closest canonical orientation (RAS+);
- a 4D image with one volume is squeezed to 3D; with more it is an error;
- the affine must be finite, non-degenerate and orthonormal up to voxel size
  (a shear is an error); anisotropic voxels are fine;
- voxel sizes outside 0.2-8 mm are an error (absurd header);
- a field of view under 100 mm on an axis cannot hold a brain
  (:func:`field_of_view_problem`: the inventory lists it, registration refuses it);
- qform and sform that disagree give a warning and the sform wins (nibabel's
  rule: the sform when its code is set, else the qform);
- an all-zero image or one with NaN/inf voxels is an error.
"""

from __future__ import annotations

import gzip
import logging
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np

log = logging.getLogger(__name__)

VOXEL_RANGE_MM = (0.2, 8.0)
ORTHONORMAL_TOLERANCE = 1e-3
FORM_TOLERANCE_MM = 1e-2
MIN_FIELD_OF_VIEW_MM = 100.0  # an adult brain spans ~140 x 170 x 120 mm; less is a partial scan or a wrong header


def field_of_view_problem(img) -> str | None:
    """Why ``img`` (nibabel, header only) cannot hold a whole brain, or None: a field of view under
    :data:`MIN_FIELD_OF_VIEW_MM` on an axis (checked by the inventory and before registration)."""
    zooms = np.asarray(img.header.get_zooms()[:3], dtype=float)
    extent = np.asarray(img.shape[:3], dtype=float) * zooms
    if (extent < MIN_FIELD_OF_VIEW_MM).any():
        shown = " x ".join(f"{e:.0f}" for e in extent)
        return (f"field of view {shown} mm is smaller than a brain (at least {MIN_FIELD_OF_VIEW_MM:.0f} mm on every "
                "axis): a partial scan, or a wrong voxel size in the header")
    return None


def nifti(data: np.ndarray, affine: np.ndarray) -> nib.Nifti1Image:
    """A NIfTI image with its spatial units set (mm), as ANTs expects."""
    img = nib.Nifti1Image(data, affine)
    img.header.set_xyzt_units("mm", "sec")
    return img


class ImageError(ValueError):
    """An image that cannot be used; the message names the file."""

    plain = True  # bad input the user must fix: scripts print the message, the traceback goes to the log


def _check_affine(affine: np.ndarray, path: str) -> None:
    if not np.isfinite(affine).all():
        raise ImageError(f"{path}: the affine has NaN or infinite entries")
    linear = affine[:3, :3]
    zooms = np.linalg.norm(linear, axis=0)
    if np.any(zooms < 1e-6) or abs(np.linalg.det(linear)) < 1e-9:
        raise ImageError(f"{path}: degenerate affine (a zero voxel axis): {affine[:3, :3].round(4).tolist()}")
    rotation = linear / zooms
    if not np.allclose(rotation.T @ rotation, np.eye(3), atol=ORTHONORMAL_TOLERANCE):
        raise ImageError(f"{path}: non-orthonormal affine (sheared axes): {affine[:3, :3].round(4).tolist()}")


def _check_forms(img: nib.Nifti1Image, path: str) -> None:
    header = img.header
    if not hasattr(header, "get_qform"):
        return
    qcode, scode = int(header["qform_code"]), int(header["sform_code"])
    if qcode > 0 and scode > 0:
        q, s = header.get_qform(), header.get_sform()
        if np.abs(q - s).max() > FORM_TOLERANCE_MM:
            log.warning("%s: qform and sform disagree (max difference %.3g); using the sform", path,
                        float(np.abs(q - s).max()))


def check_header(img, path: str) -> None:
    """The header rules (shape, voxel size, affine, qform/sform); an ImageError naming the file."""
    shape = img.shape
    if not (len(shape) == 3 or (len(shape) == 4 and shape[3] == 1)):
        raise ImageError(f"{path}: expected one 3D volume, got shape {shape}")
    zooms = np.asarray(img.header.get_zooms()[:3], float)
    if np.any(~np.isfinite(zooms)) or zooms.min() < VOXEL_RANGE_MM[0] or zooms.max() > VOXEL_RANGE_MM[1]:
        raise ImageError(f"{path}: absurd voxel size {zooms.tolist()} mm (accepted {VOXEL_RANGE_MM[0]}-"
                         f"{VOXEL_RANGE_MM[1]} mm)")
    _check_affine(img.affine, path)
    _check_forms(img, path)


def open_image(path: str | Path):
    """The nibabel image of ``path`` (header only, data not read); an ImageError naming the file."""
    path = str(path)
    if not Path(path).exists():
        raise ImageError(f"{path}: file does not exist")
    try:
        return nib.load(path)
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile, ValueError, nib.filebasedimages.ImageFileError) as err:
        raise ImageError(f"{path}: cannot be read as NIfTI/MGZ ({type(err).__name__}: {err})") from err


def load_image(path: str | Path) -> nib.Nifti1Image:
    """Load, check and reorient one image (see the module docstring); float32 data."""
    path = str(path)
    img = open_image(path)
    check_header(img, path)
    try:
        data = np.asarray(img.dataobj, dtype=np.float32).reshape(img.shape[:3])
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile, ValueError) as err:
        raise ImageError(f"{path}: cannot be read as NIfTI/MGZ ({type(err).__name__}: {err})") from err
    if not np.isfinite(data).all():
        raise ImageError(f"{path}: {int((~np.isfinite(data)).sum())} voxels are NaN or infinite")
    if not data.any():
        raise ImageError(f"{path}: the image is all zero")
    out = nifti(data, img.affine)
    return nib.as_closest_canonical(out)
