"""The cost plan (rnce.plan): its work model, its calibration, the walltime check and the plan target."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from conftest import ROOT, TINY_CONFIG, load_config, run_snakemake

from rnce.plan import costs, report, work
from rnce.plan.sizes import expected_images
from rnce.ssl.models import PatchEncoder, UNet3D
from rnce.workflow_config import numbers_from_command_line

REGIONS = str(ROOT / "config" / "regions.tsv")


def conv_gflop(model: torch.nn.Module, shape: tuple[int, ...]) -> float:
    """Forward GFLOP of a model's convolutions, counted on a real pass (2 x k^3 x c_in x c_out per output voxel)."""
    total = []

    def count(module, _inputs, output):
        k = math.prod(module.kernel_size)
        c_in = module.in_channels // module.groups
        total.append(2 * k * c_in * module.out_channels * output[0, 0].numel())

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, torch.nn.Conv3d)]
    with torch.no_grad():
        model.eval()(torch.zeros(1, 1, *shape))
    for h in hooks:
        h.remove()
    return sum(total) / 1e9


@pytest.mark.parametrize("shape", [(17, 23, 19), (61, 66, 61)])
def test_the_encoder_gflop_is_what_a_real_pass_counts(shape):
    widths, rep = [8, 16, 32, 64, 128], 64
    assert work.encoder_gflop(widths, rep, shape) == pytest.approx(conv_gflop(PatchEncoder(tuple(widths), rep), shape),
                                                                  rel=1e-9)


def test_the_unet_gflop_is_within_a_tenth_of_a_real_pass():
    counted = conv_gflop(UNet3D(4, 2, 16), (24, 24, 24))  # the transposed convs are left out: a few per cent
    assert work.unet_gflop(4, 2, 16, 24) == pytest.approx(counted, rel=0.1)


def test_expected_images_of_a_simulated_cohort():
    assert expected_images({"n_subjects": 100, "max_visits": 1}) == 100
    assert expected_images({"n_subjects": 100, "max_visits": 3}) == pytest.approx(200)
    assert expected_images({"n_subjects": 100, "max_visits": 5, "scanned_visits": 1}) == 100


def test_calibration_recovers_a_planted_linear_cost(tmp_path):
    jobs = pd.DataFrame({"rule": "preprocess_shard", "variant": "", "key": [f"register/c/shard-{i}.tsv" for i in range(4)],
                         "units": [10.0, 20.0, 40.0, 80.0], "mem_units": [1.0, 2.0, 4.0, 8.0]})
    for key, units, mem in zip(jobs["key"], jobs["units"], jobs["mem_units"], strict=True):
        path = tmp_path / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"s\th:m:s\tmax_rss\n{3 + 0.5 * units}\t0:00:01\t{200 + 50 * mem}\n")
    fitted = costs.calibrate(costs.measured(jobs, tmp_path)).iloc[0]
    assert fitted["s_fixed"] == pytest.approx(3) and fitted["s_per_unit"] == pytest.approx(0.5)
    assert fitted["mem_mb_fixed"] == pytest.approx(200) and fitted["mem_mb_per_unit"] == pytest.approx(50)


def test_calibrating_on_a_folder_without_the_planned_jobs_names_it(tmp_path):
    jobs = pd.DataFrame({"rule": ["harmonize"], "variant": [""], "key": ["harmonize.tsv"], "units": [1.0],
                         "mem_units": [1.0]})
    with pytest.raises(costs.PlanError, match=str(tmp_path)):
        costs.measured(jobs, tmp_path)


def test_numbers_given_on_the_command_line_become_numbers():
    import yaml

    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    config = {"plan": {"max_runtime_min": "2880", "gpu_tflops": "12.5", "calibrate_from": "2024"},
              "ssl": {"stage1": {"epochs": "3", "batch_size": "64", "learning_rate": "0.001"}, "rep_dim": "x"},
              "cohorts": {"a": {"participants": "2024"}}}
    numbers_from_command_line(config, schema)
    assert config["plan"] == {"max_runtime_min": 2880, "gpu_tflops": 12.5, "calibrate_from": "2024"}
    assert config["ssl"] == {"stage1": {"epochs": 3, "batch_size": 64, "learning_rate": 0.001}, "rep_dim": "x"}
    assert config["cohorts"]["a"]["participants"] == "2024"  # a string where the schema wants one


def tiny_plan(tmp_path, monkeypatch, **plan) -> report.Plan:
    monkeypatch.chdir(tmp_path)  # the tiny world's tables do not exist here: sized from its simulate section
    config = load_config(TINY_CONFIG)
    config["plan"].update(plan)
    return report.predict(config, REGIONS)


def test_the_tiny_plan_from_the_package_table_alone(tmp_path, monkeypatch):
    plan = tiny_plan(tmp_path, monkeypatch)
    stages = plan.stages.set_index("stage")
    assert stages.loc["total", "jobs"] == len(plan.jobs) - 1 and stages.loc["ssl", "jobs"] >= 3 * 18  # not simulate
    # measured on this project's runs: the tiny world takes minutes of job time on 2 cores, never hours or seconds
    assert 0.02 < stages.loc["total", "core_hours"] < 0.5, plan.stages
    assert stages.loc["total", "gpu_hours"] == 0 and "no GPUs" in report.render(plan)
    assert (plan.jobs["seconds"] > 0).all() and (plan.jobs["mem_mb"] > 0).all()
    gpu = tiny_plan(tmp_path, monkeypatch, gpus=4)
    assert gpu.stages.set_index("stage").loc["ssl", "gpu_hours"] > 0


def test_a_job_that_cannot_fit_the_walltime_stops_the_run_before_any_job(tmp_path):
    """The study's stage-1 jobs at 1000 epochs (250x its own) cannot fit a 1-hour walltime: the dry run already
    fails, naming the rule and the setting, and prints the plan; nothing is written. At its own 4 epochs it fits."""
    study = str(ROOT / "config" / "study.yaml")
    result = run_snakemake("all", "-n", "--configfile", study, "--config", "plan={max_runtime_min: 60}",
                           "ssl={stage1: {epochs: 1000}}", "--directory", str(tmp_path))
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "rule ssl_encoder: 36 job(s)" in output and "ssl.stage1.epochs" in output, output[-3000:]
    assert "rnce plan: 2 cores" in output
    assert not (tmp_path / "results_study").exists()
    fits = run_snakemake("all", "-n", "--configfile", study, "--config", "plan={max_runtime_min: 60}",
                         "--directory", str(tmp_path))
    assert fits.returncode == 0, fits.stdout[-3000:]


def test_the_plan_target_runs_before_the_simulation(tmp_path):
    result = run_snakemake("results/plan.tsv", "--cores", "1", "--configfile", str(ROOT / "config" / "config.yaml"),
                           "--directory", str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "rnce plan: 2 cores" in result.stdout and "assumes: cohort pretrain" in result.stdout
    table = pd.read_csv(tmp_path / "results" / "plan.tsv", sep="\t").set_index("stage")
    assert list(table.index[-1:]) == ["total"] and table.loc["register", "disk_gb"] > 0
    assert not (tmp_path / "results" / "demo").exists()  # the simulation did not run
    jobs = pd.read_csv(tmp_path / "results" / "plan_jobs.tsv", sep="\t", keep_default_na=False)
    assert {"rule", "key", "units", "mem_units", "seconds", "mem_mb"} <= set(jobs.columns)
