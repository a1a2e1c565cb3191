"""Header inventory of a shard of images: what each file is, or why it cannot be used.

Reads headers only (no voxel data), so it is cheap at 35,000 images. A file
that cannot be used is listed with its reason, never fatal for the shard.
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
           "qform_code", "sform_code"]


def inspect_header(path: str) -> dict:
    """Shape, voxel size, orientation and transform codes of one image; ``status`` says ok or why not
    (the header rules of :func:`rnce.imaging.io.check_header`; voxel data are not read)."""
    info = {"status": "ok", "shape": "", "voxel_mm": "", "orientation": "", "qform_code": "", "sform_code": ""}
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
    return info


def inventory(rows: list[dict], out_path: str | os.PathLike) -> pd.DataFrame:
    """Inspect every image of ``rows`` (participant_id, session_id, t1w) and write the TSV atomically."""
    records = []
    for row in rows:
        info = inspect_header(row["t1w"])
        if info["status"] != "ok":
            log.warning("image %s: %s", row["t1w"], info["status"])
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
