"""GAN objectives as functions that return scalar tensors.

A :class:`GANLoss` is assembled once at setup from a loss name, the DiffAugment policy, the
critic and one list of weighted :class:`Term` s; the training loop just calls
``loss.discriminator(...)`` and ``loss.generator(...)`` and never branches on which objective
is in use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Literal

import torch
import torch.nn.functional as F
from torch import nn

Tensor = torch.Tensor


# Adversarial terms on discriminator logits (B,) -------------------------------------------------
def hinge_d(real: Tensor, fake: Tensor) -> Tensor:
    return F.relu(1 - real).mean() + F.relu(1 + fake).mean()


def hinge_g(fake: Tensor) -> Tensor:
    return -fake.mean()


def bce_d(real: Tensor, fake: Tensor) -> Tensor:
    """Goodfellow's minimax D loss: -log σ(D(x)) - log(1 - σ(D(G(z)))), in logit form."""
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def bce_g(fake: Tensor) -> Tensor:
    """The non-saturating G loss: -log σ(D(G(z)))."""
    return F.softplus(-fake).mean()


def wasserstein_d(real: Tensor, fake: Tensor) -> Tensor:
    return fake.mean() - real.mean()


def wasserstein_g(fake: Tensor) -> Tensor:
    return -fake.mean()


OBJECTIVES = {"hinge": (hinge_d, hinge_g), "bce": (bce_d, bce_g),
              "wgan-gp": (wasserstein_d, wasserstein_g)}


# Penalties: (D, real, fake, y) -> scalar ----------------------------------------------------------
def gradient_penalty(d: nn.Module, real: Tensor, fake: Tensor, y: Tensor) -> Tensor:
    """WGAN-GP (Gulrajani et al. 2017): (‖∇D(x̂)‖ − 1)² on random interpolates x̂."""
    alpha = torch.rand(real.size(0), 1, 1, 1, device=real.device, dtype=real.dtype)
    mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(d(mixed, y).sum(), mixed, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def r1_penalty(d: nn.Module, real: Tensor, fake: Tensor, y: Tensor) -> Tensor:
    """R1 (Mescheder et al. 2018): ½‖∇D(x)‖² on real data."""
    real = real.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(d(real, y).sum(), real, create_graph=True)
    return 0.5 * grad.flatten(1).pow(2).sum(dim=1).mean()


# Generator regularisers: (fake B×C×H×W, z B×Z, y B) -> scalar ---------------------------------
def mode_seeking(fake: Tensor, z: Tensor, y: Tensor, eps: float = 1e-5, group: int = 64
                 ) -> Tensor:
    """MSGAN (Mao et al. 2019): 1 / mean over same-label pairs of (mean |ΔG(z)|) / (mean |Δz|).

    Penalises G for sending distinct latents of one class to near-identical images: the
    intra-class collapse that a class term invites. The pairs are same-label pairs within
    groups of ``group`` consecutive samples, so the term costs no extra forward pass and its
    memory grows linearly with the batch (all B×B pairs: cdist's L1 backward holds B×B×C·H·W
    floats, 192 GiB at batch 4,096 of 32×32×3). A batch without such a pair contributes 0.
    """
    total, count = fake.new_zeros((), dtype=torch.float32), y.new_zeros(())
    for f, zg, yg in zip(fake.flatten(1).float().split(group), z.float().split(group),
                         y.split(group)):
        image_gap = torch.cdist(f, f, p=1) / f.size(1)  # g×g
        latent_gap = torch.cdist(zg, zg, p=1) / zg.size(1)  # g×g
        pairs = (yg[:, None] == yg[None, :]).triu(diagonal=1)
        total = total + (image_gap / latent_gap.clamp(min=eps))[pairs].sum()
        count = count + pairs.sum()
    return torch.where(count > 0, 1.0 / (total / count.clamp(min=1) + eps), 0.0)


# Critics: (D, x, y, parts) -> (adversarial logits B, per-sample classification loss B) ----------
def plain_critic(d: nn.Module, x: Tensor, y: Tensor, parts: int = 1) -> tuple[Tensor, Tensor]:
    """D's logits; no classification term."""
    return d(x, y, parts=parts), x.new_zeros(len(x))


def dual_projection_critic(d: nn.Module, x: Tensor, y: Tensor, parts: int = 1
                           ) -> tuple[Tensor, Tensor]:
    """Projection logits plus cross-entropy of D's class scores (P2GAN, Han et al. 2021).

    The projection embedding is also a classifier over D's features; training it on real
    labels and asking G to satisfy it makes the label matter from the first epochs.
    """
    psi, classes = d.scores(x, parts=parts)  # B, B×K
    return (psi + classes.gather(1, y[:, None]).squeeze(1),
            F.cross_entropy(classes.float(), y, reduction="none"))


@dataclass(frozen=True)
class Term:
    """A weighted extra term of one side's loss. ``on="d"``: f(D, real, fake, y) on the
    augmented images, in float32 (gradient penalties: their second-order gradients are fragile
    under fp16); ``on="g"``: f(fake, z, y) on G's fresh batch."""

    weight: float
    fn: Callable
    on: Literal["d", "g"]


@dataclass(frozen=True)
class GANLoss:
    """One GAN objective + DiffAugment + a critic + weighted extra terms, fixed at setup."""

    d_term: Callable[[Tensor, Tensor], Tensor]
    g_term: Callable[[Tensor], Tensor]
    augment: Callable[[Tensor], Tensor]
    critic: Callable[[nn.Module, Tensor, Tensor], tuple[Tensor, Tensor]] = plain_critic
    cls_weight: float = 0.0
    terms: tuple[Term, ...] = field(default=())

    def discriminator(self, d: nn.Module, real: Tensor, fake: Tensor, y: Tensor
                      ) -> tuple[Tensor, dict[str, Tensor]]:
        """D's loss on a real batch and a detached fake batch (same labels ``y``)."""
        real_aug, fake_aug = self.augment(real), self.augment(fake.detach())
        # Real and fake in one D pass (2B×C×H×W): fewer, larger kernels, one spectral-norm
        # power iteration instead of two (D's step ~20 % faster on the CPU). parts=2 keeps the
        # minibatch-std groups within each half.
        logits, cls = self.critic(d, torch.cat([real_aug, fake_aug]), torch.cat([y, y]), 2)
        real_logits, fake_logits = logits.chunk(2)
        adversarial = self.d_term(real_logits, fake_logits) + self.cls_weight * cls[:len(y)].mean()
        with torch.autocast(real.device.type, enabled=False):
            extra = sum(t.weight * t.fn(d, real_aug.float(), fake_aug.float(), y)
                        for t in self.terms if t.on == "d")
        stats = {"d_real": real_logits.detach().float().mean(),
                 "d_fake": fake_logits.detach().float().mean()}
        return adversarial + extra, stats

    def generator(self, d: nn.Module, fake: Tensor, y: Tensor, z: Tensor) -> Tensor:
        """G's loss on a fresh fake batch ``fake = g(z, y)``."""
        logits, cls = self.critic(d, self.augment(fake), y)
        extra = sum(t.weight * t.fn(fake, z, y) for t in self.terms if t.on == "g")
        return self.g_term(logits) + self.cls_weight * cls.mean() + extra


def make_loss(name: str, *, augment: Callable[[Tensor], Tensor], gp_weight: float = 10.0,
              r1_gamma: float = 0.0, cls_weight: float = 0.0, ms_weight: float = 0.0) -> GANLoss:
    """Assemble the objective ``name`` (hinge | bce | wgan-gp) with its terms.

    ``cls_weight`` > 0 adds the dual-projection class term (needs a projection discriminator);
    ``r1_gamma`` > 0 the R1 penalty on D, ``ms_weight`` > 0 the mode-seeking term on G.
    """
    d_term, g_term = OBJECTIVES[name]
    terms = [Term(w, f, on) for w, f, on in ((gp_weight if name == "wgan-gp" else 0,
                                               gradient_penalty, "d"),
                                              (r1_gamma, r1_penalty, "d"),
                                              (ms_weight, mode_seeking, "g")) if w > 0]
    critic = dual_projection_critic if cls_weight > 0 else plain_critic
    return GANLoss(d_term, g_term, augment, critic, cls_weight, tuple(terms))
