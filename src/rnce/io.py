"""Atomic output: write to a temporary name in the same folder, rename into place on success."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd


def stale_temporaries(final: Path) -> list[Path]:
    """Temporary names of ``final`` (``.tmp-<pid>-<name>``) left next to it by killed writers."""
    pattern = re.compile(rf"\.tmp-\d+-{re.escape(final.name)}")
    return [p for p in final.parent.glob(f".tmp-*-{final.name}") if pattern.fullmatch(p.name)]


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it to ``path`` when the block succeeds.

    On an error the temporary file is removed and ``path`` is left untouched, so
    a killed or failed job never leaves a half-written output under its real name.
    The temporary name keeps the suffixes (``.tsv``, ``.nii.gz``) that writers look at.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    for stale in stale_temporaries(final):  # left by a job SIGKILLed while writing it
        stale.unlink(missing_ok=True)
    tmp = final.with_name(f".tmp-{os.getpid()}-{final.name}")
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_tsv(table: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write a TSV atomically (no index, 6 significant digits for floats)."""
    with atomic_path(path) as tmp:
        table.to_csv(tmp, sep="\t", index=False, float_format="%.6g")


def write_text(text: str, path: str | os.PathLike) -> None:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
