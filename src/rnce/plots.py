"""Figures (plotnine), written atomically. They show aggregates and sites, never participant ids."""

from __future__ import annotations

import logging
import warnings

import pandas as pd

from rnce.io import atomic_path

log = logging.getLogger(__name__)


def _save(plot, path: str, width: float, height: float) -> None:
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plot.save(str(tmp), width=width, height=height, dpi=110, verbose=False, format="png")


def _summaries(table: pd.DataFrame) -> pd.DataFrame:
    """A few summary measures per image, FreeSurfer or ANTs."""
    cols = table.columns
    if "eTIV" in cols:
        thick = [c for c in cols if c.endswith("_thickness")]
        return pd.DataFrame({
            "mean cortical thickness (mm)": table[thick].mean(axis=1),
            "hippocampus (mm3)": table["Left-Hippocampus_volume"] + table["Right-Hippocampus_volume"],
            "lateral ventricles (mm3)": table["Left-Lateral-Ventricle_volume"] + table["Right-Lateral-Ventricle_volume"],
            "eTIV (mm3)": table["eTIV"],
        })
    thick = [c for c in cols if c.startswith("ants_") and c.endswith("_thickness")]
    gm = [c for c in cols if c.startswith("ants_") and c.endswith("_gm_volume")]
    return pd.DataFrame({
        "mean box thickness (mm)": table[thick].mean(axis=1),
        "box GM volume (mm3)": table[gm].sum(axis=1),
        "ventricle CSF (mm3)": table["ants_ventricle_csf_volume"],
        "ICV (mm3)": table["ants_icv"],
    })


def feature_qc_figure(table: pd.DataFrame, flagged: pd.DataFrame, path: str) -> None:
    """Distributions of summary features by cohort:site; images with a flagged value in red."""
    from plotnine import (
        aes,
        element_text,
        facet_wrap,
        geom_boxplot,
        geom_jitter,
        ggplot,
        labs,
        scale_color_manual,
        theme,
    )

    summary = _summaries(table)
    summary["batch"] = table["cohort"] + ":" + table["site"]
    keys = set(zip(flagged["participant_id"], flagged["session_id"], strict=True))
    summary["flagged"] = [(p, s) in keys for p, s in zip(table["participant_id"], table["session_id"], strict=True)]
    long = summary.melt(id_vars=["batch", "flagged"], var_name="feature", value_name="value")
    plot = (
        ggplot(long, aes("batch", "value"))
        + geom_boxplot(outlier_alpha=0)
        + geom_jitter(aes(color="flagged"), width=0.2, size=0.6, alpha=0.5)
        + scale_color_manual(values={False: "grey", True: "red"})
        + facet_wrap("~feature", scales="free_y", ncol=2)
        + labs(x="cohort:site", y="", color="outlying value\n(|robust z| > 5)",
               title=f"Structural features by site ({len(table)} images)")
        + theme(axis_text_x=element_text(rotation=45, ha="right"))
    )
    _save(plot, path, width=10, height=7)


def ssl_loss_curves(metrics_paths: list[str], names: list[str], path: str, title: str) -> None:
    """Training loss per epoch of each job of one SSL method (a panel per job: box or stage),
    from the jobs' metrics tables."""
    from plotnine import aes, facet_wrap, geom_line, geom_point, ggplot, labs

    metrics = {name: pd.read_csv(p, sep="\t") for name, p in zip(names, metrics_paths, strict=True)}
    long = pd.concat([m.assign(job=name) for name, m in metrics.items()], ignore_index=True)
    speed = long.groupby("job")["samples_per_s"].median()
    plot = (
        ggplot(long, aes("epoch", "loss"))
        + geom_line()
        + geom_point(size=0.8)
        + facet_wrap("~job", scales="free_y", ncol=6)
        + labs(x="epoch", y="mean training loss", title=title,
               caption=f"median samples/s per job: {speed.min():.1f} to {speed.max():.1f}")
    )
    rows = -(-len(metrics) // 6)
    _save(plot, path, width=min(6, len(metrics)) * 2.2 + 1, height=rows * 1.8 + 1.2)
