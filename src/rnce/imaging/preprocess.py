"""One shard of images: load -> register -> score -> tissue classes -> 18 patches -> write.

Each image's own tissue classes (:mod:`rnce.imaging.segment`: its FreeSurfer
``aseg.mgz`` moved with its transform where the row names one that matches,
else a segmentation of the registered image) are stored beside its patches.
Every image that registers is stored with its ``template_correlation``; whether
it passes is decided afterwards, over the cohort, by :mod:`rnce.imaging.qc`. An
image that cannot be read or registered, that the inventory's flags exclude, or
whose segmentation finds fewer than three tissue classes gets its ``reason`` in
the shard's QC table (it fails QC whatever its score); the rest of its shard is
written.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from rnce.imaging.io import ImageError
from rnce.imaging.patches import ShardWriter, box_slices, brain_box, normalise, save_registered
from rnce.imaging.register import register_to_template
from rnce.imaging.segment import SegmentationError, aseg_tissue, segment_tissue, template_priors
from rnce.imaging.template import load_template
from rnce.regions import read_regions

log = logging.getLogger(__name__)

RECORD_COLUMNS = ["participant_id", "session_id", "image_key", "site", "source"]
QC_COLUMNS = [*RECORD_COLUMNS, "template_correlation", "start", "reason",
              "seconds"]  # seconds: this image's wall time (registration, segmentation, patches)


def apply_input_flags(rows: list[dict], inventory: str | None, skull_stripped: str = "keep",
                      contrast: str = "exclude") -> tuple[list[dict], list[dict]]:
    """(rows to register, QC rows of the excluded) after the inventory's flags: a contrast-enhanced input is
    excluded (``contrast: exclude``) or kept; a skull-stripped one is excluded (``skull_stripped: exclude``) or
    registered as brain-extracted (``keep``)."""
    if not inventory:
        return rows, []
    flags = pd.read_csv(inventory, sep="\t", dtype=str, keep_default_na=False).set_index(
        ["participant_id", "session_id"])
    keep, excluded = [], []
    for row in rows:
        key = (str(row["participant_id"]), str(row["session_id"]))
        found = flags.loc[key] if key in flags.index else None
        reason = ""
        if found is not None and found["contrast"] and contrast == "exclude":
            reason = f"contrast-enhanced input ({found['contrast']}); register.contrast: exclude"
        elif found is not None and found["skull_stripped"] == "True":
            if skull_stripped == "exclude":
                reason = "skull-stripped input; register.skull_stripped: exclude"
            else:
                row = {**row, "brain_extracted": True}
        if reason:
            log.warning("image %s excluded: %s", row["source"], reason)
            excluded.append({k: row.get(k, "") for k in RECORD_COLUMNS}
                            | {"template_correlation": np.nan, "start": "", "reason": reason, "seconds": 0.0})
        else:
            keep.append(row)
    return keep, excluded


def preprocess_shard(rows: list[dict], out_dir: str, regions: str, transform: str = "Similarity",
                     template: str | None = None, resolution: float = 1.0, retry_below: float = 0.4,
                     registered_dir: str | None = None, fast: bool = False, whole_size: int = 96,
                     inventory: str | None = None, skull_stripped: str = "keep", contrast: str = "exclude",
                     ) -> pd.DataFrame:
    """Register every image of ``rows`` (participant_id, session_id, image_key, site, source, brain_extracted,
    optionally aseg) that the inventory's flags let through (:func:`apply_input_flags`)
    and write the shard folder ``out_dir`` (see :mod:`rnce.imaging.patches`). Returns its QC table."""
    import ants

    rows, qc = apply_input_flags(rows, inventory, skull_stripped, contrast)
    t1, mask = load_template(template, resolution)
    mask_np = mask.get_fdata() > 0.5
    priors = template_priors(template, resolution)
    writer = ShardWriter(out_dir, box_slices(read_regions(regions), t1.affine, t1.shape), brain_box(mask_np),
                         whole_size)
    try:
        for number, row in enumerate(rows, start=1):
            record = {k: row.get(k, "") for k in RECORD_COLUMNS}
            start = time.perf_counter()
            try:
                result = register_to_template(row["source"], transform, template, bool(row["brain_extracted"]),
                                              resolution, fast=fast, retry_below=retry_below)
            except (ImageError, RuntimeError, ValueError) as err:
                log.error("image %s excluded: %s", row["source"], err)
                qc.append({**record, "template_correlation": np.nan, "start": "", "reason": str(err),
                           "seconds": round(time.perf_counter() - start, 2)})
                continue
            normalised = normalise(result.image.get_fdata(dtype=np.float32), mask_np)
            reason = ""
            try:
                labels = tissue_labels(row, result, normalised, mask_np, priors)
            except SegmentationError as err:
                reason, labels = f"tissue segmentation: {err}", np.zeros(mask_np.shape, np.uint8)
                log.warning("image %s fails QC: %s", row["source"], reason)
            ants.write_transform(result.transform, str(writer.transform_path(row["image_key"])))
            writer.add_slices(row["image_key"], normalised)
            writer.add(row["participant_id"], row["session_id"], row["image_key"], normalised, labels)
            if registered_dir:
                save_registered(result.image, Path(registered_dir) / f"{row['image_key']}.nii.gz")
            qc.append({**record, "template_correlation": round(result.template_correlation, 4),
                       "start": result.start, "reason": reason, "seconds": round(time.perf_counter() - start, 2)})
            log.info("image %d of %d done in %.1f s", number, len(rows), qc[-1]["seconds"])
        table = pd.DataFrame(qc, columns=QC_COLUMNS)
        writer.close(table)
    except BaseException:
        writer.abort()
        raise
    log.info("%d images, %d registered and stored", len(table), len(writer.index))
    return table


def tissue_labels(row: dict, result, normalised: np.ndarray, mask: np.ndarray, priors: np.ndarray) -> np.ndarray:
    """The image's tissue labels: its FreeSurfer aseg (``row["aseg"]``) moved with its transform where it
    has one that matches the image, else a segmentation of the registered image (logged, naming the subject)."""
    if row.get("aseg"):
        try:
            return aseg_tissue(row["aseg"], row["source"], result.transform, result.mask, mask, normalised)
        except SegmentationError as err:
            log.warning("subject %s session %s: FreeSurfer's aseg not used (%s); segmenting the registered image "
                        "instead", row["participant_id"], row["session_id"], err)
    return segment_tissue(normalised, mask, priors)
