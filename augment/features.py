"""Head parts of the evaluate classifier: after the network is trained, its last layer is
fine-tuned on the frozen penultimate features of the real training images, with the balanced
loss (cross-entropy on logits + log π, π the class mass of the head's set), and optionally with
generated features that fill every class up to the largest:

- ``decoupled`` (cRT, Kang et al. 2020; SYNAuG, Ye-Bin et al. 2023): real features only; with
  ``synthetic`` the representation has seen real + synthetic images, the head sees real ones.
- ``feature_gaussian`` (the non-GAN control; tail calibration, Vigneswaran et al. 2021): a
  class's features drawn from a Gaussian whose mean is its own mean pulled towards its
  :data:`NEIGHBOURS` nearest better-populated classes, and whose covariance is theirs.
- ``feature_gan`` (LDMLR's idea, Han et al. 2024, with this project's recipe): a
  class-conditional MLP GAN (hinge loss, projection critic, class-balanced batches) trained on
  the standardised real features; its samples fill the tail.

What a user gets from these parts is a classifier, not images: ``augment.synthesize`` stays
the image API. :func:`head_fill` picks the fill once per variant (registry :data:`FILLS`).
"""

from __future__ import annotations

import copy
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import balanced_accuracy_score
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from .runtime import seeded_init, to_unit

HEAD_EPOCHS = 10        # passes of the head fine-tuning over its set (the best on val is kept)
NEIGHBOURS = 2          # feature_gaussian: better-populated classes a class borrows from
GAN_STEPS = 1000        # feature_gan: generator updates
GAN_BATCH = 128
Z_DIM = 32

# (features N×d, labels N, counts per class, seed) -> (generated features, their labels)
Fill = Callable[[torch.Tensor, np.ndarray, np.ndarray, int], tuple[torch.Tensor, np.ndarray]]


def shortfall(counts: np.ndarray) -> np.ndarray:
    """Features to generate per class so every class reaches the largest."""
    return counts.max() - counts


def no_fill(features, labels, counts, seed):
    return features[:0], labels[:0]


def gaussian_fill(features: torch.Tensor, labels: np.ndarray, counts: np.ndarray, seed: int,
                  *, neighbours: int = NEIGHBOURS, ridge: float = 1e-3
                  ) -> tuple[torch.Tensor, np.ndarray]:
    """Tail calibration: class c ~ N((μ_c + Σ_k μ_k) / (K + 1), mean_k Σ_k + ridge·I) over its
    K nearest classes (by mean) with more images; the largest classes need nothing."""
    x = features.double()
    means = torch.stack([x[labels == c].mean(0) for c in range(len(counts))])
    rng = torch.Generator().manual_seed(seed)
    out, out_labels = [], []
    for c, n in enumerate(shortfall(counts)):
        if n == 0:
            continue
        richer = np.flatnonzero(counts > counts[c])
        near = richer[torch.cdist(means[c:c + 1], means[richer])[0].argsort().numpy()[:neighbours]]
        mean = (means[c] + means[near].sum(0)) / (len(near) + 1)
        cov = torch.stack([torch.cov(x[labels == k].T) for k in near]).mean(0)
        cov = cov + ridge * torch.eye(len(mean), dtype=x.dtype)
        root = torch.linalg.cholesky(cov)
        z = torch.randn(int(n), len(mean), generator=rng, dtype=x.dtype)
        out.append((mean + z @ root.T).clamp_min(0))  # pooled ReLU features are ≥ 0
        out_labels.append(np.full(int(n), c))
    return torch.cat(out).float(), np.concatenate(out_labels)


class FeatureGenerator(nn.Module):
    """(z, class) → a standardised feature vector: an MLP on [z, class embedding]."""

    def __init__(self, dim: int, num_classes: int, hidden: int = 128):
        super().__init__()
        self.embed = nn.Embedding(num_classes, Z_DIM)
        self.net = nn.Sequential(nn.Linear(2 * Z_DIM, hidden), nn.LeakyReLU(0.2),
                                 nn.Linear(hidden, hidden), nn.LeakyReLU(0.2),
                                 nn.Linear(hidden, dim))

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([z, self.embed(y)], 1))


class FeatureCritic(nn.Module):
    """Projection critic (Miyato & Koyama 2018) on feature vectors, spectrally normalised."""

    def __init__(self, dim: int, num_classes: int, hidden: int = 128):
        super().__init__()
        self.body = nn.Sequential(spectral_norm(nn.Linear(dim, hidden)), nn.LeakyReLU(0.2),
                                  spectral_norm(nn.Linear(hidden, hidden)), nn.LeakyReLU(0.2))
        self.out = spectral_norm(nn.Linear(hidden, 1))
        self.embed = nn.Embedding(num_classes, hidden)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.body(x)
        return self.out(h).squeeze(1) + (self.embed(y) * h).sum(1)


def gan_fill(features: torch.Tensor, labels: np.ndarray, counts: np.ndarray, seed: int,
             *, steps: int = GAN_STEPS, batch: int = GAN_BATCH
             ) -> tuple[torch.Tensor, np.ndarray]:
    """Train a conditional MLP GAN on the standardised features (class-balanced batches), then
    draw each class's shortfall from it."""
    num_classes, dim = len(counts), features.shape[1]
    mu, sd = features.mean(0), features.std(0) + 1e-6
    x = (features - mu) / sd
    y = torch.as_tensor(labels)
    rng = torch.Generator().manual_seed(seed)
    with seeded_init(seed):
        g, d = FeatureGenerator(dim, num_classes), FeatureCritic(dim, num_classes)
    opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    balanced = torch.as_tensor(1.0 / counts[labels])  # every class drawn alike
    for _ in range(steps):
        pick = torch.multinomial(balanced, batch, replacement=True, generator=rng)
        yb = y[pick]
        z = torch.randn(batch, Z_DIM, generator=rng)
        both = d(torch.cat([x[pick], g(z, yb).detach()]), torch.cat([yb, yb]))  # one pass
        real, fake = both.chunk(2)
        loss_d = F.relu(1 - real).mean() + F.relu(1 + fake).mean()  # hinge
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        loss_g = -d(g(z, yb), yb).mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
    need = shortfall(counts)
    out_labels = np.repeat(np.arange(num_classes), need)
    with torch.no_grad():
        z = torch.randn(len(out_labels), Z_DIM, generator=rng)
        fake = g.eval()(z, torch.as_tensor(out_labels)) * sd + mu
    return fake.clamp_min(0), out_labels


FILLS: dict[str, Fill] = {"decoupled": no_fill, "feature_gaussian": gaussian_fill,
                          "feature_gan": gan_fill}


def head_fill(variant: str) -> Fill | None:
    """The fill of ``variant``'s head part, or None when it has none (config allows one)."""
    parts = [p for p in variant.split("+") if p in FILLS]
    return FILLS[parts[0]] if parts else None


@torch.no_grad()
def penultimate(model: nn.Module, images: np.ndarray, *, device: torch.device,
                batch_size: int = 512) -> torch.Tensor:
    """The frozen network's penultimate features (N×d, on the CPU) of uint8 images."""
    model.eval()
    x = to_unit(images, device)
    return torch.cat([model.features(b).cpu() for b in x.split(batch_size)])


def balanced_head_loss(logits: torch.Tensor, labels: torch.Tensor, *, shift: torch.Tensor
                       ) -> torch.Tensor:
    return F.cross_entropy(logits + shift, labels)


def refit_head(model: nn.Module, train_images: np.ndarray, train_labels: np.ndarray,
               val_images: np.ndarray, val_labels: np.ndarray, *, fill: Fill,
               num_classes: int, lr: float, batch_size: int, seed: int,
               device: torch.device, epochs: int = HEAD_EPOCHS) -> tuple[nn.Module, dict]:
    """Fine-tune ``model``'s last linear layer on frozen features of the real training images
    plus ``fill``'s generated ones, with the balanced loss; keep the epoch with the best val
    balanced accuracy (the head as it was is not a candidate: the part always changes it)."""
    counts = np.bincount(train_labels, minlength=num_classes)
    feats = penultimate(model, train_images, device=device)
    made, made_labels = fill(feats, train_labels, counts, seed)
    x = torch.cat([feats, made]).to(device)
    y = torch.as_tensor(np.concatenate([train_labels, made_labels]), device=device)
    prior = np.bincount(y.cpu().numpy(), minlength=num_classes) / len(y)
    shift = torch.as_tensor(np.log(prior), dtype=x.dtype, device=device)
    val_x = penultimate(model, val_images, device=device).to(device)
    head = model.net[-1]
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=0.0)
    order = torch.Generator().manual_seed(seed)

    def score() -> float:
        return float(balanced_accuracy_score(val_labels, head(val_x).argmax(1).cpu().numpy()))

    best = {"head_val": -1.0}
    for epoch in range(1, epochs + 1):
        for idx in torch.randperm(len(y), generator=order).to(device).split(batch_size):
            loss = balanced_head_loss(head(x[idx]), y[idx], shift=shift)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        with torch.no_grad():
            s = score()
        if s > best["head_val"]:
            best = {"head_epoch": epoch, "head_val": s, "state": copy.deepcopy(head.state_dict())}
    head.load_state_dict(best.pop("state"))
    return model.eval(), {**best, "generated_features": int(len(made_labels))}
