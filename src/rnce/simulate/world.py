"""The simulated world: three cohorts like the paper's, with planted truth.

``simulate_world(cfg, out_dir, threads)`` writes, under ``out_dir``::

    participants/{cohort}.tsv          the participants tables (the pipeline's input)
    images/{cohort}/*_T1w.nii.gz       T1w images (cohorts with images)
    freesurfer/{cohort}/{pid}_{ses}/   FreeSurfer-format stats/ and scripts/recon-all.done
    genotypes/gwas.{bed,bim,fam}       PLINK 1 genotypes of the gwas cohort
    annotations/{cell_type}.bed        open-chromatin peaks per cell type
    truth/                             latent values per image, causal variants, sample truth
    ground_truth.json                  what tests and checks compare against

No pipeline stage reads ``truth/`` or ``ground_truth.json``.
"""

from __future__ import annotations

import json
import logging
import os
from multiprocessing import get_context
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from rnce.io import atomic_path, write_text, write_tsv
from rnce.simulate import anatomy as an
from rnce.simulate import freesurfer as fs
from rnce.simulate import genotypes as gt
from rnce.simulate import images as im

log = logging.getLogger(__name__)

EVALUATE_BASELINE = {"CN": 0.368, "MCI": 0.46, "AD": 0.172}  # ADNI at baseline (paper, Table 1)
AMYLOID_SHIFT = {"CN": 0.0, "MCI": 0.5, "AD": 1.2}
AMYLOID_POSITIVE = 0.3  # latent load above which amyloid status is positive
VENTRICLES = ("Left-Lateral-Ventricle", "Right-Lateral-Ventricle")
NON_TISSUE = ("Ventricle", "Vent", "CSF", "choroid", "hypointensities")

_SPACE: im.TemplateSpace | None = None  # shared with forked workers


def _sites(cohort: str, n: int) -> list[str]:
    return [f"{cohort}-s{k + 1}" for k in range(n)]


def _site_effects(rng: np.random.Generator, sites: list[str], anat: pd.DataFrame, site_sd: float) -> dict[str, dict]:
    effects = {}
    for k, site in enumerate(sites):
        effects[site] = {
            "intensity_scale": float(rng.uniform(0.8, 1.25)),
            "bias_strength": float(rng.uniform(0.1, 0.4)),
            "noise_sd": float(rng.uniform(0.015, 0.045)),
            "gm_contrast": float(rng.uniform(0.93, 1.07)),
            # FreeSurfer measurement offsets: global + per structure
            "fs_offset": rng.normal(rng.normal(0, site_sd), site_sd, len(anat)),
            "flavour": "fs6" if (k == len(sites) - 1 and len(sites) > 1) else "fs7",
        }
    return effects


def _people(rng, cohort, spec, anat, noise, focal, acceleration=None, sexes=None):
    sites = _sites(cohort, spec["sites"])
    n = spec["n_subjects"]
    people = []
    for i in range(n):
        acc = rng.normal(0.0, noise["acceleration_sd"]) if acceleration is None else acceleration[i]
        p = an.draw_person(rng, f"{cohort[:3]}{i + 1:05d}", sites[i % len(sites)], anat, acc,
                           noise["idiosyncrasy_sd"], noise["shared_sd"], focal["noise_sd"], noise["atrophy_sd"])
        if sexes is not None:
            p.sex = sexes[i]
        people.append(p)
    return people, sites


def _sessions(rng: np.random.Generator, cohort: str, spec: dict, people: list[an.Person]) -> list[dict]:
    """One record per image: age, severity, diagnosis and the clinical columns."""
    lo, hi = spec["age_range"]
    records = []
    half_sites = set(_sites(cohort, spec["sites"])[: max(1, spec["sites"] // 2)])
    for p in people:
        if cohort == "evaluate":
            dx0 = rng.choice(list(EVALUATE_BASELINE), p=list(EVALUATE_BASELINE.values()))
            p.amyloid_load += AMYLOID_SHIFT[dx0]
            d0, rate = an.evaluate_trajectory(rng, dx0, p.amyloid_load)
            times = an.visit_times(rng, spec["max_visits"])
            age0 = rng.uniform(lo, hi - times[-1]) if hi - times[-1] > lo else lo
            severities = np.minimum(d0 + rate * times, 1.0)
            dx = [an.diagnosis_of(d) for d in severities]
            ad_times = [t for t, x in zip(times, dx, strict=True) if x == "AD"]
            measured = rng.random() < spec.get("amyloid_measured_fraction", 0.8)
            scanned = spec.get("scanned_visits") or len(times)
            for k, (t, d, x) in enumerate(zip(times[:scanned], severities, dx, strict=False)):
                records.append({
                    "person": p, "session_id": f"ses-{k + 1:02d}", "age": age0 + t, "severity": d,
                    "diagnosis": x,
                    "amyloid": int(p.amyloid_load > AMYLOID_POSITIVE) if measured else None,
                    "years_to_ad": max(ad_times[0] - t, 0.0) if ad_times else None,
                    "followup_years": times[-1] - t,
                })
            continue
        demented = cohort == "pretrain" and rng.random() < spec.get("dementia_fraction", 0.0)
        times = an.visit_times(rng, spec.get("max_visits", 1)) * 2.0
        age0 = rng.uniform(lo, max(lo, hi - times[-1]))
        d0 = rng.uniform(an.AD_THRESHOLD, 0.9) if demented else rng.uniform(0.0, 0.08)
        for k, t in enumerate(times):
            d = min(d0 + (0.05 * t if demented else 0.0), 1.0)
            known = cohort == "pretrain" and p.site not in half_sites
            records.append({
                "person": p, "session_id": f"ses-{k + 1:02d}", "age": age0 + t, "severity": d,
                "diagnosis": an.diagnosis_of(d) if known else "unknown",
                "amyloid": None, "years_to_ad": None, "followup_years": None,
            })
    return records


def _render_one(task: dict) -> None:
    space = _SPACE
    rng = np.random.default_rng(task["seed"])
    gm, wm = im.atrophied_tissue(space, task["loss"], task["ventricle_scale"])
    gm = im.focal_thinning(space, gm, task["focal_thinning"])
    intensity = im.template_intensity(space, gm, wm, task["amyloid_signal"], task["gm_contrast"])
    pose = im.pose_matrix(np.array(task["angles"]), np.array(task["translation"]), task["scale"])
    data, affine = im.render(space, intensity, pose, rng, task["intensity_scale"], task["bias_strength"],
                             task["noise_sd"])
    img = im.to_nifti(data, affine, task["orientation"])
    with atomic_path(task["path"]) as tmp:
        nib.save(img, tmp)


def _genetics(rng: np.random.Generator, n_imaged: int, genetics: dict, acceleration_sd: float):
    """Genotype panel of the gwas cohort (imaged people first) and their brain-age acceleration."""
    n_geno = n_imaged + genetics["genotyped_only"]
    reported = np.where(rng.random(n_geno) < 0.5, "M", "F")
    panel = gt.simulate_panel(rng, n_geno, reported, genetics)
    var = acceleration_sd**2
    effects, g_value = gt.causal_effects(rng, panel, genetics["n_causal"], genetics["bag_snp_h2"],
                                         genetics["strong_locus_variance"], var)
    env = gt.environmental_noise(rng, g_value, (1 - genetics["bag_snp_h2"]) * var)
    iids = [f"Ggwa{i + 1:05d}" for i in range(n_imaged)] + [f"Gext{i + 1:05d}" for i in range(genetics["genotyped_only"])]
    return panel, effects, reported, iids, (g_value + env)[:n_imaged]


def _genetics_truth(panel: gt.Panel, effects: pd.DataFrame, reported: np.ndarray, iids: list[str],
                    cfg: dict) -> dict:
    genetics = cfg["genetics"]
    return {
        "causal_variants": effects["snp"].tolist(),
        "strong_locus": {**effects.iloc[0][["snp", "chrom"]].to_dict(), "pos": int(effects.iloc[0]["pos"]),
                         "variance_fraction": genetics["strong_locus_variance"]},
        # SNP heritability of the latent brain-age acceleration; a BAG estimated from
        # features has bag_snp_h2 times its reliability (its squared correlation with it)
        "bag_snp_h2": genetics["bag_snp_h2"],
        "acceleration_sd": cfg["noise"]["acceleration_sd"],
        "enriched_cell_type": cfg["enriched_cell_type"],
        "cell_types": list(cfg["cell_types"]),
        "planted_variants": {k: int(v) for k, v in panel.variants["kind"].value_counts().items()},
        "sex_mismatches": [iids[i] for i in np.flatnonzero(panel.genetic_sex != reported)],
        "related_pairs": [[iids[j], iids[i]] for i, j in enumerate(panel.related_to) if j >= 0],
        "high_missing_samples": [iids[i] for i in panel.high_missing_samples],
    }


def _write_genetics(out: Path, rng: np.random.Generator, panel: gt.Panel, effects: pd.DataFrame,
                    reported: np.ndarray, iids: list[str], cfg: dict) -> None:
    gt.write_plink(panel, out / "genotypes" / "gwas", iids, reported)
    gt.write_cell_type_beds(rng, panel.variants, effects, out / "annotations", cfg["cell_types"],
                            cfg["enriched_cell_type"])
    write_tsv(effects, out / "truth" / "causal_variants.tsv")
    write_tsv(pd.DataFrame({
        "iid": iids, "reported_sex": reported, "genetic_sex": panel.genetic_sex, "ancestry": panel.ancestry,
        "related_to": [iids[j] if j >= 0 else "" for j in panel.related_to],
        "high_missing": np.isin(np.arange(len(iids)), panel.high_missing_samples),
    }), out / "truth" / "genotype_samples.tsv")


def _relative_to_template(anat: pd.DataFrame, values: np.ndarray, etiv: np.ndarray) -> np.ndarray:
    """Relative difference of each structure from its base (volumes at the image's head size)."""
    reference = np.tile(anat["base"].to_numpy(float), (len(values), 1))
    is_volume = (anat["kind"] == "volume").to_numpy()
    reference[:, is_volume] *= etiv[:, None] / an.REFERENCE_ETIV
    return values / reference - 1.0


def _image_task(rng: np.random.Generator, cfg: dict, path: Path, rel: np.ndarray, tissue: np.ndarray,
                ventricles: list[int], person: an.Person, site: dict) -> dict:
    """Everything needed to render one image, drawn now so that rendering can run in any order."""
    pose = cfg["pose"]
    return {
        "path": str(path),
        "seed": int(rng.integers(2**31)),
        # the template stands for anatomy 10% thicker than base, so both directions show
        "loss": np.clip(0.1 - rel, 0.0, 0.9) * tissue,
        "ventricle_scale": float(np.mean(1 + rel[ventricles]) ** (1 / 3)),
        "amyloid_signal": cfg["amyloid_signal"] * max(person.amyloid_load, 0.0),
        "focal_thinning": an.focal_thinning(person, cfg["focal"]["depth"]),
        "angles": rng.uniform(-pose["max_rotation_deg"], pose["max_rotation_deg"], 3).tolist(),
        "translation": rng.uniform(-pose["max_translation_mm"], pose["max_translation_mm"], 3).tolist(),
        "scale": float((person.etiv / an.REFERENCE_ETIV) ** (1 / 3)),
        "orientation": "RAS" if rng.random() >= cfg["non_ras_fraction"] else str(rng.choice(im.ORIENTATIONS[1:])),
        **{k: site[k] for k in ("intensity_scale", "bias_strength", "noise_sd", "gm_contrast")},
    }


def _clinical_columns(cohort: str, record: dict) -> dict:
    row = {"age": round(record["age"], 2), "sex": record["person"].sex, "site": record["person"].site,
           "diagnosis": record["diagnosis"]}
    if cohort == "evaluate":
        amyloid, years, follow = record["amyloid"], record["years_to_ad"], record["followup_years"]
        row["amyloid"] = "" if amyloid is None else amyloid
        row["years_to_ad"] = "" if years is None else round(years, 2)
        row["followup_years"] = round(follow, 2)
    return row


def _render_all(tasks: list[dict], anat: pd.DataFrame, voxel_size: float, focal_radius: float, threads: int) -> None:
    global _SPACE
    centroids = anat[["x", "y", "z"]].to_numpy(float)
    sigmas = np.where(anat["kind"] == "thickness", 14.0, 6.0)
    _SPACE = im.load_template_space(voxel_size, centroids, sigmas, focal_radius)
    log.info("rendering %d images at %.1f mm with %d process(es)", len(tasks), voxel_size, threads)
    if threads > 1:
        with get_context("fork").Pool(threads) as pool:
            pool.map(_render_one, tasks, chunksize=4)
    else:
        for task in tasks:
            _render_one(task)


def simulate_world(cfg: dict, out_dir: str | os.PathLike, threads: int = 1) -> dict:
    """Write the simulated world described by the ``simulate`` config block; return the ground truth."""
    out = Path(out_dir)
    rng = np.random.default_rng(cfg["seed"])
    anat = an.anatomy_table()
    noise = cfg["noise"]
    dk = anat[(anat["kind"] == "thickness") & (anat["hemi"] == "lh")]
    regions = [n[3:] for n in dk["name"]]
    area = dk["surface_area"].to_numpy(float)
    tissue = (~anat["name"].str.contains("|".join(NON_TISSUE))).to_numpy(float)
    ventricles = [int(np.flatnonzero(anat["name"] == v)[0]) for v in VENTRICLES]
    precuneus = np.flatnonzero(anat["name"].isin(["lh_precuneus", "rh_precuneus"]))

    truth: dict = {"sites": {}, "cohorts": {}, "seed": cfg["seed"], "voxel_size_mm": cfg["voxel_size_mm"]}
    for folder in ("participants", "truth", "images", "freesurfer"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    tasks: list[dict] = []

    for cohort, spec in cfg["cohorts"].items():
        acceleration = sexes = None
        if cohort == "gwas":
            panel, effects, reported, iids, acceleration = _genetics(
                rng, spec["n_subjects"], cfg["genetics"], noise["acceleration_sd"])
            sexes = reported[: spec["n_subjects"]]
        people, sites = _people(rng, cohort, spec, anat, noise, cfg["focal"], acceleration, sexes)
        site_fx = _site_effects(rng, sites, anat, noise["site_sd"])
        truth["sites"][cohort] = sites
        records = _sessions(rng, cohort, spec, people)
        brain_age = np.array([r["age"] + r["person"].acceleration for r in records])
        etiv = np.array([r["person"].etiv for r in records])
        values = an.true_values(anat, brain_age, np.array([r["severity"] * r["person"].atrophy_factor for r in records]),
                                np.stack([r["person"].idiosyncrasy for r in records]), etiv)
        focal = np.array([an.focal_thinning(r["person"], cfg["focal"]["depth"]) for r in records])
        values[:, precuneus] *= (1.0 - im.focal_share(cfg["focal"]["radius_mm"]) * focal)[:, None]
        rel = _relative_to_template(anat, values, etiv)
        if spec["images"]:
            (out / "images" / cohort).mkdir(parents=True, exist_ok=True)

        table_rows, latent_rows = [], []
        for i, r in enumerate(records):
            p: an.Person = r["person"]
            site = site_fx[p.site]
            name = f"{p.participant_id}_{r['session_id']}"
            measured = values[i] * (1 + site["fs_offset"]) * (1 + rng.normal(0, noise["measurement_sd"], len(anat)))
            meas = dict(zip(anat["name"], measured, strict=True))
            fs.write_subject(
                out / "freesurfer" / cohort / name,
                {k: v for k, v in meas.items() if not k.startswith(("lh_", "rh_"))},
                np.array([meas[f"lh_{g}"] for g in regions]), np.array([meas[f"rh_{g}"] for g in regions]),
                regions, area * (p.etiv / an.REFERENCE_ETIV) ** (2 / 3), p.etiv * rng.normal(1.0, 0.01), rng,
                site["flavour"])
            row = {"participant_id": p.participant_id, "session_id": r["session_id"]}
            latent = {**row, "site": p.site, "brain_age": brain_age[i], "acceleration": p.acceleration,
                      "severity": r["severity"], "amyloid_load": p.amyloid_load, "focal_thinning": focal[i],
                      "etiv": p.etiv,
                      "fs_flavour": site["flavour"]}
            if spec["images"]:
                row["t1w"] = f"../images/{cohort}/{name}_T1w.nii.gz"
                task = _image_task(rng, cfg, out / "images" / cohort / f"{name}_T1w.nii.gz", rel[i], tissue,
                                   ventricles, p, site)
                tasks.append(task)
                latent.update({k: task[k] for k in ("scale", "orientation", "amyloid_signal", "ventricle_scale")})
                latent.update({f"rotation_{a}": v for a, v in zip("xyz", task["angles"], strict=True)})
                latent.update({f"translation_{a}": v for a, v in zip("xyz", task["translation"], strict=True)})
            row.update(_clinical_columns(cohort, r))
            if cohort == "gwas":
                # a few imaged people were never genotyped
                genotyped = rng.random() < cfg["genetics"]["imaged_genotyped_fraction"]
                row["genotype_id"] = f"G{p.participant_id}" if genotyped else ""
            table_rows.append(row)
            latent_rows.append(latent)
        write_tsv(pd.DataFrame(table_rows), out / "participants" / f"{cohort}.tsv")
        write_tsv(pd.DataFrame(latent_rows), out / "truth" / f"{cohort}_latent.tsv")
        truth["cohorts"][cohort] = {"images": len(table_rows), "subjects": len(people)}
        if cohort == "gwas":
            _write_genetics(out, rng, panel, effects, reported, iids, cfg)
            truth.update(_genetics_truth(panel, effects, reported, iids, cfg))

    if tasks:
        _render_all(tasks, anat, cfg["voxel_size_mm"], cfg["focal"]["radius_mm"], threads)
    truth["planted_image_signal"] = {
        "focal_thinning": (
            f"grey matter thinned (lost to CSF) by the latent focal_thinning fraction in a {cfg['focal']['radius_mm']} mm "
            f"sphere at MNI {im.PCC_CENTRE} (medial precuneus, both hemispheres); focal_thinning = depth x "
            "clip((amyloid_load + focal_noise) / 2.5, 0, 1); FreeSurfer's precuneus thickness moves by only "
            f"{100 * im.focal_share(cfg['focal']['radius_mm']):.1f}% of it, within its measurement noise"),
        "grey_matter_intensity": (
            "grey-matter intensity rises with latent amyloid load (amyloid_signal * max(load, 0)) in a "
            f"Gaussian region (sigma {im.PCC_SIGMA} mm) at MNI {im.PCC_CENTRE}; thickness and volumes do not carry it"),
    }
    write_text(json.dumps(truth, indent=2, default=str), out / "ground_truth.json")
    return truth
