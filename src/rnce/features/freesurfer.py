"""Reading FreeSurfer stats: the 104 structural features (and eTIV) of one subject.

The feature list is ``data/freesurfer_features.tsv`` (68 Desikan-Killiany
``ThickAvg`` values of ``?h.aparc.stats``, 36 ``Volume_mm3`` of ``aseg.stats``,
eTIV). FreeSurfer 5.3/6 names (``Left-Thalamus-Proper``) and 7 names
(``Left-Thalamus``) are read as the same feature.

eTIV: the ``EstimatedTotalIntraCranialVol`` measure of aseg.stats (FreeSurfer
5.3+); files of FreeSurfer 5.1 and older have ``IntraCranialVol`` instead,
which is used with a warning; with neither, eTIV is NaN with a warning.

A structure absent from a complete file is NaN and reported (never 0). A
missing file, a truncated file (a row shorter than the header, a last line
without its newline, fewer rows than ``# NRows``) or a non-numeric value is a
:class:`StatsError` naming the subject, the file and, where it applies, the
line and column.
"""

from __future__ import annotations

import logging
from functools import cache
from importlib import resources
from pathlib import Path

import pandas as pd

log = logging.getLogger(__name__)

MEASURE_PREFIX = "# Measure "


class StatsError(ValueError):
    """A FreeSurfer stats file that is missing, truncated or malformed."""

    plain = True  # bad input the user must fix: scripts print the message, the traceback goes to the log


class IncompleteSubjectsError(ValueError):
    """FreeSurfer subjects that cannot be used, under ``features.incomplete: error`` (all of them named)."""

    plain = True  # a message for the user: the workflow's scripts print it without a traceback


STATS_FILES = ("aseg.stats", "lh.aparc.stats", "rh.aparc.stats")
NO_SCRIPTS_NOTE = "kept: no scripts/ folder (recon-all status unknown); its stats files are complete"


@cache
def feature_table() -> pd.DataFrame:
    """The feature list: feature, source, structure, measure, fs6_name."""
    with resources.files("rnce").joinpath("data/freesurfer_features.tsv").open() as fh:
        return pd.read_csv(fh, sep="\t", comment="#", keep_default_na=False)


def feature_names(include_etiv: bool = True) -> list[str]:
    names = feature_table()["feature"].tolist()
    return names if include_etiv else [n for n in names if n != "eTIV"]


@cache
def _lookups() -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    table = feature_table()
    aseg = {}
    aparc: dict[str, dict[str, str]] = {"lh": {}, "rh": {}}
    for rec in table.itertuples():
        if rec.source == "aseg.stats" and rec.measure == "Volume_mm3":
            aseg[rec.structure] = rec.feature
            if rec.fs6_name:
                aseg[rec.fs6_name] = rec.feature
        elif rec.source.endswith("aparc.stats"):
            aparc[rec.source[:2]][rec.structure] = rec.feature
    return aseg, aparc


def parse_stats(path: Path, subject: str) -> tuple[dict[str, float], list[str], list[tuple[int, list[str]]]]:
    """Measures, column headers and data rows (line number, fields) of one stats file."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise StatsError(f"subject {subject}: {path} is missing") from None
    except UnicodeDecodeError:
        raise StatsError(f"subject {subject}: {path} is not a text stats file") from None
    if not text.endswith("\n"):
        raise StatsError(f"subject {subject}: {path} is truncated (its last line is incomplete)")
    measures: dict[str, float] = {}
    header: list[str] = []
    rows: list[tuple[int, list[str]]] = []
    n_rows = None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if line[0] != "#":
            fields = line.split()
            if header and len(fields) != len(header):
                raise StatsError(f"subject {subject}: {path}, line {number}: {len(fields)} fields where the "
                                 f"header has {len(header)} (truncated or malformed file)")
            rows.append((number, fields))
        elif line.startswith(MEASURE_PREFIX):
            parts = [p.strip() for p in line[len(MEASURE_PREFIX):].split(",")]
            try:
                measures[parts[1]] = float(parts[-2])
            except (IndexError, ValueError):
                raise StatsError(f"subject {subject}: {path}, line {number}: unreadable measure line") from None
        elif line.startswith("# ColHeaders"):
            header = line.split()[2:]
        elif line.startswith("# NRows"):
            n_rows = int(line.split()[2])
    if not header:
        raise StatsError(f"subject {subject}: {path} has no '# ColHeaders' line (truncated or not a stats file)")
    if n_rows is not None and len(rows) < n_rows:
        raise StatsError(f"subject {subject}: {path} is truncated ({len(rows)} of {n_rows} rows)")
    return measures, header, rows


def _column(rows, header, name: str, column: str, path: Path, subject: str) -> dict[str, float]:
    try:
        key_at, value_at = header.index(name), header.index(column)
    except ValueError:
        raise StatsError(f"subject {subject}: {path} has no column {column!r} or {name!r}") from None
    out = {}
    for number, fields in rows:
        try:
            out[fields[key_at]] = float(fields[value_at])
        except ValueError:
            raise StatsError(f"subject {subject}: {path}, line {number}, column {column!r}: "
                             f"{fields[value_at]!r} is not a number") from None
    return out


def read_subject(subject_dir: str | Path) -> pd.Series:
    """The 104 features and eTIV of one FreeSurfer subject.

    Returns a float Series indexed by :func:`feature_names`; structures the
    files do not have are NaN and listed in ``series.attrs["missing"]``.
    """
    subject_dir = Path(subject_dir)
    subject = subject_dir.name
    stats = subject_dir / "stats"
    aseg_names, aparc_names = _lookups()
    values: dict[str, float] = {}

    path = stats / "aseg.stats"
    measures, header, rows = parse_stats(path, subject)
    for name, volume in _column(rows, header, "StructName", "Volume_mm3", path, subject).items():
        if name in aseg_names:
            values[aseg_names[name]] = volume
    if "eTIV" in measures:
        values["eTIV"] = measures["eTIV"]
    elif "ICV" in measures:
        log.warning("subject %s: %s has no eTIV; using IntraCranialVol (FreeSurfer <= 5.1)", subject, path)
        values["eTIV"] = measures["ICV"]
    else:
        log.warning("subject %s: %s has neither eTIV nor IntraCranialVol: eTIV is NaN", subject, path)

    for hemi in ("lh", "rh"):
        path = stats / f"{hemi}.aparc.stats"
        _, header, rows = parse_stats(path, subject)
        for name, thickness in _column(rows, header, "StructName", "ThickAvg", path, subject).items():
            if name in aparc_names[hemi]:
                values[aparc_names[hemi][name]] = thickness

    series = pd.Series(values, dtype=float).reindex(feature_names())
    missing = series.index[series.isna()].tolist()
    if missing:
        log.warning("subject %s: %d feature(s) missing, set to NaN: %s", subject, len(missing), ", ".join(missing))
    series.attrs["missing"] = missing
    return series


def recon_all_status(subject_dir: str | Path) -> str | None:
    """None when a subject finished cleanly, else why it cannot be used.

    Finished means ``scripts/recon-all.done`` exists, there is no
    ``scripts/recon-all.error``, and ``recon-all.log`` does not end in
    FreeSurfer's failure line ("exited with ERRORS"; lines such as "ERROR
    RETURN OF LINE SEARCH" are normal FreeSurfer chatter and not failures).
    A folder without ``scripts/`` (stats shared without the rest) is judged
    by its stats: finished when the three stats files exist.
    """
    subject_dir = Path(subject_dir)
    scripts = subject_dir / "scripts"
    if not subject_dir.is_dir():
        return "subject directory does not exist"
    if not scripts.is_dir():  # shared stats-only folders: the stats decide
        missing = [f for f in STATS_FILES if not (subject_dir / "stats" / f).is_file()]
        return f"no scripts/ folder and stats/{', stats/'.join(missing)} missing" if missing else None
    if (scripts / "recon-all.error").exists():
        return "scripts/recon-all.error exists"
    log_file = scripts / "recon-all.log"
    if log_file.exists():
        with log_file.open("rb") as fh:
            fh.seek(max(0, log_file.stat().st_size - 4096))
            tail = fh.read().decode(errors="replace")
        if "exited with ERRORS" in tail:
            return "recon-all.log: recon-all exited with ERRORS"
    if not (scripts / "recon-all.done").exists():
        return "scripts/recon-all.done is missing (recon-all not finished)"
    return None


def read_subjects(subject_dirs: list[str], keys: list[dict],
                  incomplete: str = "exclude") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Features of many subjects; unfinished, failed or incomplete ones go to the exclusions table.

    ``keys`` are the identifying columns of each row (participant_id,
    session_id, ...), kept in front of the features. Returns (features,
    exclusions with ``excluded`` and ``reason`` columns). A subject whose
    stats are missing, truncated or malformed is excluded with the reason;
    with ``incomplete="error"`` every such subject is named in one
    :class:`IncompleteSubjectsError` instead. A subject kept without a
    ``scripts/`` folder is listed with ``excluded`` false and a note.
    """
    if incomplete not in ("exclude", "error"):
        raise ValueError(f"features.incomplete must be exclude or error, got {incomplete!r}")
    rows, excluded, problems = [], [], []
    for directory, key in zip(subject_dirs, keys, strict=True):
        reason = recon_all_status(directory)
        if reason is None:
            try:
                series = read_subject(directory)
            except StatsError as err:
                reason = str(err)
        if reason:
            problems.append(f"{Path(directory).name} ({directory}): {reason}")
            excluded.append({**key, "subject_dir": directory, "excluded": True, "reason": reason})
            continue
        if not (Path(directory) / "scripts").is_dir():
            excluded.append({**key, "subject_dir": directory, "excluded": False, "reason": NO_SCRIPTS_NOTE})
        rows.append({**key, **series.to_dict()})
    if problems and incomplete == "error":
        raise IncompleteSubjectsError(f"{len(problems)} FreeSurfer subject(s) cannot be used "
                                      "(features.incomplete: error; `exclude` leaves them out and lists them):\n  "
                                      + "\n  ".join(problems))
    key_columns = list(keys[0]) if keys else []
    features = pd.DataFrame(rows, columns=key_columns + feature_names())
    features[feature_names()] = features[feature_names()].astype(float)
    exclusions = pd.DataFrame(excluded, columns=key_columns + ["subject_dir", "excluded", "reason"])
    if problems:
        log.warning("%d subject(s) excluded: %s", len(problems), "; ".join(problems))
    return features, exclusions
