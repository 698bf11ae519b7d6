"""Device choice, seeding and progress bars: the few things every stage needs from its host."""

from __future__ import annotations

import ctypes
import os
import random
import signal
import sys
import threading
from contextlib import contextmanager
from typing import Callable, Iterable, TypeVar

import numpy as np
import torch
from tqdm.auto import tqdm

from .errors import ConfigError

T = TypeVar("T")

_INIT_LOCK = threading.Lock()  # weight init draws from torch's global RNG: one model at a time


@contextmanager
def seeded_init(seed: int):
    """Modules built inside get initial weights that follow ``seed`` alone: torch's global RNG
    is seeded under a lock, so concurrent fits in threads do not interleave their draws."""
    with _INIT_LOCK:
        torch.manual_seed(seed)
        yield


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``auto``/None → CUDA when present, else CPU; asking for CUDA without one is an error."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"device: got {device!r}; expected auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: 'cuda' was asked for but no CUDA device is available; "
                          "use device: auto or cpu")
    return device


def bf16_native(device: torch.device) -> bool:
    """Whether ``device`` runs bf16 convolutions and matmuls natively, i.e. faster than fp32:
    CUDA GPUs with bf16 units, and CPUs with AMX or AVX512-BF16 (oneDNN's bf16 kernels; on one core
    of a Xeon with AMX, ``dcgan`` trained 1.5x as many 28×28 images/s, 1.1x at 8×8). Other
    CPUs would emulate bf16, slower than fp32, so mixed precision stays off there."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)  # Ampere and later
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")  # torch.cpu, private
    return any(getattr(torch.cpu, probe, lambda: False)() for probe in probes)


def mixed_precision(device: torch.device, amp: bool) -> Callable[[], torch.autocast]:
    """A factory of bf16 autocast contexts on ``device``: enabled when ``amp`` and the device
    runs bf16 natively (decided once, here), else no-ops. bf16 keeps fp32's exponent range, so
    no loss scaling is needed."""
    enabled = amp and bf16_native(device)
    return lambda: torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


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
    """float in [-1, 1] → uint8 in [0, 255] on the CPU (round to nearest). Converted where ``x``
    is, then copied: ``.to("cpu", torch.uint8)`` would ship the floats (4x the bytes) and
    convert them on the host."""
    pixels = x.detach().float().add(1.0).mul(127.5).round_().clamp_(0, 255)
    return pixels.to(torch.uint8).contiguous().cpu()


PR_SET_PDEATHSIG = 1  # prctl(2)


def die_with_parent(signum: int = signal.SIGTERM) -> None:
    """Have the kernel send ``signum`` to this process when its parent exits (Linux; elsewhere
    a no-op). For ``preexec_fn`` of a child, or called by a process about itself; a parent that
    is already gone (the process was re-parented) ends this process at once."""
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the request took effect
        os.kill(os.getpid(), signum)
