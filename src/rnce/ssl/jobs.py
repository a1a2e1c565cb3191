"""Job specifications (the dicts :func:`rnce.ssl.tasks.build` reads) from the workflow's ``ssl`` config.

:func:`settings` keeps only what a job's result depends on, so the workflow
passes it as a rule parameter and a change to, say, the stage-2 epochs reruns
the aggregators and not the 54 stage-1 encoders.
"""

from __future__ import annotations

MODEL_KEYS = {
    "encoder": ("rep_dim", "encoder_widths"),
    "aggregator": ("rep_dim", "encoder_widths", "aggregator_depth", "aggregator_heads"),
    "models_genesis": ("rep_dim", "unet_base", "unet_depth"),
    "lssl": ("rep_dim", "unet_base", "unet_depth"),
}
LOSS_KEYS = {"rnce": ("temperature", "aux_weight", "aux_ridge"), "simclr": ("temperature",),
             "barlow_twins": ("barlow_lambda",), "models_genesis": (), "lssl": ("lssl_weight",)}
TRAINING_BLOCK = {"encoder": "stage1", "aggregator": "stage2", "models_genesis": "reconstruction",
                  "lssl": "reconstruction"}


def kind_of(method: str, stage: str) -> str:
    """``encoder``/``aggregator`` for the contrastive methods' stage 1/2; the method for the
    reconstruction baselines (one whole-image model, ``stage`` "model")."""
    if method in ("models_genesis", "lssl"):
        return method
    if stage not in ("encoder", "aggregator"):
        raise ValueError(f"{method} has stages 'encoder' and 'aggregator', not {stage!r}")
    return stage


def settings(ssl: dict, method: str, stage: str, voxel_mm: float = 1.0) -> dict:
    """The part of the ``ssl`` config one job of ``method`` at ``stage`` depends on
    (``voxel_mm``: the patch grid's voxel size, for the encoders' augmentations)."""
    kind = kind_of(method, stage)
    out = {
        "model": {k: ssl[k] for k in MODEL_KEYS[kind]},
        "train": dict(ssl[TRAINING_BLOCK[kind]]),
        "loss": {k: ssl[k] for k in LOSS_KEYS[method]},
        "seed": ssl["seed"],
        "deterministic": ssl["deterministic"],
        "bf16": ssl["bf16"],
    }
    if kind in ("encoder", "aggregator"):
        out["validation_fraction"] = float(ssl.get("validation_fraction", 0.0))
    if kind == "encoder":
        out["augment"] = dict(ssl["augment"])
        out["voxel_mm"] = float(voxel_mm)
    return out


def make_job(method: str, stage: str, job_settings: dict, patch_root: str, cohorts: list[str], out: dict,
             threads: int = 1, processes: int = 1, box: str | None = None, auxiliary: str | None = None,
             auxiliary_boxes: str | None = None, encoders: dict[str, str] | None = None,
             visits: list[dict] | None = None) -> dict:
    """A complete job dict. ``out``: model, metrics, checkpoints paths. ``threads``
    are shared by the ``processes``; each keeps one for itself and gives the rest to its
    data-loading workers when it has a GPU to feed."""
    import torch

    per_process = max(1, threads // max(1, processes))
    workers = per_process - 1 if torch.cuda.is_available() else 0
    visit_rows = [[v["cohort"], v["participant_id"], v["session_id"], v["age"]] for v in visits or []]
    return {"kind": kind_of(method, stage), "method": method, "box": box, "patch_root": patch_root,
            "cohorts": list(cohorts), "auxiliary": auxiliary if method == "rnce" else None,
            "auxiliary_boxes": auxiliary_boxes if method == "rnce" else None, "encoders": encoders,
            "visits": visit_rows,
            "threads": per_process, "workers": workers, **job_settings, "augment": job_settings.get("augment", {}),
            "out": dict(out)}
