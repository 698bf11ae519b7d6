"""Conditional-GAN training: setup once, then a loop that only orchestrates.

The loop steps D and G, updates the EMA generator and reports per-epoch means. What the losses
are (hinge / BCE / WGAN-GP, DiffAugment, penalties) was fixed at setup in a :class:`GANLoss`;
which architecture, by the preset registry. Nothing inside the step branches on a flag.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from .budget import Budget
from .config import TrainConfig
from .data import ImageSet, balanced_index
from .diffaug import make_diffaug
from .distributed import Solo, check_batch, rank_generator_seed
from .errors import CheckpointError, TrainingError
from .losses import GANLoss, make_loss
from .models import LONG_TAIL_REPEAT, PRESETS, SMALL_IMAGE, build_discriminator, build_generator
from .runtime import (epoch_generator, mixed_precision, progress, resolve_device, rng_state,
                      seed_everything, set_rng_state, to_unit)


def resolve_config(cfg: TrainConfig, device: torch.device, *, image_size: int = 0,
                   repeat: float = 1.0) -> TrainConfig:
    """The one place where settings left as None get their values: the preset's defaults
    (the class term by image size), width and batch size by device (width also by image size),
    DiffAugment by how often balanced epochs ``repeat`` the rarest class's images relative to
    the largest class's. The device itself is resolved too (``auto`` → ``cpu``/``cuda``)."""
    preset = PRESETS[cfg.preset]
    fill = {k: v for k, v in preset.defaults_for(image_size).items() if getattr(cfg, k) is None}
    fill["device"] = device.type
    if cfg.diffaug is None:
        fill["diffaug"] = preset.default_diffaug(repeat)
    if cfg.width is None:
        fill["width"] = preset.default_width(device.type, image_size)
    if cfg.batch_size is None:
        fill["batch_size"] = preset.batch[device.type]
    return dataclasses.replace(cfg, **fill)


def resolve_for_data(cfg: TrainConfig, data: ImageSet, device: torch.device) -> TrainConfig:
    """:func:`resolve_config` for training on ``data``: the settings :func:`train_gan` runs."""
    counts = data.counts()  # balanced epochs show the rarest class n_max / n_min times as often
    repeat = counts.max() / max(counts.min(), 1) if cfg.balance else 1.0
    return resolve_config(cfg, device, image_size=data.images.shape[-1], repeat=repeat)


# Where the presets' values differ: (device, image side, how often balanced epochs repeat the
# rarest class's images). A documentation view of resolve_config, generated, never restated.
PRESET_CONTEXTS = {f"CPU ≤ {SMALL_IMAGE} px": ("cpu", SMALL_IMAGE, 1.0),
                   f"CUDA ≤ {SMALL_IMAGE} px": ("cuda", SMALL_IMAGE, 1.0),
                   f"CPU > {SMALL_IMAGE} px": ("cpu", SMALL_IMAGE + 1, 1.0),
                   f"CUDA > {SMALL_IMAGE} px": ("cuda", SMALL_IMAGE + 1, 1.0),
                   f"long tail ≥ {LONG_TAIL_REPEAT:g}x": ("cpu", SMALL_IMAGE + 1, LONG_TAIL_REPEAT)}


def preset_table() -> str:
    """A markdown table of what every ``null`` train key becomes, per preset, evaluated by
    :func:`resolve_config` in each of :data:`PRESET_CONTEXTS` (the most common value first, then
    any other with the contexts it holds in). ``docs/parameters.md`` embeds it; a test keeps the two equal."""
    keys = [f.name for f in dataclasses.fields(TrainConfig) if f.default is None
            and getattr(resolve_config(TrainConfig(), torch.device("cpu")), f.name) is not None]
    rows = ["| key | " + " | ".join(f"`{p}`" for p in PRESETS) + " |",
            "|---|" + "---|" * len(PRESETS)]
    for key in keys:
        cells = []
        for preset in PRESETS:
            values = {where: getattr(resolve_config(TrainConfig(preset=preset),
                                                    torch.device(device), image_size=side,
                                                    repeat=repeat), key)
                      for where, (device, side, repeat) in PRESET_CONTEXTS.items()}
            shown = {where: f"`{json.dumps(list(v) if isinstance(v, tuple) else v)}`"
                     for where, v in values.items()}
            common = max(shown.values(), key=list(shown.values()).count)
            cells.append("; ".join([common] + [f"{v} ({', '.join(w for w in shown if shown[w] == v)})"
                                               for v in dict.fromkeys(shown.values()) if v != common]))
        rows.append(f"| `{key}` | " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


class EMA:
    """Exponential moving average of G's weights and BN buffers: the model used for sampling.

    β_t = min(decay, (1 + t) / (10 + t)) at update t: a fixed β = 0.999 would keep ~1/3 of the
    random initialisation after 1,000 steps, which is a whole small-data run; the ramp lets the
    average follow G early and smooth it late. The count t is a host int: torch's AveragedModel
    passes it to the update as a device tensor, which the ramp must read back (a GPU sync per
    training step).
    """

    def __init__(self, model: nn.Module, decay: float):
        self.module = copy.deepcopy(model).requires_grad_(False)
        self.decay, self.steps = decay, 0

    @torch.no_grad()
    def update_parameters(self, model: nn.Module) -> None:
        """Fold ``model``'s current weights in (the first update copies them)."""
        pairs = list(zip([*self.module.parameters(), *self.module.buffers()],
                         [*model.parameters(), *model.buffers()]))
        beta = min(self.decay, (1.0 + self.steps) / (10.0 + self.steps)) if self.steps else 0.0
        floats = [(avg, cur) for avg, cur in pairs if avg.is_floating_point()]
        torch._foreach_lerp_([a for a, _ in floats], [c for _, c in floats], 1.0 - beta)
        for avg, cur in pairs:  # BN's integer step counter is copied
            if not avg.is_floating_point():
                avg.copy_(cur)
        self.steps += 1


@dataclass
class GAN:
    """Everything the training loop touches; built once by :func:`setup`."""

    generator: nn.Module
    ema: EMA  # of G's weights and BN buffers: the model used for sampling
    discriminator: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    loss: GANLoss
    hparams: dict
    config: TrainConfig
    autocast: Callable[[], torch.autocast]  # bf16 when cfg.amp and the device runs it natively
    world: Solo = Solo()  # the process group (data-parallel ranks), or one process
    budget: Budget | None = None  # the epoch plan (train.epochs, or fitted to train.minutes)

    @property
    def device(self) -> torch.device:
        return next(self.generator.parameters()).device

    def state(self, *, classes, epoch: int, history: list[dict]) -> dict:
        """A checkpoint dict (see :mod:`augment.checkpoint`): with the EMA's step count and the
        random generators' states, resuming from it continues the run exactly."""
        return {"hparams": self.hparams, "classes": list(classes), "epoch": epoch,
                "config": dataclasses.asdict(self.config), "history": history,
                "generator": self.ema.module.state_dict(),
                "generator_raw": self.generator.state_dict(),
                "discriminator": self.discriminator.state_dict(),
                "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
                "ema_steps": self.ema.steps, "rng": rng_state(self.device),
                # a time budget's plan and spent seconds (resume counts them), an early stop
                **({"budget": kept} if self.budget and (kept := self.budget.state()) else {})}

    def load(self, state: dict, *, classes) -> None:
        """Restore weights, optimizer, EMA and random state from a checkpoint dict (to resume).

        A checkpoint of other data (classes, image shape) or other models (another preset,
        width or z_dim, or a version with other layers) raises :class:`CheckpointError` instead
        of resuming half-loaded.
        """
        theirs = (list(state.get("classes", [])), state.get("hparams"))
        if theirs != (list(classes), self.hparams):
            raise CheckpointError(
                f"cannot resume: the checkpoint was trained on classes {theirs[0]} with "
                f"{theirs[1]}, this run has {list(classes)} with {self.hparams}; set train.preset"
                " / z_dim / width to the checkpoint's, or train from scratch (drop --resume, or "
                "delete the checkpoint)")
        if not {"ema_steps", "rng"} <= set(state):
            raise CheckpointError(
                "cannot resume: the checkpoint was written by an earlier version, without the "
                "EMA step count and random state an exact resume needs; train from scratch "
                "(drop --resume, or delete the checkpoint)")
        try:
            self.ema.module.load_state_dict(state["generator"])
            self.generator.load_state_dict(state["generator_raw"])
            self.discriminator.load_state_dict(state["discriminator"])
            self.opt_g.load_state_dict(state["opt_g"])
            self.opt_d.load_state_dict(state["opt_d"])
            self.ema.steps = int(state["ema_steps"])
            set_rng_state(state["rng"], self.device)
        except (RuntimeError, KeyError, ValueError, TypeError) as err:
            raise CheckpointError(
                f"cannot resume: the checkpoint's models do not match this train config or "
                f"version ({str(err).splitlines()[0][:200]}); train from scratch (drop "
                "--resume, or delete the checkpoint)") from None


def setup(cfg: TrainConfig, *, image_shape, num_classes: int, device: torch.device,
          world: Solo = Solo()) -> GAN:
    """Build models, optimizers, EMA, loss and mixed precision for a *resolved* config; with
    several ranks, rank 0's initial weights on every rank and G's batch norm synchronised
    where the device supports it (:mod:`augment.distributed`)."""
    hparams = {"preset": cfg.preset, "image_shape": list(image_shape),
               "num_classes": num_classes, "z_dim": cfg.z_dim, "width": cfg.width}
    # NHWC (channels_last) is the layout oneDNN's and cuDNN's fast convolutions want (~1.1-1.3x
    # steps/s at 28×28 on CPU); the MLP preset has no 4-D weights, so it is unaffected.
    g = build_generator(hparams).to(device, memory_format=torch.channels_last)
    d = build_discriminator(hparams).to(device, memory_format=torch.channels_last)
    world.broadcast_state(g, d)
    g = world.sync_batchnorm(g)
    ema = EMA(g, cfg.ema_decay)
    loss = make_loss(cfg.loss, augment=make_diffaug(cfg.diffaug), gp_weight=cfg.gp_weight,
                     r1_gamma=cfg.r1_gamma, cls_weight=cfg.cls_weight, ms_weight=cfg.ms_weight)
    return GAN(g, ema, d,
               torch.optim.Adam(g.parameters(), lr=cfg.lr_g, betas=cfg.betas),
               torch.optim.Adam(d.parameters(), lr=cfg.lr_d, betas=cfg.betas),
               loss, hparams, cfg, mixed_precision(device, cfg.amp), world)


def set_lr(gan: GAN, factor: float) -> None:
    """Both optimizers' learning rates to ``factor`` × the configured ones."""
    for opt, base in ((gan.opt_g, gan.config.lr_g), (gan.opt_d, gan.config.lr_d)):
        for group in opt.param_groups:
            group["lr"] = base * factor


def _step(gan: GAN, opt: torch.optim.Optimizer, module: nn.Module, loss: torch.Tensor) -> None:
    """Backward, average ``module``'s gradients over the ranks (none: one process), step."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    gan.world.average_gradients(module)
    opt.step()


def d_step(gan: GAN, real: torch.Tensor, y: torch.Tensor
           ) -> tuple[tuple[torch.Tensor, torch.Tensor], dict]:
    """One discriminator update on real ``B×C×H×W`` and fresh fakes of labels ``y``.

    Returns ``(fake, z)`` (reused by :func:`g_step`) and detached loss statistics.
    """
    with gan.autocast():
        z = torch.randn(len(y), gan.config.z_dim, device=y.device)
        fake = gan.generator(z, y)
        d_loss, stats = gan.loss.discriminator(gan.discriminator, real, fake, y)
    _step(gan, gan.opt_d, gan.discriminator, d_loss)
    return (fake, z), {**stats, "d_loss": d_loss.detach()}


def g_step(gan: GAN, fakes: tuple[torch.Tensor, torch.Tensor], y: torch.Tensor) -> dict:
    """:func:`_g_update` with D frozen: G's gradient needs D's input gradients, not its weight
    gradients, which the next D step would discard (skipping them: 1.05-1.2x steps/s on the
    CPU, the same weights)."""
    gan.discriminator.requires_grad_(False)
    try:
        return _g_update(gan, fakes, y)
    finally:
        gan.discriminator.requires_grad_(True)


def _g_update(gan: GAN, fakes: tuple[torch.Tensor, torch.Tensor], y: torch.Tensor) -> dict:
    """One generator update through D's view of ``fakes = (G(z, y), z)``, then the EMA update
    (the textbook step: unless D is frozen, the backward fills D's weight gradients too)."""
    fake, z = fakes
    with gan.autocast():
        g_loss = gan.loss.generator(gan.discriminator, fake, y, z)
    _step(gan, gan.opt_g, gan.generator, g_loss)
    gan.ema.update_parameters(gan.generator)
    return {"g_loss": g_loss.detach()}


def first_nonfinite(first: torch.Tensor, stats: dict, step: int) -> torch.Tensor:
    """The lower of ``first`` and ``step`` if a loss of this step is NaN/inf, else ``first``
    (on the device: no sync per step)."""
    ok = torch.stack([v.isfinite() for k, v in stats.items() if k.endswith("loss")]).all()
    return torch.where(~ok, torch.minimum(first, torch.tensor(step, device=first.device)), first)


def check_finite(gan: GAN, metrics: dict, *, epoch: int, step: int, steps: int) -> None:
    """Raise :class:`TrainingError` naming the epoch, step and settings to change if a loss
    or a weight of G or D is NaN/inf after ``epoch`` (checked once per epoch)."""
    weights = [*gan.generator.parameters(), *gan.discriminator.parameters()]
    finite = torch.stack([w.isfinite().all() for w in weights]).all()
    bad = sorted(k for k, v in metrics.items() if not math.isfinite(v))
    if not bad and step < 0 and bool(finite):
        return
    where = f"step {step + 1} of {steps}" if step >= 0 else "its end (weights)"
    cfg = gan.config
    raise TrainingError(
        f"training diverged in epoch {epoch} at {where}: "
        f"{', '.join(bad) or 'the weights'} became NaN/inf. Lower the learning rates "
        f"(train.lr_g {cfg.lr_g}, train.lr_d {cfg.lr_d}), add an R1 penalty (train.r1_gamma, "
        f"now {cfg.r1_gamma}) or turn bf16 off (train.amp: false)")


def train_gan(data: ImageSet, cfg: TrainConfig = TrainConfig(), *, seed: int = 0,
              device: str | torch.device | None = "auto", resume: dict | None = None,
              on_epoch: Callable[[int, dict, GAN], None] | None = None,
              world: Solo = Solo()) -> GAN:
    """Train a conditional GAN on ``data``; returns the trained :class:`GAN`.

    ``on_epoch(epoch, metrics, gan)`` is called after every epoch (1-based): the caller logs and
    checkpoints there. ``resume`` is a checkpoint dict to continue from. With ``world`` a
    process group (:mod:`augment.distributed`), each rank trains on its share of every batch of
    ``cfg.batch_size`` (the global batch) and the metrics are the means over all ranks.
    """
    device = resolve_device(device)
    cfg = resolve_for_data(cfg, data, device)
    check_batch(cfg.batch_size, world.size)
    seed_everything(seed)
    gan = setup(cfg, image_shape=data.images.shape[1:], num_classes=len(data.classes),
                device=device, world=world)
    if resume is not None:
        gan.load(resume, classes=data.classes)
    gan.budget = budget = Budget.resume(cfg, resume)
    x = to_unit(data.images, device).contiguous(memory_format=torch.channels_last)  # N×C×H×W
    labels = torch.as_tensor(data.labels, device=device)
    # An epoch visits `pool`: every image once, or (balance) every class as often as the largest.
    pool = torch.as_tensor(balanced_index(data.labels, seed=seed) if cfg.balance
                           else np.arange(len(labels)))
    n, bs = len(pool), min(cfg.batch_size, len(pool))
    budget.start()
    for epoch in progress(budget, desc="train", unit="epoch"):
        sums: dict[str, list] = {}  # name -> [sum, count]; tensors, so no sync per step
        first_bad = torch.tensor(n, device=device)  # first step with a non-finite loss (n: none)
        perm = pool[torch.randperm(n, generator=epoch_generator(seed, epoch))].to(device)
        torch.manual_seed(rank_generator_seed(seed, epoch, world.rank))  # latents, DiffAugment
        set_lr(gan, budget.schedule(epoch))
        done = (epoch - 1) * (n // bs)  # D steps before this epoch: the count runs across epochs
        for step in range(n // bs):
            idx = perm[step * bs:(step + 1) * bs][world.rank::world.size]  # this rank's share
            fakes, stats = d_step(gan, x[idx], labels[idx])
            if (done + step + 1) % cfg.d_steps == 0:  # n_critic: G every d_steps D steps
                stats |= g_step(gan, fakes, labels[idx])
            first_bad = first_nonfinite(first_bad, stats, step)
            for k, v in stats.items():
                acc = sums.setdefault(k, [0.0, 0])
                acc[0], acc[1] = acc[0] + v.float(), acc[1] + 1
        metrics = epoch_means(sums, world)
        world.broadcast_state(gan.generator, gan.discriminator, gan.ema.module)  # BN, SN buffers
        first = int(world.reduce(first_bad, torch.distributed.ReduceOp.MIN))
        check_finite(gan, metrics, epoch=epoch, step=first if first < n else -1, steps=n // bs)
        budget.end_epoch(world)  # the plan on_epoch sees: is this the last epoch?
        if on_epoch is not None:
            on_epoch(epoch, metrics, gan)
            budget.start()  # the caller's checkpoint scoring is not training time
        if cfg.patience is not None:  # rank 0's checkpoint scores may end the run: all ranks stop
            budget.epochs = int(world.broadcast_object(budget.epochs))
    return gan


def epoch_means(sums: dict[str, list], world: Solo) -> dict[str, float]:
    """Per-epoch means of the step statistics, over every rank's steps (one all-reduce)."""
    names = sorted(sums)
    if not names:
        return {}
    totals = world.reduce(torch.stack([torch.as_tensor(sums[k][0]).float() for k in names]))
    return {k: float(t) / (sums[k][1] * world.size) for k, t in zip(names, totals.tolist())}
