"""The mixing part (mixup) against its formulas, on numbers small enough to do by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from augment import longtail, mixing
from augment.classifier import PLAIN, UNMIXED, fit_classifier
from augment.config import VARIANT_PARTS, EvaluateConfig
from augment.evaluate import evaluate_variant
from conftest import fabricate_images

X = torch.tensor([0.0, 10.0, 4.0]).reshape(3, 1, 1, 1)
Y = torch.tensor([0, 1, 1])
SWAP = torch.tensor([1, 0, 2])


def test_blend_and_soft_targets_by_hand():
    assert mixing.blend(X, SWAP, 0.25).flatten().tolist() == [7.5, 2.5, 4.0]
    targets = mixing.soft_targets(Y, SWAP, torch.full((3,), 0.25), 2)
    assert targets.tolist() == [[0.25, 0.75], [0.75, 0.25], [0.0, 1.0]]


def test_mixup_draws_one_lambda_and_one_permutation_per_batch():
    x, t = mixing.mixup_batch(X, Y, np.random.default_rng(3), alpha=1.0, num_classes=2)
    replay = np.random.default_rng(3)
    perm, lam = torch.as_tensor(replay.permutation(3)), replay.beta(1.0, 1.0)
    assert torch.allclose(x, lam * X + (1 - lam) * X[perm])
    assert torch.allclose(t, mixing.soft_targets(Y, perm, torch.full((3,), float(lam)), 2))
    assert torch.allclose(t.sum(1), torch.ones(3))


def test_mixup_lambda_follows_beta_alpha():
    """Beta(α, α) has mean 1/2 and variance 1 / (4(2α + 1)): small α mixes little."""
    rng = np.random.default_rng(0)
    for alpha in (0.2, 1.0):
        lams = [mixing._draw(2, rng, alpha)[1] for _ in range(4000)]
        assert np.mean(lams) == pytest.approx(0.5, abs=0.02)
        assert np.var(lams) == pytest.approx(1 / (4 * (2 * alpha + 1)), rel=0.1)


def test_losses_take_soft_targets_as_the_same_weighted_mean():
    logits = torch.tensor([[1.0, 0.0], [0.5, 2.0]])
    hard, onehot = torch.tensor([0, 1]), torch.eye(2)
    weights = np.array([0.5, 1.5])
    assert longtail.weighted_cross_entropy(logits, onehot, weights=weights).item() == \
        pytest.approx(longtail.weighted_cross_entropy(logits, hard, weights=weights).item())
    soft = torch.tensor([[0.25, 0.75], [1.0, 0.0]])
    logp = F.log_softmax(logits, 1)
    mass = soft * torch.tensor([0.5, 1.5])
    by_hand = -(mass * logp).sum() / mass.sum()
    assert longtail.weighted_cross_entropy(logits, soft, weights=weights).item() == \
        pytest.approx(by_hand.item())
    shift = np.log([0.8, 0.2])
    assert longtail.shifted_cross_entropy(logits, soft, shift=shift).item() == pytest.approx(
        -(soft * F.log_softmax(logits + torch.tensor(shift, dtype=torch.float32), 1))
        .sum(1).mean().item())


def test_registry_covers_the_configs_mixing_parts():
    assert set(mixing.MIXES) == {p for p, k in VARIANT_PARTS.items() if k == "mixing"}


def test_treatment_carries_the_mix_and_plain_parts_stay_unmixed():
    cfg = EvaluateConfig()
    assert longtail.treatment("real+classic", np.array([3, 1]), cfg).mix is UNMIXED
    assert PLAIN.mix is UNMIXED
    t = longtail.treatment("real+mixup+balanced_softmax", np.array([3, 1]), cfg)
    assert t.mix.func is mixing.mixup_batch and t.loss(1)(X.flatten()[:2].reshape(1, 2),
                                                          torch.tensor([[0.5, 0.5]])).ndim == 0


def test_training_with_mixup_is_seeded_and_changes_the_weights():
    train, val = fabricate_images([12, 2]), fabricate_images([4, 4], seed=1)
    counts = np.bincount(train.labels)

    def fit(variant):
        t = longtail.treatment(variant, counts, EvaluateConfig(epochs=2))
        model, _ = fit_classifier(train.images, train.labels, val, num_classes=2, epochs=2,
                                  batch_size=4, width=4, seed=0, device="cpu", treatment=t)
        return model.state_dict()["net.16.weight"]

    assert torch.equal(fit("real+mixup"), fit("real+mixup"))
    assert not torch.equal(fit("real+mixup"), fit("real"))


def test_evaluate_variant_runs_a_mixed_variant_end_to_end():
    splits = {"train": fabricate_images([12, 3]), "val": fabricate_images([4, 4], seed=1),
              "test": fabricate_images([4, 4], seed=2)}
    cfg = EvaluateConfig(epochs=2, batch_size=4, width=4)
    t = longtail.treatment("real+mixup+classic", np.array([12, 3]), cfg)
    out = evaluate_variant("real+mixup+classic", splits, None, seed=0, device="cpu",
                           treatment=t, epochs=2, batch_size=4, width=4)
    assert out["n_train"] == 15 and 0 <= out["balanced_accuracy"] <= 1
