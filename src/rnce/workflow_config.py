"""The workflow's config in one canonical form.

Snakemake decides that a job's params changed by comparing their ``repr``; the repr of a dict
follows its key order, which depends on how the YAML was written (or re-saved by a tool, or
completed with the schema's defaults). Sorting the mappings' keys makes a reordered but equal
config plan nothing. The order of the cohorts is kept: it is meaningful (tables are stacked and
the simulated world is drawn in that order).
"""

from __future__ import annotations

import difflib
import re
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


COHORT_PATHS = ("participants", "bids", "subjects_dir", "genotypes")


def expand_results(config: dict) -> None:
    """``{results}`` in a cohort's paths (participants, bids, subjects_dir, genotypes) becomes the ``results``
    folder, in place: the demo's simulated cohorts live under it, so ``--config results=elsewhere`` moves them
    with everything else."""
    for spec in (config.get("cohorts") or {}).values():
        for key in COHORT_PATHS:
            if isinstance(spec.get(key), str):
                spec[key] = spec[key].replace("{results}", str(config["results"]))


def _types(node: dict, definitions: dict) -> dict:
    """A schema node with its $ref resolved."""
    if "$ref" in node:
        return definitions[node["$ref"].rsplit("/", 1)[-1]]
    return node


def numbers_from_command_line(config: Any, schema: dict, definitions: dict | None = None) -> Any:
    """``--config`` values (on the command line or in a profile) arrive as strings, nested ones too
    (``--config plan="{max_runtime_min: 2880}"``): where the schema wants a number or null and not a string,
    a string that reads as one becomes one. Returns the converted node (dicts and lists in place)."""
    definitions = schema.get("definitions", {}) if definitions is None else definitions
    schema = _types(schema, definitions)
    if isinstance(config, dict):
        properties, extra = schema.get("properties", {}), schema.get("additionalProperties")
        for key, value in config.items():
            sub = properties.get(key, extra if isinstance(extra, dict) else None)
            if sub is not None:
                config[key] = numbers_from_command_line(value, sub, definitions)
        return config
    if isinstance(config, list) and isinstance(schema.get("items"), dict):
        config[:] = [numbers_from_command_line(v, schema["items"], definitions) for v in config]
        return config
    kinds = schema.get("type", [])
    kinds = [kinds] if isinstance(kinds, str) else kinds
    if isinstance(config, str) and "string" not in kinds:
        if config in ("null", "None", "~") and "null" in kinds:
            return None
        for kind, cast in (("integer", int), ("number", float)):
            if kind in kinds:
                try:
                    return cast(config)
                except ValueError:
                    pass
    return config


class ConfigError(ValueError):
    """A config that breaks the schema: each problem with its key, never the whole schema."""

    plain = True  # bad input the user must fix: scripts print the message, the traceback goes to the log


def config_problems(config: dict, schema: dict) -> list[str]:
    """One line per schema violation: the key, what is wrong, and for an unknown key the allowed keys
    there and the closest one (Snakemake's own message prints the whole schema, hundreds of lines)."""
    import jsonschema

    validator = jsonschema.validators.validator_for(schema)(schema)
    problems = []
    for err in sorted(validator.iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path]):
        where = ".".join(str(p) for p in err.absolute_path)
        if err.validator == "additionalProperties":
            allowed = sorted(err.schema.get("properties", {}))
            for key in re.findall(r"'([^']+)'", err.message.split(" were unexpected")[0].split(" was unexpected")[0]):
                close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                problems.append(f"{where + '.' if where else ''}{key}: unknown key ('{key}' was unexpected); "
                                f"allowed here: {', '.join(allowed)}{hint}")
        else:
            problems.append(f"{where or '(top level)'}: {err.message}")
    return problems


def check_config(config: dict, schema_path: str) -> None:
    """Raise :class:`ConfigError` listing every problem of ``config`` (see :func:`config_problems`)."""
    import yaml

    with open(schema_path) as fh:
        schema = yaml.safe_load(fh)
    numbers_from_command_line(config, schema)
    problems = config_problems(config, schema)
    if problems:
        raise ConfigError(f"{len(problems)} problem(s) in the config ({schema_path} is the contract):\n  "
                          + "\n  ".join(problems))


def cancel_scheduler_timers() -> int:
    """Cancel the re-selection timers Snakemake's job rate limiter leaves waiting (non-daemon threads: the
    process would not exit until the last fired). Called by the Snakefile's onsuccess/onerror; returns how
    many were cancelled."""
    import threading

    timers = [t for t in threading.enumerate() if isinstance(t, threading.Timer) and t.is_alive()]
    for timer in timers:
        timer.cancel()
    return len(timers)


CONTRASTIVE = ("rnce", "simclr", "barlow_twins")


def feature_sets(chosen: list[str] | None, key: str, imaged: bool, methods: list[str], pretrain: bool) -> list[str]:
    """The feature sets of a stage (``key``: evaluate or brain_age): ``chosen`` (``<key>.feature_sets``), or fs,
    the intensity baseline (when the stage's cohorts have images) and every SSL method (when a cohort
    pretrains, too). Chosen by name only: a contrastive method's stage-1 representations,
    ``<method>_regional``."""
    available = ["fs"] + (["intensity"] if imaged else []) + (list(methods) if imaged and pretrain else [])
    if chosen is None:
        return available
    available += [f"{m}_regional" for m in methods if m in CONTRASTIVE and m in available]
    unknown = [f for f in chosen if f not in available]
    if unknown:
        raise ValueError(f"config {key}.feature_sets: {unknown} are neither 'fs', 'intensity', an ssl method nor "
                         f"a contrastive method's '<method>_regional' "
                         f"embedded for the {key} cohorts (available: {available})")
    return list(chosen)


def load_config(path: str, schema_path: str, results: str | None = None) -> dict:
    """A workflow config as the Snakefile completes it: read, the schema's defaults filled in, ``{results}``
    expanded (``results`` replaces the file's own)."""
    import yaml
    from snakemake.utils import validate

    with open(path) as f:
        config = yaml.safe_load(f)
    if results is not None:
        config["results"] = results
    validate(config, schema_path)
    expand_results(config)
    return config
