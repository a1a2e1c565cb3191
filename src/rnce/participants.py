"""Participants tables: the schema (``schemas/participants.schema.yaml``) and its checks.

Every check names the file, the line and the column of the first problems it finds (at most
``MAX_REPORTED``), before any job runs. :mod:`rnce.cohort` reads tables and BIDS roots through
:func:`validate_participants`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

log = logging.getLogger(__name__)

MAX_REPORTED = 20
SEX_ALIASES = {"m": "M", "male": "M", "f": "F", "female": "F"}
MISSING_HINTS = {"site": " (a single-site cohort, e.g. a BIDS dataset from one scanner: set `site:` in the "
                         "cohort's config entry)"}


class CohortError(ValueError):
    """A participants table or cohort configuration that breaks the contract."""

    plain = True  # bad input the user must fix: scripts print the message, the traceback goes to the log


def load_schema() -> dict:
    """The participants-table schema shipped with the package."""
    text = resources.files("rnce").joinpath("schemas/participants.schema.yaml").read_text()
    return yaml.safe_load(text)


@dataclass(frozen=True)
class Problem:
    line: int | str | None  # file line, or a row label where there is no file (BIDS)
    column: str | None
    message: str

    def render(self, source: str) -> str:
        where = source
        if isinstance(self.line, str):
            where += f", {self.line}"
        elif self.line is not None:
            where += f", line {self.line}"
        if self.column is not None:
            where += f", column '{self.column}'"
        return f"{where}: {self.message}"


def _where(line: int | str) -> str:
    return line if isinstance(line, str) else f"line {line}"


def _raise(problems: list[Problem], source: str) -> None:
    if not problems:
        return
    shown = [p.render(source) for p in problems[:MAX_REPORTED]]
    more = len(problems) - len(shown)
    tail = f"\n  ... and {more} more" if more > 0 else ""
    raise CohortError(
        f"{len(problems)} problem(s) in participants table {source}:\n  "
        + "\n  ".join(shown)
        + tail
    )


def _check_column(values: pd.Series, name: str, spec: dict, lines: np.ndarray) -> tuple[pd.Series, list[Problem]]:
    """Convert one column of non-empty strings to its type; report cells that break ``spec``."""
    problems: list[Problem] = []
    present = values != ""
    kind = spec.get("type", "string")
    if kind in ("number", "integer"):
        converted = pd.to_numeric(values.where(present), errors="coerce").astype(float)
        bad = present & converted.isna()
        for i in np.flatnonzero(bad.to_numpy()):
            problems.append(Problem(lines[i], name, f"'{values.iloc[i]}' is not a number"))
        ok = present & ~bad
        if kind == "integer":
            frac = ok & (converted != np.round(converted))
            for i in np.flatnonzero(frac.to_numpy()):
                problems.append(Problem(lines[i], name, f"'{values.iloc[i]}' is not an integer"))
        if "minimum" in spec:
            low = ok & (converted < spec["minimum"])
            for i in np.flatnonzero(low.to_numpy()):
                problems.append(Problem(lines[i], name, f"{values.iloc[i]} is below the minimum {spec['minimum']}"))
        if "maximum" in spec:
            high = ok & (converted > spec["maximum"])
            for i in np.flatnonzero(high.to_numpy()):
                problems.append(Problem(lines[i], name, f"{values.iloc[i]} is above the maximum {spec['maximum']}"))
        if "enum" in spec:
            outside = ok & ~converted.isin(spec["enum"])
            for i in np.flatnonzero(outside.to_numpy()):
                problems.append(Problem(lines[i], name, f"'{values.iloc[i]}' is not one of {spec['enum']}"))
        return converted, problems
    if "enum" in spec:
        outside = present & ~values.isin(spec["enum"])
        for i in np.flatnonzero(outside.to_numpy()):
            problems.append(Problem(lines[i], name, f"'{values.iloc[i]}' is not one of {spec['enum']}"))
    if "pattern" in spec:
        malformed = present & ~values.str.fullmatch(spec["pattern"])
        for i in np.flatnonzero(malformed.to_numpy()):
            problems.append(
                Problem(lines[i], name, f"'{values.iloc[i]}' does not match {spec['pattern']}")
            )
    return values.where(present, None), problems


def validate_participants(
    raw: pd.DataFrame,
    source: str,
    *,
    base_dir: str | os.PathLike | None = None,
    images: bool = True,
    lines: np.ndarray | None = None,
    site: str | None = None,
    cell_sources: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Check a participants table read as strings and return it typed.

    Parameters
    ----------
    raw
        The table with every cell a string ("" for empty).
    source
        Where the table came from, used in every error message.
    base_dir
        Folder that relative ``t1w`` paths are relative to (the table's folder).
    images
        Whether every row must point at an existing image.
    lines
        The file line of each row (default: row index + 2, a header line first),
        or a label per row where the rows do not come from one file.
    site
        The cohort's ``site`` (config): the site of rows without one (and of all rows when the
        table has no ``site`` column).
    cell_sources
        Where each cell came from (same shape and columns as ``raw``; BIDS: participants.tsv or a
        sessions.tsv), named in the problems of that cell.

    Returns
    -------
    pandas.DataFrame
        Typed table: numbers as floats, empty optional cells as NaN/None,
        ``t1w`` resolved, ``diagnosis`` filled with "unknown".

    Raises
    ------
    CohortError
        Naming the file, line and column of each problem found.
    """
    schema = load_schema()
    props: dict = schema["properties"]
    if lines is None:
        lines = np.arange(len(raw)) + 2
    if site is not None:
        raw = raw.assign(site=raw["site"].where(raw["site"].str.strip() != "", site) if "site" in raw else site)
    required = list(schema["required"]) + (["t1w"] if images else [])
    missing = [c for c in required if c not in raw.columns]
    if missing:
        _raise([Problem(None, c, "required column is missing" + MISSING_HINTS.get(c, "")) for c in missing], source)
    if raw.empty:
        _raise([Problem(None, None, "the table has no rows: the cohort has no images")], source)
    raw = raw.apply(lambda col: col.str.strip()) if len(raw) else raw

    problems: list[Problem] = []
    out = pd.DataFrame(index=raw.index)
    for name in raw.columns:
        if name not in props:
            out[name] = raw[name]
            continue
        values = raw[name]
        if name == "sex":  # BIDS writes male/female (any case), others M/F or m/f
            values = values.map(lambda v: SEX_ALIASES.get(v.lower(), v))
        if name in required:
            for i in np.flatnonzero((values == "").to_numpy()):
                problems.append(Problem(lines[i], name, "required value is empty"))
        out[name], found = _check_column(values, name, props[name], lines)
        problems += found
    if "diagnosis" in out:
        out["diagnosis"] = out["diagnosis"].fillna(props["diagnosis"]["default"])
    else:
        out["diagnosis"] = props["diagnosis"]["default"]

    key = raw["participant_id"] + "\t" + raw["session_id"]
    dup = key.duplicated(keep=False).to_numpy()
    if dup.any():
        first: dict[str, int] = {}
        for i in np.flatnonzero(dup):
            k = key.iloc[i]
            if k in first:
                problems.append(
                    Problem(
                        lines[i],
                        "participant_id+session_id",
                        f"duplicate of {_where(first[k])} ({k.replace(chr(9), ' / ')})",
                    )
                )
            else:
                first[k] = lines[i]

    if "t1w" in out:
        base = Path(base_dir) if base_dir is not None else Path(".")
        paths = [
            None if p is None else os.path.normpath(p if os.path.isabs(p) else base / p)
            for p in out["t1w"]
        ]
        out["t1w"] = paths
        if images:
            for i, p in enumerate(paths):
                if p is not None and not os.path.exists(p):
                    problems.append(Problem(lines[i], "t1w", f"image file does not exist: {p}"))
    order = {line: i for i, line in enumerate(lines)}
    problems = sorted(problems, key=lambda p: order.get(p.line, -1))
    if cell_sources is not None:
        problems = [Problem(f"{cell_sources[p.column].iat[order[p.line]]}, {_where(p.line)}", p.column, p.message)
                    if p.line in order and p.column in cell_sources else p for p in problems]
    _raise(problems, source)
    return out.reset_index(drop=True)
