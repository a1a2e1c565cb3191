"""Calling PLINK 2 (and PLINK 1.9 for the sex check and clumping), and reading PLINK 1 filesets."""

from __future__ import annotations

import logging
import math
import os
import shutil
import subprocess
from pathlib import Path

import pandas as pd

log = logging.getLogger(__name__)

FAM = ["fid", "iid", "father", "mother", "sex", "phenotype"]
BIM = ["chrom", "snp", "cm", "pos", "a1", "a2"]


class GeneticsError(ValueError):
    """Genotype, phenotype or covariate input the GWAS cannot use."""

    plain = True  # a message for the user: the workflow's scripts print it without a traceback


def tool(name: str) -> str:
    """Path of a PLINK binary (``plink2`` or ``plink1.9``; ``plink`` is accepted for 1.9)."""
    for candidate in ([name, "plink"] if name == "plink1.9" else [name]):
        found = shutil.which(candidate)
        if found:
            return found
    raise GeneticsError(f"{name} is not on PATH: install it (Debian: apt-get install {name}; conda: envs/gwas.yaml)")


def run(name: str, *args: str, out: str | None = None, threads: int = 1, memory_mb: int | None = None) -> None:
    """Run PLINK; on failure raise with the end of its log (which names the bad file or line)."""
    command = [tool(name), *args, "--threads", str(threads)]
    if memory_mb:
        command += ["--memory", str(memory_mb)]
    if out:
        command += ["--out", out]
    log.info("%s", " ".join(Path(c).name if i == 0 else c for i, c in enumerate(command)))
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        text = Path(f"{out}.log").read_text() if out and os.path.exists(f"{out}.log") else done.stdout + done.stderr
        tail = "\n".join(line for line in text.splitlines()[-12:] if line.strip())
        raise GeneticsError(f"{name} {' '.join(args[:4])} ... failed (exit {done.returncode}):\n{tail}")


def read_fam(prefix: str) -> pd.DataFrame:
    """The .fam as strings; a line without exactly 6 fields is an error naming it."""
    rows = [line.split() for line in open(f"{prefix}.fam")]
    for i, fields in enumerate(rows, 1):
        if len(fields) != 6:
            raise GeneticsError(f"{prefix}.fam, line {i}: {len(fields)} fields, a .fam line has 6 (FID IID father "
                                "mother sex phenotype)")
    return pd.DataFrame(rows, columns=FAM, dtype=str)


def read_bim(prefix: str) -> pd.DataFrame:
    return pd.read_csv(f"{prefix}.bim", sep=r"\s+", header=None, names=BIM,
                       dtype={"chrom": str, "snp": str, "a1": str, "a2": str})


def count_lines(path: str) -> int:
    with open(path, "rb") as fh:
        return sum(1 for _ in fh)


def check_fileset(prefix: str) -> tuple[int, int]:
    """(samples, variants) of a PLINK 1 fileset, after checking that the .bed matches .fam and .bim."""
    for ext in ("bed", "bim", "fam"):
        if not os.path.exists(f"{prefix}.{ext}"):
            raise GeneticsError(f"{prefix}.{ext}: missing (a PLINK 1 fileset needs .bed, .bim and .fam)")
    n_samples, n_variants = count_lines(f"{prefix}.fam"), count_lines(f"{prefix}.bim")
    expected = 3 + math.ceil(n_samples / 4) * n_variants
    size = os.path.getsize(f"{prefix}.bed")
    with open(f"{prefix}.bed", "rb") as fh:
        magic = fh.read(3)
    if magic != b"\x6c\x1b\x01":
        raise GeneticsError(f"{prefix}.bed: not a variant-major PLINK 1 .bed (magic bytes {magic.hex()})")
    if size != expected:
        raise GeneticsError(f"{prefix}.bed: {size} bytes, but {n_samples} samples (.fam) x {n_variants} variants "
                            f"(.bim) need {expected}: the .bed is truncated or belongs to other .bim/.fam files")
    return n_samples, n_variants
