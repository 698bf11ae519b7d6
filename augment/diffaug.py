"""DiffAugment (Zhao et al. 2020): differentiable augmentations applied to real *and* fake
images before the discriminator, so D cannot memorise a small training set.

Each op is a tensor → tensor function on a batch ``B×C×H×W`` in ``[-1, 1]``; a policy string
such as ``"translation,cutout"`` names which ops run, in order. Randomness comes from torch's
global generator, which training seeds.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from .errors import ConfigError

Op = Callable[[torch.Tensor], torch.Tensor]


def _uniform(x: torch.Tensor) -> torch.Tensor:
    """One U[0, 1) draw per image, shaped B×1×1×1 for broadcasting."""
    return torch.rand(x.size(0), 1, 1, 1, dtype=x.dtype, device=x.device)


def brightness(x: torch.Tensor) -> torch.Tensor:
    return x + (_uniform(x) - 0.5)


def saturation(x: torch.Tensor) -> torch.Tensor:
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * (_uniform(x) * 2) + mean


def contrast(x: torch.Tensor) -> torch.Tensor:
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_uniform(x) + 0.5) + mean


def _grid(b: int, h: int, w: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Batch, row and column index grids, each broadcastable to B×h×w."""
    rows, cols = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device),
                                indexing="ij")
    return torch.arange(b, device=device)[:, None, None], rows[None], cols[None]


def translation(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by up to ``ratio`` of its size, filling with zeros (mid-grey)."""
    b, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sh, sh + 1, (b, 1, 1), device=x.device)
    dx = torch.randint(-sw, sw + 1, (b, 1, 1), device=x.device)
    batch, rows, cols = _grid(b, h, w, x.device)
    rows = (rows + dy + 1).clamp(0, h + 1)
    cols = (cols + dx + 1).clamp(0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1]).permute(0, 2, 3, 1)  # B×(H+2)×(W+2)×C
    return padded[batch, rows, cols].permute(0, 3, 1, 2).contiguous()


def cutout(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    """Zero a random square of ``ratio`` × the image size in each image."""
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    oy = torch.randint(0, h + (1 - ch % 2), (b, 1, 1), device=x.device)
    ox = torch.randint(0, w + (1 - cw % 2), (b, 1, 1), device=x.device)
    batch, rows, cols = _grid(b, ch, cw, x.device)
    rows = (rows + oy - ch // 2).clamp(0, h - 1)
    cols = (cols + ox - cw // 2).clamp(0, w - 1)
    mask = torch.ones(b, h, w, dtype=x.dtype, device=x.device)
    mask[batch, rows, cols] = 0
    return x * mask.unsqueeze(1)


def flip(x: torch.Tensor) -> torch.Tensor:
    """Mirror each image left-right with probability ½ (StyleGAN's ``--mirror`` for data whose
    mirror image is as likely as itself: photos, not digits)."""
    return torch.where(_uniform(x) < 0.5, x.flip(3), x)


POLICIES: dict[str, tuple[Op, ...]] = {
    "color": (brightness, saturation, contrast),
    "translation": (translation,),
    "cutout": (cutout,),
    "flip": (flip,),
}


def make_diffaug(policy: str) -> Op:
    """Compose the ops a policy string names (comma-separated; ``""`` = identity)."""
    names = [p.strip() for p in policy.split(",") if p.strip()]
    unknown = [n for n in names if n not in POLICIES]
    if unknown:
        raise ConfigError(f"train.diffaug: unknown op(s) {', '.join(unknown)}; "
                          f"allowed: {', '.join(POLICIES)} (comma-separated, '' for none)")
    ops = [op for n in names for op in POLICIES[n]]

    def augment(x: torch.Tensor) -> torch.Tensor:
        for op in ops:
            x = op(x)
        return x

    return augment
