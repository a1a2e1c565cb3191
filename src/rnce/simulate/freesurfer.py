"""FreeSurfer-format outputs of simulated subjects, in the layout of a SUBJECTS_DIR.

Writes ``stats/aseg.stats``, ``stats/lh.aparc.stats``, ``stats/rh.aparc.stats``
and ``scripts/recon-all.done`` in the exact format of FreeSurfer 7.2
(``flavour="fs7"``) or 6.0 (``flavour="fs6"``: ``Left-Thalamus-Proper``, the
6.0 header lines), as the real files of those versions are.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rnce.io import write_text

# the 45 rows of aseg.stats as FreeSurfer 6/7 write them: (SegId, StructName)
ASEG_ROWS = [
    (4, "Left-Lateral-Ventricle"), (5, "Left-Inf-Lat-Vent"), (7, "Left-Cerebellum-White-Matter"),
    (8, "Left-Cerebellum-Cortex"), (10, "Left-Thalamus"), (11, "Left-Caudate"), (12, "Left-Putamen"),
    (13, "Left-Pallidum"), (14, "3rd-Ventricle"), (15, "4th-Ventricle"), (16, "Brain-Stem"),
    (17, "Left-Hippocampus"), (18, "Left-Amygdala"), (24, "CSF"), (26, "Left-Accumbens-area"),
    (28, "Left-VentralDC"), (30, "Left-vessel"), (31, "Left-choroid-plexus"),
    (43, "Right-Lateral-Ventricle"), (44, "Right-Inf-Lat-Vent"), (46, "Right-Cerebellum-White-Matter"),
    (47, "Right-Cerebellum-Cortex"), (49, "Right-Thalamus"), (50, "Right-Caudate"),
    (51, "Right-Putamen"), (52, "Right-Pallidum"), (53, "Right-Hippocampus"), (54, "Right-Amygdala"),
    (58, "Right-Accumbens-area"), (60, "Right-VentralDC"), (62, "Right-vessel"),
    (63, "Right-choroid-plexus"), (72, "5th-Ventricle"), (77, "WM-hypointensities"),
    (78, "Left-WM-hypointensities"), (79, "Right-WM-hypointensities"), (80, "non-WM-hypointensities"),
    (81, "Left-non-WM-hypointensities"), (82, "Right-non-WM-hypointensities"), (85, "Optic-Chiasm"),
    (251, "CC_Posterior"), (252, "CC_Mid_Posterior"), (253, "CC_Central"), (254, "CC_Mid_Anterior"),
    (255, "CC_Anterior"),
]
# structures FreeSurfer writes that the simulated anatomy does not model: typical volumes
UNMODELLED_VOLUMES = {"Left-vessel": 30.0, "Right-vessel": 28.0, "Optic-Chiasm": 180.0}

VERSIONS = {
    "fs7": ("7.2.0", "freesurfer-linux-centos7_x86_64-7.2.0-20210713-aa8f76b"),
    "fs6": ("6.0.1", "freesurfer-Linux-centos6_x86_64-stable-pub-v6.0.1-f53a55a"),
}

ASEG_COLUMNS = [
    ("Index", "Index", "NA"), ("SegId", "Segmentation Id", "NA"), ("NVoxels", "Number of Voxels", "unitless"),
    ("Volume_mm3", "Volume", "mm^3"), ("StructName", "Structure Name", "NA"),
    ("normMean", "Intensity normMean", "MR"), ("normStdDev", "Itensity normStdDev", "MR"),
    ("normMin", "Intensity normMin", "MR"), ("normMax", "Intensity normMax", "MR"),
    ("normRange", "Intensity normRange", "MR"),
]
APARC_COLUMNS = [
    ("StructName", "Structure Name", "NA"), ("NumVert", "Number of Vertices", "unitless"),
    ("SurfArea", "Surface Area", "mm^2"), ("GrayVol", "Gray Matter Volume", "mm^3"),
    ("ThickAvg", "Average Thickness", "mm"), ("ThickStd", "Thickness StdDev", "mm"),
    ("MeanCurv", "Integrated Rectified Mean Curvature", "mm^-1"),
    ("GausCurv", "Integrated Rectified Gaussian Curvature", "mm^-2"),
    ("FoldInd", "Folding Index", "unitless"), ("CurvInd", "Intrinsic Curvature Index", "unitless"),
]


def _fs_name(structure: str, flavour: str) -> str:
    if flavour == "fs6" and structure.endswith("-Thalamus"):
        return structure + "-Proper"
    return structure


def _header(title: str, program: str, cmdline: str, subject: str, flavour: str) -> list[str]:
    version, _ = VERSIONS[flavour]
    cvs = version if flavour == "fs7" else "$Id: " + program + ".c,v 1.121 2016/05/31 17:27:11 greve Exp $"
    return [
        f"# Title {title} ",
        "# ",
        f"# generating_program {program}",
        f"# cvs_version {cvs}",
        f"# cmdline {cmdline} ",
        "# sysname  Linux",
        "# hostname simulated",
        "# machine  x86_64",
        "# user     rnce",
    ]


def write_aseg_stats(path: Path, subject: str, volumes: dict[str, float], etiv: float,
                     rng: np.random.Generator, flavour: str = "fs7") -> None:
    """aseg.stats with the 45 FreeSurfer rows; ``volumes`` maps StructName (FS7) to mm^3."""
    cortex = 4.9e5 * etiv / 1.5e6 * rng.normal(1.0, 0.03)
    wm = 4.9e5 * etiv / 1.5e6 * rng.normal(1.0, 0.03)
    vent = sum(v for k, v in volumes.items() if "Ventricle" in k or "Vent" in k)
    subcort = sum(volumes.get(k, 0.0) for k in volumes if any(
        s in k for s in ("Thalamus", "Caudate", "Putamen", "Pallidum", "Hippocampus", "Amygdala",
                         "Accumbens", "VentralDC")))
    brainseg = cortex + wm + subcort + vent + 1.3e5 * etiv / 1.5e6
    lines = _header(
        "Segmentation Statistics", "mri_segstats",
        "mri_segstats --seed 1234 --seg mri/aseg.mgz --sum stats/aseg.stats --pv mri/norm.mgz --empty "
        "--brainmask mri/brainmask.mgz --brain-vol-from-seg --excludeid 0 --excl-ctxgmwm --supratent "
        "--subcortgray --in mri/norm.mgz --in-intensity-name norm --in-intensity-units MR --etiv "
        f"--surf-wm-vol --surf-ctx-vol --totalgray --euler --ctab ASegStatsLUT.txt --subject {subject}",
        subject, flavour)
    lines += ["# anatomy_type volume", "# ", "# SUBJECTS_DIR /simulated", f"# subjectname {subject}"]
    if flavour == "fs7":
        lines.append("# BrainVolStatsFixed-NotNeeded because voxelvolume=1mm3")
    measures = [
        ("BrainSeg", "BrainSegVol", "Brain Segmentation Volume", brainseg, "mm^3"),
        ("BrainSegNotVent", "BrainSegVolNotVent", "Brain Segmentation Volume Without Ventricles", brainseg - vent, "mm^3"),
        ("VentricleChoroidVol", "VentricleChoroidVol", "Volume of ventricles and choroid plexus", vent, "mm^3"),
        ("lhCortex", "lhCortexVol", "Left hemisphere cortical gray matter volume", cortex / 2, "mm^3"),
        ("rhCortex", "rhCortexVol", "Right hemisphere cortical gray matter volume", cortex / 2, "mm^3"),
        ("Cortex", "CortexVol", "Total cortical gray matter volume", cortex, "mm^3"),
        ("lhCerebralWhiteMatter", "lhCerebralWhiteMatterVol", "Left hemisphere cerebral white matter volume", wm / 2, "mm^3"),
        ("rhCerebralWhiteMatter", "rhCerebralWhiteMatterVol", "Right hemisphere cerebral white matter volume", wm / 2, "mm^3"),
        ("CerebralWhiteMatter", "CerebralWhiteMatterVol", "Total cerebral white matter volume", wm, "mm^3"),
        ("SubCortGray", "SubCortGrayVol", "Subcortical gray matter volume", subcort, "mm^3"),
        ("TotalGray", "TotalGrayVol", "Total gray matter volume", cortex + subcort, "mm^3"),
        ("SupraTentorial", "SupraTentorialVol", "Supratentorial volume", brainseg * 0.87, "mm^3"),
        ("SupraTentorialNotVent", "SupraTentorialVolNotVent", "Supratentorial volume", brainseg * 0.87 - vent, "mm^3"),
        ("Mask", "MaskVol", "Mask Volume", etiv * 1.15, "mm^3"),
        ("BrainSegVol-to-eTIV", "BrainSegVol-to-eTIV", "Ratio of BrainSegVol to eTIV", brainseg / etiv, "unitless"),
        ("MaskVol-to-eTIV", "MaskVol-to-eTIV", "Ratio of MaskVol to eTIV", 1.15, "unitless"),
        ("EstimatedTotalIntraCranialVol", "eTIV", "Estimated Total Intracranial Volume", etiv, "mm^3"),
    ]
    for short, name, desc, value, unit in measures:
        fmt = f"{value:.6f}"
        lines.append(f"# Measure {short}, {name}, {desc}, {fmt}, {unit}")
    lines += ["# SegVolFile mri/aseg.mgz ", "# ColorTable ASegStatsLUT.txt ", "# InVolFile  mri/norm.mgz ",
              "# InVolFrame 0 ", "# PVVolFile  mri/norm.mgz ", "# Excluding Cortical Gray and White Matter",
              "# ExcludeSegId 0 2 3 41 42 ", "# VoxelVolume_mm3 1 "]
    for i, (col, field, unit) in enumerate(ASEG_COLUMNS, start=1):
        lines += [f"# TableCol {i:2d} ColHeader {col} ", f"# TableCol {i:2d} FieldName {field}",
                  f"# TableCol {i:2d} Units     {unit}"]
    lines += [f"# NRows {len(ASEG_ROWS)} ", f"# NTableCols {len(ASEG_COLUMNS)} ",
              "# ColHeaders  " + " ".join(c[0] for c in ASEG_COLUMNS) + "  "]
    for index, (seg_id, name) in enumerate(ASEG_ROWS, start=1):
        volume = volumes.get(name, UNMODELLED_VOLUMES.get(name, 0.0))
        if volume > 0:
            nvox = int(round(volume * rng.uniform(0.95, 1.05)))
            mean = rng.uniform(35, 100)
            sd = rng.uniform(4, 16)
            vmin = max(0.0, round(mean - rng.uniform(2, 4) * sd))
            vmax = round(mean + rng.uniform(2, 4) * sd)
        else:
            nvox, mean, sd, vmin, vmax = 0, 0.0, 0.0, 0.0, 0.0
        lines.append(
            f"{index:3d} {seg_id:3d} {nvox:9d} {volume:9.1f}  {_fs_name(name, flavour):<32s}"
            f"{mean:10.4f} {sd:10.4f} {vmin:10.4f} {vmax:10.4f} {vmax - vmin:10.4f} "
        )
    write_text("\n".join(lines) + "\n", path)


def write_aparc_stats(path: Path, subject: str, hemi: str, regions: list[str], thickness: np.ndarray,
                      area: np.ndarray, etiv: float, rng: np.random.Generator, flavour: str = "fs7") -> None:
    """?h.aparc.stats (Desikan-Killiany) with ThickAvg from ``thickness`` (mm)."""
    lines = _header(
        "Table of FreeSurfer cortical parcellation anatomical statistics", "mris_anatomical_stats",
        f"mris_anatomical_stats -th3 -mgz -cortex ../label/{hemi}.cortex.label -f ../stats/{hemi}.aparc.stats "
        f"-b -a ../label/{hemi}.aparc.annot -c ../label/aparc.annot.ctab {subject} {hemi} white",
        subject, flavour)
    lines[0] = "# Table of FreeSurfer cortical parcellation anatomical statistics "
    lines.insert(2, "# CreationTime 2024/01/01-00:00:00-GMT")
    lines += ["# ", "# SUBJECTS_DIR /simulated", "# anatomy_type surface", f"# subjectname {subject}",
              f"# hemi {hemi}", f"# AnnotationFile ../label/{hemi}.aparc.annot"]
    total_area = float(area.sum())
    mean_thick = float(np.average(thickness, weights=area))
    lines += [
        f"# Measure Cortex, NumVert, Number of Vertices, {int(total_area * 1.45)}, unitless",
        f"# Measure Cortex, WhiteSurfArea, White Surface Total Area, {total_area:.1f}, mm^2",
        f"# Measure Cortex, MeanThickness, Mean Thickness, {mean_thick:.5f}, mm",
        f"# Measure EstimatedTotalIntraCranialVol, eTIV, Estimated Total Intracranial Volume, {etiv:.6f}, mm^3",
        f"# NTableCols {len(APARC_COLUMNS)}",
    ]
    for i, (col, field, unit) in enumerate(APARC_COLUMNS, start=1):
        lines += [f"# TableCol {i:2d} ColHeader {col}", f"# TableCol {i:2d} FieldName {field}",
                  f"# TableCol {i:2d} Units     {unit}"]
    lines.append("# ColHeaders " + " ".join(c[0] for c in APARC_COLUMNS))
    for name, thick, surf in zip(regions, thickness, area, strict=True):
        lines.append(
            f"{name:<40s} {int(surf * 1.45):5d} {int(surf):6d} {int(surf * thick):6d} {thick:6.3f} "
            f"{rng.uniform(0.4, 0.7):5.3f} {rng.uniform(0.09, 0.14):9.3f} {rng.uniform(0.01, 0.04):9.3f} "
            f"{int(surf / 80):8d} {surf / 700:7.1f}"
        )
    write_text("\n".join(lines) + "\n", path)


def write_recon_all_done(path: Path, subject: str, flavour: str = "fs7") -> None:
    version, build = VERSIONS[flavour]
    text = "\n".join([
        "------------------------------", f"SUBJECT {subject}", "START_TIME Mon Jan  1 00:00:00 UTC 2024",
        "END_TIME Mon Jan  1 06:00:00 UTC 2024", "RUNTIME_HOURS 6.000", "USER rnce", "HOST simulated",
        "PROCESSOR x86_64", "OS Linux", f"VERSION {version} ({build})",
        "CMDPATH /usr/local/freesurfer/bin/recon-all", f"CMDARGS -all -s {subject} -i T1w.nii.gz",
    ])
    write_text(text + "\n", path)


def write_subject(subject_dir: Path, volumes: dict[str, float], lh: np.ndarray, rh: np.ndarray,
                  regions: list[str], area: np.ndarray, etiv: float, rng: np.random.Generator,
                  flavour: str = "fs7") -> None:
    """One subject's stats/ and scripts/ folders."""
    subject = subject_dir.name
    (subject_dir / "stats").mkdir(parents=True, exist_ok=True)
    (subject_dir / "scripts").mkdir(parents=True, exist_ok=True)
    write_aseg_stats(subject_dir / "stats" / "aseg.stats", subject, volumes, etiv, rng, flavour)
    for hemi, thick in (("lh", lh), ("rh", rh)):
        area_h = area * rng.normal(1.0, 0.03, len(area))
        write_aparc_stats(subject_dir / "stats" / f"{hemi}.aparc.stats", subject, hemi, regions, thick,
                          area_h, etiv, rng, flavour)
    write_recon_all_done(subject_dir / "scripts" / "recon-all.done", subject, flavour)
