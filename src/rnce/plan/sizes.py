"""How big a run is: images per shard, subjects, and the genotypes' samples and variants.

A cohort's table is read where it exists (the exact sizes and shards). A simulated cohort whose table the
``simulate`` rule has not written yet is sized from the ``simulate`` section: its expected number of images
(visits are uniform on 1..max_visits, capped by scanned_visits), split evenly over the shard count the
workflow will use. Genotypes: the .fam and .bim line counts, or the simulated genome's size.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from rnce import cohort as cohorts_lib


@dataclass
class Cohort:
    name: str
    roles: list[str]
    imaged: bool
    backend: str
    shards: dict[str, int]  # shard label -> images
    subjects: int
    exact: bool  # read from the table (False: the simulate section's expectation)

    @property
    def images(self) -> int:
        return sum(self.shards.values())


@dataclass
class Sizes:
    cohorts: dict[str, Cohort]
    samples: int = 0  # genotyped samples of the gwas cohort
    variants: int = 0
    assumptions: list[str] = field(default_factory=list)

    def with_role(self, role: str) -> list[Cohort]:
        return [c for c in self.cohorts.values() if role in c.roles]

    def images(self, role: str | None = None, imaged_only: bool = False) -> int:
        chosen = self.with_role(role) if role else list(self.cohorts.values())
        return sum(c.images for c in chosen if c.imaged or not imaged_only)

    def subjects(self, role: str) -> int:
        return sum(c.subjects for c in self.with_role(role))


def expected_images(spec: dict) -> float:
    """Expected images of a simulated cohort (rnce.simulate.world: visits uniform on 1..max_visits)."""
    visits = spec.get("max_visits", 1)
    scanned = spec.get("scanned_visits") or visits
    mean_visits = sum(min(v, scanned) for v in range(1, visits + 1)) / visits
    return spec["n_subjects"] * mean_visits


def simulated_specs(config: dict) -> dict[str, dict]:
    """{cohort name: simulate entry} of the configured cohorts whose tables the simulate rule writes."""
    sim = config.get("simulate") or {}
    out = {}
    for name, spec in config["cohorts"].items():
        for s, entry in sim.get("cohorts", {}).items():
            if spec.get("participants") == f"{config['results']}/demo/participants/{s}.tsv":
                out[name] = entry
    return out


def _even_shards(n_images: int, per_shard: int) -> dict[str, int]:
    n = cohorts_lib.shard_count(n_images, per_shard)
    base, extra = divmod(n_images, n)
    return {f"{i:0{cohorts_lib.SHARD_WIDTH}d}": base + (i < extra) for i in range(n)}


def _line_count(path: str) -> int:
    with open(path, "rb") as f:
        return sum(1 for _ in f)


def measure(config: dict) -> Sizes:
    """The sizes of the run ``config`` describes (validated config, defaults filled in)."""
    per_shard = config["sharding"]["images_per_shard"]
    simulated = simulated_specs(config)
    cohorts, notes = {}, []
    for name, spec in config["cohorts"].items():
        roles, imaged = list(spec["roles"]), bool(spec.get("images", True))
        sim = simulated.get(name)
        if sim is not None and not os.path.exists(spec["participants"]):
            n = round(expected_images(sim))
            backend = "subjects_dir" if spec.get("subjects_dir") else cohorts_lib.features_backend(name, spec)
            cohorts[name] = Cohort(name, roles, imaged, backend, _even_shards(n, per_shard), sim["n_subjects"], False)
            notes.append(f"cohort {name}: {n} images expected from simulate ({sim['n_subjects']} subjects)")
            continue
        table = cohorts_lib.assign_shards(cohorts_lib.load_cohort(name, spec, config["results"]), per_shard)
        counts = table["shard"].value_counts().sort_index()
        cohorts[name] = Cohort(name, roles, imaged, str(table["features_backend"].iloc[0]),
                               {str(k): int(v) for k, v in counts.items()}, int(table["participant_id"].nunique()),
                               True)
    sizes = Sizes(cohorts, assumptions=notes)
    gwas = sizes.with_role("gwas")
    if gwas:
        prefix = config["cohorts"][gwas[0].name]["genotypes"]
        if os.path.exists(f"{prefix}.bim") and os.path.exists(f"{prefix}.fam"):
            sizes.samples, sizes.variants = _line_count(f"{prefix}.fam"), _line_count(f"{prefix}.bim")
        else:
            genetics = (config.get("simulate") or {}).get("genetics", {})
            sizes.samples = gwas[0].subjects + genetics.get("genotyped_only", 0)
            sizes.variants = (len(genetics.get("chromosomes", [])) * genetics.get("variants_per_chromosome", 0)
                              + genetics.get("x_variants", 0))
            notes.append(f"genotypes: {sizes.samples} samples x {sizes.variants} variants expected from simulate")
    return sizes
