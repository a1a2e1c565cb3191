"""Cohorts: participants tables (or BIDS roots), their validation, and image shards.

A cohort is one participants table with one row per T1-weighted image and the
columns of ``schemas/participants.schema.yaml`` (checked by :mod:`rnce.participants`,
naming the file, line and column). This module reads tables and BIDS roots, resolves
a cohort's roles and feature backend, and shards its images.

Images are grouped into shards by a stable hash of ``participant_id``, so that
per-image steps run as a few hundred jobs at 35,000 images, all images of one
participant share a shard, adding a participant changes one shard only, and no
participant id appears in a job's wildcards.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from rnce.participants import CohortError, validate_participants

log = logging.getLogger(__name__)

ROLES = ("pretrain", "evaluate", "brain_age", "gwas")
FEATURE_BACKENDS = ("subjects_dir", "recon_all", "ants")
SHARD_WIDTH = 4


def read_participants(path: str | os.PathLike, *, images: bool = True, site: str | None = None) -> pd.DataFrame:
    """Read and validate one participants TSV (see :func:`validate_participants`)."""
    path = Path(path)
    if not path.exists():
        raise CohortError(f"participants table {path} does not exist")
    try:
        raw = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, na_filter=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise CohortError(f"participants table {path} cannot be read as TSV: {err}") from err
    return validate_participants(raw, str(path), base_dir=path.parent, images=images, site=site)


def read_bids(root: str | os.PathLike, *, images: bool = True, site: str | None = None) -> pd.DataFrame:
    """Build a participants table from a BIDS root with pybids.

    One row per ``anat/*_T1w.nii[.gz]``; subject-level columns come from
    ``participants.tsv``, session-level ones (``age``, ...) from
    ``sub-*/sub-*_sessions.tsv`` where present and win over subject-level ones.
    ``participant_id`` and ``session_id`` keep the BIDS prefixes (``sub-01``,
    ``ses-1``); a session-less dataset gets ``session_id`` "ses-1"; several
    runs of one session give "ses-1_run-2".
    """
    from bids import BIDSLayout, BIDSLayoutIndexer

    root = Path(root)
    table = root / "participants.tsv"
    if not table.exists():
        raise CohortError(f"BIDS root {root} has no participants.tsv")
    layout = BIDSLayout(str(root), validate=False, indexer=BIDSLayoutIndexer(index_metadata=False))
    subjects = pd.read_csv(table, sep="\t", dtype=str, keep_default_na=False)
    if "participant_id" not in subjects.columns:
        raise CohortError(f"{table}, column 'participant_id': required column is missing")
    subjects = subjects.set_index("participant_id")
    rows, origins = [], []
    for f in layout.get(suffix="T1w", extension=[".nii", ".nii.gz"], datatype="anat"):
        ent = f.get_entities()
        pid = f"sub-{ent['subject']}"
        ses = f"ses-{ent['session']}" if "session" in ent else "ses-1"
        if "run" in ent:
            ses += f"_run-{ent['run']}"
        row = {"participant_id": pid, "session_id": ses, "t1w": f.path}
        origin = dict.fromkeys(row, f.path)
        if pid in subjects.index:
            row.update(subjects.loc[pid].to_dict())
            origin.update(dict.fromkeys(subjects.columns, str(table)))
        sessions_tsv = root / pid / f"{pid}_sessions.tsv"
        if "session" in ent and sessions_tsv.exists():
            sess = pd.read_csv(sessions_tsv, sep="\t", dtype=str, keep_default_na=False)
            match = sess[sess["session_id"] == f"ses-{ent['session']}"]
            if len(match):
                values = {k: v for k, v in match.iloc[0].to_dict().items() if k != "session_id"}
                row.update(values)
                origin.update(dict.fromkeys(values, str(sessions_tsv)))
        rows.append(row)
        origins.append(origin)
    if not rows:
        raise CohortError(f"BIDS root {root}: no anat T1w images found: the cohort has no images")
    raw = pd.DataFrame(rows).fillna("").astype(str)
    order = raw.sort_values(["participant_id", "session_id"]).index
    raw = raw.loc[order].reset_index(drop=True)
    sources = pd.DataFrame(origins).reindex(columns=raw.columns).loc[order].reset_index(drop=True)
    if site is not None:
        sources["site"] = sources["site"].fillna("the cohort's config (site)") if "site" in sources else \
            "the cohort's config (site)"
    sources = sources.fillna(str(table))
    labels = np.array([f"{p} {s}" for p, s in zip(raw["participant_id"], raw["session_id"], strict=True)])
    return validate_participants(raw, f"{root} (BIDS)", images=images, lines=labels, site=site,
                                 cell_sources=sources)


def features_backend(name: str, spec: dict) -> str:
    """The structural-feature backend of a cohort; ``auto`` resolves as ARCHITECTURE says.

    An existing SUBJECTS_DIR (``subjects_dir`` given) is ingested; otherwise
    recon-all runs if FreeSurfer is on PATH; otherwise the ANTs fallback.
    """
    backend = spec.get("features", "auto")
    if backend == "auto":
        if spec.get("subjects_dir"):
            backend = "subjects_dir"
        elif shutil.which("recon-all"):
            backend = "recon_all"
        else:
            backend = "ants"
    if backend not in FEATURE_BACKENDS:
        raise CohortError(f"cohort '{name}': unknown features backend {backend!r}; one of {FEATURE_BACKENDS} or auto")
    if backend == "subjects_dir" and not spec.get("subjects_dir"):
        raise CohortError(f"cohort '{name}': features backend subjects_dir needs 'subjects_dir'")
    if backend != "subjects_dir" and not spec.get("images", True):
        raise CohortError(f"cohort '{name}': features backend {backend} needs images, but images is false")
    return backend


def image_key(cohort: str, participant_id: str, session_id: str) -> str:
    """A pseudonymous key of one image (for per-image jobs' wildcards): 12 hex digits of a hash."""
    return hashlib.blake2b(f"{cohort}\t{participant_id}\t{session_id}".encode(), digest_size=6).hexdigest()


def load_cohort(name: str, spec: dict, results: str = "results") -> pd.DataFrame:
    """Read one configured cohort and check that its roles find what they need.

    ``spec`` is the cohort's config entry: ``participants`` (TSV) or ``bids``
    (root), ``roles``, ``images`` (default true), ``genotypes`` for gwas,
    ``features`` and ``subjects_dir`` for the structural features. Adds the
    columns ``cohort``, ``image_key`` (:func:`image_key`), ``features_backend`` and, for FreeSurfer backends,
    ``freesurfer_dir`` (``{subjects_dir}/{freesurfer_id}``, by default
    ``{participant_id}_{session_id}``; recon-all writes to
    ``{results}/freesurfer/{cohort}`` unless ``subjects_dir`` is given).
    """
    roles = spec.get("roles", [])
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        raise CohortError(f"cohort '{name}': unknown role(s) {unknown}; roles are {list(ROLES)}")
    if not roles:
        raise CohortError(f"cohort '{name}': no roles given; roles are {list(ROLES)}")
    images = spec.get("images", True)
    if spec.get("participants") and spec.get("bids"):
        raise CohortError(f"cohort '{name}': give either 'participants' or 'bids', not both")
    if spec.get("participants"):
        table = read_participants(spec["participants"], images=images, site=spec.get("site"))
        source = str(spec["participants"])
    elif spec.get("bids"):
        table = read_bids(spec["bids"], images=images, site=spec.get("site"))
        source = f"{spec['bids']} (BIDS)"
    else:
        raise CohortError(f"cohort '{name}': neither 'participants' nor 'bids' is given")
    if "pretrain" in roles and not images:
        raise CohortError(f"cohort '{name}': role pretrain needs images, but images is false")
    if "gwas" in roles:
        if "genotype_id" not in table.columns:
            raise CohortError(f"{source}, column 'genotype_id': required for role gwas, missing")
        if not spec.get("genotypes"):
            raise CohortError(f"cohort '{name}': role gwas needs 'genotypes' (a PLINK 1 prefix)")
    if "evaluate" in roles and (table["diagnosis"] == "unknown").all():
        raise CohortError(f"{source}, column 'diagnosis': role evaluate needs diagnoses, all are unknown")
    table.insert(2, "cohort", name)
    table["image_key"] = [image_key(name, p, s) for p, s in zip(table["participant_id"], table["session_id"],
                                                                   strict=True)]
    backend = features_backend(name, spec)
    table["features_backend"] = backend
    if backend != "ants":
        subjects_dir = spec.get("subjects_dir") or f"{results}/freesurfer/{name}"
        fs_id = table["freesurfer_id"] if "freesurfer_id" in table.columns else pd.Series(None, index=table.index)
        fs_id = fs_id.fillna(table["participant_id"] + "_" + table["session_id"])
        dup = fs_id.duplicated(keep=False)
        if dup.any():
            shown = ", ".join(sorted(set(fs_id[dup]))[:10])
            raise CohortError(f"{source}, column 'freesurfer_id': several images map to one FreeSurfer subject: {shown}")
        table["freesurfer_dir"] = [os.path.join(subjects_dir, f) for f in fs_id]
    return table


def shard_count(n_images: int, images_per_shard: int) -> int:
    """Number of shards: the power of two nearest above ``n_images / images_per_shard``.

    A power of two keeps the count (and so every shard's membership) unchanged
    when a few participants are added.
    """
    if images_per_shard < 1:
        raise CohortError(f"images_per_shard must be >= 1, got {images_per_shard}")
    need = max(1, math.ceil(n_images / images_per_shard))
    return min(2 ** math.ceil(math.log2(need)), 10**SHARD_WIDTH)


def shard_of(participant_id: str, n_shards: int) -> str:
    """The shard label of one participant: a stable hash, zero-padded."""
    digest = hashlib.blake2b(participant_id.encode(), digest_size=8).digest()
    return f"{int.from_bytes(digest, 'big') % n_shards:0{SHARD_WIDTH}d}"


def assign_shards(table: pd.DataFrame, images_per_shard: int) -> pd.DataFrame:
    """Add a ``shard`` column; the shard count follows :func:`shard_count`."""
    n = shard_count(len(table), images_per_shard)
    out = table.copy()
    out["shard"] = [shard_of(p, n) for p in out["participant_id"]]
    return out



def cohort_records(specs: dict[str, dict], results: str, columns: list[str]) -> list[dict]:
    """The rows of configured cohorts (``{name: config entry}``), read and validated, as records with a
    ``cohort`` key and those of ``columns`` the tables have (None for an empty cell)."""
    rows = []
    for name, spec in specs.items():
        table = load_cohort(name, spec, results)
        present = table[[c for c in columns if c in table.columns]]
        rows += [{"cohort": name, **r} for r in present.astype(object).where(present.notna(), None).to_dict("records")]
    return rows
