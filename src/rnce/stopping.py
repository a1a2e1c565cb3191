"""One SIGINT or SIGTERM stops a local run and every process it started.

Snakemake alone does not: on SIGTERM it waits for its running jobs to finish
(an hour for a shard of ANTs jobs), and a SIGINT reaches a job's Python only
when the C++ call it is in (an ANTs registration) returns. The Snakefile's
``onstart`` calls :func:`install`: a first SIGINT or SIGTERM to Snakemake then
sends SIGTERM to every process below it, SIGKILL to those alive after
``grace_s``, and hands the signal on to Snakemake, which marks the stopped jobs
failed, removes their outputs and exits.

Jobs write under temporary names (:func:`rnce.io.atomic_path`, the patch
store's shard folders), so nothing half-written ever has a real name. Job
scripts turn SIGTERM into ``SystemExit`` (:func:`on_sigterm_exit`, called by
:func:`rnce.logs.to_file`), so their ``finally`` blocks remove their temporary
files; a job SIGKILLed inside C++ leaves its temporary file, which the next
writer of the same output removes.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

log = logging.getLogger(__name__)

GRACE_S = 10.0


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (Linux /proc), children first."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                parent = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry))
    out, queue = [], list(children.get(pid, []))
    while queue:
        child = queue.pop(0)
        out.append(child)
        queue.extend(children.get(child, []))
    return out


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has stopped
    except OSError:
        return False


def stop_descendants(grace_s: float = GRACE_S) -> list[int]:
    """SIGTERM every process below this one, SIGKILL those still alive after ``grace_s``; returns their pids."""
    pids = descendants(os.getpid())
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace_s
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in (p for p in pids if alive(p)):
        log.warning("process %d did not stop within %.0f s of SIGTERM: SIGKILL", pid, grace_s)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return pids


def install(grace_s: float = GRACE_S) -> None:
    """In Snakemake's process: a first SIGINT or SIGTERM stops every job process, then Snakemake (see the module
    docstring). A second signal finds the handlers Snakemake had."""
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum, frame):
        for s, h in previous.items():
            signal.signal(s, h)
        name = signal.Signals(signum).name
        print(f"rnce: {name} received: stopping every job ({grace_s:.0f} s grace, then SIGKILL) and Snakemake",
              flush=True)
        stop_descendants(grace_s)
        action = previous[signum]
        if callable(action):
            action(signum, frame)
        elif signum == signal.SIGINT or action == signal.SIG_DFL:
            raise KeyboardInterrupt

    for s in previous:
        signal.signal(s, handler)


def on_sigterm_exit() -> None:
    """In a job's process: SIGTERM raises ``SystemExit(143)`` (as soon as Python has control), so ``finally``
    blocks remove temporary outputs."""

    def handler(signum, frame):
        raise SystemExit(128 + signum)

    if threading.current_thread() is threading.main_thread():  # only the main thread may set handlers
        signal.signal(signal.SIGTERM, handler)
