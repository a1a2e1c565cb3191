"""A real SLURM: the tiny world through profiles/slurm on a private single-node cluster.

tests/slurm/single_node.sh brings up munged, slurmctld and slurmd from Debian's packages (no
systemd) with fake GPUs, and stops them by PID at the end. `make test` installs the packages and
sets RNCE_REQUIRE_SLURM=1, which turns "cannot start a SLURM here" from a skip into a failure.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import ROOT, TINY_CONFIG, run_snakemake

pytestmark = pytest.mark.slurm
SCRIPT = Path(__file__).parent / "slurm" / "single_node.sh"
DAEMONS = ("munged", "slurmctld", "slurmd")
GPU_RULES = {"ssl_encoder", "ssl_aggregator", "embed"}
LOCAL_RULES = {"inventory_cohort", "brain_age_split"}
# what a site would not need: squeue instead of sacct (no accounting database here), quick first
# status check, no account, jobs' threads capped at what the node has
TEST_SETTINGS = ("--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "1",
                 "--slurm-no-account", "--max-threads", "2", "--latency-wait", "5")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _unavailable(reason: str) -> None:
    if os.environ.get("RNCE_REQUIRE_SLURM") == "1":
        pytest.fail(f"RNCE_REQUIRE_SLURM=1 but no test SLURM: {reason}")
    pytest.skip(f"no test SLURM: {reason}")


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """Environment of a running private SLURM (SLURM_CONF set); its daemons are gone afterwards."""
    if os.geteuid() != 0:
        _unavailable("it needs root (slurmd starts jobs as their users)")
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])  # the daemons live in sbin
    missing = [cmd for cmd in (*DAEMONS, "sbatch", "squeue", "scontrol") if shutil.which(cmd, path=path) is None]
    if missing:
        _unavailable(f"{missing} not installed (make test installs munge, slurmctld, slurmd, slurm-client)")
    folder = tmp_path_factory.mktemp("slurm")
    # 4 CPUs and 4 GPUs advertised on 2 cores: the tiny jobs mostly wait on their own start-up
    env = {**os.environ, "PATH": path, "SLURM_CONF": str(folder / "slurm.conf"), "SLURM_TEST_CPUS": "4",
           "SLURM_TEST_GPUS": "4"}
    start = subprocess.run(["bash", str(SCRIPT), "start", str(folder), str(_free_port()), str(_free_port())],
                           env=env, capture_output=True, text=True)
    try:
        if start.returncode == 3:  # another SLURM owns this machine's config
            _unavailable(start.stderr.strip())
        assert start.returncode == 0, start.stdout + start.stderr
        yield env
    finally:
        pids = [int(p.read_text()) for p in folder.glob("*.pid") if p.read_text().strip()]
        subprocess.run(["bash", str(SCRIPT), "stop", str(folder)], env=env, capture_output=True, text=True)
        alive = [pid for pid in pids if Path(f"/proc/{pid}").exists()]
        assert not alive, f"daemons still running after stop: {alive}"


def _jobs(env: dict) -> dict[str, dict[str, str]]:
    """Every job slurmctld still knows (MinJobAge is an hour), by id: scontrol's fields."""
    text = subprocess.run(["scontrol", "show", "jobs", "--oneliner"], env=env, capture_output=True, text=True,
                          check=True).stdout
    jobs = {}
    for line in text.splitlines():
        fields = dict(re.findall(r"(\w+(?:/\w+)?)=(\S*)", line))
        if "JobId" in fields:
            jobs[fields["JobId"]] = fields
    return jobs


def test_tiny_world_runs_through_slurm_with_gpu_rules(slurm, tmp_path):
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["ssl"]["methods"] = ["rnce"]  # one method's 18 encoders: the GPU rules, in fewer jobs
    config["sharding"]["images_per_shard"] = 128
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    targets = ["results_tiny/embeddings/rnce.tsv", "results_tiny/gwas/fs_bag.sumstats",
               "results_tiny/inventory/evaluate.tsv"]
    result = run_snakemake("--profile", str(ROOT / "profiles" / "slurm"), *TEST_SETTINGS, "--configfile",
                           str(tmp_path / "config.yaml"), "--directory", str(tmp_path), *targets, env=slurm)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    submitted = set(re.findall(r"has been submitted with SLURM jobid (\d+)", log))
    jobs = _jobs(slurm)
    ours = {i: jobs[i] for i in submitted}
    assert len(ours) >= 20
    assert all(j["JobState"] == "COMPLETED" and j["ExitCode"] == "0:0" for j in ours.values())
    rules = {j["Comment"].removeprefix("rule_").split("_wildcards_")[0] for j in ours.values()}
    assert {"simulate", "preprocess_shard", "harmonize", "gwas_glm"} | GPU_RULES <= rules, rules
    assert not rules & LOCAL_RULES, "local rules must run in the main process, not through sbatch"
    gpu_jobs = [j for j in ours.values() if j["Comment"].removeprefix("rule_").split("_wildcards_")[0] in GPU_RULES]
    assert len(gpu_jobs) == 20 and all("gpu:1" in j.get("TresPerJob", "") for j in gpu_jobs)
    # no participant id in what the cluster shows (job names, comments) or in the SLURM log paths
    out = tmp_path / "results_tiny"
    ids = set().union(*(pd.read_csv(out / "demo" / "participants" / f"{c}.tsv", sep="\t", dtype=str)["participant_id"]
                        for c in ("pretrain", "evaluate", "gwas")))
    shown = " ".join(j["JobName"] + " " + j["Comment"] for j in ours.values())
    shown += " ".join(str(p) for p in (tmp_path / ".snakemake" / "slurm_logs").rglob("*"))
    assert not {pid for pid in ids if pid in shown}
    embedding = pd.read_csv(out / "embeddings" / "rnce.tsv", sep="\t")
    assert len(embedding) > 100 and embedding.iloc[:, 3:].std().gt(0).all()
    assert len(pd.read_csv(out / "gwas" / "fs_bag.sumstats", sep="\t")) > 5000
    again = run_snakemake("-n", "--profile", str(ROOT / "profiles" / "slurm"), *TEST_SETTINGS, "--configfile",
                          str(tmp_path / "config.yaml"), "--directory", str(tmp_path), *targets, env=slurm)
    assert "Nothing to be done" in again.stdout + again.stderr
