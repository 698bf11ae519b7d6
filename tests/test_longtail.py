"""The long-tail variant parts against their formulas, on numbers small enough to do by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from augment import longtail
from augment.config import VARIANT_PARTS, EvaluateConfig
from augment.errors import DataError
from augment.classifier import PLAIN, fit_classifier
from conftest import fabricate_images

LOGITS = torch.tensor([[1.0, 0.0], [0.5, 2.0]])
LABELS = torch.tensor([0, 1])
COUNTS = np.array([8, 2])  # prior 0.8, 0.2


def test_balanced_softmax_is_cross_entropy_on_logits_plus_log_prior():
    """p(y=0 | x1) = 0.8·e / (0.8·e + 0.2) = 0.91578; p(y=1 | x2) = 0.2·e² / (0.8·e^0.5 + 0.2·e²)
    = 0.52840; the loss is the mean of −log: (0.08798 + 0.63791) / 2 = 0.36295."""
    p1 = 0.8 * math.e / (0.8 * math.e + 0.2)
    p2 = 0.2 * math.e ** 2 / (0.8 * math.e ** 0.5 + 0.2 * math.e ** 2)
    loss = longtail.balanced_softmax(COUNTS, EvaluateConfig())(epoch=1)(LOGITS, LABELS)
    assert loss.item() == pytest.approx(-(math.log(p1) + math.log(p2)) / 2, rel=1e-6)
    assert loss.item() == pytest.approx(0.36295, abs=1e-5)
    assert loss.item() != pytest.approx(F.cross_entropy(LOGITS, LABELS).item(), abs=1e-3)


def test_logit_adjust_raises_the_prior_to_tau_and_is_balanced_softmax_at_tau_1():
    """τ = 2: logits + 2·log π weights the classes by π² = (0.64, 0.04)."""
    p1 = 0.64 * math.e / (0.64 * math.e + 0.04)
    p2 = 0.04 * math.e ** 2 / (0.64 * math.e ** 0.5 + 0.04 * math.e ** 2)
    loss = longtail.logit_adjust(COUNTS, EvaluateConfig(tau=2.0))(epoch=1)(LOGITS, LABELS)
    assert loss.item() == pytest.approx(-(math.log(p1) + math.log(p2)) / 2, rel=1e-6)
    at_one = longtail.logit_adjust(COUNTS, EvaluateConfig(tau=1.0))(epoch=1)(LOGITS, LABELS)
    assert torch.equal(at_one, longtail.balanced_softmax(COUNTS, EvaluateConfig())(1)(LOGITS,
                                                                                       LABELS))
    at_zero = longtail.logit_adjust(COUNTS, EvaluateConfig(tau=0.0))(epoch=1)(LOGITS, LABELS)
    assert torch.equal(at_zero, F.cross_entropy(LOGITS, LABELS))


def test_effective_number_weights_follow_cui_et_al():
    """β = 0.9999, n = (100, 10, 1): (1 − β)/(1 − β^n) = (0.0100496, 0.100045, 1), scaled to sum
    to 3: (0.027159, 0.270369, 2.702472). β = 0: every class weighs 1."""
    w = longtail.effective_number_weights(np.array([100, 10, 1]), 0.9999)
    assert w == pytest.approx([0.027159, 0.270369, 2.702472], abs=2e-6)
    assert w.sum() == pytest.approx(3.0)
    assert longtail.effective_number_weights(np.array([100, 10, 1]), 0.0) == pytest.approx(1.0)


@pytest.mark.parametrize("epochs, start, first", [(20, 0.75, 16), (4, 0.75, 4), (1, 0.75, 1),
                                                   (20, 0.0, 1), (10, 0.8, 9)])
def test_drw_switch_epoch(epochs, start, first):
    assert longtail.drw_first_epoch(epochs, start) == first


def test_drw_is_plain_cross_entropy_then_the_class_balanced_weighted_mean():
    """Counts (3, 1), β = 0.5: raw weights (0.5/0.875, 0.5/0.5) = (0.571429, 1), scaled to sum
    to 2: (0.727273, 1.272727). Logits (2, 0) label 0: ℓ = log(1 + e^−2) = 0.126928; (0, 1)
    label 1: ℓ = log(1 + e^−1) = 0.313262. Weighted mean: (0.727273·0.126928 +
    1.272727·0.313262) / 2 = 0.245504. 20 epochs, start 0.75: weighted from epoch 16 on."""
    logits, labels = torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 1])
    loss = longtail.drw(np.array([3, 1]), EvaluateConfig(epochs=20, drw_beta=0.5,
                                                        drw_start=0.75))
    assert loss(15)(logits, labels).item() == pytest.approx((0.126928 + 0.313262) / 2, abs=1e-6)
    assert loss(16)(logits, labels).item() == pytest.approx(0.245504, abs=1e-6)
    assert loss(20)(logits, labels).item() == pytest.approx(0.245504, abs=1e-6)


def test_posthoc_picks_the_smallest_tau_that_corrects_the_bias_on_val():
    """Prior (0.9, 0.1): subtracting τ·log π moves class 1's logit up by τ·log 9 = 2.1972·τ
    against class 0. Val class-1 images have logits (1, 0): right once τ > 0.455; class-0
    images (3, 0): right while τ < 1.365. Grid 0 … 2 by 0.25: τ 0.5-1.25 all score 1.0; the
    smallest, 0.5, is chosen; τ 0 and 1.5+ score 0.5."""
    counts = np.array([9, 1])
    select, predict = longtail.posthoc(counts, EvaluateConfig())
    val = torch.tensor([[3.0, 0.0], [3.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    y = np.array([0, 0, 1, 1])
    assert select(val, y) == (1.0, {"tau": 0.5})
    shuffled = EvaluateConfig(posthoc_taus=(2.0, 1.0, 0.5, 0.0))  # order does not matter
    assert longtail.posthoc(counts, shuffled)[0](val, y) == (1.0, {"tau": 0.5})
    assert longtail.posthoc(counts, EvaluateConfig(posthoc_taus=(0.0, 1.5)))[0](val, y) == (
        0.5, {"tau": 0.0})
    test = torch.tensor([[1.2, 0.0], [0.9, 0.0]])  # 1.2 − 1.0986 > 0 → 0; 0.9 − 1.0986 < 0 → 1
    assert predict(test, {"tau": 0.5}).tolist() == [0, 1]
    assert predict(test, {"tau": 0.0}).tolist() == [0, 0]


def test_treatment_picks_the_parts_functions_once():
    cfg = EvaluateConfig()
    plain = longtail.treatment("real+oversample+classic", np.array([5, 5]), cfg)
    assert (plain.loss, plain.select, plain.predict) == (PLAIN.loss, PLAIN.select,
                                                         PLAIN.predict)
    both = longtail.treatment("real+balanced_softmax+posthoc", COUNTS, cfg)
    assert both.loss(1)(LOGITS, LABELS).item() == pytest.approx(0.36295, abs=1e-5)
    assert both.select(LOGITS, np.array([0, 1]))[1] == {"tau": 0.0}  # already right at τ = 0
    assert longtail.treatment("real+drw", COUNTS, cfg).loss(1) is F.cross_entropy


def test_a_prior_part_on_a_set_without_some_class_is_refused():
    with pytest.raises(DataError, match=r"evaluate.variants: 'synthetic\+posthoc' has no "
                                        "training images of class index\\(es\\) 0, 2"):
        longtail.treatment("synthetic+posthoc", np.array([0, 4, 0]), EvaluateConfig())
    longtail.treatment("synthetic", np.array([0, 4, 0]), EvaluateConfig())  # no prior: fine


def test_registries_cover_the_configs_loss_and_prediction_parts():
    kinds = {kind: {p for p, k in VARIANT_PARTS.items() if k == kind} for kind in
             ("loss", "prediction")}
    assert set(longtail.LOSSES) == kinds["loss"] and set(longtail.RULES) == kinds["prediction"]


def test_training_uses_the_treatments_loss():
    """logit_adjust at τ = 0 is cross-entropy: the same weights as a plain fit, bit for bit;
    balanced_softmax on the same 12:2 set trains other weights."""
    train, val = fabricate_images([12, 2]), fabricate_images([4, 4], seed=1)
    counts = np.bincount(train.labels)

    def fit(variant, **cfg):
        t = longtail.treatment(variant, counts, EvaluateConfig(epochs=2, **cfg))
        model, _ = fit_classifier(train.images, train.labels, val, num_classes=2, epochs=2,
                                  batch_size=4, width=4, seed=0, device="cpu", treatment=t)
        return model.state_dict()["net.16.weight"]

    plain, _ = fit_classifier(train.images, train.labels, val, num_classes=2, epochs=2,
                              batch_size=4, width=4, seed=0, device="cpu")
    assert torch.equal(fit("real+logit_adjust", tau=0.0), plain.state_dict()["net.16.weight"])
    assert not torch.equal(fit("real+balanced_softmax"), plain.state_dict()["net.16.weight"])
