"""The workflow: every config builds its DAG, bad config and tables fail before any job, the tiny world runs."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import ROOT, TINY_CONFIG, good_table, run_snakemake

CONFIGS = [ROOT / "config" / "config.yaml", ROOT / "config" / "genetics_scale.yaml", ROOT / "config" / "study.yaml",
           TINY_CONFIG]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_dag_builds_for_every_config(config, tmp_path):
    result = run_snakemake("-n", "--configfile", str(config), "--directory", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "simulate" in result.stdout


def test_the_demo_cohorts_follow_results(tmp_path):
    """``--config results=elsewhere`` on the demo config: the simulated cohorts' tables are written and read under
    elsewhere/demo (their paths hold ``{results}``), and nothing is planned under results/."""
    result = run_snakemake("all", "-n", "--configfile", str(ROOT / "config" / "config.yaml"), "--config",
                           "results=elsewhere", "--directory", str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "elsewhere/demo/participants/pretrain.tsv" in result.stdout
    assert not re.search(r"(?<![\w/])results/", result.stdout)


def test_study_config_plans_unchanged_through_the_slurm_profile(tmp_path):
    """config/study.yaml runs as it is on a GPU cluster (issue 14): the SLURM profile plans every stage,
    the 2 x 18 encoders included."""
    result = run_snakemake("all", "-n", "--profile", str(ROOT / "profiles" / "slurm"), "--configfile",
                           str(ROOT / "config" / "study.yaml"), "--directory", str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    table = result.stdout.split("Job stats")[1].split("total")[0]
    counts = {rule: int(n) for rule, n in re.findall(r"^(\w+)\s+(\d+)$", table, flags=re.M)}
    assert counts["ssl_encoder"] == 36 and counts["ssl_aggregator"] == 2 and counts["gwas_glm"] >= 1, counts


def test_study_plans_the_regional_sets_the_ceiling_and_the_validation_criteria(tmp_path):
    """Issue 28: the study's regional feature sets (beyond the paper) are embedded and probed, the raw-voxel
    ceiling and each method's held-out pretraining criteria are built."""
    result = run_snakemake("all", "-n", "--configfile", str(ROOT / "config" / "study.yaml"), "--directory",
                           str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    table = result.stdout.split("Job stats")[1].split("total")[0]
    counts = {rule: int(n) for rule, n in re.findall(r"^(\w+)\s+(\d+)$", table, flags=re.M)}
    assert counts["embed_regional"] == 2 and counts["evaluate_probe"] == 6, counts
    assert counts["ssl_ceiling"] == 1 and counts["ssl_validation"] == 2, counts


def _config_with(tmp_path: Path, **changes) -> Path:
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config.update(changes)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))  # the cohorts keep their order
    return path


@pytest.mark.parametrize("changes,expected", [
    ({"colour": "blue"}, "'colour' was unexpected"),
    ({"sharding": {"images_per_shard": "many"}}, "'many' is not of type 'integer'"),
    ({"cohorts": {"x": {"participants": "p.tsv", "roles": ["pretraining"]}}}, "'pretraining' is not one of"),
    ({"gwas": {"min_samples": 14}}, "gwas.min_samples: 14 is less than the minimum of 50"),  # PLINK 2's floor
    ({"ssl": {"method": ["rnce"]}}, "ssl.method: unknown key ('method' was unexpected); allowed here: "),
    ({"ssl": {"method": ["rnce"]}}, "did you mean 'methods'?"),
    ({"evaluate": {"feature_sets": ["fs", "lssl_regional"]}}, "a contrastive method's '<method>_regional'"),
])
def test_bad_config_is_an_error_naming_the_key(tmp_path, changes, expected):
    result = run_snakemake("-n", "--configfile", str(_config_with(tmp_path, **changes)), "--directory", str(tmp_path))
    assert result.returncode != 0
    assert expected in result.stdout + result.stderr
    assert len((result.stdout + result.stderr).splitlines()) < 25  # the key and the allowed keys, not the schema


def test_bad_table_fails_before_any_job_runs(tmp_path):
    table = good_table(tmp_path)
    table["age"] = table["age"].astype(str)
    table.loc[2, "age"] = "old"
    table.to_csv(tmp_path / "participants.tsv", sep="\t", index=False)
    config = {"results": "out", "simulate": None,
              "cohorts": {"mine": {"participants": str(tmp_path / "participants.tsv"), "roles": ["pretrain"]}}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    result = run_snakemake("--cores", "1", "--configfile", str(path), "--directory", str(tmp_path))
    assert result.returncode != 0
    assert f"{tmp_path / 'participants.tsv'}, line 4, column 'age': 'old' is not a number" in result.stderr
    assert "Traceback" not in result.stderr and 'File "' not in result.stderr, result.stderr  # in the log instead
    assert "cohort.py" in (tmp_path / ".snakemake" / "log" / "rnce_error.txt").read_text()
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """The whole tiny world, run once; the tests below read it, plan against it, and the last breaks it."""
    folder = tmp_path_factory.mktemp("tiny_run")
    result = run_snakemake("--cores", "2", "--configfile", str(TINY_CONFIG), "--directory", str(folder))
    assert result.returncode == 0, result.stderr[-3000:]
    return folder


def planned(*args: str, folder: Path, config: Path = TINY_CONFIG) -> dict[str, int]:
    """Rule -> number of jobs that `snakemake -n` plans ({} when nothing is to be done)."""
    result = run_snakemake("-n", "--configfile", str(config), "--directory", str(folder), *args)
    assert result.returncode == 0, result.stderr[-3000:]
    if "Nothing to be done" in result.stdout + result.stderr:
        return {}
    table = result.stdout.split("Job stats")[1].split("total")[0]
    return {rule: int(n) for rule, n in re.findall(r"^(\w+)\s+(\d+)$", table, flags=re.M) if rule != "all"}


def test_tiny_world_runs_end_to_end(tiny_run):
    out = tiny_run / "results_tiny"
    inventory = pd.read_csv(out / "inventory" / "evaluate.tsv", sep="\t")
    participants = pd.read_csv(out / "demo" / "participants" / "evaluate.tsv", sep="\t")
    assert len(inventory) == len(participants) and (inventory["status"] == "ok").all()
    assert set(inventory["orientation"]) > {"RAS"}
    assert not (out / "inventory" / "gwas.tsv").exists()  # the tiny gwas cohort has no images
    ids = set(participants["participant_id"])
    shard_files = [p.name for p in (out / "inventory").rglob("*")]
    assert shard_files and not any(pid in name for name in shard_files for pid in ids)
    harmonized = pd.read_csv(out / "features" / "harmonized.tsv", sep="\t")
    raw = pd.read_csv(out / "features" / "raw.tsv", sep="\t")
    assert len(harmonized) == len(raw) == sum(
        len(pd.read_csv(out / "demo" / "participants" / f"{c}.tsv", sep="\t")) for c in ("pretrain", "evaluate", "gwas"))
    assert (out / "features" / "qc.png").stat().st_size > 10_000
    assert (out / "harmonize" / "combat_model.pkl").exists()
    qc = pd.read_csv(out / "qc" / "registration_evaluate.tsv", sep="\t")
    assert len(qc) == len(participants) and qc["passed"].all() and (qc["template_correlation"] > 0.5).all()
    assert (out / "patches" / "evaluate" / "passed.tsv").exists() and qc["start"].notna().all()
    from rnce.imaging.patches import PatchStore

    store = PatchStore(out / "patches", "pretrain")
    assert len(store) == len(pd.read_csv(out / "demo" / "participants" / "pretrain.tsv", sep="\t"))
    assert len(store.boxes) == 18 and store.batch([0, 1], "lh_parietal").shape[0] == 2
    assert not (out / "patches" / "gwas").exists()  # no images in the tiny gwas cohort
    passed = sum(len(PatchStore(out / "patches", c)) for c in ("pretrain", "evaluate"))
    intensity = pd.read_csv(out / "features" / "intensity.tsv", sep="\t")
    assert intensity.shape == (passed, 3 + 54) and intensity.iloc[:, 3:].notna().all().all()
    for method in ("rnce", "simclr", "barlow_twins", "models_genesis", "lssl"):
        embedding = pd.read_csv(out / "embeddings" / f"{method}.tsv", sep="\t")
        assert len(embedding) == passed and embedding.shape[1] == 3 + 8, method
        assert embedding.iloc[:, 3:].notna().all().all() and embedding.iloc[:, 3:].std().gt(0).all(), method
        assert (out / "ssl" / method / "loss_curves.png").stat().st_size > 10_000
    assert not list((out / "ssl" / "checkpoints").rglob("*.pt"))
    for method in ("rnce", "simclr", "barlow_twins"):  # what stage 1 and the embedding carry, on evaluate images
        diag = pd.read_csv(out / "ssl" / method / "diagnostics.tsv", sep="\t")  # 18 boxes, all side by side, embedding
        assert set(diag["target"]) == {"auxiliary", "focal_thinning"} and len(diag) == 2 * (18 + 2), method
    tasks = pd.read_csv(out / "evaluation" / "tasks.tsv", sep="\t", keep_default_na=False)
    scores = pd.read_csv(out / "evaluation" / "scores.tsv", sep="\t", keep_default_na=False)
    assert len(scores) == len(tasks) * 7 and (tasks["status"] == "run").any()  # fs, intensity, 5 methods
    assert set(scores["feature_set"]) >= {"fs", "intensity"}
    ran = scores[scores["status"] == "run"]
    assert ran["mean"].astype(float).notna().all() and (ran["n_boot"] == 30).all()
    assert (scores.loc[scores["status"] == "skipped", "reason"] != "").all()
    assert len(pd.read_csv(out / "evaluation" / "pvalues.tsv", sep="\t")) == (tasks["status"] == "run").sum() * 21
    assert (out / "figures" / "figure2_probes.png").stat().st_size > 10_000
    _check_genetics(out)


def test_the_plan_names_every_job_of_the_run_its_patch_store_and_its_time(tiny_run, monkeypatch):
    """The plan of the finished tiny run (its tables exist: exact sizes) names exactly the jobs that ran, predicts
    the patch store's size to 2% and the run's job time, from the package's unit costs alone, within a factor 3."""
    from conftest import load_config

    from rnce.plan import costs, report

    monkeypatch.chdir(tiny_run)
    plan = report.predict(load_config(TINY_CONFIG), str(ROOT / "config" / "regions.tsv"))
    bench = tiny_run / "results_tiny" / "benchmarks"
    ran = {str(p.relative_to(bench)) for p in bench.rglob("*.tsv")} - {"plan.tsv"}
    assert set(plan.jobs["key"]) == ran
    store = sum(f.stat().st_size for f in (tiny_run / "results_tiny" / "patches").rglob("*.npy"))
    predicted = plan.jobs.loc[plan.jobs["rule"] == "preprocess_shard", "disk_bytes"].sum()
    assert predicted == pytest.approx(store, rel=0.02)
    actual = costs.read_benchmarks(bench, sorted(ran))["s"].sum()
    assert 1 / 3 < plan.jobs["seconds"].sum() / actual < 3, (plan.jobs["seconds"].sum(), actual)


def test_one_target_plans_only_its_own_chain(tiny_run):
    jobs = planned("--forceall", "results_tiny/gwas/fs_bag.sumstats", folder=tiny_run)
    assert jobs.get("gwas_glm") == 1 and jobs.get("brain_age_model") == 1, jobs
    assert not {j for j in jobs if j.startswith(("ssl", "embed", "evaluate", "ldsc", "fuma", "gwas_report"))}


def test_unchanged_rerun_plans_nothing_even_with_the_config_rewritten(tiny_run, tmp_path):
    assert planned(folder=tiny_run) == {}
    # the same config, keys in another order (as a tool re-saving the YAML writes it)
    shuffled = yaml.safe_load(TINY_CONFIG.read_text())
    shuffled = {key: shuffled[key] for key in reversed(list(shuffled))}
    (tmp_path / "same.yaml").write_text(yaml.safe_dump(shuffled, sort_keys=False))
    assert planned(folder=tiny_run, config=tmp_path / "same.yaml") == {}


GENETICS_RULES = ("gwas_", "fuma", "ldsc_", "plan")  # the plan follows the whole config (a few seconds)


def test_gwas_parameter_change_plans_only_gwas_fuma_and_ldsc(tiny_run, tmp_path):
    jobs = planned(folder=tiny_run, config=_config_with(tmp_path, gwas={"maf": 0.02}))
    assert jobs.get("gwas_qc") == 1 and jobs.get("gwas_glm") == 1 and jobs.get("fuma") == 1 and jobs.get("ldsc_h2") == 1
    assert all(rule.startswith(GENETICS_RULES) for rule in jobs), jobs


def test_combat_parameter_change_plans_harmonization_and_what_depends_on_it(tiny_run, tmp_path):
    jobs = planned(folder=tiny_run, config=_config_with(tmp_path, harmonize={"covariates": ["age", "sex", "diagnosis"]}))
    assert jobs.get("harmonize") == 1 and jobs.get("brain_age_model") and jobs.get("gwas_glm"), jobs
    # nothing upstream; of the SSL methods only R-NCE (its auxiliary matrix is the harmonized features)
    assert not {"simulate", "inventory_shard", "features_shard", "features_raw", "preprocess_shard",
                "registration_qc", "ssl_reconstruction"} & set(jobs), jobs
    assert jobs["ssl_encoder"] == 18 and jobs["ssl_aggregator"] == 1 and jobs["embed"] == 1, jobs


def test_qc_setting_change_reruns_qc_and_what_reads_the_store_never_a_registration(tiny_run, tmp_path):
    register = {**yaml.safe_load(TINY_CONFIG.read_text())["register"], "qc_robust_z": 5.0}
    jobs = planned(folder=tiny_run, config=_config_with(tmp_path, register=register))
    assert jobs.get("registration_qc") == 2 and jobs.get("intensity_features") == 1 and jobs.get("ssl_encoder"), jobs
    assert not {"simulate", "inventory_shard", "preprocess_shard", "features_shard", "harmonize"} & set(jobs), jobs


def test_one_more_participant_plans_its_shard_and_the_aggregates(tiny_run):
    demo = tiny_run / "results_tiny" / "demo"
    table = demo / "participants" / "evaluate.tsv"
    original = table.read_bytes()
    image = demo / "images" / "evaluate" / "eva09999_ses-01_T1w.nii.gz"
    stats = demo / "freesurfer" / "evaluate" / "eva09999_ses-01"
    first = pd.read_csv(table, sep="\t", dtype=str, keep_default_na=False).iloc[0]
    shutil.copy(table.parent / first["t1w"], image)
    shutil.copytree(demo / "freesurfer" / "evaluate" / f"{first['participant_id']}_{first['session_id']}", stats)
    row = first.copy()
    row["participant_id"], row["session_id"], row["t1w"] = "eva09999", "ses-01", f"../images/evaluate/{image.name}"
    try:
        with table.open("a") as handle:
            handle.write("\t".join(row.tolist()) + "\n")
        jobs = planned(folder=tiny_run)
    finally:
        table.write_bytes(original)
        image.unlink()
        shutil.rmtree(stats)
    # one shard of each per-shard step; every other planned job is an aggregate over the cohorts
    assert jobs["inventory_shard"] == jobs["preprocess_shard"] == jobs["features_shard"] == 1, jobs
    assert "simulate" not in jobs and jobs["ssl_encoder"] == 18, jobs  # R-NCE only: ComBat is refitted
    assert "ssl_reconstruction" not in jobs
    assert planned(folder=tiny_run) == {}  # the table as it was: nothing again


def test_report_of_a_finished_run_and_of_only_the_targets_built(tiny_run, tmp_path):
    """README: `snakemake --report report.html` after `all`; after a subset, name those targets."""
    args = ("--configfile", str(TINY_CONFIG), "--directory", str(tiny_run))
    result = run_snakemake("--report", str(tmp_path / "all.html"), *args)
    assert result.returncode == 0 and (tmp_path / "all.html").stat().st_size > 100_000, result.stderr[-2000:]
    manhattan = tiny_run / "results_tiny" / "figures" / "fs_bag_manhattan.png"
    kept = manhattan.read_bytes()
    manhattan.unlink()  # as if the GWAS had not been run
    try:
        result = run_snakemake("--report", str(tmp_path / "part.html"), *args)
        assert result.returncode != 0 and "fs_bag_manhattan.png marked for report but does not exist" in result.stderr
        result = run_snakemake("--report", str(tmp_path / "part.html"), "results_tiny/evaluation/scores.tsv", *args)
        assert result.returncode == 0 and (tmp_path / "part.html").stat().st_size > 100_000, result.stderr[-2000:]
    finally:
        manhattan.write_bytes(kept)


def test_sigkill_mid_job_leaves_no_half_written_output_and_the_rerun_redoes_only_that_job(tiny_run):
    """SIGKILL Snakemake and its job after the first of a job's outputs is in place: no output is
    half-written; Snakemake names the incomplete one; the rerun redoes that job alone."""
    out = tiny_run / "results_tiny"
    outputs = [out / "gwas" / "fs_bag.loci.tsv", out / "gwas" / "fs_bag.summary.tsv",
               out / "figures" / "fs_bag_manhattan.png", out / "figures" / "fs_bag_qq.png"]
    complete = outputs[0].read_bytes()
    for path in outputs:
        path.unlink()
    target = str(outputs[1].relative_to(tiny_run))
    exe = Path(sys.executable).with_name("snakemake")
    job = subprocess.Popen([str(exe), "--snakefile", str(ROOT / "Snakefile"), "--cores", "1", "--configfile",
                            str(TINY_CONFIG), "--directory", str(tiny_run), target], cwd=ROOT,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while not outputs[1].exists() and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.killpg(job.pid, signal.SIGKILL)
    job.wait()
    assert outputs[1].exists() and not outputs[2].exists(), "the kill did not land between two outputs"
    assert outputs[0].read_bytes() == complete  # what is there is whole; the plot in progress has a temporary name
    strict = run_snakemake("-n", "--workflow-profile", "none", "--configfile", str(TINY_CONFIG), "--directory",
                           str(tiny_run), target)
    report = strict.stdout + strict.stderr
    assert strict.returncode != 0 and "Incomplete files:" in report and str(outputs[1].relative_to(tiny_run)) in report
    # a SIGKILLed Snakemake cannot remove its lock: the user unlocks, then reruns the same command
    unlock = run_snakemake("--unlock", "--configfile", str(TINY_CONFIG), "--directory", str(tiny_run))
    assert unlock.returncode == 0, unlock.stderr[-2000:]
    rerun = run_snakemake("--cores", "1", "--configfile", str(TINY_CONFIG), "--directory", str(tiny_run), target)
    log = rerun.stdout + rerun.stderr
    assert rerun.returncode == 0, log[-3000:]
    assert re.search(r"^gwas_report\s+1$", log, flags=re.M) and re.search(r"^total\s+1$", log, flags=re.M), log
    assert all(path.exists() for path in outputs) and outputs[0].read_bytes() == complete


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_one_signal_stops_snakemake_and_its_running_job_and_leaves_no_partial_output(tiny_run, signum):
    """Issue 31: one SIGTERM or SIGINT to Snakemake alone (not its process group, as `kill <pid>` sends it) stops
    it and the registration job it runs within seconds (Snakemake alone would wait for the job); the job's shard
    is neither in place nor half-written under a temporary name; the next run needs no --unlock."""
    from rnce.stopping import alive, descendants

    out = tiny_run / "results_tiny"
    shard = sorted((out / "patches" / "evaluate").glob("shard-*"))[0]
    log = out / "logs" / "register" / "evaluate" / f"{shard.name}.log"
    target = str(shard.relative_to(tiny_run))
    log.unlink()  # the job writes it anew: its first image's line says the job runs
    exe = Path(sys.executable).with_name("snakemake")
    run = subprocess.Popen([str(exe), "--snakefile", str(ROOT / "Snakefile"), "--cores", "1", "--configfile",
                            str(TINY_CONFIG), "--directory", str(tiny_run), "--force", target], cwd=ROOT,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (log.exists() and "start scores" in log.read_text()):
        time.sleep(0.02)
    below = descendants(run.pid)
    assert below and run.poll() is None, "the registration job did not start"
    started = time.monotonic()
    os.kill(run.pid, signum)
    assert run.wait(timeout=60) != 0
    assert time.monotonic() - started < 20 and not [p for p in below if alive(p)]
    assert not shard.exists() and not list(shard.parent.glob(".tmp-*"))
    rerun = run_snakemake("--cores", "1", "--configfile", str(TINY_CONFIG), "--directory", str(tiny_run), target)
    assert rerun.returncode == 0 and shard.exists(), rerun.stderr[-3000:]


def _check_genetics(out):
    """Brain age, GWAS, FUMA and LDSC outputs of the tiny run; no released file holds a sample id."""
    bag = pd.read_csv(out / "brain_age" / "fs_bag.tsv", sep="\t")
    assert list(bag.columns[:7]) == ["cohort", "participant_id", "session_id", "site", "sex", "age", "predicted_age"]
    assert (out / "brain_age" / "baselines.tsv").exists() and (out / "figures" / "brain_age_bag_vs_age.png").exists()
    buckets = pd.read_csv(out / "brain_age" / "buckets.tsv", sep="\t")
    assert (buckets["train"] == buckets[["available", "asked"]].min(axis=1)).all()  # short buckets: use_all
    assert abs(bag["bag"].corr(bag["age"])) < 1e-6 and (bag["split"] == "train").sum() == buckets["train"].sum()
    report = pd.read_csv(out / "gwas" / "qc_report.tsv", sep="\t")
    assert {"sex_check", "relatedness", "hwe"} <= set(report["step"]) and report["samples_removed"].sum() > 0
    sumstats = pd.read_csv(out / "gwas" / "fs_bag.sumstats", sep="\t")
    assert list(sumstats.columns) == ["SNP", "CHR", "BP", "A1", "A2", "EAF", "BETA", "SE", "T", "P", "N"]
    assert sumstats["P"].between(0, 1, inclusive="right").all() and len(sumstats) > 5000
    h2 = pd.read_csv(out / "ldsc" / "h2.tsv", sep="\t")
    assert list(h2["gwas"]) == ["fs"] and h2["h2_se"].gt(0).all()
    strong = json.loads((out / "demo" / "ground_truth.json").read_text())["strong_locus"]["snp"]
    loci = pd.read_csv(out / "gwas" / "fs_bag.loci.tsv", sep="\t")
    assert strong in set(loci["SNP"]) and loci["P"].max() < 5e-8  # the planted strong locus passes 5e-8
    cell_types = pd.read_csv(out / "ldsc" / "fs_bag.cell_types.tsv", sep="\t")
    assert len(cell_types) == 6 and cell_types["q_fdr"].between(0, 1).all()
    import gzip

    iids = set(pd.read_csv(out / "demo" / "genotypes" / "gwas.fam", sep=r"\s+", header=None, dtype=str)[1])
    released = [*(out / "gwas").glob("*_bag.*"), *(out / "fuma").glob("*"), *(out / "ldsc").glob("*.tsv"),
                *(out / "ldsc").glob("*.sumstats.gz"), *(out / "ldsc").rglob("*.fam")]
    assert len(released) >= 8
    for path in released:
        text = gzip.open(path, "rt").read() if path.suffix == ".gz" else path.read_text()
        tokens = set(text.replace("\t", " ").replace("\n", " ").split())
        assert not tokens & iids, f"{path.name} holds sample ids"


@pytest.mark.skipif(not os.environ.get("RNCE_REAL_DATA"), reason="set RNCE_REAL_DATA to the real-data folder")
def test_real_subjects_dir_cohort_is_ingested_and_harmonized(tmp_path):
    """Opt-in: real FreeSurfer 7.2 and 6.0 subjects as a SUBJECTS_DIR cohort next to the tiny world."""
    real = Path(os.environ["RNCE_REAL_DATA"]).resolve() / "freesurfer"  # the run's directory is tmp_path
    table = pd.DataFrame({"participant_id": ["bert", "sub01", "old"], "session_id": ["1", "1", "1"],
                          "age": [55, 30, 30], "sex": ["M", "F", "M"], "site": ["mgh", "mgh", "mgh"],
                          "freesurfer_id": ["bert", "nfmrix_sub-01", "old_format_fs51"]})
    table.to_csv(tmp_path / "real.tsv", sep="\t", index=False)
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["cohorts"]["real"] = {"participants": str(tmp_path / "real.tsv"), "roles": ["brain_age"],
                                 "images": False, "subjects_dir": str(real)}
    config["harmonize"] = {"min_images_per_site": 2}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    result = run_snakemake("--cores", "2", "--configfile", str(path), "--directory", str(tmp_path),
                           "results_tiny/features/harmonized.tsv")
    assert result.returncode == 0, result.stderr[-3000:]
    harmonized = pd.read_csv(tmp_path / "results_tiny" / "features" / "harmonized.tsv", sep="\t")
    assert set(harmonized.loc[harmonized["cohort"] == "real", "participant_id"]) == {"bert", "sub01"}
    excluded = pd.read_csv(tmp_path / "results_tiny" / "features" / "exclusions.tsv", sep="\t")
    reason = excluded["reason"].iat[0]  # the FreeSurfer 5.1-era subject: no scripts/, no aparc stats
    assert list(excluded["participant_id"]) == ["old"] and "no scripts/ folder" in reason
    assert "stats/lh.aparc.stats, stats/rh.aparc.stats missing" in reason


def test_every_rule_has_log_benchmark_conda_and_no_run_block():
    for smk in (ROOT / "workflow" / "rules").glob("*.smk"):
        text = smk.read_text()
        blocks = re.split(r"^(?:rule|checkpoint) ", text, flags=re.M)[1:]
        for block in blocks:
            name = block.split(":")[0]
            for directive in ("log:", "benchmark:", "conda:", "resources:"):
                assert f"    {directive}" in block, f"{smk.name}: rule {name} lacks {directive}"
            assert "    run:" not in block and "lambda" not in block, f"{smk.name}: rule {name}"
            env = re.search(r'conda:\s*\n\s*"([^"]+)"', block)
            assert env and (smk.parent / env.group(1)).resolve().exists(), f"{name}: env file missing"


def _schema_keys(node: dict, definitions: dict) -> set[str]:
    if "$ref" in node:
        node = definitions[node["$ref"].split("/")[-1]]
    keys = set()
    for name, sub in node.get("properties", {}).items():
        keys.add(name)
        keys |= _schema_keys(sub, definitions)
    if isinstance(node.get("additionalProperties"), dict):
        keys |= _schema_keys(node["additionalProperties"], definitions)
    return keys


def test_config_readme_documents_every_key():
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    readme = (ROOT / "config" / "README.md").read_text()
    documented = {part for token in re.findall(r"`([\w.<>/]+)`", readme) for part in token.split(".")}
    missing = _schema_keys(schema, schema.get("definitions", {})) - documented
    assert not missing, f"config/README.md does not document {sorted(missing)}"


def test_recon_all_backend_through_the_workflow(tmp_path, tiny_world):
    """A cohort without SUBJECTS_DIR, with FreeSurfer on PATH (a fake recon-all): one job per image."""
    from conftest import fake_recon_all

    images = sorted((tiny_world[0] / "images" / "pretrain").iterdir())[:3]
    pd.DataFrame({"participant_id": ["a", "b", "c"], "session_id": "1", "t1w": [str(p) for p in images],
                  "age": [60, 65, 70], "sex": ["M", "F", "M"], "site": "s1"}).to_csv(
        tmp_path / "p.tsv", sep="\t", index=False)
    small = {"epochs": 1, "batch_size": 2, "learning_rate": 0.001, "weight_decay": 0.0}  # 3 images: batches fit
    config = {"results": "out", "cohorts": {"fs": {"participants": str(tmp_path / "p.tsv"), "roles": ["pretrain"]}},
              "ssl": {"methods": ["simclr"], "validation_fraction": 0.0, "stage1": small, "stage2": small}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    bin_dir = fake_recon_all(tmp_path)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    result = run_snakemake("--cores", "2", "--configfile", str(tmp_path / "config.yaml"), "--directory",
                           str(tmp_path), "out/features/raw.tsv", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted((bin_dir / "calls.txt").read_text().split()) == ["a_1", "b_1", "c_1"]
    raw = pd.read_csv(tmp_path / "out" / "features" / "raw.tsv", sep="\t")
    assert list(raw["participant_id"]) == ["a", "b", "c"] and (raw["lh_entorhinal_thickness"] == 2.5).all()
    markers = [p.name for p in (tmp_path / "out" / "features" / "recon_all" / "fs").iterdir()]
    assert len(markers) == 3 and not any(pid in m for m in markers for pid in ("a_1", "b_1", "c_1"))


def test_readme_example_config_is_valid():
    from snakemake.utils import validate

    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Using your own cohort"):]
    block = section[section.index("```yaml") + len("```yaml"):]
    config = yaml.safe_load(block[: block.index("```")])
    validate(config, str(ROOT / "workflow" / "schemas" / "config.schema.yaml"))
    assert config["register"]["fast"] is False and config["cohorts"]["adni"]["features"] == "recon_all"


@pytest.mark.workflow
def test_genetics_scale_world_ldsc_recovers_planted_h2_and_cell_type(tmp_path):
    """6,000 genotyped people without images: the strong locus is found, the LDSC h2 interval covers the BAG's
    simulated SNP heritability, and the planted cell type ranks first."""
    config = ROOT / "config" / "genetics_scale.yaml"
    out = tmp_path / "results_genetics"
    targets = [f"{out.name}/ldsc/h2.tsv", f"{out.name}/ldsc/fs_bag.cell_types.tsv", f"{out.name}/gwas/fs_bag.loci.tsv"]
    result = run_snakemake("--cores", "2", "--configfile", str(config), "--directory", str(tmp_path), *targets)
    assert result.returncode == 0, result.stderr[-3000:]
    truth = json.loads((out / "demo" / "ground_truth.json").read_text())
    bag = pd.read_csv(out / "brain_age" / "fs_bag.tsv", sep="\t")
    latent = pd.read_csv(out / "demo" / "truth" / "gwas_latent.tsv", sep="\t")
    merged = bag.merge(latent, on=["participant_id", "session_id"])
    # BAG = (planted acceleration) x reliability + noise: its SNP h2 is the planted one times r^2
    expected = truth["bag_snp_h2"] * merged["bag"].corr(merged["acceleration"]) ** 2
    h2 = pd.read_csv(out / "ldsc" / "h2.tsv", sep="\t").iloc[0]
    assert h2["ci_low"] <= expected <= h2["ci_high"], (h2.to_dict(), expected)
    cell_types = pd.read_csv(out / "ldsc" / "fs_bag.cell_types.tsv", sep="\t")
    assert cell_types.iloc[0]["cell_type"] == truth["enriched_cell_type"] and cell_types.iloc[0]["q_fdr"] < 0.05
    loci = pd.read_csv(out / "gwas" / "fs_bag.loci.tsv", sep="\t")
    assert truth["strong_locus"]["snp"] in set(loci["SNP"])


def test_cohort_template_is_valid_and_paper_sized():
    """config/cohort_template.yaml: the start of a real run (no simulate section, the paper's sizes)."""
    from snakemake.utils import validate

    from rnce.workflow_config import check_config

    schema = str(ROOT / "workflow" / "schemas" / "config.schema.yaml")
    template = yaml.safe_load((ROOT / "config" / "cohort_template.yaml").read_text())
    check_config(template, schema)
    validate(template, schema)
    assert "simulate" not in template
    assert template["register"] == {**template["register"], "resolution_mm": 1.0, "fast": False, "whole_image_size": 96}
    assert template["evaluate"]["n_holdout"] == 100 and template["brain_age"]["train_per_bucket"] == 500
    assert template["ssl"]["stage1"]["epochs"] >= 100 and template["ldsc"]["intercept_h2"] is None
    text = (ROOT / "config" / "cohort_template.yaml").read_text()
    assert "every key has a default" in text.lower()


def test_snakemake_exits_when_the_run_ends(tmp_path):
    """profiles/default's long re-selection timespan leaves timers waiting; onsuccess cancels them, so the
    process ends with its run (it used to linger one whole timespan after 'Elapsed time')."""
    start = time.monotonic()
    result = run_snakemake("--cores", "2", "--configfile", str(TINY_CONFIG), "--directory", str(tmp_path),
                           "results_tiny/demo/ground_truth.json")
    wall = time.monotonic() - start
    assert result.returncode == 0, result.stderr[-2000:]
    h, m, s = re.search(r"Elapsed time: (\d+):(\d+):([\d.]+)", result.stdout + result.stderr).groups()
    assert wall - (3600 * int(h) + 60 * int(m) + float(s)) < 12
