"""Inventory of a shard of images: what each file is, or why it cannot be used, and two flags.

A file that cannot be used is listed with its reason, never fatal for the shard. Two kinds of input are
flagged (registration keeps or excludes them, ``register.skull_stripped`` and ``register.contrast``):

- ``skull_stripped``: the voxels above a tenth of the 99th intensity percentile fill less than
  :data:`HEAD_MIN_LITRES` (a head with its scalp and skull fills 3-5 l; a brain 1.1-1.8 l; measured on the
  real dev scans: heads 3.1-4.4 l, FreeSurfer's brain.mgz 1.65 l). The only check that reads voxels.
- ``contrast``: the evidence that a contrast agent was given: a BIDS ``ce-`` entity in the file name, a
  sidecar JSON's ``ContrastBolusIngredient``, or a NIfTI description naming gadolinium or contrast.
"""

from __future__ import annotations

import logging
import os

import nibabel as nib
import pandas as pd

from rnce.imaging.io import ImageError, check_header, field_of_view_problem, open_image
from rnce.io import write_tsv

log = logging.getLogger(__name__)

COLUMNS = ["participant_id", "session_id", "t1w", "status", "shape", "voxel_mm", "orientation",
           "qform_code", "sform_code", "skull_stripped", "contrast"]
HEAD_MIN_LITRES = 2.5
CONTRAST_WORDS = ("gadolin", "contrast", "gd-dtpa", "dotarem", "gadovist", "magnevist", "multihance")


def contrast_evidence(path: str, img=None) -> str:
    """Why ``path`` looks contrast-enhanced ("" when nothing says so): its BIDS ``ce-`` entity, its sidecar's
    ContrastBolusIngredient, or its NIfTI description."""
    import json
    import re

    name = os.path.basename(path)
    found = re.search(r"_ce-([A-Za-z0-9]+)", name)
    if found and found.group(1).lower() not in ("none", "no"):
        return f"file name: ce-{found.group(1)}"
    sidecar = re.sub(r"\.nii(\.gz)?$|\.mgz$", ".json", path)
    if sidecar != path and os.path.exists(sidecar):
        try:
            with open(sidecar) as fh:
                ingredient = json.load(fh).get("ContrastBolusIngredient")
        except (OSError, ValueError):
            ingredient = None
        if ingredient and str(ingredient).lower() not in ("none", "n/a"):
            return f"sidecar ContrastBolusIngredient: {ingredient}"
    if img is not None and "descrip" in img.header:
        text = bytes(img.header["descrip"]).decode("latin-1", "replace").lower()
        word = next((w for w in CONTRAST_WORDS if w in text), None)
        if word:
            return f"header description: {text.strip(chr(0)).strip()!r}"
    return ""


def head_litres(img) -> float:
    """Litres of the voxels above a tenth of the 99th intensity percentile (a head 3-5, a brain under 2)."""
    import numpy as np

    data = np.asarray(img.dataobj, dtype=np.float32)
    positive = data[data > 0]
    if not len(positive):
        return 0.0
    voxel_ml = float(np.prod(img.header.get_zooms()[:3])) / 1000
    return float((data > 0.1 * np.percentile(positive, 99)).sum() * voxel_ml / 1000)


def inspect_header(path: str) -> dict:
    """Shape, voxel size, orientation and transform codes of one image; ``status`` says ok or why not
    (the header rules of :func:`rnce.imaging.io.check_header`), and the two flags."""
    info = {"status": "ok", "shape": "", "voxel_mm": "", "orientation": "", "qform_code": "", "sform_code": "",
            "skull_stripped": "", "contrast": ""}
    try:
        img = open_image(path)
        info["shape"] = "x".join(str(s) for s in img.shape)
        info["voxel_mm"] = "x".join(f"{z:.3g}" for z in img.header.get_zooms()[:3])
        check_header(img, path)
    except ImageError as err:
        info["status"] = str(err).removeprefix(f"{path}: ")
        return info
    info["status"] = field_of_view_problem(img) or "ok"
    info["orientation"] = "".join(nib.aff2axcodes(img.affine))
    if hasattr(img.header, "get_qform"):
        info["qform_code"] = int(img.header["qform_code"])
        info["sform_code"] = int(img.header["sform_code"])
    info["contrast"] = contrast_evidence(path, img)
    if info["status"] == "ok":
        info["skull_stripped"] = head_litres(img) < HEAD_MIN_LITRES
    return info


def inventory(rows: list[dict], out_path: str | os.PathLike) -> pd.DataFrame:
    """Inspect every image of ``rows`` (participant_id, session_id, t1w) and write the TSV atomically."""
    records = []
    for row in rows:
        info = inspect_header(row["t1w"])
        if info["status"] != "ok":
            log.warning("image %s: %s", row["t1w"], info["status"])
        for flag, text in (("skull_stripped", "looks skull-stripped"), ("contrast", "looks contrast-enhanced")):
            if info[flag]:
                log.warning("image %s %s%s", row["t1w"], text, f" ({info[flag]})" if flag == "contrast" else "")
        records.append({"participant_id": row["participant_id"], "session_id": row["session_id"],
                        "t1w": row["t1w"], **info})
    table = pd.DataFrame(records, columns=COLUMNS)
    write_tsv(table, out_path)
    log.info("%d images inspected, %d not usable", len(table), int((table["status"] != "ok").sum()))
    return table


def combine(paths: list[str], out_path: str | os.PathLike) -> pd.DataFrame:
    """Concatenate shard inventories into one cohort table, written atomically."""
    table = pd.concat([pd.read_csv(p, sep="\t", dtype=str, keep_default_na=False) for p in paths],
                      ignore_index=True)
    write_tsv(table, out_path)
    return table
