"""The registration QC decision over the stored scores, the cohort's QC table and its montage.

Registration (:mod:`rnce.imaging.preprocess`) stores every image it could
register, with its ``template_correlation``; this module decides which pass, so
a change of a QC setting reruns this step and what reads the patch store, never
a registration. An image fails when

- registration or segmentation already gave a reason (unreadable, a flag of the
  inventory, tissue classes that cannot be told apart), or
- its score is below ``floor`` (absolute: deliberately broken registrations of
  real scans score at most 0.30, real scans at least 0.44; see
  :mod:`rnce.imaging.register`), or
- its score lies more than ``robust_z`` robust SDs below its site's median:
  ``(score - median) / (1.4826 * MAD)``, over the site's registered images, with
  the spread at least :data:`MIN_SPREAD`. Scanners, resolutions and the age of a
  site's participants move its whole distribution; an outlier is judged against
  its own site. A site with fewer than ``min_site_size`` registered images has no
  robust z (the floor alone decides); the table says so.

Outputs: ``qc/registration_{cohort}.tsv`` (every image, with its site, score,
robust z, decision and reason), ``patches/{cohort}/passed.tsv`` (the images the
patch store serves, :class:`rnce.imaging.patches.PatchStore`) and the montage:
one labelled row per image (its ``image_key``, never a participant id), the
failures first, then the lowest-scoring passes.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from rnce.imaging.patches import PASSED_COLUMNS, mid_slices
from rnce.io import atomic_path, write_tsv

log = logging.getLogger(__name__)

MIN_SPREAD = 0.05  # the smallest robust SD of a site's scores: anatomy alone moves scores by about that much
# (in the tiny simulated world AD brains score 0.77 +- 0.06, CN 0.78 +- 0.04), so a tight site's atrophied brain
# is not an outlier
TABLE_COLUMNS = ["participant_id", "session_id", "image_key", "site", "source", "template_correlation", "start",
                 "site_images", "site_median", "robust_z", "passed", "reason", "seconds"]


def decide(scores: pd.DataFrame, floor: float, robust_z: float, min_site_size: int) -> pd.DataFrame:
    """``scores`` (the shards' qc.tsv rows: site, template_correlation, reason) with ``site_images``,
    ``site_median``, ``robust_z``, ``passed`` and the ``reason`` of each failure (see the module docstring)."""
    out = scores.copy()
    out["reason"] = out["reason"].fillna("").astype(str)
    score = pd.to_numeric(out["template_correlation"], errors="coerce")
    out["site_images"], out["site_median"], out["robust_z"] = 0, np.nan, np.nan
    for rows in out.groupby("site", sort=False).groups.values():
        valid = score.loc[rows].dropna()
        out.loc[rows, "site_images"] = len(valid)
        if len(valid) < min_site_size:
            continue
        median = float(valid.median())
        spread = max(1.4826 * float((valid - median).abs().median()), MIN_SPREAD)
        out.loc[rows, "site_median"] = round(median, 4)
        out.loc[rows, "robust_z"] = ((score.loc[rows] - median) / spread).round(2)
    reasons = []
    for rec, value in zip(out.itertuples(), score, strict=True):
        if rec.reason:
            reasons.append(rec.reason)
        elif np.isnan(value):
            reasons.append("no template_correlation")
        elif value < floor:
            reasons.append(f"template_correlation {value:.3f} < register.qc_floor {floor}")
        elif not np.isnan(rec.robust_z) and rec.robust_z < -robust_z:
            reasons.append(f"template_correlation {value:.3f} is {-rec.robust_z:.1f} robust SDs below site "
                           f"{rec.site}'s median {rec.site_median:.3f} (register.qc_robust_z {robust_z})")
        else:
            reasons.append("")
    out["reason"] = reasons
    out["passed"] = out["reason"] == ""
    return out


def registration_qc(shard_dirs: list[str], out_table: str, out_passed: str, out_figure: str, floor: float = 0.35,
                    robust_z: float = 3.5, min_site_size: int = 10, n_montage: int = 12,
                    template: str | None = None, resolution: float = 1.0) -> pd.DataFrame:
    """Decide QC over the cohort's shards (:func:`decide`); write its table, its passed list and montage."""
    from rnce.imaging.template import load_template

    text = dict.fromkeys(["participant_id", "session_id", "image_key", "site", "source", "start", "reason"], str)
    tables = [pd.read_csv(Path(d) / "qc.tsv", sep="\t", dtype=text, keep_default_na=False,
                          na_values={"template_correlation": [""]}) for d in shard_dirs]
    scores = pd.concat(tables, ignore_index=True).sort_values(["participant_id", "session_id"])
    qc = decide(scores, floor, robust_z, min_site_size).reindex(columns=TABLE_COLUMNS)
    small = sorted(qc.loc[qc["robust_z"].isna() & (qc["site_images"] > 0), "site"].unique())
    if small:
        log.warning("site(s) %s have fewer than %d registered images: no robust z there, the floor %.2f alone "
                    "decides", ", ".join(small), min_site_size, floor)
    write_tsv(qc, out_table)
    write_tsv(qc.loc[qc["passed"], PASSED_COLUMNS], out_passed)
    slices = {}
    for d in shard_dirs:
        with np.load(Path(d) / "qc_slices.npz") as npz:
            slices.update({k: npz[k] for k in npz.files})
    shown = pd.concat([qc[~qc["passed"]].sort_values("template_correlation", na_position="first"),
                       qc[qc["passed"]].nsmallest(n_montage, "template_correlation")]).head(n_montage)
    montage(shown, slices, load_template(template, resolution)[0].get_fdata(), out_figure, len(qc),
            int((~qc["passed"]).sum()))
    log.info("%d images, %d passed registration QC", len(qc), int(qc["passed"].sum()))
    return qc


def montage(shown: pd.DataFrame, slices: dict, template: np.ndarray, path: str, n_images: int,
            n_failed: int) -> None:
    """One row per image of ``shown`` (axial, coronal, sagittal mid-slices, the template's outline in red),
    labelled with its image_key, score, robust z and decision."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    contours = mid_slices(template)
    views = ("axial", "coronal", "sagittal")
    rows = max(len(shown), 1)
    fig, axes = plt.subplots(rows, 3, figsize=(8.5, 2.4 * rows + 0.6), squeeze=False)
    for r, rec in enumerate(shown.itertuples()):
        for c, view in enumerate(views):
            ax = axes[r, c]
            plane = slices.get(f"{rec.image_key}/{view}")
            if plane is not None:
                ax.imshow(np.asarray(plane, float).T, origin="lower", cmap="gray", vmin=-2.5, vmax=2.5)
                ax.contour(contours[view].T, levels=[0.5 * template.max()], colors="r", linewidths=0.5)
            elif c == 1:
                ax.text(0.5, 0.5, "not registered", ha="center", va="center", fontsize=8, transform=ax.transAxes)
            ax.set_xticks([])
            ax.set_yticks([])
        z = "" if pd.isna(rec.robust_z) else f"  z={rec.robust_z:+.1f}"
        score = "-" if pd.isna(rec.template_correlation) else f"{rec.template_correlation:.3f}"
        axes[r, 0].set_ylabel(f"{rec.image_key}\nr={score}{z}\n{'passed' if rec.passed else 'FAILED'}", fontsize=7)
    fig.suptitle(f"Registration QC: {n_failed} of {n_images} images failed; failures first, then the lowest "
                 "scores (red: template)", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / (2.4 * rows + 0.6)))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    plt.close(fig)
