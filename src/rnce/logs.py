"""Logging set-up shared by the workflow's scripts."""

from __future__ import annotations

import logging
import sys


def to_file(path: str | None, level: int = logging.INFO) -> None:
    """Send the package's log records (and uncaught errors) to ``path``, or stderr when None."""
    handler: logging.Handler = logging.FileHandler(path, mode="w") if path else logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.captureWarnings(True)

    def excepthook(kind, value, tb):
        if getattr(value, "plain", False):  # bad input the user must fix: the message; the traceback in the log
            logging.getLogger("rnce").error("%s", value, exc_info=(kind, value, tb) if path else None)
            print(f"{kind.__name__}: {value}" + (f"\n(traceback in {path})" if path else ""), file=sys.stderr)
            return
        logging.getLogger("rnce").error("uncaught error", exc_info=(kind, value, tb))
        sys.__excepthook__(kind, value, tb)

    sys.excepthook = excepthook
    from rnce.stopping import on_sigterm_exit

    on_sigterm_exit()  # a stopped run's job removes its temporary outputs (rnce.stopping)


def plainly(call, *args, **kwargs):
    """``call(*args, **kwargs)`` at workflow start: an error the user must fix (``plain``) stops Snakemake with its
    message alone (Snakemake would print its own traceback), the traceback going to ``.snakemake/log``."""
    try:
        return call(*args, **kwargs)
    except Exception as err:
        if not getattr(err, "plain", False):
            raise
        import os
        import traceback

        os.makedirs(".snakemake/log", exist_ok=True)
        path = os.path.abspath(".snakemake/log/rnce_error.txt")
        with open(path, "w") as fh:
            fh.write(traceback.format_exc())
        sys.exit(f"{type(err).__name__}: {err}\n(traceback in {path})")
