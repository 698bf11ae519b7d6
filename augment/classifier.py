"""The evaluate stage's classifier and its fit, also the judge's: a small CNN trained with a
:class:`Treatment` (the loss of each epoch, the val score that picks the epoch and the
prediction rule, the batch mix), its epoch chosen on val balanced accuracy.

A fit touches no global random state (its own generators for the batch order, dropout and
augmentation; initial weights under :func:`augment.runtime.seeded_init`), so fits may run
concurrently in threads and still give the same numbers.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .config import ClassifierConfig as Defaults
from .data import ImageSet
from .runtime import progress, resolve_device, seeded_init, to_unit
from .sampling import MixedSampler

# (images, labels, rng) -> (images, targets): integer labels or B×C soft targets
Mix = Callable[[torch.Tensor, torch.Tensor, np.random.Generator],
               tuple[torch.Tensor, torch.Tensor]]


def unmixed(x: torch.Tensor, y: torch.Tensor, rng: np.random.Generator
            ) -> tuple[torch.Tensor, torch.Tensor]:
    return x, y


UNMIXED: Mix = unmixed


# (logits, targets) -> scalar; targets: integer labels, or B×C soft targets after a mix
Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Treatment:
    """How a variant's classifier learns and predicts, chosen once before training.

    ``loss(epoch)``: the loss of that epoch's steps (a function of logits and labels);
    ``select(logits, labels)``: on val, the score that picks the epoch and the prediction rule
    (a dict, e.g. ``{"tau": 0.5}``, added to the fit's info); ``predict(logits, info)``: labels;
    ``mix(images, labels, rng)``: a training batch and its targets (:mod:`augment.mixing`).
    """

    loss: Callable[[int], Loss]
    select: Callable[[torch.Tensor, np.ndarray], tuple[float, dict]]
    predict: Callable[[torch.Tensor, dict], np.ndarray]
    mix: Mix = UNMIXED


def cross_entropy_every_epoch(epoch: int) -> Loss:
    return F.cross_entropy


def argmax_labels(logits: torch.Tensor, info: dict | None = None) -> np.ndarray:
    return logits.argmax(1).numpy()


def argmax_score(logits: torch.Tensor, labels: np.ndarray) -> tuple[float, dict]:
    """Balanced accuracy of the arg max; no rule to choose."""
    # ~1.3 s import (scipy): paid by the fits that score val, not by train or synthesize
    from sklearn.metrics import balanced_accuracy_score

    return float(balanced_accuracy_score(labels, argmax_labels(logits))), {}


PLAIN = Treatment(loss=cross_entropy_every_epoch, select=argmax_score, predict=argmax_labels)


class SeededDropout(nn.Module):
    """Dropout drawing its mask from ``self.generator`` (global RNG when None)."""

    def __init__(self, p: float):
        super().__init__()
        self.p, self.generator = p, None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        keep = torch.rand(x.shape, generator=self.generator, device=x.device) >= self.p
        return x * keep / (1 - self.p)


class SmallCNN(nn.Module):
    """conv-conv-pool-conv-conv-global-pool classifier; works for any size ≥ 8 px."""

    def __init__(self, *, channels: int, num_classes: int, width: int = Defaults.width):
        super().__init__()

        def block(a: int, b: int) -> list[nn.Module]:
            return [nn.Conv2d(a, b, 3, padding=1, bias=False), nn.BatchNorm2d(b), nn.ReLU()]

        self.net = nn.Sequential(*block(channels, width), *block(width, width), nn.MaxPool2d(2),
                                 *block(width, 2 * width), *block(2 * width, 2 * width),
                                 nn.AdaptiveAvgPool2d(1), nn.Flatten(), SeededDropout(0.2),
                                 nn.Linear(2 * width, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations B×2·width (after global pooling): the judge's feature space."""
        return self.net[:-2](x)


def seeded_classifier(*, channels: int, num_classes: int, width: int = Defaults.width,
                      seed: int = 0, device: str | torch.device = "cpu") -> SmallCNN:
    """A :class:`SmallCNN` on ``device`` whose initial weights and dropout masks follow ``seed``
    alone (the global RNG is seeded under a lock, so concurrent fits do not interleave)."""
    device = resolve_device(device)
    with seeded_init(seed):
        model = SmallCNN(channels=channels, num_classes=num_classes, width=width)
    model.net[-2].generator = torch.Generator(device).manual_seed(seed)
    return model.to(device)


@torch.no_grad()
def predict_logits(model: nn.Module, images: np.ndarray, *, device: torch.device,
                   batch_size: int = 512) -> torch.Tensor:
    """The model's logits (N×classes, on the CPU) for uint8 images."""
    model.eval()
    x = to_unit(images, device)
    return torch.cat([model(b).cpu() for b in x.split(batch_size)])


def predict(model: nn.Module, images: np.ndarray, *, device: torch.device,
            batch_size: int = 512) -> np.ndarray:
    """Predicted labels (arg max) for uint8 images."""
    return argmax_labels(predict_logits(model, images, device=device, batch_size=batch_size))


def fit_classifier(images: np.ndarray, labels: np.ndarray, val: ImageSet, *, num_classes: int,
                   epochs: int = Defaults.epochs, batch_size: int = Defaults.batch_size,
                   lr: float = Defaults.lr, weight_decay: float = Defaults.weight_decay,
                   width: int = Defaults.width, seed: int = 0,
                   device: str | torch.device | None = None,
                   transform: Callable[[np.ndarray], np.ndarray] | None = None,
                   steps_per_epoch: int | None = None,
                   treatment: Treatment = PLAIN,
                   is_synthetic: np.ndarray | None = None,
                   synthetic_weight: float = 1.0) -> tuple[nn.Module, dict]:
    """Train :class:`SmallCNN`; return the weights of the epoch with the best val balanced acc.

    ``transform`` (uint8 N×C×H×W → same) redraws every training image each time it is drawn.
    ``steps_per_epoch`` fixes the optimizer steps between two val checks (default: one pass
    over the set); a set smaller than that is passed over more than once per epoch, so sets of
    different sizes can be given the same number of updates. ``treatment`` gives each epoch's
    loss and the val score (with its prediction rule, e.g. post-hoc τ, returned in the info).
    ``is_synthetic`` (one flag per image) with ``synthetic_weight``: passes draw a synthetic
    image with that probability. The batches come from :class:`augment.sampling.MixedSampler`
    seeded with ``seed``: a user's loop with the same sampler sees the same images in the same
    order. A treatment's ``mix`` draws from its own generator, seeded from ``seed``.
    """
    device = resolve_device(device)
    model = seeded_classifier(channels=images.shape[1], num_classes=num_classes, width=width,
                              seed=seed, device=device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps = steps_per_epoch or max(1, len(labels) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps)
    # With a transform, each epoch's drawn images are augmented (and converted) afresh.
    x = to_unit(images, device) if transform is None else None
    y = torch.as_tensor(labels, device=device)
    fake = np.zeros(len(labels), bool) if is_synthetic is None else is_synthetic
    sampler = MixedSampler(fake, synthetic_weight=synthetic_weight,
                           num_samples=steps * batch_size, seed=seed)
    mixing = np.random.default_rng((seed, 1))  # only a mixing treatment draws from it
    best = {"val_balanced_accuracy": -1.0, "epoch": 0}
    for epoch in progress(range(1, epochs + 1), desc="classifier", unit="epoch"):
        model.train()
        criterion = treatment.loss(epoch)
        drawn = sampler.epoch()  # (steps·batch,) indices
        xe = (x[drawn.to(device)] if transform is None
              else to_unit(transform(images[drawn.numpy()]), device))
        ye = y[drawn.to(device)]
        for xb, yb in zip(xe.split(batch_size), ye.split(batch_size)):
            xb, tb = treatment.mix(xb, yb, mixing)
            loss = criterion(model(xb), tb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        score, rule = treatment.select(predict_logits(model, val.images, device=device),
                                       val.labels)
        if score > best["val_balanced_accuracy"]:
            best = {"val_balanced_accuracy": float(score), "epoch": epoch, **rule,
                    "state": copy.deepcopy(model.state_dict())}
    model.load_state_dict(best.pop("state"))
    return model.eval(), {**best, "steps_per_epoch": steps}
