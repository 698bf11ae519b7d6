"""augment.resample.GANResampler: imbalanced-learn's sampler API over the cGAN (CPU, seconds)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import FunctionTransformer

from augment.config import TrainConfig
from augment.errors import CheckpointError, ConfigError, DataError
from augment.resample import GANResampler
from augment.synthesis import synthesize
from conftest import fabricate_images

TINY = TrainConfig(epochs=1, batch_size=32, width=8, device="cpu")
COUNTS = [40, 10, 5]


def images(counts=COUNTS, *, size=8, channels=1, seed=0):
    """Random uint8 N×C×H×W images and int labels, shuffled (originals must keep this order)."""
    data = fabricate_images(counts, size=size, channels=channels, seed=seed)
    order = np.random.default_rng(seed).permutation(len(data.labels))
    return data.images[order], data.labels[order]


def resampler(**kwargs) -> GANResampler:
    return GANResampler(**{"config": TINY, "device": "cpu", **kwargs})


def per_label(y) -> dict:
    values, counts = np.unique(y, return_counts=True)
    return dict(zip(values.tolist(), counts.tolist()))


# ------------------------------------------------------------------------------------- counts
def test_auto_balances_3d_string_labels_and_keeps_originals_first():
    X4, labels = images()
    X = X4[:, 0]  # N×H×W
    y = np.array(["cat", "dog", "emu"])[labels]
    X_res, y_res = resampler().fit_resample(X, y)
    assert X_res.ndim == 3 and X_res.shape[1:] == (8, 8) and X_res.dtype == np.uint8
    assert len(X_res) == len(y_res) == 3 * 40
    np.testing.assert_array_equal(X_res[:len(X)], X)
    np.testing.assert_array_equal(y_res[:len(y)], y)
    assert per_label(y_res) == {"cat": 40, "dog": 40, "emu": 40}
    assert set(y_res[len(y):].tolist()) == {"dog", "emu"}


def test_auto_keeps_rgb_4d_and_records_fitted_attributes():
    X, y = images(channels=3)
    r = resampler()
    X_res, y_res = r.fit_resample(X, y)
    assert X_res.shape == (120, 3, 8, 8) and X_res.dtype == np.uint8
    np.testing.assert_array_equal(X_res[:len(X)], X)
    assert per_label(y_res) == {0: 40, 1: 40, 2: 40}
    assert r.sampling_strategy_ == {1: 30, 2: 35}
    np.testing.assert_array_equal(r.classes_, [0, 1, 2])
    assert isinstance(r.generator_, torch.nn.Module) and not r.generator_.training


def test_fit_returns_self_fitted():
    X, y = images()
    r = resampler()
    assert r.fit(X, y) is r and r.sampling_strategy_ == {1: 30, 2: 35}


@pytest.mark.parametrize("strategy, added", [
    ("not majority", {1: 30, 2: 35}),
    ("minority", {2: 35}),
    ("not minority", {0: 0, 1: 30}),
    ("all", {0: 0, 1: 30, 2: 35}),
    ({1: 12, 2: 20}, {1: 2, 2: 15}),
])
def test_each_strategy_adds_what_imblearn_would(strategy, added):
    X, y = images()
    r = resampler(sampling_strategy=strategy)
    X_res, y_res = r.fit_resample(X, y)
    assert r.sampling_strategy_ == added
    want = {c: n + added.get(c, 0) for c, n in enumerate(COUNTS)}
    assert per_label(y_res) == want and len(X_res) == sum(want.values())


def test_float_strategy_for_two_classes_is_the_minority_share_of_the_majority():
    X, labels = images([40, 10])
    y = np.array(["neg", "pos"])[labels]
    X_res, y_res = resampler(sampling_strategy=0.5).fit_resample(X, y)
    assert per_label(y_res) == {"neg": 40, "pos": 20}


def test_strategies_match_imblearn_random_over_sampler():
    imblearn = pytest.importorskip("imblearn")
    X, y = images()
    for strategy in ["auto", "not majority", "minority", "not minority", "all", {1: 12, 2: 20}]:
        theirs = imblearn.over_sampling.RandomOverSampler(sampling_strategy=strategy)
        theirs.fit_resample(X.reshape(len(X), -1), y)
        ours = resampler(sampling_strategy=strategy)
        ours.fit_resample(X, y)
        assert ours.sampling_strategy_ == dict(theirs.sampling_strategy_), strategy


@pytest.mark.parametrize("strategy, counts, message", [
    ({1: 5}, COUNTS, r"below the current counts \(1: 5 < 10\)"),
    ({7: 50}, COUNTS, r"class\(es\) 7 not in y"),
    ("majority", COUNTS, "'majority' would under-sample"),
    ("most", COUNTS, "allowed strings are"),
    (0.5, COUNTS, "a float is for two classes; y has 3"),
    (0.2, [40, 10], "at or below the current minority/majority ratio 0.25"),
    (1.5, [40, 10], r"must be in \(0, 1\]"),
])
def test_bad_strategy_is_a_config_error_naming_it(strategy, counts, message):
    X, y = images(counts)
    with pytest.raises(ConfigError, match=message):
        resampler(sampling_strategy=strategy).fit_resample(X, y)


# ------------------------------------------------------------------------------ determinism
def test_same_seed_same_arrays_other_seed_other_samples():
    X, y = images()
    first = resampler(seed=3).fit_resample(X, y)
    again = resampler(seed=3).fit_resample(X, y)
    other = resampler(seed=4).fit_resample(X, y)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(first[1], other[1])  # counts and order depend on y only
    assert not np.array_equal(first[0][len(X):], other[0][len(X):])


def test_trained_gan_samples_from_its_ema_generator(monkeypatch):
    import augment.resample

    trained = []
    real_train = augment.resample.train_gan
    monkeypatch.setattr(augment.resample, "train_gan",
                        lambda *a, **k: trained.append(real_train(*a, **k)) or trained[-1])
    X, y = images()
    r = resampler()
    X_res, _ = r.fit_resample(X, y)
    assert r.generator_ is trained[0].ema.module
    drawn, _ = synthesize(trained[0].ema.module, {1: 30, 2: 35}, seed=0, device="cpu")
    np.testing.assert_array_equal(X_res[len(X):], drawn.numpy())


# ------------------------------------------------------------------------------- checkpoint
def test_loads_a_checkpoint_and_draws_its_classes_by_name(checkpoint):
    X, labels = images([30, 6])
    y = np.array([3, 7])[labels]  # the checkpoint's classes are "0".."9": str(3) == "3"
    r = resampler(generator=str(checkpoint))
    X_res, y_res = r.fit_resample(X, y)
    assert r.generator_.hparams["num_classes"] == 10
    assert per_label(y_res) == {3: 30, 7: 30}
    expected, _ = synthesize(str(checkpoint), {"7": 24}, seed=0, device="cpu")
    np.testing.assert_array_equal(X_res[len(X):], expected.numpy())


@pytest.mark.parametrize("size, channels, names, error, message", [
    (16, 1, [3, 7], CheckpointError, "draws 1×8×8 images .* X holds 1×16×16"),
    (8, 3, [3, 7], CheckpointError, "draws 1×8×8 images .* X holds 3×8×8"),
    (8, 1, ["3", "cat"], DataError, "labels 'cat' are not classes of .*its classes: 0, 1,"),
])
def test_checkpoint_of_other_images_or_classes_is_one_clear_error(checkpoint, size, channels,
                                                                  names, error, message):
    X, labels = images([30, 6], size=size, channels=channels)
    y = np.array(names, dtype=object)[labels]
    with pytest.raises(error, match=message):
        resampler(generator=str(checkpoint)).fit_resample(X, y)


# ------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("make, message", [
    (lambda X, y: (X.reshape(len(X), -1), y), r"X of rank 2 \(55×64\).*X\.reshape\(-1, H, W\)"),
    (lambda X, y: (X / 255.0, y), "X of dtype float64: .*uint8"),
    (lambda X, y: (X, y[:-1]), r"y of shape \(54,\) for 55 images"),
    (lambda X, y: (X[..., :6], y), "8×6 images: .*square"),
    (lambda X, y: (X.transpose(0, 2, 3, 1).repeat(3, -1), y), r"X\.transpose\(0, 3, 1, 2\)"),
    (lambda X, y: (X, np.zeros_like(y)), "over-sampling needs at least 2 classes"),
    (lambda X, y: (X, np.array([0, "a", 2], dtype=object)[y]), "mixes labels of types int, str"),
])
def test_bad_input_is_a_data_error_naming_it(make, message):
    X, y = make(*images())
    with pytest.raises(DataError, match=message):
        resampler().fit_resample(X, y)


# ---------------------------------------------------------------------------- scikit-learn
def test_clone_and_params_follow_sklearn_conventions():
    r = GANResampler("minority", config=TINY, seed=5)
    twin = clone(r)
    assert twin.get_params() == r.get_params() and twin is not r
    assert twin.set_params(seed=6).seed == 6 and r.seed == 5


class Recorder(LogisticRegression):
    """LogisticRegression that remembers the class counts it was fit on."""

    def fit(self, X, y, sample_weight=None):
        self.fit_counts_ = per_label(y)
        self.fit_rows_ = len(X)
        return super().fit(X, y, sample_weight)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # random images
def test_inside_an_imblearn_pipeline_fits_balanced_and_predicts_unresampled():
    pipeline = pytest.importorskip("imblearn.pipeline")
    X, y = images()
    pipe = pipeline.Pipeline([
        ("gan", resampler()),
        ("flat", FunctionTransformer(lambda X: X.reshape(len(X), -1))),
        ("clf", Recorder(max_iter=200)),
    ])
    pipe.fit(X, y)
    assert pipe[-1].fit_counts_ == {0: 40, 1: 40, 2: 40} and pipe[-1].fit_rows_ == 120
    assert pipe.named_steps["gan"].sampling_strategy_ == {1: 30, 2: 35}
    assert pipe.predict(X).shape == (len(X),)
