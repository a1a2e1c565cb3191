"""The training loop of every SSL job: checkpoints, preemption, DDP, bf16, metrics.

- A checkpoint is written atomically after every epoch, and on SIGTERM or
  SIGUSR1 (SLURM preemption or the end of the time limit) after the current
  step; the job then exits with :data:`REQUEUE_EXIT_CODE` (143, "terminated by
  SIGTERM"), which Snakemake's ``--retries`` and SLURM's ``RequeueExit`` treat as
  a job to run again. A rerun resumes from the newest readable checkpoint; a
  corrupt one is skipped with a log line. Checkpoints live outside the job's
  outputs (Snakemake removes the outputs of a failed job, not them) and are
  removed when the job completes. A checkpoint made with other settings or
  other training images is not resumed.
- On CPU with ``deterministic``, a resumed run ends with the same weights as an
  uninterrupted one (batches and augmentations are keyed by seed, epoch and
  index, see :mod:`rnce.ssl.data`).
- Several processes (``torchrun``, one per GPU, launched by :func:`launch`):
  DDP, SyncBatchNorm on GPU, the contrastive losses over the global batch.
- bf16 autocast on GPU; losses in float32.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from rnce.io import atomic_path, write_tsv
from rnce.ssl.data import EpochBatches
from rnce.ssl.tasks import Task, build, fingerprint

log = logging.getLogger(__name__)
REQUEUE_EXIT_CODE = 143
KEEP_CHECKPOINTS = 2


class Checkpoints:
    """``{folder}/step-{epoch:04d}-{step:06d}.pt``, newest last; the last two are kept."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def paths(self) -> list[Path]:
        return sorted(self.folder.glob("step-*.pt"))

    def save(self, state: dict) -> Path:
        path = self.folder / f"step-{state['epoch']:04d}-{state['step']:06d}.pt"
        with atomic_path(path) as tmp:
            torch.save(state, tmp)
        for old in self.paths()[:-KEEP_CHECKPOINTS]:
            old.unlink(missing_ok=True)
        return path

    def latest(self, key: str) -> dict | None:
        """The newest readable checkpoint made for ``key`` (a :func:`fingerprint`), or None."""
        for path in reversed(self.paths()):
            try:
                state = torch.load(path, map_location="cpu", weights_only=False)
            except Exception as err:  # a torn or corrupt file: fall back to the one before
                log.warning("checkpoint %s is unreadable (%s: %s); falling back to the previous one", path,
                            type(err).__name__, err)
                continue
            if state.get("fingerprint") != key:
                log.warning("checkpoint %s was made with other settings or images; starting afresh", path)
                return None
            log.info("resuming from %s (epoch %d, step %d)", path, state["epoch"], state["step"])
            return state
        return None

    def clear(self) -> None:
        for path in self.paths():
            path.unlink(missing_ok=True)


class StopRequest:
    """Remembers a SIGTERM/SIGUSR1; the loop checks it after every step."""

    def __init__(self):
        self.signal: int | None = None
        self.previous = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGTERM, signal.SIGUSR1)}

    def restore(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum, frame) -> None:
        self.signal = signum

    def requested(self, world: int) -> bool:
        flag = torch.tensor([1.0 if self.signal else 0.0])
        if world > 1:
            dist.all_reduce(flag)
        return bool(flag.item())


def _ignore_signals(worker_id: int) -> None:
    """Loader workers leave SIGTERM/SIGUSR1 to the main process, which checkpoints first."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)


def keep_freed_memory() -> bool:
    """On Linux (glibc), keep freed blocks in the process instead of unmapping them: by default every block
    over 32 MB goes back to the OS when freed and comes back as fresh zeroed pages, and a CPU training step
    allocates such blocks dozens of times (a batch of views, the encoder's activations). Raising the mmap and
    trim thresholds, as PyTorch's CPU tuning guide's jemalloc/tcmalloc advice does, made a study step 12%
    faster and the batched augmentation 15% (benchmarks/train_throughput.py, augment.py). The price: the
    process keeps its peak memory. Returns whether it applied."""
    import ctypes
    import ctypes.util

    if not sys.platform.startswith("linux") or not ctypes.util.find_library("c"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        m_trim_threshold, m_mmap_threshold = -1, -3
        return bool(libc.mallopt(m_mmap_threshold, 1 << 30)) and bool(libc.mallopt(m_trim_threshold, 1 << 30))
    except (OSError, AttributeError):  # not glibc
        return False


def setup(job: dict) -> tuple[int, int, torch.device]:
    """Process group (under torchrun), device, threads, seeds, determinism; on CPU, the allocator setting of
    :func:`keep_freed_memory`."""
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    cuda = torch.cuda.is_available()
    if not cuda:
        keep_freed_memory()
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(device)
    torch.set_num_threads(max(1, int(job.get("threads", 1))))
    torch.manual_seed(job["seed"])
    if job.get("deterministic"):
        torch.use_deterministic_algorithms(True, warn_only=cuda)
        torch.backends.cudnn.benchmark = False
    elif cuda:
        torch.backends.cudnn.benchmark = True
    return rank, world, device


def _to(batch, device):
    return [b.to(device, non_blocking=True) for b in batch]


def fit(task: Task, device: torch.device, rank: int = 0, world: int = 1) -> pd.DataFrame:
    """Train ``task`` (resuming from its checkpoints), write its model and metrics (epoch, loss,
    samples_per_s, seconds, data_wait_s: the time spent waiting for the loader, learning_rate)."""
    job, train, out = task.job, task.job["train"], task.job["out"]
    distributed = world > 1 and task.distributed
    model = task.model.to(device)
    if job["kind"] == "encoder" and job.get("channels_last", device.type == "cpu"):
        # oneDNN's 3D convolutions in channels-last order: 1.5x faster steps at 4 mm and at 1 mm
        # (benchmarks/train_throughput.py); GPUs keep the default order until measured there (gpu_check.py)
        model = model.to(memory_format=torch.channels_last_3d)
    core = model
    if distributed:
        if device.type == "cuda":
            model = core = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.index is not None
                                                          else None)
    n_ranks = world if distributed else 1
    steps = len(task.dataset) // train["batch_size"]
    if steps == 0:
        raise ValueError(f"{len(task.dataset)} training samples are fewer than one batch of {train['batch_size']}; "
                         f"lower the batch size or add images")
    optimizer = torch.optim.AdamW(model.parameters(), lr=train["learning_rate"], weight_decay=train["weight_decay"])
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=train["epochs"] * steps)
    checkpoints, key = Checkpoints(out["checkpoints"]), fingerprint(task)
    state = checkpoints.latest(key) or {"epoch": 0, "step": 0, "loss_sum": 0.0, "loss_count": 0, "metrics": []}
    if "model" in state:
        core.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
    stop = StopRequest()
    cuda = device.type == "cuda"
    bf16 = cuda and job.get("bf16", True)
    log.info("training %s %s%s: %d samples, %d steps/epoch, %d epochs, %d process(es), %s%s", job["kind"],
             job["method"], f" {job['box']}" if job.get("box") else "", len(task.dataset), steps, train["epochs"],
             n_ranks, device, " bf16" if bf16 else "")

    def snapshot(epoch: int, step: int) -> dict:
        return {"epoch": epoch, "step": step, "fingerprint": key, "model": core.state_dict(),
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "loss_sum": state["loss_sum"], "loss_count": state["loss_count"], "metrics": state["metrics"]}

    model.train()
    try:
        _epochs(task, model, optimizer, scheduler, checkpoints, state, snapshot, stop, device, rank, n_ranks)
    finally:
        stop.restore()
    metrics = pd.DataFrame(state["metrics"])
    if rank == 0:
        with atomic_path(out["model"]) as tmp:
            torch.save(task.export(core), tmp)
        write_tsv(metrics, out["metrics"])
        checkpoints.clear()
    return metrics


def _epochs(task, model, optimizer, scheduler, checkpoints, state, snapshot, stop, device, rank, n_ranks) -> None:
    """The epochs left to train (from ``state``), checkpointing after each."""
    job, train = task.job, task.job["train"]
    cuda = device.type == "cuda"
    bf16 = cuda and job.get("bf16", True)
    for epoch in range(state["epoch"], train["epochs"]):
        if hasattr(task.dataset, "epoch"):
            task.dataset.epoch = epoch
        sampler = EpochBatches(len(task.dataset), train["batch_size"], job["seed"], epoch, state["step"],
                               rank if n_ranks > 1 else 0, n_ranks)
        loader = DataLoader(task.dataset, batch_sampler=sampler, num_workers=job.get("workers", 0),
                            worker_init_fn=_ignore_signals, pin_memory=cuda)
        started, samples, waited = time.perf_counter(), 0, 0.0
        batches = iter(loader)
        for step in range(state["step"], state["step"] + len(sampler)):
            asked = time.perf_counter()
            batch = next(batches)
            waited += time.perf_counter() - asked
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                loss = task.loss(model, _to(batch, device), epoch, step)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"{job['method']} loss is {loss.item()} at epoch {epoch + 1}, step {step + 1}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            state["loss_sum"] += float(loss.detach())
            state["loss_count"] += 1
            samples += train["batch_size"]
            if stop.requested(n_ranks):
                if rank == 0:
                    path = checkpoints.save(snapshot(epoch, step + 1))
                    log.warning("signal %s: checkpoint %s written; exiting with %d for a requeue", stop.signal,
                                path, REQUEUE_EXIT_CODE)
                raise SystemExit(REQUEUE_EXIT_CODE)
        seconds = time.perf_counter() - started
        row = {"epoch": epoch + 1, "loss": state["loss_sum"] / max(state["loss_count"], 1),
               "samples_per_s": samples / seconds if seconds > 0 else math.nan, "seconds": seconds,
               "data_wait_s": waited, "learning_rate": scheduler.get_last_lr()[0]}
        state.update(metrics=state["metrics"] + [row], loss_sum=0.0, loss_count=0, step=0)
        log.info("epoch %d/%d: loss %.5f, %.1f samples/s, %.1f s (%.0f%% waiting for data)", row["epoch"],
                 train["epochs"], row["loss"], row["samples_per_s"], seconds, 100 * waited / max(seconds, 1e-9))
        if rank == 0:
            checkpoints.save(snapshot(epoch + 1, 0))


def run(job: dict) -> pd.DataFrame:
    """One process's part of a job (all of it without torchrun)."""
    rank, world, device = setup(job)
    try:
        return fit(build(job, device), device, rank, world)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def launch(job: dict, processes: int = 1) -> None:
    """Run a job in this process, or in ``processes`` processes under ``torchrun`` (DDP;
    one per GPU). Stage 2 (a small transformer on stored representations) always runs
    in one process. A preempted run exits with the code its processes exited with."""
    if processes <= 1 or job["kind"] == "aggregator":
        run(job)
        return
    spec = Path(job["out"]["checkpoints"]) / "job.json"
    spec.parent.mkdir(parents=True, exist_ok=True)
    spec.write_text(json.dumps(job))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
           "-m", "rnce.ssl.train", str(spec)]
    log.info("launching %d processes: %s", processes, " ".join(cmd))
    code = subprocess.run(cmd).returncode
    if code:
        raise SystemExit(code)


if __name__ == "__main__":
    from rnce.logs import to_file

    to_file(None)
    run(json.loads(Path(sys.argv[1]).read_text()))
