"""Which images a training pass draws: the evaluate stage's rule, and the same rule as a torch
``Sampler`` for your own training loop.

A pass over a set visits every real image once, in a fresh random order. A synthetic image is
drawn with probability ``synthetic_weight`` per pass (:func:`weighted_order`), so the classifier
sees the class mass ``n_real + w·n_synthetic`` (what the prior-based evaluate parts correct
for). ``balance`` first repeats random images of each class up to the largest class
(:func:`augment.data.balanced_index`, the ``oversample`` part). The evaluate stage's classifier
(:func:`augment.classifier.fit_classifier`) draws its batches through :class:`MixedSampler`, so a
loop that uses the sampler with the same seed and ``num_samples`` sees the same images in the
same order as the report's classifier::

    sampler = augment.MixedSampler(is_synthetic, synthetic_weight=0.5, seed=0)
    loader = DataLoader(dataset, batch_size=64, sampler=sampler)  # dataset[i] ↔ is_synthetic[i]

:func:`augment.mix` builds the dataset and this sampler from a real dataset and a
:class:`augment.SyntheticDataset`.
"""

from __future__ import annotations

import math
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import Sampler

from .data import balanced_index
from .errors import ConfigError


def draw_weights(is_synthetic: np.ndarray, synthetic_weight: float) -> np.ndarray | None:
    """Per image, the chance a pass over the set draws it: 1 for a real image, ``synthetic_weight``
    for a synthetic one (None when all are 1)."""
    if synthetic_weight == 1 or not is_synthetic.any():
        return None
    return np.where(is_synthetic, synthetic_weight, 1.0)


def share_weights(is_synthetic: np.ndarray, share: float) -> np.ndarray | None:
    """Per-image draw chances that make ``share`` the expected synthetic fraction of a batch.

    The synthetic weight is w = share·n_real / ((1 − share)·n_synthetic); when that exceeds 1
    (few synthetic images, a large share), real images are thinned to 1/w instead, so every
    weight stays ≤ 1 and the share holds.
    """
    if not 0 <= share < 1:
        raise ConfigError(f"synthetic_share: got {share}; expected 0 <= share < 1 (the expected "
                          "fraction of synthetic images in a batch)")
    n_syn = int(is_synthetic.sum())
    n_real = len(is_synthetic) - n_syn
    if n_syn == 0 or n_real == 0:
        raise ConfigError(f"synthetic_share needs real and synthetic images; got {n_real} real "
                          f"and {n_syn} synthetic")
    if share == 0:
        return np.where(is_synthetic, 0.0, 1.0)
    w = share * n_real / ((1 - share) * n_syn)
    return np.where(is_synthetic, min(w, 1.0), min(1 / w, 1.0))


def epoch_order(n: int, draws: int, generator: torch.Generator) -> torch.Tensor:
    """``draws`` indices into a set of ``n``: whole random permutations, one after another.

    ``draws`` ≤ n is one pass (the tail of the permutation is dropped, as a partial batch
    would be); more than n passes over the set again, every image once per pass.
    """
    passes = -(-draws // n)  # ceil
    return torch.cat([torch.randperm(n, generator=generator) for _ in range(passes)])[:draws]


def weighted_order(n: int, draws: int, generator: torch.Generator, *, weights: np.ndarray
                   ) -> torch.Tensor:
    """:func:`epoch_order` over a thinned set: each pass keeps image i with probability
    ``weights[i]`` (≤ 1; a weight of 1, a real image, is kept in every pass) and shuffles what
    it kept, so real images are drawn once per pass as in :func:`epoch_order` and an image of
    weight w on average w times."""
    if len(weights) != n:
        raise ValueError(f"weighted_order: {len(weights)} weights for {n} images")
    keep = torch.as_tensor(weights, dtype=torch.float64)
    passes, total = [], 0
    while total < draws:
        draw = torch.rand(n, generator=generator, dtype=torch.float64)
        kept = torch.nonzero(draw < keep)[:, 0]
        passes.append(kept[torch.randperm(len(kept), generator=generator)])
        total += len(kept)
    return torch.cat(passes)[:draws]


class MixedSampler(Sampler[int]):
    """Indices into a set of real and synthetic images (``is_synthetic[i]`` per index), drawn by
    the evaluate stage's rule (module docstring); each iteration is the next epoch.

    - ``synthetic_weight`` in (0, 1]: a synthetic image is drawn that many times as often as a
      real one; or ``synthetic_share`` in [0, 1): the expected synthetic fraction of a batch.
    - ``balance``: every class as often as the largest (needs ``labels``); weight 1 only.
    - ``num_samples``: indices per epoch (default: one expected pass, ⌈Σ weights⌉).
    - ``seed``: the same seed gives the same epochs, in any process.
    """

    def __init__(self, is_synthetic, *, synthetic_weight: float = 1.0,
                 synthetic_share: float | None = None, labels=None, balance: bool = False,
                 num_samples: int | None = None, seed: int = 0):
        fake = np.asarray(is_synthetic, dtype=bool)
        if fake.ndim != 1 or len(fake) == 0:
            raise ConfigError("MixedSampler: is_synthetic must be one flag per image (a "
                              f"non-empty 1-D array); got shape {fake.shape}")
        if not 0 < synthetic_weight <= 1:
            raise ConfigError(f"synthetic_weight: got {synthetic_weight}; expected 0 < weight "
                              "<= 1 (how often a synthetic image is drawn relative to a real "
                              "one); for more synthetic images per batch use synthetic_share")
        if synthetic_share is not None and synthetic_weight != 1:
            raise ConfigError("give synthetic_weight or synthetic_share, not both")
        self.weights = (share_weights(fake, synthetic_share) if synthetic_share is not None
                        else draw_weights(fake, synthetic_weight))
        self.index = None
        if balance:
            if labels is None:
                raise ConfigError("balance=True needs labels (one per image)")
            if self.weights is not None:
                raise ConfigError("balance=True with a synthetic weight or share (which set is "
                                  "balanced is ambiguous); drop one, as evaluate.variants does")
            labels = np.asarray(labels, dtype=np.int64)
            if len(labels) != len(fake):
                raise ConfigError(f"{len(labels)} labels for {len(fake)} images")
            self.index = torch.as_tensor(balanced_index(labels, seed=seed))
        self.size = len(fake) if self.index is None else len(self.index)
        expected = self.size if self.weights is None else math.ceil(round(self.weights.sum(), 6))
        self.num_samples = int(num_samples if num_samples is not None else expected)
        if self.num_samples < 1:
            raise ConfigError(f"num_samples: got {self.num_samples}; expected >= 1")
        self.generator = torch.Generator().manual_seed(seed)

    def epoch(self) -> torch.Tensor:
        """The next epoch's ``num_samples`` indices (int64 tensor)."""
        if self.weights is None:
            order = epoch_order(self.size, self.num_samples, self.generator)
        else:
            order = weighted_order(self.size, self.num_samples, self.generator,
                                   weights=self.weights)
        return order if self.index is None else self.index[order]

    def __iter__(self) -> Iterator[int]:
        return iter(self.epoch().tolist())

    def __len__(self) -> int:
        return self.num_samples
