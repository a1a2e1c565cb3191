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
        if getattr(value, "plain", False):  # bad input the user must fix: the message, no traceback
            logging.getLogger("rnce").error("%s", value)
            print(f"{kind.__name__}: {value}", file=sys.stderr)
            return
        logging.getLogger("rnce").error("uncaught error", exc_info=(kind, value, tb))
        sys.__excepthook__(kind, value, tb)

    sys.excepthook = excepthook
