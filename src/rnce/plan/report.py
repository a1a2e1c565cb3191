"""The plan itself: each job's predicted seconds and memory, the per-stage table, its printout, the job
resources the rules ask for, and the check that every job fits the profile's largest walltime."""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass

import pandas as pd

from rnce.io import write_text, write_tsv
from rnce.plan import sizes as sizes_lib
from rnce.plan import work
from rnce.plan.costs import PlanError, unit_costs

STAGES = ["simulate", "inventory", "features", "register", "harmonize", "ssl", "embed", "evaluate", "brain_age",
          "gwas", "ldsc"]
MIN_RUNTIME_MIN, MIN_MEM_MB = 5, 1000
# what to change when a rule's job cannot fit the walltime
REMEDY = {
    "ssl_encoder": "ssl.stage1.epochs, or more GPUs per job (set-resources gpu in the profile)",
    "ssl_aggregator": "ssl.stage2.epochs",
    "ssl_reconstruction": "ssl.reconstruction.epochs, or register.whole_image_size",
    "preprocess_shard": "sharding.images_per_shard (smaller shards)",
    "features_shard": "sharding.images_per_shard (smaller shards)",
    "inventory_shard": "sharding.images_per_shard (smaller shards)",
    "evaluate_probe": "evaluate.n_boot",
    "recon_all": "plan.recon_all_hours (recon-all cannot be split)",
}


@dataclass
class Plan:
    jobs: pd.DataFrame  # one row per job: rule, variant, key, stage, units, mem_units, seconds, mem_mb, ...
    stages: pd.DataFrame  # one row per stage and the total
    assumptions: list[str]
    settings: dict
    sizes: sizes_lib.Sizes | None = None

    def __post_init__(self):
        self._by_key = {(r, k): (s, m) for r, k, s, m in
                        self.jobs[["rule", "key", "seconds", "mem_mb"]].itertuples(index=False)}
        self._worst = {r: (float(g["seconds"].max()), float(g["mem_mb"].max())) for r, g in self.jobs.groupby("rule")}

    def job(self, rule: str, key: str | None) -> tuple[float, float] | None:
        """(seconds, MB) of one job (``key``: its benchmark file); the rule's largest when ``key`` is not in
        the plan (a shard the simulation made differently); None for a rule the plan does not have."""
        return self._by_key.get((rule, key), self._worst.get(rule))

    def runtime_min(self, rule: str, key: str | None, default: int) -> int:
        found = self.job(rule, key)
        if found is None:
            return default
        return max(MIN_RUNTIME_MIN, math.ceil(found[0] * self.settings["safety_factor"] / 60))

    def mem_mb(self, rule: str, key: str | None, default: int) -> int:
        found = self.job(rule, key)
        if found is None:
            return default
        return max(MIN_MEM_MB, math.ceil(found[1] * self.settings["safety_factor"]))


def job_table(config: dict, regions_path: str) -> pd.DataFrame:
    """The jobs of ``config`` with their work (rule, variant, key, units, mem_units, disk_bytes)."""
    return pd.DataFrame([asdict(j) for j in work.jobs(config, sizes_lib.measure(config), regions_path)])


def predict(config: dict, regions_path: str, costs: pd.DataFrame | None = None) -> Plan:
    """The plan of ``config`` (validated, defaults filled), with ``costs`` (default: the package's table,
    refitted on plan.calibrate_from)."""
    settings = config["plan"]
    sizes = sizes_lib.measure(config)
    costs = (unit_costs(settings["calibrate_from"]) if costs is None else costs).set_index(["rule", "variant"])
    rows = []
    for job in work.jobs(config, sizes, regions_path):
        cost = costs.loc[(job.rule, job.variant)] if (job.rule, job.variant) in costs.index else None
        if cost is None:
            raise PlanError(f"no unit cost for rule {job.rule} ({job.variant or 'any'}); calibrate on a run that "
                            "has it (plan.calibrate_from)")
        on_gpu = job.gpu and settings["gpus"] > 0
        if job.rule == "recon_all":
            seconds = settings["recon_all_hours"] * 3600
        elif on_gpu:
            seconds = cost["s_fixed"] + job.units / (settings["gpu_tflops"] * 1e3)
        else:
            seconds = cost["s_fixed"] + cost["s_per_unit"] * job.units
        rows.append({**asdict(job), "stage": job.stage, "threads": job.threads, "on_gpu": on_gpu,
                     "seconds": seconds, "mem_mb": cost["mem_mb_fixed"] + cost["mem_mb_per_unit"] * job.mem_units})
    jobs = pd.DataFrame(rows)
    used = costs.reset_index().merge(jobs[["rule", "variant"]].drop_duplicates(), on=["rule", "variant"])
    sources = sorted({f"{m.split(': ', 1)[-1] if m.startswith('as ') else m} ({d})" for m, d in
                      used[["measured_on", "date"]].astype(str).itertuples(index=False) if not m.startswith("stated")})
    stated = sorted({f"{r}: {m.removeprefix('stated: ')}" for r, m in used[["rule", "measured_on"]].itertuples(index=False)
                     if m.startswith("stated") and r != "recon_all"})
    assumptions = sizes.assumptions + [
        "unit costs measured on " + "; ".join(sources)] + [f"unit cost stated, not measured: {s}" for s in stated] + [
        *([f"recon-all: {settings['recon_all_hours']} h per subject (a stated figure, not measured here)"]
          if "recon_all" in set(jobs["rule"]) else []),
        f"GPU jobs: {settings['gpu_tflops']} TFLOP/s of one GPU in bf16 (a stated estimate until "
        "benchmarks/gpu_check.py has measured it)" if settings["gpus"] > 0 else
        "no GPUs (plan.gpus 0): the training rules run on CPU cores",
        f"wall time: stages one after another, each spread over {settings['cores']} cores"
        + (f" and {settings['gpus']} GPUs" if settings["gpus"] else "") + "; never less than its longest job",
        f"job resources: predictions x {settings['safety_factor']} (plan.safety_factor)",
    ] + (["total: every stage but simulate (the simulated world stands in for a study's own cohorts)"]
         if "simulate" in set(jobs["stage"]) else [])
    return Plan(jobs, stage_table(jobs, settings), assumptions, dict(settings), sizes)


def stage_table(jobs: pd.DataFrame, settings: dict) -> pd.DataFrame:
    rows = []
    for stage in [s for s in STAGES if s in set(jobs["stage"])]:
        part = jobs[jobs["stage"] == stage]
        cpu, gpu = part[~part["on_gpu"]], part[part["on_gpu"]]
        core_s = float((cpu["seconds"] * cpu["threads"]).sum())
        wall = max(core_s / settings["cores"], float(cpu["seconds"].max()) if len(cpu) else 0.0)
        if len(gpu):
            wall += max(float(gpu["seconds"].sum()) / settings["gpus"], float(gpu["seconds"].max()))
        rows.append({"stage": stage, "jobs": len(part), "core_hours": core_s / 3600,
                     "gpu_hours": float(gpu["seconds"].sum()) / 3600, "peak_mem_gb": float(part["mem_mb"].max()) / 1e3,
                     "disk_gb": float(part["disk_bytes"].sum()) / 1e9, "wall_hours": wall / 3600})
    table = pd.DataFrame(rows)
    study = table[table["stage"] != "simulate"]  # the demo world is not part of a study's bill
    total = {"stage": "total", "jobs": int(study["jobs"].sum()), "peak_mem_gb": float(study["peak_mem_gb"].max())}
    total.update({c: float(study[c].sum()) for c in ("core_hours", "gpu_hours", "disk_gb", "wall_hours")})
    return pd.concat([table, pd.DataFrame([total])], ignore_index=True)


def render(plan: Plan) -> str:
    """The plan as a readable table with its assumptions."""
    s = plan.settings
    head = f"rnce plan: {s['cores']} cores, {s['gpus']} GPUs"
    table = plan.stages.copy()
    for c, digits in (("core_hours", 2), ("gpu_hours", 2), ("peak_mem_gb", 1), ("disk_gb", 2), ("wall_hours", 2)):
        table[c] = table[c].map(lambda v, d=digits: f"{v:,.{d}f}")
    lines = [head, table.to_string(index=False)] + ["assumes: " + a for a in plan.assumptions]
    return "\n".join(lines) + "\n"


def check_walltime(plan: Plan) -> None:
    """Raise when a job's requested runtime (prediction x safety factor) exceeds plan.max_runtime_min."""
    limit = plan.settings.get("max_runtime_min")
    if not limit:
        return
    asked = [plan.runtime_min(r, k, 0) for r, k in zip(plan.jobs["rule"], plan.jobs["key"], strict=True)]
    over = plan.jobs.assign(asked=asked).loc[lambda t: t["asked"] > limit]
    if over.empty:
        return
    lines = []
    for rule, group in over.groupby("rule", sort=False):
        worst = group.sort_values("asked").iloc[-1]
        lines.append(f"rule {rule}: {len(group)} job(s) would ask for up to {worst['asked']:,.0f} min "
                     f"({worst['key']}); change {REMEDY.get(rule, 'the settings that size this rule')}")
    raise PlanError(f"{len(over)} job(s) cannot fit the profile's largest walltime (plan.max_runtime_min: {limit} "
                    f"min, predictions x plan.safety_factor {plan.settings['safety_factor']}):\n  "
                    + "\n  ".join(lines) + "\n\n" + render(plan)
                    + "(plan.tsv without this check: --config plan=\"{max_runtime_min: null}\")")


def write(plan: Plan, table_path: str, jobs_path: str, text_path: str) -> None:
    """plan.tsv (per stage and total), plan_jobs.tsv (per job: the work a later calibration needs) and the
    printout (plan.txt)."""
    write_tsv(plan.stages, table_path)
    write_tsv(plan.jobs, jobs_path)
    write_text(render(plan), text_path)


def make_plan(config: dict, regions_path: str, table_path: str, jobs_path: str, text_path: str) -> Plan:
    """Predict, write and print the plan (the printout also goes to the log)."""
    plan = predict(config, regions_path)
    write(plan, table_path, jobs_path, text_path)
    text = render(plan)
    print(text, end="", flush=True)
    logging.getLogger(__name__).info("plan of %d jobs:\n%s", len(plan.jobs), text)
    return plan
