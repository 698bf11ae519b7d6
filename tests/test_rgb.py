"""RGB data end to end: folder source → 3-channel cGAN → synthesize → evaluate."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from augment import selection, stages
from augment.checkpoint import load_generator
from augment.data import load_prepared, load_synthetic
from augment.runtime import resolve_device
from benchmarks.shapes import CLASSES, fabricate_shapes


def test_rgb_folder_through_every_stage(tmp_path, params):
    root = fabricate_shapes(tmp_path / "shapes", per_class=12, size=20, seed=1)
    params["prepare"].update(source="folder", root=str(root), image_size=16, max_per_class=None,
                             val_fraction=0.25, test_fraction=0.25, imbalance_ratio=2.0)
    d = lambda name: str(tmp_path / name)  # noqa: E731
    summary = stages.prepare.run(params, out=d("prepared"), metrics=d("prepare.json"))
    assert summary["image_shape"] == [3, 16, 16] and summary["classes"] == 4
    stages.judge.run(params, data=d("prepared"), out=d("judge.pt"), metrics=d("judge.json"))
    stages.train.run(params, data=d("prepared"), out=d("gan.pt"), samples=d("samples.png"),
                     logdir=d("live"), judge=d("judge.pt"), quality=d("quality.json"),
                     settings=d("train_config.json"))
    quality = json.loads((tmp_path / "quality.json").read_text())
    assert set(quality["fid_per_class"]) == set(CLASSES)
    # the report is the kept RGB generator's, measured again from the checkpoint (exact on a
    # CPU; a GPU may round a pixel differently)
    train = load_prepared(d("prepared"), splits=("train",))["train"]
    device = resolve_device(params["train"]["device"])
    probe = selection.quality_probe(d("judge.pt"), train, seed=params["seed"], device=device)[0]
    expected = probe(load_generator(d("gan.pt"), device)[0])
    assert quality.pop("epoch") in (1, 2) and quality.pop("guards")["passed"]
    assert set(quality) == set(expected)
    tolerance = dict(rel=0, abs=0) if device.type == "cpu" else dict(rel=1e-2, abs=1e-4)
    for key, value in expected.items():
        assert quality[key] == pytest.approx(value, **tolerance), key
    grid = np.asarray(Image.open(tmp_path / "samples.png"))
    assert grid.ndim == 3 and grid.shape[2] == 3  # an RGB grid
    syn = stages.synthesize.run(params, data=d("prepared"), model=d("gan.pt"), out=d("syn"),
                                metrics=d("syn.json"))
    # target max: real + synthetic fills every class up to the largest (imbalance 2: some do get
    # images)
    _, syn_labels = load_synthetic(tmp_path / "syn")
    filled = train.counts() + np.bincount(syn_labels, minlength=len(CLASSES))
    assert syn["total"] == len(syn_labels) > 0 and filled.tolist() == [train.counts().max()] * 4
    png = next((tmp_path / "syn" / "images").rglob("*.png"))
    assert np.asarray(Image.open(png)).shape == (16, 16, 3)
    stages.evaluate.run(params, data=d("prepared"), synthetic=d("syn"), metrics=d("eval.json"),
                        plots=d("plots"), report=d("reports/evaluate.md"))
    grid = np.asarray(Image.open(tmp_path / "reports" / "samples.png"))
    assert grid.ndim == 3 and grid.shape[2] == 3  # real | synthetic per class, in colour
    metrics = json.loads((tmp_path / "eval.json").read_text())
    assert {"real", "real+synthetic"} <= set(metrics)
    # evaluate.classic: null picks the photo policy for colour images (no digit warps)
    assert params["evaluate"]["classic"] is None and metrics["classic_policy"] == "crop,flip,color"
    assert "policy `crop,flip,color`" in (tmp_path / "reports" / "evaluate.md").read_text()


def test_64px_rgb_trains_a_deeper_stack_and_synthesizes(tmp_path, params):
    """The CPU smoke test of 64 px RGB (a user's photos): the G/D stack deepens with the size
    (4 up- and 4 down-samplings from 4×4, against 3 at 32 px), one tiny epoch trains, and the
    checkpoint draws 64×64×3 images."""
    from augment import synthesize
    from augment.checkpoint import load_checkpoint
    from augment.models import build_discriminator, build_generator

    root = fabricate_shapes(tmp_path / "shapes", per_class=8, size=64, seed=2)
    params["prepare"].update(source="folder", root=str(root), image_size=64, max_per_class=None,
                             val_fraction=0.25, test_fraction=0.25)
    params["train"].update(epochs=1, batch_size=8, width=4)
    d = lambda name: str(tmp_path / name)  # noqa: E731
    stages.prepare.run(params, out=d("prepared"), metrics=d("prepare.json"))
    stages.train.run(params, data=d("prepared"), out=d("gan.pt"), samples=d("s.png"), judge=None,
                     logdir=d("live"), settings=d("c.json"))
    hparams = load_checkpoint(d("gan.pt"))["hparams"]
    assert hparams["image_shape"] == [3, 64, 64]
    assert len(build_generator(hparams).blocks) == 4
    assert len(build_generator({**hparams, "image_shape": [3, 32, 32]}).blocks) == 3
    down = lambda hp: sum(getattr(m, "stride", (1,))[0] == 2  # noqa: E731
                          for m in build_discriminator(hp).modules())
    assert down(hparams) == 4 and down({**hparams, "image_shape": [3, 32, 32]}) == 3
    images, labels = synthesize(d("gan.pt"), 2, seed=0)
    assert images.shape == (2 * len(CLASSES), 3, 64, 64) and images.dtype == torch.uint8
