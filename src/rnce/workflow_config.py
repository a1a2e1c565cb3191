"""The workflow's config in one canonical form.

Snakemake decides that a job's params changed by comparing their ``repr``; the repr of a dict
follows its key order, which depends on how the YAML was written (or re-saved by a tool, or
completed with the schema's defaults). Sorting the mappings' keys makes a reordered but equal
config plan nothing. The order of the cohorts is kept: it is meaningful (tables are stacked and
the simulated world is drawn in that order).
"""

from __future__ import annotations

from typing import Any

ORDERED = frozenset({"cohorts"})  # mappings whose key order means something


def canonical(node: Any, ordered: bool = False) -> Any:
    """The same value with mapping keys sorted, recursively; lists and ``ORDERED`` mappings keep their order."""
    if isinstance(node, dict):
        keys = list(node) if ordered else sorted(node, key=str)
        return {key: canonical(node[key], key in ORDERED) for key in keys}
    if isinstance(node, list):
        return [canonical(item) for item in node]
    return node


def make_canonical(config: dict) -> None:
    """Reorder ``config`` in place (Snakemake's ``config`` object must stay the same dict)."""
    ordered = canonical(config)
    config.clear()
    config.update(ordered)
