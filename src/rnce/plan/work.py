"""Every job of ``all``, with its work in units and the bytes it writes.

Each job is named by its benchmark file relative to ``{results}/benchmarks`` (``key``), so a run's measured
seconds can be matched to the work the plan gave that job (:mod:`rnce.plan.costs`). ``units`` drive the
job's time, ``mem_units`` its memory; which unit a rule uses is in ``UNITS``. The jobs follow the workflow's
rules (``workflow/rules/*.smk``); ``tests/test_plan.py`` checks them against a dry run's job counts.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from functools import cache

import numpy as np

from rnce.imaging.patches import box_slices
from rnce.imaging.template import template_grid
from rnce.plan.sizes import Sizes
from rnce.regions import read_regions
from rnce.workflow_config import CONTRASTIVE, feature_sets

RECONSTRUCTION = ("models_genesis", "lssl")
GPU_RULES = frozenset({"ssl_encoder", "ssl_aggregator", "ssl_reconstruction", "embed", "embed_regional",
                       "ssl_diagnostics", "ssl_validation"})
# rule -> (stage, unit of time, unit of memory)
UNITS = {
    "simulate": ("simulate", "image-Mvoxels", "-"),
    "inventory_shard": ("inventory", "images", "-"),
    "inventory_cohort": ("inventory", "images", "-"),
    "recon_all": ("features", "subjects (stated hours)", "-"),
    "features_shard": ("features", "images", "-"),
    "features_raw": ("features", "images", "images"),
    "harmonize": ("harmonize", "images", "images"),
    "preprocess_shard": ("register", "image-Mvoxels of the grid", "MB of patches per shard"),
    "registration_qc": ("register", "images", "images"),
    "intensity_features": ("register", "patch Mvoxels", "-"),
    "ssl_encoder": ("ssl", "training GFLOP", "batch x box Mvoxels x widths"),
    "ssl_aggregator": ("ssl", "encoder GFLOP", "image-boxes"),
    "ssl_reconstruction": ("ssl", "training GFLOP", "batch x image Mvoxels x base"),
    "ssl_validation": ("ssl", "encoder GFLOP", "image-boxes"),
    "ssl_ceiling": ("ssl", "patch Mvoxels", "image-Mvoxels of the largest box"),
    "ssl_curves": ("ssl", "jobs", "-"),
    "embed": ("embed", "encoder GFLOP", "image-boxes"),
    "embed_regional": ("embed", "encoder GFLOP", "image-boxes"),
    "ssl_diagnostics": ("embed", "encoder GFLOP", "image-boxes"),
    "evaluate_labels": ("evaluate", "images", "-"),
    "evaluate_probe": ("evaluate", "bootstrap x (q^3 + 69^3) / 1e6", "subject-features"),
    "evaluate_summary": ("evaluate", "bootstrap-sets", "-"),
    "brain_age_split": ("brain_age", "images", "-"),
    "brain_age_model": ("brain_age", "image-features", "image-features"),
    "brain_age_summary": ("brain_age", "image-sets", "-"),
    "gwas_qc": ("gwas", "M genotypes", "k samples"),
    "gwas_glm": ("gwas", "M genotypes", "k samples"),
    "gwas_report": ("gwas", "variants", "variants"),
    "fuma": ("gwas", "variants", "variants"),
    "ldsc_reference": ("ldsc", "M genotypes", "k samples"),
    "ldsc_munge": ("ldsc", "variants", "variants"),
    "ldsc_h2": ("ldsc", "variants", "variants"),
    "ldsc_rg": ("ldsc", "variant-pairs of sets", "variants"),
    "ldsc_cell_type": ("ldsc", "variants", "variants"),
    "ldsc_enrichment": ("ldsc", "variant-cell types", "variants"),
    "ldsc_summary": ("ldsc", "jobs", "-"),
}
PROBE_OVERHEAD_FEATURES = 69  # see probe_units
FS_FEATURES = 105  # rnce/data/freesurfer_features.tsv: the auxiliary matrix's 104 and eTIV
THREADS = {"recon_all": 4, "simulate": 2, "gwas_qc": 2, "gwas_glm": 2}  # the rules' own threads


@dataclass
class Job:
    rule: str
    key: str  # benchmark file relative to {results}/benchmarks
    units: float
    mem_units: float = 0.0
    disk_bytes: float = 0.0
    variant: str = ""  # a rule whose cost depends on more than its units (features_shard: the backend)

    @property
    def stage(self) -> str:
        return UNITS[self.rule][0]

    @property
    def gpu(self) -> bool:
        return self.rule in GPU_RULES

    @property
    def threads(self) -> int:
        return THREADS.get(self.rule, 1)


def encoder_gflop(widths: list[int], rep_dim: int, shape: tuple[int, ...]) -> float:
    """Forward GFLOP of one :class:`rnce.ssl.models.PatchEncoder` pass over a box of ``shape`` voxels
    (2 x 27 x c_in x c_out per output voxel of each 3x3x3 conv)."""
    w0, w1, w2, w3, w4 = widths
    layers = [(1, w0, 1), (w0, w0, 2)]
    previous = w0
    for width in (w1, w2, w3):
        layers += [(previous, width, 1), (width, width, 1), (width, width, 2)]
        previous = width
    layers += [(w3, w4, 1), (w4, rep_dim, 2)]
    flops, size = 0.0, np.asarray(shape, dtype=float)
    for c_in, c_out, stride in layers:
        if stride == 2:
            size = np.ceil(size / 2)
        flops += 2 * 27 * c_in * c_out * float(np.prod(size))
    return flops / 1e9


def unet_gflop(base: int, depth: int, rep_dim: int, size: int) -> float:
    """Forward GFLOP of the 3D U-Net (Models Genesis; the LSSL auto-encoder is of the same order)."""
    flops, previous = 0.0, 1
    for level in range(depth):
        width, voxels = base * 2 ** level, (size / 2 ** level) ** 3
        flops += 2 * 27 * voxels * (previous * width + width * width + 2 * width * width + width * width)
        previous = width
    flops += 2 * 27 * (size / 2 ** depth) ** 3 * (previous * rep_dim + rep_dim * rep_dim)
    return flops / 1e9


@cache
def box_shapes(regions_path: str, template: str | None, resolution: float) -> dict[str, tuple[int, int, int]]:
    """The voxel shape of every box on the patch grid (as the patch store cuts them)."""
    affine, shape = template_grid(template, resolution)
    slices = box_slices(read_regions(regions_path), affine, shape)
    return {b: tuple(s.stop - s.start for s in sl) for b, sl in slices.items()}


def _steps(n: int, batch: int) -> int:
    return max(1, n // batch)


def jobs(config: dict, sizes: Sizes, regions_path: str) -> list[Job]:
    """The jobs of ``all`` for ``config`` at ``sizes``."""
    reg = config["register"]
    shapes = box_shapes(regions_path, reg["template"], float(reg["resolution_mm"]))
    grid_mvox = math.prod(template_grid(reg["template"], float(reg["resolution_mm"]))[1]) / 1e6
    box_mvox = sum(math.prod(s) for s in shapes.values()) / 1e6
    whole = reg["whole_image_size"]
    patch_bytes = box_mvox * 1e6 * 3 + whole ** 3 * 2  # float16 patches + uint8 labels + the whole image
    if reg["save_registered"]:
        patch_bytes += grid_mvox * 1e6 * 2  # a registered image in .nii.gz: float32, about half compressed
    out: list[Job] = []
    imaged = [c for c in sizes.cohorts.values() if c.imaged]
    if config.get("simulate"):
        n_sim = sizes.images()
        out.append(Job("simulate", "simulate.tsv", n_sim * (200 / config["simulate"]["voxel_size_mm"]) ** 3 / 1e6))
    for c in imaged:
        for shard, n in c.shards.items():
            out.append(Job("inventory_shard", f"inventory/{c.name}/shard-{shard}.tsv", n))
            out.append(Job("preprocess_shard", f"register/{c.name}/shard-{shard}.tsv", n * grid_mvox,
                           n * patch_bytes / 1e6, n * patch_bytes))
        out.append(Job("inventory_cohort", f"inventory/{c.name}.tsv", c.images))
        out.append(Job("registration_qc", f"register/{c.name}_qc.tsv", c.images, c.images))
    for c in sizes.cohorts.values():
        if c.backend == "recon_all":
            out += [Job("recon_all", f"features/recon_all/{c.name}/{i}.tsv", 1) for i in range(c.images)]
        for shard, n in c.shards.items():
            out.append(Job("features_shard", f"features/{c.name}/shard-{shard}.tsv", n, variant=c.backend))
    n_all, n_imaged = sizes.images(), sizes.images(imaged_only=True)
    out.append(Job("features_raw", "features/raw.tsv", n_all, n_all))
    out.append(Job("harmonize", "harmonize.tsv", n_all, n_all))
    if imaged:
        out.append(Job("intensity_features", "features/intensity.tsv", n_imaged * box_mvox))
    out += _ssl_jobs(config, sizes, shapes, box_mvox, n_imaged)
    out += _evaluation_jobs(config, sizes, len(shapes))
    out += _genetics_jobs(config, sizes)
    return out


def _ssl_jobs(config: dict, sizes: Sizes, shapes: dict, box_mvox: float, n_imaged: int) -> list[Job]:
    ssl = config["ssl"]
    if not sizes.with_role("pretrain"):
        return []
    n_pre = sizes.images("pretrain")
    n_train = max(1, round(n_pre * (1 - ssl["validation_fraction"])))
    widths, rep = ssl["encoder_widths"], ssl["rep_dim"]
    gflop = {b: encoder_gflop(widths, rep, s) for b, s in shapes.items()}
    all_boxes = sum(gflop.values())
    n_boxes = len(shapes)
    evaluate_imaged = sum(c.images for c in sizes.with_role("evaluate") if c.imaged)
    out = []
    contrastive = [m for m in ssl["methods"] if m in CONTRASTIVE]
    s1, s2 = ssl["stage1"], ssl["stage2"]
    for m in contrastive:
        for box, shape in shapes.items():
            views = s1["epochs"] * _steps(n_train, s1["batch_size"]) * s1["batch_size"] * 2
            out.append(Job("ssl_encoder", f"ssl/{m}/encoder_{box}.tsv", views * 3 * gflop[box]
                           + n_pre * gflop[box], s1["batch_size"] * math.prod(shape) / 1e6 * sum(widths)))
        samples = s2["epochs"] * _steps(n_train, s2["batch_size"]) * s2["batch_size"]
        agg = 2 * 3 * ssl["aggregator_depth"] * n_boxes * 12 * rep ** 2 / 1e9  # a transformer layer: ~12 d^2 per token
        out.append(Job("ssl_aggregator", f"ssl/{m}/aggregator.tsv", n_pre * all_boxes + samples * agg,
                       n_pre * n_boxes))
        out.append(Job("ssl_curves", f"ssl/{m}/loss_curves.tsv", 1))
        if ssl["validation_fraction"] > 0 and evaluate_imaged:
            out.append(Job("ssl_validation", f"ssl/{m}/validation.tsv", n_pre * all_boxes, n_pre * n_boxes))
        if evaluate_imaged:
            out.append(Job("ssl_diagnostics", f"ssl/{m}/diagnostics.tsv", evaluate_imaged * all_boxes,
                           evaluate_imaged * n_boxes))
    if contrastive and evaluate_imaged:
        n, widest = n_pre + evaluate_imaged, max(math.prod(s) for s in shapes.values()) / 1e6
        out.append(Job("ssl_ceiling", "ssl/ceiling.tsv", n * box_mvox, n * widest))  # one box in memory at a time
    r = ssl["reconstruction"]
    whole = config["register"]["whole_image_size"]
    for m in [m for m in ssl["methods"] if m in RECONSTRUCTION]:
        g = unet_gflop(ssl["unet_base"], ssl["unet_depth"], rep, whole)
        out.append(Job("ssl_reconstruction", f"ssl/{m}/model.tsv",
                       r["epochs"] * _steps(n_pre, r["batch_size"]) * r["batch_size"] * 3 * g,
                       r["batch_size"] * whole ** 3 / 1e6 * ssl["unet_base"]))
        out.append(Job("ssl_curves", f"ssl/{m}/loss_curves.tsv", 1))
    for m in ssl["methods"]:
        per_image = all_boxes if m in CONTRASTIVE else unet_gflop(ssl["unet_base"], ssl["unet_depth"], rep, whole)
        out.append(Job("embed", f"embeddings/{m}.tsv", n_imaged * per_image, n_imaged * n_boxes,
                       n_imaged * rep * 12, "contrastive" if m in CONTRASTIVE else "reconstruction"))
    regional = {f for key in ("evaluate", "brain_age") for f in (config[key]["feature_sets"] or [])
                if f.endswith("_regional")}
    for f in sorted(regional):
        out.append(Job("embed_regional", f"embeddings/{f}.tsv", n_imaged * all_boxes, n_imaged * n_boxes,
                       n_imaged * (ssl["regional_components"] or n_boxes * rep) * 12))
    return out


def _sets(config: dict, sizes: Sizes, key: str) -> list[str]:
    cohorts = sizes.with_role(key)
    return feature_sets(config[key]["feature_sets"], key, all(c.imaged for c in cohorts), config["ssl"]["methods"],
                        bool(sizes.with_role("pretrain")))


def feature_count(name: str, ssl: dict, n_boxes: int) -> int:
    """Columns of a feature set: FreeSurfer's 104 + eTIV, 3 intensity numbers per box, an embedding's
    rep_dim, a regional set's components."""
    if name == "fs":
        return FS_FEATURES
    if name == "intensity":
        return 3 * n_boxes
    if name.endswith("_regional"):
        return ssl["regional_components"] or n_boxes * ssl["rep_dim"]
    return ssl["rep_dim"]


def probe_units(n_boot: int, features: int) -> float:
    """Work of one feature set's probes: per bootstrap sample, the inner cross-validation's (q x q) solves
    over the penalty grid and folds (q^3, q = features + 1), plus a per-sample cost measured on the demo to
    be that of a 69-feature solve (its probes' seconds per sample fall on 0.08 + 2.45e-7 q^3). The number of
    subjects barely matters next to these (the demo's 250 and the study's 850 cost the same per sample)."""
    return n_boot * ((features + 1) ** 3 + PROBE_OVERHEAD_FEATURES ** 3) / 1e6


def _evaluation_jobs(config: dict, sizes: Sizes, n_boxes: int) -> list[Job]:
    out, ssl = [], config["ssl"]
    if sizes.with_role("evaluate"):
        sets, n_boot = _sets(config, sizes, "evaluate"), config["evaluate"]["n_boot"]
        subjects, images = sizes.subjects("evaluate"), sizes.images("evaluate")
        out.append(Job("evaluate_labels", "evaluation/labels.tsv", images))
        out += [Job("evaluate_probe", f"evaluation/bootstrap/{f}.tsv", probe_units(n_boot, feature_count(f, ssl, n_boxes)),
                    subjects * feature_count(f, ssl, n_boxes)) for f in sets]
        out.append(Job("evaluate_summary", "evaluation/summary.tsv", n_boot * len(sets)))
    if sizes.with_role("brain_age"):
        sets, images = _sets(config, sizes, "brain_age"), sizes.images("brain_age")
        out.append(Job("brain_age_split", "brain_age/split.tsv", images))
        out += [Job("brain_age_model", f"brain_age/{f}.tsv", images * feature_count(f, ssl, n_boxes),
                    images * feature_count(f, ssl, n_boxes)) for f in sets]
        out.append(Job("brain_age_summary", "brain_age/summary.tsv", images * len(sets)))
    return out


def _genetics_jobs(config: dict, sizes: Sizes) -> list[Job]:
    if not sizes.with_role("gwas"):
        return []
    sets = config["gwas"]["phenotypes"] or _sets(config, sizes, "brain_age")
    geno, v = sizes.samples * sizes.variants / 1e6, sizes.variants
    sumstats = v * 120  # bytes per sumstats line
    held = sizes.samples / 1e3  # PLINK 2 streams the variants: its memory follows the samples
    out = [Job("gwas_qc", "gwas/qc.tsv", geno, held, geno * 1e6 / 4)]
    for f in sets:
        out += [Job("gwas_glm", f"gwas/{f}_glm.tsv", geno, held, sumstats),
                Job("gwas_report", f"gwas/{f}_report.tsv", v, v),
                Job("fuma", f"fuma/{f}_bag.tsv", v, v, v * 40),
                Job("ldsc_munge", f"ldsc/{f}_munge.tsv", v, v, v * 40),
                Job("ldsc_h2", f"ldsc/{f}_h2.tsv", v, v)]
    ldsc = config["ldsc"]
    if not (ldsc["reference"] and ldsc["weights"]):
        out.append(Job("ldsc_reference", "ldsc/reference.tsv", geno, held, v * 60))
    out.append(Job("ldsc_rg", "ldsc/rg.tsv", v * len(sets) * (len(sets) - 1) / 2, v))
    cell_types = _cell_types(config)
    if cell_types:
        out += [Job("ldsc_cell_type", f"ldsc/cell_types/{t}.tsv", v, v, v * 60) for t in cell_types]
        out += [Job("ldsc_enrichment", f"ldsc/{f}_cell_types.tsv", v * len(cell_types), v) for f in sets]
    out.append(Job("ldsc_summary", "ldsc/summary.tsv", 1))
    return out


def _cell_types(config: dict) -> list[str]:
    folder = config["ldsc"]["cell_type_beds"]
    if folder:
        return sorted(f[:-4] for f in os.listdir(folder) if f.endswith(".bed")) if os.path.isdir(folder) else []
    return list((config.get("simulate") or {}).get("cell_types", []))
