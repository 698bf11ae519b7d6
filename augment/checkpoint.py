"""The GAN checkpoint: plain dicts of tensors and primitives, loadable with ``weights_only=True``.

Layout (``format`` 1)::

    {"format": 1, "hparams": {preset, image_shape, num_classes, z_dim, width},
     "classes": [...], "epoch": int, "config": {TrainConfig fields},
     "generator": EMA generator state (used for sampling), "generator_raw": G state,
     "discriminator": D state, "opt_g": ..., "opt_d": ..., "history": [{epoch metrics}, ...],
     "ema_steps": int (the EMA's update count), "rng": {"cpu": ByteTensor[, "cuda": ...]}}

The last two make ``--resume`` continue the run exactly: same weights as without the stop.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch
from torch import nn

from .errors import CheckpointError
from .io import atomic_path
from .models import PRESETS, build_generator

FORMAT = 1
_HPARAMS = ("preset", "image_shape", "num_classes", "z_dim", "width")


def save_checkpoint(path: str | Path, state: dict) -> None:
    """Write ``state`` atomically (a crash mid-save keeps the previous checkpoint)."""
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, **state}, tmp)


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Read and sanity-check a checkpoint; errors say what is wrong and what to do."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found; run the train stage first "
                              "(augment train / dvc repro train)")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, EOFError) as err:
        raise CheckpointError(f"{path}: not a readable checkpoint ({err.__class__.__name__}: "
                              f"{str(err)[:200]}); re-run the train stage") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an augment checkpoint of format {FORMAT}; "
                              "re-run the train stage with this version")
    hparams = state.get("hparams", {})
    if set(_HPARAMS) - set(hparams) or hparams.get("preset") not in PRESETS:
        raise CheckpointError(f"{path}: checkpoint hparams incomplete or unknown preset: {hparams}")
    return state


def load_generator(path: str | Path, device: str | torch.device = "cpu"
                   ) -> tuple[nn.Module, tuple[str, ...]]:
    """The EMA generator of a checkpoint (eval mode, on ``device``) and its class names."""
    state = load_checkpoint(path)
    generator = build_generator(state["hparams"])
    try:
        generator.load_state_dict(state["generator"])
    except (RuntimeError, KeyError) as err:
        raise CheckpointError(f"{path}: generator weights do not match its hparams ({err})") from None
    return generator.to(device).eval(), tuple(state["classes"])
