"""augment.MixedSampler: the evaluate stage's draw rule, as a torch Sampler for a user's loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from augment import evaluate as E
from augment.errors import ConfigError
from augment.sampling import MixedSampler, share_weights
from conftest import fabricate_images


def recorded_draws(monkeypatch, variant: str, *, synthetic_weight: float = 1.0, epochs: int = 3):
    """What the evaluate stage's classifier drew, per epoch: (images, labels) of each batch run."""
    seen = []
    original = MixedSampler.epoch

    def epoch(self):
        order = original(self)
        seen.append(order)
        return order

    monkeypatch.setattr(MixedSampler, "epoch", epoch)
    real = fabricate_images([9, 4, 2], seed=1)
    fake = (np.random.default_rng(2).integers(0, 256, (6, 1, 8, 8), dtype=np.uint8),
            np.array([1, 1, 1, 2, 2, 2]))
    splits = {"train": real, "val": fabricate_images([3, 3, 3]), "test": fabricate_images([3] * 3)}
    steps = E.common_steps([variant], real.labels, fake[1], batch_size=4)
    E.evaluate_variant(variant, splits, fake, epochs=epochs, width=4, batch_size=4,
                       steps_per_epoch=steps, synthetic_weight=synthetic_weight, seed=7)
    images, labels, _ = E.compose(variant, real, fake, seed=7)
    return [(images[o.numpy()], labels[o.numpy()]) for o in seen], real, fake, steps * 4


@pytest.mark.parametrize("variant,weight,balance", [("real+synthetic", 0.4, False),
                                                    ("real+synthetic", 1.0, False),
                                                    ("real+synthetic+oversample", 1.0, True),
                                                    ("real", 1.0, False)])
def test_the_sampler_draws_what_the_evaluate_stage_draws(monkeypatch, variant, weight, balance):
    """Same seed, same draws per epoch: the user's loop sees the report's batches, in order."""
    stage, real, fake, draws = recorded_draws(monkeypatch, variant, synthetic_weight=weight)
    with_fake = "synthetic" in variant
    images = np.concatenate([real.images, fake[0]]) if with_fake else real.images
    labels = np.concatenate([real.labels, fake[1]]) if with_fake else real.labels
    flags = np.arange(len(labels)) >= len(real.labels)
    monkeypatch.undo()
    sampler = MixedSampler(flags, synthetic_weight=weight, labels=labels, balance=balance,
                           num_samples=draws, seed=7)
    assert len(sampler) == draws
    for (stage_x, stage_y), order in zip(stage, (list(sampler) for _ in stage)):
        assert np.array_equal(images[order], stage_x) and np.array_equal(labels[order], stage_y)
    assert len(stage) == 3


def test_epochs_differ_and_the_same_seed_repeats_them():
    a, b = MixedSampler(np.zeros(20, bool), seed=3), MixedSampler(np.zeros(20, bool), seed=3)
    first, second = list(a), list(a)
    assert first != second and sorted(first) == sorted(second) == list(range(20))
    assert [first, second] == [list(b), list(b)]
    assert list(MixedSampler(np.zeros(20, bool), seed=4)) != first


def test_synthetic_weight_sets_how_often_a_synthetic_image_is_drawn():
    flags = np.array([False] * 30 + [True] * 90)
    sampler = MixedSampler(flags, synthetic_weight=0.2, num_samples=120_000, seed=0)
    share = flags[sampler.epoch().numpy()].mean()
    assert share == pytest.approx(90 * 0.2 / (30 + 90 * 0.2), abs=0.005)
    assert len(MixedSampler(flags, synthetic_weight=0.2)) == 30 + 18  # one expected pass


@pytest.mark.parametrize("share,n_real,n_fake", [(0.25, 80, 40), (0.75, 80, 10), (0.0, 5, 5)])
def test_synthetic_share_is_the_expected_fraction_of_a_batch(share, n_real, n_fake):
    flags = np.array([False] * n_real + [True] * n_fake)
    weights = share_weights(flags, share)
    assert weights.max() <= 1  # thinning only: real images thinned when synthetic ones are few
    sampler = MixedSampler(flags, synthetic_share=share, num_samples=100_000, seed=1)
    assert flags[sampler.epoch().numpy()].mean() == pytest.approx(share, abs=0.006)


def test_balance_draws_every_class_as_often_as_the_largest():
    labels = np.array([0] * 40 + [1] * 10 + [2] * 2)
    sampler = MixedSampler(np.zeros(52, bool), labels=labels, balance=True, seed=0)
    drawn = labels[list(sampler)]
    assert np.bincount(drawn).tolist() == [40, 40, 40]


@pytest.mark.parametrize("kwargs,message", [
    ({"synthetic_weight": 0.0}, "synthetic_weight: got 0.0; expected 0 < weight <= 1"),
    ({"synthetic_weight": 2.0}, "synthetic_weight: got 2.0"),
    ({"synthetic_share": 1.0}, "synthetic_share: got 1.0"),
    ({"synthetic_share": 0.5, "synthetic_weight": 0.5}, "not both"),
    ({"balance": True}, "balance=True needs labels"),
    ({"balance": True, "labels": [0, 1, 0, 1], "synthetic_weight": 0.5}, "ambiguous"),
    ({"num_samples": 0}, "num_samples: got 0"),
])
def test_bad_settings_are_errors_naming_them(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        MixedSampler(np.array([False, False, True, True]), **kwargs)


def test_a_share_needs_both_kinds_of_image():
    with pytest.raises(ConfigError, match="needs real and synthetic images"):
        MixedSampler(np.zeros(4, bool), synthetic_share=0.3)


def test_it_is_a_torch_sampler_a_dataloader_takes():
    from torch.utils.data import DataLoader, TensorDataset

    data = TensorDataset(torch.arange(10))
    sampler = MixedSampler(np.zeros(10, bool), num_samples=25, seed=0)
    got = torch.cat([b for (b,) in DataLoader(data, batch_size=5, sampler=sampler)])
    assert len(got) == 25 and sorted(got[:10].tolist()) == list(range(10))
