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


def probe_figure(scores: pd.DataFrame, path: str, subtitle: str = "") -> None:
    """Figure 2 of the paper: each feature set's mean probe score per task, error bars one bootstrap SD.

    ``scores``: the evaluation's scores table; skipped tasks are listed in the caption; ``subtitle``
    (e.g. how long the SSL stages trained) goes under the title."""
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
               title="Linear probes of frozen representations (evaluate cohorts)", subtitle=subtitle,
               caption="skipped (too few subjects): " + ", ".join(skipped) if skipped else "")
        + theme(axis_text_x=element_text(rotation=45, ha="right"))
    )
    panels = max(ran["panel"].nunique(), 1)
    rows = -(-panels // 4)
    _save(plot, path, width=min(4, panels) * 2.8 + 1.6, height=rows * 2.4 + 1.2)


def bag_correlation_heatmap(correlation: pd.DataFrame, path: str) -> None:
    """Phenotypic correlation matrix of the brain-age gaps of all feature sets."""
    from plotnine import aes, geom_text, geom_tile, ggplot, labs, scale_fill_gradient2

    names = list(correlation.columns)
    long = correlation.rename_axis("a").reset_index().melt(id_vars="a", var_name="b", value_name="r")
    long["a"] = pd.Categorical(long["a"], categories=names)
    long["b"] = pd.Categorical(long["b"], categories=names[::-1])
    long["label"] = long["r"].map(lambda r: f"{r:.2f}")
    plot = (
        ggplot(long, aes("a", "b", fill="r"))
        + geom_tile()
        + geom_text(aes(label="label"), size=8)
        + scale_fill_gradient2(low="#2166ac", mid="white", high="#b2182b", midpoint=0, limits=(-1, 1))
        + labs(x="", y="", fill="r", title="Phenotypic correlation of brain-age gaps")
    )
    _save(plot, path, width=1.2 * len(names) + 2.5, height=1.0 * len(names) + 1.5)


def predicted_age_figure(validation: dict[str, pd.DataFrame], path: str) -> None:
    """Predicted against true age of the validation subjects, one panel per feature set, coloured by cohort
    (identity line dashed): a model that only tells cohorts apart shows as clouds along the line, flat within."""
    from plotnine import aes, facet_wrap, geom_abline, geom_point, ggplot, labs

    long = pd.concat([t.assign(feature_set=f) for f, t in validation.items()], ignore_index=True)
    long["feature_set"] = pd.Categorical(long["feature_set"], categories=list(validation))
    plot = (
        ggplot(long, aes("age", "predicted_age", color="cohort"))
        + geom_point(alpha=0.5, size=0.8)
        + geom_abline(slope=1, intercept=0, linetype="dashed")
        + facet_wrap("~feature_set", ncol=3)
        + labs(x="age (years)", y="predicted age (years)", title="Brain age, validation subjects")
    )
    rows = -(-len(validation) // 3)
    _save(plot, path, width=min(3, len(validation)) * 2.8 + 2, height=rows * 2.6 + 1)


def bag_vs_age_figure(bags: dict[str, pd.DataFrame], path: str) -> None:
    """BAG against age before (raw: predicted - age) and after de-biasing, one row per feature set."""
    from plotnine import aes, facet_grid, geom_hline, geom_point, geom_smooth, ggplot, labs

    long = pd.concat([pd.DataFrame({"age": b["age"], "cohort": b["cohort"], "feature_set": f, "bag": b[column],
                                    "stage": stage})
                      for f, b in bags.items() for column, stage in (("bag_raw", "before de-biasing"),
                                                                      ("bag", "after de-biasing"))],
                     ignore_index=True)
    long["feature_set"] = pd.Categorical(long["feature_set"], categories=list(bags))
    long["stage"] = pd.Categorical(long["stage"], categories=["before de-biasing", "after de-biasing"])
    plot = (
        ggplot(long, aes("age", "bag", color="cohort"))
        + geom_point(alpha=0.3, size=0.6)
        + geom_hline(yintercept=0, linetype="dashed")
        + geom_smooth(aes(group=1), method="lm", color="black", se=False)
        + facet_grid("feature_set ~ stage")
        + labs(x="age (years)", y="brain-age gap (years)", title="BAG against age, all subjects")
    )
    _save(plot, path, width=7.5, height=len(bags) * 2.2 + 1)


def _thin(table: pd.DataFrame, p: str, keep_below: float = 1e-3, fraction: float = 0.1) -> pd.DataFrame:
    """All points with p < keep_below and a fixed 10% of the rest (they overlap anyway), for fast plots."""
    import numpy as np

    rng = np.random.default_rng(0)
    return table[(table[p] < keep_below) | (rng.random(len(table)) < fraction)]


def manhattan_plot(sumstats: pd.DataFrame, title: str, path: str) -> None:
    """-log10 P along the genome, chromosomes alternating in colour, 5e-8 dashed (variants with P >= 1e-3 thinned)."""
    import numpy as np
    from plotnine import (
        aes,
        geom_hline,
        geom_point,
        ggplot,
        labs,
        scale_color_manual,
        scale_x_continuous,
        theme,
    )

    table = sumstats[["CHR", "BP", "P"]].copy()
    order = sorted(table["CHR"].unique(), key=lambda c: (not str(c).isdigit(), int(c) if str(c).isdigit() else 0, c))
    span = table.groupby("CHR")["BP"].max().reindex(order)
    offset = span.cumsum() - span
    table["x"] = table["BP"] + table["CHR"].map(offset)
    table["y"] = -np.log10(table["P"].clip(lower=1e-300))
    table["parity"] = table["CHR"].map({c: str(i % 2) for i, c in enumerate(order)})
    centres = (offset + span / 2).to_numpy()
    plot = (
        ggplot(_thin(table, "P"), aes("x", "y", color="parity"))
        + geom_point(size=0.6)
        + geom_hline(yintercept=-np.log10(5e-8), linetype="dashed", color="red")
        + scale_color_manual(values=["#1f4e79", "#7fa7d1"], guide=None)
        + scale_x_continuous(breaks=list(centres), labels=[str(c) for c in order])
        + labs(x="chromosome", y="-log10 P", title=f"GWAS of {title}")
        + theme(figure_size=(10, 3.5))
    )
    _save(plot, path, width=10, height=3.5)


def qq_plot(p, lambda_gc: float, title: str, path: str) -> None:
    """Observed against expected -log10 P, with lambda GC in the title."""
    import numpy as np
    from plotnine import aes, geom_abline, geom_point, ggplot, labs

    observed = np.sort(-np.log10(np.clip(p, 1e-300, 1)))[::-1]
    expected = -np.log10((np.arange(1, len(p) + 1) - 0.5) / len(p))
    table = pd.DataFrame({"expected": expected, "observed": observed, "P": 10 ** -observed})
    plot = (
        ggplot(_thin(table, "P"), aes("expected", "observed"))
        + geom_point(size=0.6)
        + geom_abline(slope=1, intercept=0, linetype="dashed", color="red")
        + labs(x="expected -log10 P", y="observed -log10 P", title=f"QQ, {title}: lambda GC {lambda_gc:.3f}")
    )
    _save(plot, path, width=4.5, height=4.5)


def cell_type_figure(table: pd.DataFrame, fdr: float, path: str) -> None:
    """Partitioned-h2 enrichment per cell type: -log10 P of the coefficient, one panel per BAG, FDR hits filled."""
    import numpy as np
    from plotnine import aes, annotate, coord_flip, facet_wrap, geom_col, ggplot, labs

    if table.empty:
        _save(ggplot() + annotate("text", x=0, y=0, label="no cell-type annotations configured (ldsc.cell_type_beds)")
              + labs(title="LDSC cell-type enrichment"), path, width=6, height=3)
        return
    table = table.copy()
    table["minus_log10_p"] = -np.log10(table["p"].clip(lower=1e-300))
    table["significant"] = np.where(table["q_fdr"] < fdr, f"FDR < {fdr:g}", "not significant")
    plot = (
        ggplot(table, aes("cell_type", "minus_log10_p", fill="significant"))
        + geom_col()
        + coord_flip()
        + facet_wrap("~gwas")
        + labs(x="", y="-log10 P (coefficient > 0)", fill="", title="LDSC cell-type enrichment of BAG heritability")
    )
    panels = table["gwas"].nunique()
    _save(plot, path, width=min(3, panels) * 3 + 2, height=-(-panels // 3) * 2.8 + 1)
