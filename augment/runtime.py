"""Device choice, seeding and progress bars: the few things every stage needs from its host."""

from __future__ import annotations

import os
import random
import sys
from typing import Iterable, TypeVar

import numpy as np
import torch
from tqdm.auto import tqdm

from .errors import ConfigError

T = TypeVar("T")


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``auto``/None → CUDA when present, else CPU; asking for CUDA without one is an error."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: 'cuda' was asked for but no CUDA device is available; "
                          "use device: auto or cpu")
    return device


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) from one integer."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """A CPU generator seeded from (seed, epoch) alone: an epoch's batch order does not depend
    on the epochs before it, so a resumed run draws the batches an uninterrupted one would."""
    mixed = np.random.SeedSequence([seed, epoch]).generate_state(1)[0]
    return torch.Generator().manual_seed(int(mixed))


def rng_state(device: torch.device) -> dict:
    """torch's global generator states (CPU, and the CUDA device's): latents, DiffAugment."""
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device: torch.device) -> None:
    """Restore what :func:`rng_state` saved (the CUDA state only on the same device type)."""
    torch.set_rng_state(state["cpu"].cpu())  # a checkpoint loaded onto the GPU holds them there
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"].cpu(), device)


def progress(iterable: Iterable[T], **kwargs) -> Iterable[T]:
    """A tqdm bar on interactive terminals; silent when not a TTY or under CI."""
    disable = bool(os.environ.get("CI")) or not sys.stderr.isatty()
    return tqdm(iterable, disable=disable, leave=False, dynamic_ncols=True, **kwargs)


def to_unit(images: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 N×C×H×W → float32 in [-1, 1] on ``device``."""
    x = torch.as_tensor(images, device=device)
    return x.float().div_(127.5).sub_(1.0)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """float in [-1, 1] → uint8 in [0, 255] on the CPU (round to nearest)."""
    return x.detach().float().add(1.0).mul(127.5).round_().clamp_(0, 255).to("cpu", torch.uint8)
