"""Which images failed a QC step, read from the QC tables of registration and feature extraction."""

from __future__ import annotations

import pandas as pd

IMAGE_COLUMNS = ["cohort", "participant_id", "session_id"]


def failed_images(registration_paths: list[str], exclusions_path: str | None) -> pd.DataFrame:
    """Images that failed registration QC or feature extraction: (cohort, participant_id, session_id)."""
    failed = []
    for path in registration_paths:
        qc = pd.read_csv(path, sep="\t", dtype=str)
        cohort = path.rsplit("registration_", 1)[-1].removesuffix(".tsv")
        bad = qc[qc["passed"].str.strip().str.lower() != "true"].assign(cohort=cohort)
        failed.append(bad[IMAGE_COLUMNS])
    if exclusions_path:
        excluded = pd.read_csv(exclusions_path, sep="\t", dtype=str)
        if "excluded" in excluded:  # rows with excluded false are notes on kept images
            excluded = excluded[excluded["excluded"].str.strip().str.lower() != "false"]
        failed.append(excluded[IMAGE_COLUMNS])
    return pd.concat(failed, ignore_index=True) if failed else pd.DataFrame(columns=IMAGE_COLUMNS)
