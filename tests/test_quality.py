"""The judge, the domain FID / diversity metrics and the synthesis-time sample filter."""

import numpy as np
import pytest
import torch
from scipy import linalg

from augment.config import ConfigError, stage_config
from augment.data import load_prepared
from augment.errors import CheckpointError, DataError
from augment.fidelity import fidelity_report, frechet_distance
from augment.judge import confidence_filter, judge_outputs, load_judge, train_judge
from augment.synthesis import synthesize


def _scipy_fid(a, b):
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    return ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(ca + cb - 2 * linalg.sqrtm(ca @ cb).real)


def test_frechet_distance_matches_the_scipy_formula():
    rng = np.random.default_rng()  # fresh data every run: the formula must hold on any input
    a = rng.normal(size=(300, 12))
    b = rng.normal(size=(200, 12)) @ rng.normal(size=(12, 12)) + rng.normal(size=12)
    assert frechet_distance(a, b) == pytest.approx(_scipy_fid(a, b), rel=1e-6)
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-6)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)


def _plus_minus(mean, spreads):
    """Rows mean ± s·e_i for each (i, s) in ``spreads``: the sample mean is ``mean`` and the
    sample covariance (ddof 1) is diagonal, 2s²/(N − 1) at i and 0 in every other dimension."""
    rows = []
    for i, s in spreads:
        step = np.zeros_like(mean)
        step[i] = s
        rows += [mean + step, mean - step]
    return np.array(rows)


def test_frechet_distance_is_exact_for_singular_covariances():
    """Two Gaussians with diagonal, singular covariances (4 samples in 64 dimensions): FID is
    ‖μa − μb‖² + Σᵢ (σa,i − σb,i)², by hand."""
    mu_a, mu_b = np.zeros(64), np.zeros(64)
    mu_b[5], mu_b[9] = 1.0, -2.0
    a = _plus_minus(mu_a, [(0, 3.0), (1, 1.0)])  # variances 6, 2/3 (N = 4)
    b = _plus_minus(mu_b, [(0, 2.0), (2, 1.0)])  # variances 8/3, 2/3
    expected = (1 + 4) + (np.sqrt(6) - np.sqrt(8 / 3)) ** 2 + 2 / 3 + 2 / 3
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)
    assert frechet_distance(b, a) == pytest.approx(expected, rel=1e-9)
    # random rank-deficient sets: a shift moves only the mean term, a set against itself is 0
    rng = np.random.default_rng(1)
    c = rng.normal(size=(5, 64))  # fewer samples than dimensions
    shift = rng.normal(size=64)
    assert frechet_distance(c, c + shift) == pytest.approx((shift ** 2).sum(), rel=1e-6)
    # ~0: √ of the 60 round-off eigenvalues of a rank-4 Σ leaves ~1e-5 of Tr Σa + Tr Σb ≈ 128
    assert frechet_distance(c, c) == pytest.approx(0.0, abs=1e-4)


def test_report_on_real_data_is_ideal_and_collapse_is_caught(prepared):
    splits = load_prepared(prepared, splits=("train", "val"))
    real = splits["train"]
    model, info = train_judge(real, splits["val"], epochs=15, width=16, device="cpu")
    assert info["val_balanced_accuracy"] > 0.5  # features that mean something
    same = fidelity_report(model, real, real.images, real.labels)
    assert same["fid"] == pytest.approx(0.0, abs=1e-3)
    assert set(same["diversity"].values()) == {1.0}
    first = np.array([np.flatnonzero(real.labels == c)[0] for c in real.labels])
    collapsed = fidelity_report(model, real, real.images[first], real.labels)  # one image a class
    assert collapsed["diversity_min"] == 0.0 and collapsed["fid"] > same["fid"] + 0.1
    # per class, by hand: a collapsed class (one feature vector f, Σ = 0) is at ‖μ − f‖² + Tr Σ
    features, _ = judge_outputs(model, real.images)
    expected = {}
    for c, name in enumerate(real.classes):
        f = features[real.labels == c]
        expected[name] = ((f.mean(0) - f[0]) ** 2).sum() + np.trace(np.cov(f, rowvar=False))
    assert collapsed["fid_per_class"] == pytest.approx(expected, rel=1e-4, abs=1e-4)  # 4 decimals
    assert collapsed["fid_class_mean"] == pytest.approx(np.mean(list(expected.values())),
                                                        rel=1e-4, abs=1e-4)
    assert same["fid_class_mean"] == pytest.approx(0.0, abs=1e-3)


class _Generator(torch.nn.Module):
    """A fake conditional generator: image = noise, so a pixel-based filter keeps ~half."""

    hparams = {"num_classes": 3, "z_dim": 4, "image_shape": [1, 2, 2]}

    def forward(self, z, y):
        return torch.tanh(z.view(-1, 1, 2, 2))


def _bright(images, labels):
    return images.float().mean(dim=(1, 2, 3)) > 127.5


def test_filtered_synthesis_keeps_exact_counts_and_only_accepted_samples():
    counts = {0: 7, 1: 0, 2: 30}
    images, labels = synthesize(_Generator(), counts, keep=_bright, seed=3, batch_size=5)
    assert np.bincount(labels.numpy(), minlength=3).tolist() == [7, 0, 30]
    assert bool(_bright(images, labels).all())
    again, _ = synthesize(_Generator(), counts, keep=_bright, seed=3, batch_size=64)
    assert torch.equal(images, again)  # deterministic for a seed, whatever the batch size


def test_filter_that_rejects_everything_names_the_fix():
    never = lambda images, labels: torch.zeros(len(labels), dtype=torch.bool)  # noqa: E731
    with pytest.raises(DataError, match="filter_threshold.*max_draws"):
        synthesize(_Generator(), {0: 3}, keep=never, max_draws=4)


def test_confidence_filter_agrees_with_the_judge(prepared, judge):
    model, _ = load_judge(judge, "cpu")
    val = load_prepared(prepared, splits=("val",))["val"]
    _, probs = judge_outputs(model, val.images)
    keep = confidence_filter(model, 0.3)(torch.as_tensor(val.images), torch.as_tensor(val.labels))
    expected = (probs.argmax(1) == val.labels) & (probs[np.arange(len(probs)), val.labels] >= 0.3)
    assert keep.numpy().tolist() == expected.tolist()


def test_corrupt_judge_checkpoint_is_a_clear_error(tmp_path):
    bad = tmp_path / "judge.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="re-run the judge stage"):
        load_judge(bad)
    with pytest.raises(CheckpointError, match="run the judge stage first"):
        load_judge(tmp_path / "missing.pt")


def test_filter_settings_are_validated():
    with pytest.raises(ConfigError, match="synthesize.filter_threshold"):
        stage_config({"synthesize": {"filter_threshold": 1.0}}, "synthesize")
    with pytest.raises(ConfigError, match="judge: unknown key"):
        stage_config({"judge": {"epoch": 3}}, "judge")


def _conditional_checkpoint(checkpoint, path):
    """The tiny GAN with its last CBN set so each class has its own colour pattern (a tiny
    trained GAN barely conditions on the label) and noise still varies the images a little."""
    from augment.checkpoint import load_checkpoint, save_checkpoint

    state = load_checkpoint(checkpoint)
    key = "out_norm.embed.weight"  # K × 2C: [γ_y | β_y]
    k, two_c = state["generator"][key].shape
    weight = torch.cat([torch.full((k, two_c // 2), 0.3),
                        torch.randn(k, two_c // 2, generator=torch.Generator().manual_seed(0)) * 3],
                       dim=1)
    state["generator"][key] = weight
    state.pop("format")
    save_checkpoint(path, state)
    return path


def test_synthesize_stage_filters_with_the_judge(prepared, checkpoint, params, tmp_path):
    """With a judge fit on the generator's own samples, the stage keeps exact counts, keeps only
    what the judge accepts, and reports the acceptance rate."""
    from augment import stages
    from augment.data import ImageSet, load_synthetic
    from augment.judge import save_judge

    checkpoint = _conditional_checkpoint(checkpoint, tmp_path / "gan.pt")
    classes = load_prepared(prepared, splits=("train",))["train"].classes
    images, labels = synthesize(checkpoint, 40, seed=9)
    fake = ImageSet(images.numpy(), labels.numpy(), classes)
    model, info = train_judge(fake, fake, epochs=30, width=16, lr=0.01, device="cpu")
    save_judge(tmp_path / "judge.pt", model, classes=classes, width=16, info=info)
    params["synthesize"]["filter_threshold"] = 0.3
    summary = stages.synthesize.run(params, data=str(prepared), model=str(checkpoint),
                                    judge=str(tmp_path / "judge.pt"), out=str(tmp_path / "syn"),
                                    metrics=str(tmp_path / "syn.json"))
    kept, kept_labels = load_synthetic(tmp_path / "syn")
    assert np.bincount(kept_labels, minlength=len(classes)).tolist() == \
        list(summary["per_class"].values())
    _, probs = judge_outputs(model, kept)
    assert (probs[np.arange(len(kept_labels)), kept_labels] >= 0.3).all()
    assert 0 < summary["filter"]["acceptance_rate"] <= 1 and summary["filter"]["drawn"] >= len(kept)


def test_a_judge_near_chance_is_warned_about(tmp_path, capsys):
    """Noise images (labels carry nothing): its FID and guards would mean nothing, and the stage
    says so; the same images with a class-dependent brightness: no warning."""
    from augment import stages
    from augment.data import save_prepared
    from conftest import fabricate_images, tiny_params

    def images(signal: bool) -> dict:
        out = {}
        for i, split in enumerate(("train", "val", "test")):
            data = fabricate_images([50] * 4, seed=i)
            if signal:  # class c: pixels in [60c, 60c + 15]
                data.images[:] = data.images // 16 + 60 * data.labels[:, None, None, None]
            out[split] = data
        return out

    params = tiny_params()
    params["judge"].update(epochs=15)  # the noise judge's best of 15 val scores stays near 0.25
    for name in ("noise", "signal"):
        save_prepared(tmp_path / name, images(name == "signal"))
        stages.judge.run(params, data=str(tmp_path / name), out=str(tmp_path / f"{name}.pt"),
                         metrics=str(tmp_path / f"{name}.json"))
        warned = "WARNING: val balanced accuracy" in capsys.readouterr().out
        assert warned == (name == "noise"), name


def test_the_judge_ratio_compares_balanced_with_balanced(monkeypatch):
    """Samples come in the train split's class proportions (102 / 41 / 10), the judge's val
    score is balanced accuracy: a judge that says "horse" to everything scores 1/3 on both, so
    the ratio is 1, not 0.065 / 0.333 (which failed every checkpoint, real images too)."""
    from augment import fidelity, guards
    from conftest import fabricate_images

    real = fabricate_images([102, 41, 10])
    horse = np.tile([0.0, 0.0, 1.0], (len(real.labels), 1))
    features = np.random.default_rng(0).normal(size=(len(real.labels), 4))
    monkeypatch.setattr(fidelity, "judge_outputs", lambda judge, images: (features, horse))
    report = fidelity_report(None, real, real.images, real.labels)
    assert report["judge_accuracy"] == pytest.approx(10 / 153, abs=1e-4)
    assert report["judge_balanced_accuracy"] == pytest.approx(1 / 3, abs=1e-4)
    verdict = guards.check(report, judge_val_accuracy=1 / 3, min_judge_ratio=0.5, min_diversity=0)
    assert verdict["passed"] and verdict["judge_ratio"] == pytest.approx(1.0, abs=1e-3)
    assert report["not_measured"] == []


def test_classes_too_small_to_score_are_named_not_dropped(monkeypatch):
    """A tail class of 1 train image (the demo's class 9, the one the GAN fills most) gets no
    per-class FID or diversity, so the min_diversity guard cannot see it: the report says so."""
    from augment import fidelity
    from conftest import fabricate_images

    real = fabricate_images([20, 10, 1])
    features = np.random.default_rng(0).normal(size=(len(real.labels), 4))
    probs = np.eye(3)[real.labels]
    monkeypatch.setattr(fidelity, "judge_outputs", lambda judge, images: (features, probs))
    report = fidelity_report(None, real, real.images, real.labels)
    assert report["not_measured"] == [real.classes[2]]
    assert set(report["diversity"]) == set(real.classes[:2])
