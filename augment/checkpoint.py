"""The GAN checkpoint: plain dicts of tensors and primitives, loadable with ``weights_only=True``.

Layout (``format`` 1)::

    {"format": 1, "hparams": {preset, image_shape, num_classes, z_dim, width},
     "classes": [...], "epoch": int, "config": {TrainConfig fields},
     "generator": EMA generator state (used for sampling), "generator_raw": G state,
     "discriminator": D state, "opt_g": ..., "opt_d": ..., "history": [{epoch metrics}, ...],
     "ema_steps": int (the EMA's update count), "rng": {"cpu": ByteTensor[, "cuda": ...]},
     "best": None | {"epoch": int, "generator": EMA generator state, "quality": {judge's
                     report}, "guards": {"passed": bool, "judge_ratio": float, "reasons": [...]}}}

``ema_steps`` and ``rng`` make ``--resume`` continue the run exactly: same weights as without
the stop. ``best`` is the checkpoint kept by the quality guards (:mod:`augment.guards`): the
generator that synthesis uses. Checkpoints without it (no judge) use the last EMA generator.
"""

from __future__ import annotations

import pickle
import sys
import zipfile
from pathlib import Path

import torch
from torch import nn

from .errors import CheckpointError
from .io import torch_save
from .models import PRESETS, build_generator

FORMAT = 1
_HPARAMS = ("preset", "image_shape", "num_classes", "z_dim", "width")


def save_checkpoint(path: str | Path, state: dict) -> None:
    """Write ``state`` atomically (a crash mid-save keeps the previous checkpoint)."""
    torch_save({"format": FORMAT, **canonical(state)}, path)


def canonical(obj):
    """``obj`` with every string interned. Pickle shares a string written twice only when both
    are one object; a run resumed from a checkpoint holds loaded copies where a fresh run holds
    the code's literals, and would otherwise write other bytes for the same values."""
    if isinstance(obj, str):
        return sys.intern(obj)
    if isinstance(obj, dict):
        return {canonical(k): canonical(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(canonical(v) for v in obj)
    return obj


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Read and sanity-check a checkpoint; errors say what is wrong and what to do."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found; run the train stage first "
                              "(augment train / dvc repro train)")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, KeyError, TypeError, pickle.UnpicklingError, zipfile.BadZipFile,
            EOFError) as err:  # KeyError: a text file read as a legacy pickle
        raise CheckpointError(f"{path}: not a readable checkpoint ({err.__class__.__name__}: "
                              f"{str(err)[:200]}); re-run the train stage") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an augment checkpoint of format {FORMAT}; "
                              "re-run the train stage with this version")
    hparams = state.get("hparams", {})
    if set(_HPARAMS) - set(hparams) or hparams.get("preset") not in PRESETS:
        raise CheckpointError(f"{path}: checkpoint hparams incomplete or unknown preset: {hparams}")
    return state


def load_generator(path: str | Path, device: str | torch.device = "cpu", *,
                   accept_failed: bool = False) -> tuple[nn.Module, tuple[str, ...]]:
    """The generator a checkpoint keeps for synthesis (the best checkpoint's EMA generator, or
    the last one), in eval mode on ``device``, and its class names. A generator that failed the
    quality guards is refused unless ``accept_failed``."""
    return kept_generator(load_checkpoint(path), path, device, accept_failed=accept_failed)


def kept_generator(state: dict, path: str | Path, device: str | torch.device = "cpu", *,
                   accept_failed: bool = False) -> tuple[nn.Module, tuple[str, ...]]:
    """:func:`load_generator` for a checkpoint dict already loaded from ``path``."""
    best = state.get("best")
    if best is not None and not best["guards"]["passed"] and not accept_failed:
        raise CheckpointError(
            f"{path}: its generator (epoch {best['epoch']}) failed the train stage's quality "
            f"guards ({'; '.join(best['guards']['reasons'])}); retrain with other settings, or "
            "set synthesize.accept_failed_gan: true to use it anyway")
    generator = build_generator(state["hparams"])
    try:
        generator.load_state_dict(state["generator"] if best is None else best["generator"])
    except (RuntimeError, KeyError) as err:
        raise CheckpointError(f"{path}: generator weights do not match its hparams ({err})") from None
    return generator.to(device).eval(), tuple(state["classes"])
