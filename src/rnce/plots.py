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


def probe_figure(scores: pd.DataFrame, path: str) -> None:
    """Figure 2 of the paper: each feature set's mean probe score per task, error bars one bootstrap SD.

    ``scores``: the evaluation's scores table; skipped tasks are listed in the caption."""
    from plotnine import (
        aes,
        annotate,
        element_text,
        facet_wrap,
        geom_col,
        geom_errorbar,
        ggplot,
        labs,
        position_dodge,
        theme,
    )

    ran = scores[scores["status"] == "run"].copy()
    if ran.empty:
        reasons = "\n".join(f"{t}: {r}" for t, r in scores.drop_duplicates("task")[["task", "reason"]].to_numpy())
        _save(ggplot() + annotate("text", x=0, y=0, label="no task had enough subjects\n" + reasons, size=8)
              + labs(title="Linear probes of frozen representations"), path, width=8, height=4)
        return
    ran["panel"] = ran["task"] + " (" + ran["metric"] + ")"
    ran["panel"] = pd.Categorical(ran["panel"], categories=list(dict.fromkeys(ran["panel"])))
    ran["feature_set"] = pd.Categorical(ran["feature_set"], categories=list(dict.fromkeys(ran["feature_set"])))
    skipped = sorted(set(scores.loc[scores["status"] != "run", "task"]))
    dodge = position_dodge(width=0.9)
    plot = (
        ggplot(ran, aes("feature_set", "mean", fill="feature_set"))
        + geom_col(position=dodge)
        + geom_errorbar(aes(ymin="mean - sd", ymax="mean + sd"), width=0.3, position=dodge)
        + facet_wrap("~panel", scales="free_y", ncol=4)
        + labs(x="", y="mean score over bootstrap samples (error bar: 1 SD)", fill="features",
               title="Linear probes of frozen representations (evaluate cohorts)",
               caption="skipped (too few subjects): " + ", ".join(skipped) if skipped else "")
        + theme(axis_text_x=element_text(rotation=45, ha="right"))
    )
    panels = max(ran["panel"].nunique(), 1)
    rows = -(-panels // 4)
    _save(plot, path, width=min(4, panels) * 2.8 + 1.6, height=rows * 2.4 + 1.2)
