"""Conditional generators and discriminators, and the preset registry that pairs them.

Every generator maps ``(z: B×z_dim, y: B) -> images B×C×H×W in [-1, 1]``; every discriminator
maps ``(x: B×C×H×W, y: B) -> logits B``. Both are built from ``hparams`` alone (image shape,
class count, z_dim, width), which the checkpoint stores, so a checkpoint rebuilds its model.

Presets:
- ``dcgan`` (default): DCGAN-style (Radford et al. 2016) all-strided nets: G of 4×4 transposed
  convolutions with class-conditional batch norm (SNGAN/BigGAN conditioning), D of 4×4 stride-2
  convolutions with spectral norm, a minibatch-standard-deviation layer (Karras et al. 2018)
  and a projection head (Miyato & Koyama 2018); hinge loss, TTUR, EMA, DiffAugment. Chosen for
  CPU budgets: 3.4x the images/s of ``sngan`` at 28×28.
- ``sngan``: the same conditioning and losses with SNGAN's heavier blocks (nearest upsample +
  3×3 conv in G; a 3×3 conv at every resolution before each stride-2 conv in D).
- ``classic``: the textbook cGAN (Mirza & Osindero 2014): MLPs, one-hot label concatenated, BCE,
  Adam 2e-4, betas (0.5, 0.999). Kept as the baseline every benchmark compares with.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


def resolution_plan(size: int) -> tuple[int, int]:
    """(base size s0, number of 2× up/down-samplings n) with ``s0 · 2**n == size`` and s0 ≥ 4.

    32 → (4, 3); 28 → (7, 2); 8 → (4, 1); 64 → (4, 4).
    """
    n = 0
    while size % 2 == 0 and size // 2 >= 4:
        size, n = size // 2, n + 1
    return size, n


# ------------------------------------------------------------------------------ dcgan preset
class CondBatchNorm(nn.Module):
    """BatchNorm whose scale and shift come from the class label: BN(x)·γ_y + β_y."""

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.embed = nn.Embedding(num_classes, 2 * channels)
        nn.init.ones_(self.embed.weight[:, :channels])
        nn.init.zeros_(self.embed.weight[:, channels:])

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.embed(y)[:, :, None, None].chunk(2, dim=1)  # each B×C×1×1
        return self.bn(x) * gamma + beta


class UpBlock(nn.Module):
    """CBN → ReLU → 2× nearest upsample → 3×3 conv."""

    def __init__(self, c_in: int, c_out: int, num_classes: int):
        super().__init__()
        self.norm = CondBatchNorm(c_in, num_classes)
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(F.relu(self.norm(x, y)), scale_factor=2.0))


def _widths(width: int, n: int, cap: int = 512) -> list[int]:
    """Channels from coarse to fine: width·2^n, ..., width (capped)."""
    return [min(width * 2 ** (n - i), cap) for i in range(n + 1)]


class DeconvBlock(nn.Module):
    """CBN → ReLU → 4×4 stride-2 transposed conv (DCGAN): ~half the arithmetic of UpBlock."""

    def __init__(self, c_in: int, c_out: int, num_classes: int):
        super().__init__()
        self.norm = CondBatchNorm(c_in, num_classes)
        self.conv = nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.conv(F.relu(self.norm(x, y)))


class ConvGenerator(nn.Module):
    """z → linear → C0×s0×s0 → n × block (2× up each) → CBN → ReLU → conv3×3 → tanh."""

    block = UpBlock

    def __init__(self, *, image_shape: tuple[int, int, int], num_classes: int, z_dim: int,
                 width: int):
        super().__init__()
        channels, size, _ = image_shape
        self.s0, n = resolution_plan(size)
        self.widths = _widths(width, n)
        self.fc = nn.Linear(z_dim, self.widths[0] * self.s0 ** 2)
        self.blocks = nn.ModuleList(self.block(a, b, num_classes)
                                    for a, b in zip(self.widths, self.widths[1:]))
        self.out_norm = CondBatchNorm(self.widths[-1], num_classes)
        self.out = nn.Conv2d(self.widths[-1], channels, 3, padding=1)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.fc(z).view(len(z), self.widths[0], self.s0, self.s0)
        for block in self.blocks:
            h = block(h, y)
        return torch.tanh(self.out(F.relu(self.out_norm(h, y))))


class DeconvGenerator(ConvGenerator):
    """The ``dcgan`` generator: ConvGenerator with transposed-conv blocks."""

    block = DeconvBlock


def sngan_down(a: int, b: int) -> list[nn.Module]:
    """3×3 conv a→b at this resolution, then a 4×4 stride-2 conv b→b."""
    return [spectral_norm(nn.Conv2d(a, b, 3, padding=1)), nn.LeakyReLU(0.2),
            spectral_norm(nn.Conv2d(b, b, 4, stride=2, padding=1)), nn.LeakyReLU(0.2)]


def strided_down(a: int, b: int) -> list[nn.Module]:
    """One 4×4 stride-2 conv a→b (DCGAN's discriminator)."""
    return [spectral_norm(nn.Conv2d(a, b, 4, stride=2, padding=1)), nn.LeakyReLU(0.2)]


class MinibatchStd(nn.Module):
    """Append the minibatch standard deviation as one more channel (Karras et al. 2018).

    B×C×H×W → B×(C+1)×H×W. Samples are split into groups of ``group``; the extra channel of a
    sample is the std over its group, averaged over channels and pixels, so D can tell a
    batch that is less varied than real ones. (Meant against mode collapse; on MNIST it raised
    CAS and label fidelity, not the per-class diversity score: RESULTS.md.)
    """

    def __init__(self, group: int = 4):
        super().__init__()
        self.group = group

    def forward(self, x: torch.Tensor, parts: int = 1) -> torch.Tensor:
        """``x`` stacks ``parts`` equal minibatches (D's real and fake batches in one pass);
        groups stay within a minibatch, so a fake's std never mixes in real samples."""
        b, c, h, w = x.shape
        g = math.gcd(self.group, b // parts)  # a batch the group does not divide: smaller groups
        # P×G×M×C×H×W: sample p·n + j·M + m (n = b / parts) sits in group (p, m)
        y = x.float().reshape(parts, g, -1, c, h, w)
        # The variance by hand: Tensor.var over dim 1 ran ~3x slower (forward + backward) on
        # the CPU, ~14 % of a whole training step at 8×8.
        var = (y - y.mean(1, keepdim=True)).square().mean(1)  # P×M×C×H×W
        std = (var + 1e-8).sqrt().mean(dim=(2, 3, 4))  # P×M
        std = std[:, None].expand(parts, g, -1).reshape(b)[:, None, None, None]
        std = std.expand(b, 1, h, w)  # B×1×H×W
        # cat returns NCHW; keep x's channels_last, or the next conv takes oneDNN's NCHW path,
        # which did not give the same numbers run to run in forked stage processes.
        layout = (torch.channels_last if x.is_contiguous(memory_format=torch.channels_last)
                  else torch.contiguous_format)
        return torch.cat([x, std.to(x.dtype)], dim=1).contiguous(memory_format=layout)


class ProjectionDiscriminator(nn.Module):
    """SN convs down to s0, minibatch std + SN conv3×3, global sum pool → h;
    logit = ψ(h) + ⟨embed(y), h⟩ (projection)."""

    down = staticmethod(sngan_down)

    def __init__(self, *, image_shape: tuple[int, int, int], num_classes: int, width: int, **_):
        super().__init__()
        channels, size, _ = image_shape
        widths = _widths(width, resolution_plan(size)[1])[::-1]  # fine → coarse
        layers = [spectral_norm(nn.Conv2d(channels, widths[0], 3, padding=1)), nn.LeakyReLU(0.2)]
        for a, b in zip(widths, widths[1:]):
            layers += self.down(a, b)
        self.features = nn.Sequential(*layers)
        # MNIST, 3 seeds: CAS 0.931 -> 0.943 at 30 epochs, 0.946 -> 0.953 in 15 min on one
        # core (RESULTS.md). A CPU step cost ~1.3x at 28 px, ~1.8x at 8 px, before the layer's
        # variance was written out (MinibatchStd.forward).
        self.mbstd = MinibatchStd()
        self.head = nn.Sequential(spectral_norm(nn.Conv2d(widths[-1] + 1, widths[-1], 3,
                                                          padding=1)), nn.LeakyReLU(0.2))
        self.linear = spectral_norm(nn.Linear(widths[-1], 1))
        self.embed = spectral_norm(nn.Embedding(num_classes, widths[-1]))

    def pooled(self, x: torch.Tensor, parts: int = 1) -> torch.Tensor:
        """h: B×C, the sum-pooled features of ``x`` (``parts`` minibatches stacked)."""
        return self.head(self.mbstd(self.features(x), parts=parts)).sum(dim=(2, 3))

    def scores(self, x: torch.Tensor, parts: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """(ψ(h): B, ⟨embed(c), h⟩ for every class c: B×K) from one pass over ``x``.

        The second term doubles as a classifier's logits (dual projection, Han et al. 2021).
        """
        h = self.pooled(x, parts)
        return self.linear(h).squeeze(1), h @ self.embed.weight.t()

    def forward(self, x: torch.Tensor, y: torch.Tensor, parts: int = 1) -> torch.Tensor:
        psi, classes = self.scores(x, parts)
        return psi + classes.gather(1, y[:, None]).squeeze(1)


class StridedProjectionDiscriminator(ProjectionDiscriminator):
    """The ``dcgan`` discriminator: one stride-2 conv per resolution."""

    down = staticmethod(strided_down)


# ---------------------------------------------------------------------------- classic preset
class MLPGenerator(nn.Module):
    """[z, one-hot(y)] → width → 2·width → 4·width (BN, LeakyReLU) → C·H·W → tanh."""

    def __init__(self, *, image_shape: tuple[int, int, int], num_classes: int, z_dim: int,
                 width: int):
        super().__init__()
        self.image_shape, self.num_classes = tuple(image_shape), num_classes
        dims = [z_dim + num_classes, width, 2 * width, 4 * width]
        layers = []
        for i, (a, b) in enumerate(zip(dims, dims[1:])):
            layers += [nn.Linear(a, b)] + ([nn.BatchNorm1d(b)] if i else []) + [nn.LeakyReLU(0.2)]
        self.net = nn.Sequential(*layers, nn.Linear(dims[-1], math.prod(image_shape)), nn.Tanh())

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = torch.cat([z, F.one_hot(y, self.num_classes).to(z.dtype)], dim=1)
        return self.net(h).view(len(z), *self.image_shape)


class MLPDiscriminator(nn.Module):
    """[flatten(x), one-hot(y)] → 2·width → width (LeakyReLU, dropout) → logit."""

    def __init__(self, *, image_shape: tuple[int, int, int], num_classes: int, width: int, **_):
        super().__init__()
        self.num_classes = num_classes
        self.net = nn.Sequential(
            nn.Linear(math.prod(image_shape) + num_classes, 2 * width), nn.LeakyReLU(0.2),
            nn.Dropout(0.3), nn.Linear(2 * width, width), nn.LeakyReLU(0.2), nn.Dropout(0.3),
            nn.Linear(width, 1))

    def forward(self, x: torch.Tensor, y: torch.Tensor, parts: int = 1) -> torch.Tensor:
        # per-sample (no minibatch statistics): ``parts`` changes nothing
        h = torch.cat([x.flatten(1), F.one_hot(y, self.num_classes).to(x.dtype)],
                      dim=1)
        return self.net(h).squeeze(1)


# ---------------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class Preset:
    """An architecture pair and the training defaults that go with it."""

    generator: Callable[..., nn.Module]
    discriminator: Callable[..., nn.Module]
    defaults: dict = field(default_factory=dict)  # TrainConfig fields left as None
    width: dict = field(default_factory=dict)  # default width per device type
    cpu_width_above_16px: int | None = None  # CPU width for images larger than 16×16
    batch: dict = field(default_factory=lambda: {"cpu": 64, "cuda": 64})  # per device type
    long_tail_diffaug: str | None = None  # DiffAugment policy for long-tailed training sets
    small_image_defaults: dict = field(default_factory=dict)  # replaces defaults at <= 16 px

    def default_width(self, device_type: str, image_size: int) -> int:
        """The width ``train.width: null`` means on this device for this image side."""
        if device_type == "cpu" and image_size > 16 and self.cpu_width_above_16px:
            return self.cpu_width_above_16px
        return self.width[device_type]

    def defaults_for(self, image_size: int) -> dict:
        """The TrainConfig values ``null`` means for images of this side."""
        small = self.small_image_defaults if 0 < image_size <= SMALL_IMAGE else {}
        return {**self.defaults, **small}

    def default_diffaug(self, repeat: float) -> str:
        """The policy ``train.diffaug: null`` means when class-balanced epochs show the rarest
        class's images ``repeat`` times as often as the largest class's."""
        if self.long_tail_diffaug is not None and repeat >= LONG_TAIL_REPEAT:
            return self.long_tail_diffaug
        return self.defaults.get("diffaug", "")


# lr 1e-3 (not SNGAN's 2e-4): on small data sets and CPU budgets the conservative rate needs
# 5-10x the wall time (see benchmarks/RESULTS.md). ms_weight 0.2: the class term collapses classes
# towards prototypes; the mode-seeking term undoes it (MNIST, 240 s: CAS 0.919 -> 0.938, FID
# 0.47 -> 0.22); 0.5 and up spread samples off the data (FID 0.77, 4.4). Without a class term
# (8×8 digits) it still keeps G from dropping a style within a class: CAS at 30 s 0.971 ->
# 0.983, 6 of 6 seeds, at ~2 % of the step's time (RESULTS.md).
_CONV_DEFAULTS = dict(loss="hinge", lr_g=1e-3, lr_d=1e-3, betas=(0.0, 0.9), lr_decay=0.0,
                      ema_decay=0.999, diffaug="translation,cutout", cls_weight=0.2,
                      ms_weight=0.2)
# dcgan without DiffAugment: at these data sizes (1.2k-5.1k train images) and budgets it costs
# quality, and its cutout square is a quarter of an 8×8 digit. MNIST, 3 seeds, CAS/TRTR at
# 1/5 of 15 min 0.946 -> 0.969, at 15 min 0.982 -> 0.984; digits 300 s 0.980 -> 0.992 (RESULTS.md).
# sngan keeps the policy: not measured without it.
# lr 2e-3 falling linearly to ~0 over the last 30 % of the epochs: a run sized to a fifth of
# classic's time on MNIST (~20 epochs) ended 0.005 CAS higher than a constant 1e-3 on 6 of 6
# seeds of a screen, with lower FID; on CPU it then reached classic's 15-minute CAS within a
# fifth of the time on every seed (RESULTS.md). sngan keeps 1e-3, constant: not measured.
_DCGAN_DEFAULTS = dict(_CONV_DEFAULTS, diffaug="", lr_g=2e-3, lr_d=2e-3, lr_decay=0.3)
# ...except on a long tail: balanced epochs then show each tail image LONG_TAIL_REPEAT+ times as
# often as a head image, D memorises the few tail images, and DiffAugment (Zhao et al. 2020:
# augmentation for data-scarce GANs) is what counters it. Imbalance 100, 5 paired seeds,
# real+synthetic balanced accuracy: digits 0.820 -> 0.849, MNIST 0.772 -> 0.912; at 10 on digits
# no gain (0.977 -> 0.974), on balanced digits CAS is lower with it (RESULTS.md).
LONG_TAIL_REPEAT = 30.0

# The class term is off at 16 px and below: on 8×8 digits labels bind within ~30 epochs without
# it, and it costs FID (CAS 0.972 against 0.956 with it; RESULTS.md). From 28 px it is what
# binds them (MNIST CAS 0.61 -> 0.80).
SMALL_IMAGE = 16
_SMALL_CONV = {"cls_weight": 0.0}

# Batch 32 on CPU: there images/s fall only ~12 % when the batch halves, so G and D get ~1.75x
# the updates per second; MNIST CAS at 240 s, one seed: 0.779 at batch 64, 0.853 at 32 (RESULTS.md).
_CONV_BATCH = {"cpu": 32, "cuda": 64}

PRESETS: dict[str, Preset] = {
    # On 2 CPU cores a width-32 step at 28×28 costs ~2x a width-16 one, and in a 4-minute
    # MNIST budget width 16 ends with twice the CAS (benchmarks/RESULTS.md): halve it above 16 px.
    "dcgan": Preset(DeconvGenerator, StridedProjectionDiscriminator, defaults=_DCGAN_DEFAULTS,
                    width={"cpu": 32, "cuda": 64}, cpu_width_above_16px=16, batch=_CONV_BATCH,
                    long_tail_diffaug="translation,cutout", small_image_defaults=_SMALL_CONV),
    "sngan": Preset(ConvGenerator, ProjectionDiscriminator, defaults=_CONV_DEFAULTS,
                    width={"cpu": 32, "cuda": 64}, cpu_width_above_16px=16, batch=_CONV_BATCH,
                    small_image_defaults=_SMALL_CONV),
    "classic": Preset(MLPGenerator, MLPDiscriminator,
                      defaults=dict(loss="bce", lr_g=2e-4, lr_d=2e-4, betas=(0.5, 0.999),
                                    lr_decay=0.0, ema_decay=0.0, diffaug="", cls_weight=0.0,
                                    ms_weight=0.0),
                      width={"cpu": 256, "cuda": 256}),
}


def build_generator(hparams: dict) -> nn.Module:
    """Rebuild a generator from the ``hparams`` a checkpoint stores."""
    preset = PRESETS[hparams["preset"]]
    generator = preset.generator(image_shape=tuple(hparams["image_shape"]),
                                 num_classes=hparams["num_classes"], z_dim=hparams["z_dim"],
                                 width=hparams["width"])
    generator.hparams = dict(hparams)  # what synthesize() needs: class count, z_dim, shape
    return generator


def build_discriminator(hparams: dict) -> nn.Module:
    """Rebuild the discriminator that goes with ``hparams``."""
    preset = PRESETS[hparams["preset"]]
    return preset.discriminator(image_shape=tuple(hparams["image_shape"]),
                                num_classes=hparams["num_classes"], width=hparams["width"])
