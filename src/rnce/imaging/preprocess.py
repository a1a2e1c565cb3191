"""One shard of images: load -> register -> QC -> 18 patches -> write; and the cohort's registration QC.

Each image's own tissue classes (:mod:`rnce.imaging.segment`: its FreeSurfer
``aseg.mgz`` moved with its transform where the row names one that matches,
else a segmentation of the registered image) are stored beside its patches.
An image that cannot be read, registered, or that fails
QC (``template_correlation`` below the threshold, or a segmentation that finds
fewer than three tissue classes) is listed in the QC table with ``passed``
false and its reason, and left out of the patch store (so out of training);
the rest of its shard is written.
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
from rnce.io import write_tsv
from rnce.regions import read_regions

log = logging.getLogger(__name__)

QC_COLUMNS = ["participant_id", "session_id", "image_key", "source", "template_correlation", "passed", "reason",
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
            excluded.append({k: row[k] for k in ("participant_id", "session_id", "image_key", "source")}
                            | {"template_correlation": np.nan, "passed": False, "reason": reason, "seconds": 0.0})
        else:
            keep.append(row)
    return keep, excluded


def preprocess_shard(rows: list[dict], out_dir: str, regions: str, transform: str = "Similarity",
                     template: str | None = None, resolution: float = 1.0, threshold: float = 0.8,
                     registered_dir: str | None = None, fast: bool = False, whole_size: int = 96,
                     inventory: str | None = None, skull_stripped: str = "keep", contrast: str = "exclude",
                     ) -> pd.DataFrame:
    """Register every image of ``rows`` (participant_id, session_id, image_key, source, brain_extracted,
    optionally aseg) that the inventory's flags let through (:func:`apply_input_flags`)
    and write the shard folder ``out_dir`` (see :mod:`rnce.imaging.patches`). Returns the QC table."""
    rows, qc = apply_input_flags(rows, inventory, skull_stripped, contrast)
    t1, mask = load_template(template, resolution)
    mask_np = mask.get_fdata() > 0.5
    priors = template_priors(template, resolution)
    writer = ShardWriter(out_dir, box_slices(read_regions(regions), t1.affine, t1.shape), brain_box(mask_np),
                         whole_size)
    try:
        for row in rows:
            record = {k: row[k] for k in ("participant_id", "session_id", "image_key", "source")}
            start = time.perf_counter()
            try:
                result = register_to_template(row["source"], transform, template, bool(row["brain_extracted"]),
                                              resolution, fast=fast)
            except (ImageError, RuntimeError, ValueError) as err:
                log.error("image %s excluded: %s", row["source"], err)
                qc.append({**record, "template_correlation": np.nan, "passed": False, "reason": str(err),
                           "seconds": round(time.perf_counter() - start, 2)})
                continue
            passed = result.template_correlation >= threshold
            reason = "" if passed else f"template_correlation {result.template_correlation:.3f} < {threshold}"
            normalised = normalise(result.image.get_fdata(dtype=np.float32), mask_np)
            labels = None
            if passed:
                try:
                    labels = tissue_labels(row, result, normalised, mask_np, priors)
                except SegmentationError as err:
                    passed, reason = False, f"tissue segmentation: {err}"
            entry = {**record, "template_correlation": round(result.template_correlation, 4), "passed": passed,
                     "reason": reason}
            qc.append(entry)
            writer.add_slices(row["image_key"], normalised)
            if registered_dir:
                save_registered(result.image, Path(registered_dir) / f"{row['image_key']}.nii.gz")
            if passed:
                import ants

                ants.write_transform(result.transform, str(writer.transform_path(row["image_key"])))
                writer.add(row["participant_id"], row["session_id"], row["image_key"], normalised, labels)
            else:
                log.warning("image %s fails registration QC: %s", row["source"], reason)
            entry["seconds"] = round(time.perf_counter() - start, 2)
        table = pd.DataFrame(qc, columns=QC_COLUMNS)
        writer.close(table)
    except BaseException:
        writer.abort()
        raise
    log.info("%d images registered, %d passed QC", len(table), int(table["passed"].sum()))
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


def registration_qc(shard_dirs: list[str], out_table: str, out_figure: str, n_worst: int = 12,
                    template: str | None = None, resolution: float = 1.0) -> pd.DataFrame:
    """The cohort's QC table from its shards, and a montage of its worst-registered images."""
    tables = [pd.read_csv(Path(d) / "qc.tsv", sep="\t", dtype={"participant_id": str, "session_id": str})
              for d in shard_dirs]
    qc = pd.concat(tables, ignore_index=True).sort_values(["participant_id", "session_id"])
    write_tsv(qc, out_table)
    slices = {}
    for d in shard_dirs:
        with np.load(Path(d) / "qc_slices.npz") as npz:
            slices.update({k: npz[k] for k in npz.files})
    worst = qc.dropna(subset=["template_correlation"]).nsmallest(n_worst, "template_correlation")
    _montage(worst, slices, load_template(template, resolution)[0].get_fdata(), out_figure, len(qc),
             int((~qc["passed"].astype(bool)).sum()))
    return qc


def _montage(worst: pd.DataFrame, slices: dict, template: np.ndarray, path: str, n_images: int,
             n_failed: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rnce.imaging.patches import mid_slices
    from rnce.io import atomic_path

    contours = mid_slices(template)
    views = ("axial", "coronal", "sagittal")
    rows = max(len(worst), 1)
    fig, axes = plt.subplots(rows, 3, figsize=(7.5, 2.4 * rows), squeeze=False)
    for r, rec in enumerate(worst.itertuples()):
        for c, view in enumerate(views):
            ax = axes[r, c]
            plane = slices.get(f"{rec.image_key}/{view}")
            if plane is not None:
                ax.imshow(np.asarray(plane, float).T, origin="lower", cmap="gray", vmin=-2.5, vmax=2.5)
                ax.contour(contours[view].T, levels=[0.5 * template.max()], colors="r", linewidths=0.5)
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(f"#{r + 1}  r={rec.template_correlation:.3f}\n"
                              f"{'passed' if rec.passed else 'FAILED'}", fontsize=8)
    fig.suptitle(f"Worst registrations ({n_images} images, {n_failed} failed QC); red: template", fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    plt.close(fig)
