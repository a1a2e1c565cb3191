"""Biomarker evaluation: probe tasks of the evaluate cohorts, bootstrap scores, permutation tests."""

from rnce.evaluate.probes import ProbeError, bootstrap_scores, permutation_pvalue

__all__ = ["ProbeError", "bootstrap_scores", "permutation_pvalue"]
