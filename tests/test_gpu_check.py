"""benchmarks/gpu_check.py, ready for the GPU it never gets in the tests: its plan and imports (--dry-run),
and its whole path on a tiny store on the CPU (--allow-cpu)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_dry_run_prints_the_plan_and_checks_the_imports():
    done = _run("--dry-run")
    assert done.returncode == 0, done.stderr
    assert "plan: 4096 synthetic images of a (61, 66, 61) box at 1 mm" in done.stdout
    assert "widths [8, 16, 32, 64, 128], batch 128, bf16" in done.stdout
    assert "imports: rnce.ssl ok" in done.stdout and "torchio ok" in done.stdout


def test_without_a_gpu_it_stops_with_a_reason_and_bad_sizes_are_named():
    import torch

    if not torch.cuda.is_available():  # where a GPU is, the plain run is the check itself, not for the tests
        done = _run()
        assert done.returncode != 0 and "needs a CUDA GPU" in done.stderr
    done = _run("--dry-run", "--torchio-images", "9000")
    assert done.returncode != 0 and "--torchio-images" in done.stderr


def test_the_whole_check_runs_on_a_tiny_store(tmp_path):
    done = _run("--allow-cpu", "--images", "48", "--torchio-images", "32", "--batch", "16", "--epochs", "1",
                "--shape", "12", "13", "12", "--threads", "1", "--store", str(tmp_path / "store"))
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1].startswith("gpu_check: utilisation")
    results = json.loads((tmp_path / "store" / "jobs" / "gpu_check.json").read_text())
    assert [r["path"] for r in results] == ["batched", "batched_channels_last", "torchio"]
    assert all(r["samples_per_s"] > 0 and 0 <= r["loader_share"] < 1 for r in results)
    # the torchio path makes its views in the loader: most of its step is waiting for them
    assert results[2]["loader_share"] > results[0]["loader_share"]
