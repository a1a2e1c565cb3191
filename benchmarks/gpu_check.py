"""The GPU check: a stage-1 job at 1 mm with the paper's widths (8-128) in bf16 on a synthetic patch store of
realistic size, through the package's own training code (rnce.ssl.train.fit), three ways:

- batched: views made a batch at a time on the GPU (ssl.augment.backend: batched, the default);
- batched, channels-last: the same with the encoder in channels-last order (what CPU jobs use);
- torchio: views made one at a time by torchio in the loader's worker processes (skipped where torchio is not
  installed: carry its wheels, /work/.library/device/README.md, or run it where it is).

For each it prints samples/s (the last epoch, from the job's metrics), the GPU's utilisation sampled every
0.2 s by NVML (nvidia-smi where NVML is missing) over that epoch, the loader's share of step time (the time
the loop waited for a batch) and peak GPU memory, then the last line
    gpu_check: utilisation <batched path's> (goal >= 0.9)

Needs no network; about 3 minutes on one H100 with the defaults (the store: 4,096 images of a 61 x 66 x 61
box, 3 GB under --store). `--dry-run` prints the plan and checks the imports, on any machine.

Run from the repo root: python benchmarks/gpu_check.py [--dry-run] [--images 4096] [--batch 128]

On this project's lent GPU machines (PyTorch, pandas, scipy, PyYAML and NVML there; no network) the torchio
path needs four wheels carried (56 MB, inside the 64 MiB a call carries): here,
    mkdir -p .git/info && echo /.whl/ >> .git/info/exclude
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_17_x86_64 -d .whl torchio==1.2.1 nibabel==5.4.2 simpleitk==2.5.7 deprecated==1.3.1
then, with `.whl` carried, the command there:
    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && \
    PYTHONPATH=/tmp/site:src python3 benchmarks/gpu_check.py
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
BOX = "rh_parietal"


def paper_ssl() -> dict:
    """The ``ssl`` section's package defaults (the paper's widths, batch 128, bf16), from the config schema."""
    import yaml

    schema = yaml.safe_load(SCHEMA.read_text())["properties"]["ssl"]["properties"]
    ssl = {k: v["default"] for k, v in schema.items() if "default" in v}
    ssl["augment"] = {k: v["default"] for k, v in schema["augment"]["properties"].items()}
    return ssl


def _shard(args: tuple) -> None:
    """One shard of the synthetic store: each image an ellipsoid 'brain' with three tissue shells, times a
    smooth random field of its own (what makes images differ), labels from the shells."""
    from scipy import ndimage

    from rnce.imaging.patches import ShardWriter

    folder, first, count, shape = args
    rng = np.random.default_rng(first)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"))
    radius = np.sqrt((grid ** 2).sum(0))
    labels = np.select([radius < 0.5, radius < 0.75, radius < 0.95], [3, 2, 1], 0).astype(np.uint8)
    anatomy = np.choose(labels, [0.0, 0.3, 0.6, 1.0]).astype(np.float32)
    full = tuple(slice(0, n) for n in shape)
    writer = ShardWriter(folder, {BOX: full}, full, 8)
    for i in range(first, first + count):
        field = ndimage.zoom(rng.normal(size=(6, 6, 6)), [n / 6 for n in shape], order=1)
        writer.add(f"sub-{i:06d}", "1", f"{i:012x}", (anatomy * (1 + 0.3 * field)).astype(np.float32), labels)
    writer.close(__import__("pandas").DataFrame())


def build_store(root: Path, n: int, shape: tuple[int, int, int], workers: int, per_shard: int = 256) -> None:
    done = root / "bench" / "done.json"
    if done.exists() and json.loads(done.read_text()) == {"images": n, "shape": list(shape)} and \
            (root / "bench" / "passed.tsv").exists():
        return
    shutil.rmtree(root, ignore_errors=True)
    (root / "bench").mkdir(parents=True)
    jobs = [(root / "bench" / f"shard-{s // per_shard:04d}", s, min(per_shard, n - s), shape)
            for s in range(0, n, per_shard)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        list(pool.map(_shard, jobs))
    from rnce.imaging.patches import pass_all

    pass_all(root, "bench")  # synthetic images: no registration QC
    done.write_text(json.dumps({"images": n, "shape": list(shape)}))


class Utilisation:
    """GPU utilisation (%) sampled every ``interval`` s in a thread, by NVML or else nvidia-smi."""

    def __init__(self, interval: float = 0.2, gpu: bool = True):
        self.interval, self.samples, self._stop = interval, [], threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        if not gpu:  # --allow-cpu: nothing to sample
            self.read, self.source = None, "none"
            return
        try:
            import pynvml

            pynvml.nvmlInit()
            handle = pynvml.nvmlDeviceGetHandleByIndex(0)
            self.read = lambda: float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
            self.source = "NVML"
        except Exception:  # no NVML binding: ask nvidia-smi
            self.read = lambda: float(subprocess.run(
                ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-i", "0"],
                capture_output=True, text=True, check=True).stdout.split()[0])
            self.source = "nvidia-smi"

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.perf_counter(), self.read()))
            time.sleep(self.interval)

    def __enter__(self):
        if self.read is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def mean(self, start: float, end: float) -> float:
        inside = [u for t, u in self.samples if start <= t <= end]
        return float(np.mean(inside)) / 100 if inside else float("nan")


def run_job(store: Path, out: Path, name: str, args, backend: str, channels_last: bool, images: int) -> dict:
    import torch

    from rnce.ssl.jobs import make_job, settings
    from rnce.ssl.tasks import build
    from rnce.ssl.train import fit, setup

    ssl = paper_ssl()
    ssl["stage1"] = {**ssl["stage1"], "batch_size": args.batch, "epochs": args.epochs}
    ssl["augment"] = {**ssl["augment"], "backend": backend}
    ssl["validation_fraction"] = 0.0
    paths = {"model": str(out / f"{name}.pt"), "metrics": str(out / f"{name}.tsv"),
             "checkpoints": str(out / "checkpoints" / name)}
    job = make_job("simclr", "encoder", settings(ssl, "simclr", "encoder", 1.0), str(store), ["bench"], paths,
                   threads=args.threads, box=BOX)
    job.update(channels_last=channels_last, train_images=images)
    _, _, device = setup(job)
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    with Utilisation(gpu=cuda) as gpu:
        metrics = fit(build(job, device), device)
        ended = time.perf_counter()
    last = metrics.iloc[-1]
    return {"path": name, "samples_per_s": float(last["samples_per_s"]), "steps": int(images // args.batch),
            "utilisation": gpu.mean(ended - float(last["seconds"]) - 1.0, ended - 1.0),
            "loader_share": float(last["data_wait_s"] / last["seconds"]),
            "peak_gpu_gib": torch.cuda.max_memory_allocated() / 2 ** 30 if cuda else float("nan"),
            "workers": job["workers"],
            "utilisation_source": gpu.source}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="print the plan and check the imports only")
    parser.add_argument("--images", type=int, default=4096)
    parser.add_argument("--torchio-images", type=int, default=1024, help="images of the (slower) torchio run")
    parser.add_argument("--batch", type=int, default=128, help="stage-1 batch (the package default)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--shape", type=int, nargs=3, default=(61, 66, 61), help="the box (1 mm parietal)")
    parser.add_argument("--threads", type=int, default=16, help="the job's cores: one trains, the rest load")
    parser.add_argument("--store", type=Path, default=Path("/tmp/rnce_gpu_check"))
    parser.add_argument("--allow-cpu", action="store_true", help="run without a GPU (the tests' small run)")
    args = parser.parse_args()
    if not 0 < args.torchio_images <= args.images or args.batch > args.torchio_images:
        raise SystemExit(f"--torchio-images must be between --batch ({args.batch}) and --images ({args.images})")

    import torch

    from rnce.ssl import batch_augment, tasks, train  # noqa: F401  (the imports the check needs)

    try:
        import torchio  # noqa: F401
        has_torchio = True
    except ImportError:
        has_torchio = False
    try:
        import pynvml  # noqa: F401
        sampler = "NVML"
    except ImportError:
        sampler = "nvidia-smi" if shutil.which("nvidia-smi") else "none"
    voxels = int(np.prod(args.shape))
    print(f"plan: {args.images} synthetic images of a {tuple(args.shape)} box at 1 mm "
          f"({args.images * voxels * 3 / 2 ** 30:.1f} GiB under {args.store}), widths "
          f"{paper_ssl()['encoder_widths']}, batch {args.batch}, bf16, {args.threads} cores")
    print(f"  batched               : {args.epochs} epochs of {args.images // args.batch} steps")
    print("  batched, channels-last: the same")
    print(f"  torchio               : {args.epochs} epochs of {args.torchio_images // args.batch} steps"
          + ("" if has_torchio else " (skipped: torchio is not installed)"))
    print(f"imports: rnce.ssl ok, torch {torch.__version__}, torchio {'ok' if has_torchio else 'missing'}, "
          f"utilisation by {sampler}, CUDA {'available' if torch.cuda.is_available() else 'not available'}")
    if args.dry_run:
        return
    if not torch.cuda.is_available() and not args.allow_cpu:
        raise SystemExit("gpu_check needs a CUDA GPU (use --dry-run elsewhere)")
    if sampler == "none" and torch.cuda.is_available():
        raise SystemExit("gpu_check needs NVML (nvidia-ml-py) or nvidia-smi to sample the GPU's utilisation")
    started = time.perf_counter()
    build_store(args.store, args.images, tuple(args.shape), args.threads)
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    print(f"store built in {time.perf_counter() - started:.0f} s; device {device}")
    out = args.store / "jobs"
    runs = [("batched", "batched", False, args.images), ("batched_channels_last", "batched", True, args.images)]
    if has_torchio:
        runs.append(("torchio", "torchio", False, args.torchio_images))
    results = []
    for name, backend, channels_last, images in runs:
        results.append(run_job(args.store, out, name, args, backend, channels_last, images))
        r = results[-1]
        print(f"{name:22s}: {r['samples_per_s']:8.1f} samples/s, GPU utilisation {r['utilisation']:.2f}, loader "
              f"{r['loader_share']:.1%} of step time, peak GPU memory {r['peak_gpu_gib']:.1f} GiB "
              f"({r['workers']} loader workers)", flush=True)
    (out / "gpu_check.json").write_text(json.dumps(results, indent=1))
    print(f"total {time.perf_counter() - started:.0f} s; figures in {out / 'gpu_check.json'}")
    print(f"gpu_check: utilisation {results[0]['utilisation']:.2f} (goal >= 0.9)")


if __name__ == "__main__":
    main()
