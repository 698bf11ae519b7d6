import re

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import augment
from augment import stages
from augment.errors import CheckpointError, ConfigError, DataError
from augment.models import build_generator
from augment.synthesis import safe_name, write_synthetic


def _generator(num_classes=4):
    torch.manual_seed(0)
    return build_generator(dict(preset="dcgan", image_shape=[1, 8, 8], num_classes=num_classes,
                                z_dim=8, width=8))


def test_balance_counts_targets():
    labels = np.array([0] * 10 + [1] * 4 + [2] * 1)
    assert augment.balance_counts(labels, num_classes=3) == {0: 0, 1: 6, 2: 9}
    assert augment.balance_counts(labels, num_classes=3, multiple=2.0) == {0: 10, 1: 16, 2: 19}
    assert augment.balance_counts(labels, num_classes=3, target=5) == {0: 0, 1: 1, 2: 4}
    by_name = augment.balance_counts(labels, num_classes=3, target={"b": 8, 2: 3},
                                     classes=("a", "b", "c"))
    assert by_name == {0: 0, 1: 4, 2: 2}
    with pytest.raises(DataError, match="unknown class 'z'"):
        augment.balance_counts(labels, num_classes=3, target={"z": 8}, classes=("a", "b", "c"))


def test_synthesize_exact_counts_and_order():
    images, labels = augment.synthesize(_generator(), {0: 3, 2: 5, 3: 0}, batch_size=2, seed=1)
    assert images.dtype == torch.uint8 and images.shape == (8, 1, 8, 8)
    assert labels.tolist() == [0, 0, 0, 2, 2, 2, 2, 2]
    images, labels = augment.synthesize(_generator(), 2)
    assert torch.bincount(labels).tolist() == [2, 2, 2, 2]


def test_synthesize_deterministic_across_batch_sizes():
    g = _generator()
    a, _ = augment.synthesize(g, {1: 7}, batch_size=3, seed=5)
    b, _ = augment.synthesize(g, {1: 7}, batch_size=64, seed=5)
    c, _ = augment.synthesize(g, {1: 7}, batch_size=64, seed=6)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert g.training  # the caller's mode is restored


def test_synthesize_rejects_bad_counts():
    with pytest.raises(DataError, match="unknown class 9"):
        augment.synthesize(_generator(), {9: 1})
    with pytest.raises(DataError, match=">= 0"):
        augment.synthesize(_generator(), {1: -1})
    for bad in (2.5, None, [1, 2], True, {3: 2.7}, {3: "5"}, {3: True}):
        with pytest.raises(DataError, match=r"counts"):
            augment.synthesize(_generator(), bad)
    with pytest.raises(DataError, match="batch_size: got 0"):
        augment.synthesize(_generator(), 1, batch_size=0)
    for bad in (dict(batch_size=2.5), dict(batch_size="8"), dict(seed=None), dict(seed=2**70),
                dict(seed=1.0)):
        (name, value), = bad.items()
        with pytest.raises(DataError, match=rf"{name}: got {re.escape(repr(value))}; expected an "
                                            "integer"):
            augment.synthesize(_generator(), 1, **bad)


def test_a_class_given_by_index_and_by_name_is_refused(checkpoint):
    with pytest.raises(DataError, match=r"class '3' is given twice"):
        augment.synthesize(checkpoint, {3: 1, "3": 2})


def test_a_loaded_generator_draws_where_it_lives(monkeypatch):
    """device=None: a model the caller placed is used there; the default device (CUDA on a GPU
    machine; a stand-in here) is for checkpoints. A CPU model had been fed CUDA inputs."""
    import augment.synthesis as S

    monkeypatch.setattr(S, "resolve_device", lambda device=None: torch.device("meta"))
    generator = _generator()
    images, labels = augment.synthesize(generator, 2, seed=1)
    assert images.device.type == "cpu" and len(labels) == 8


def test_a_keep_filter_must_answer_with_a_bool_mask():
    """An integer 0/1 mask had indexed images 0 and 1 (twenty copies of one image, silently);
    floats, None or a mask of another length had raised torch's own errors."""
    n = 12
    for bad, got in [(lambda x, y: torch.ones(len(y), dtype=torch.int64), "torch.int64"),
                     (lambda x, y: torch.ones(len(y)), "torch.float32"),
                     (lambda x, y: None, "NoneType"),
                     (lambda x, y: torch.ones(3, dtype=torch.bool), r"shape \(3,\)")]:
        with pytest.raises(DataError, match=rf"keep\(images, labels\) must return a bool mask "
                                            rf"of shape \(\d+,\), one flag per image; got .*{got}"):
            augment.synthesize(_generator(), {1: n}, keep=bad)
    images, _ = augment.synthesize(_generator(), {1: n}, keep=lambda x, y: np.ones(len(y), bool))
    assert len({bytes(image.numpy()) for image in images}) == n


def test_numpy_integers_are_counts_and_class_indices():
    """What np.bincount / balance_counts arithmetic hands over."""
    _, labels = augment.synthesize(_generator(), np.int64(2))
    assert labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    _, labels = augment.synthesize(_generator(), {np.int64(3): np.int32(2)})
    assert labels.tolist() == [3, 3]


def test_synthesize_from_checkpoint_by_class_name(checkpoint):
    images, labels = augment.synthesize(str(checkpoint), {"3": 4, "7": 2}, seed=0)
    assert labels.tolist() == [3, 3, 3, 3, 7, 7] and images.shape[1:] == (1, 8, 8)


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    bad = tmp_path / "gan.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        augment.synthesize(str(bad), 1)
    with pytest.raises(CheckpointError, match="not found"):
        augment.load_generator(tmp_path / "missing.pt")
    text = tmp_path / "notes.txt"  # read as a legacy pickle: a KeyError inside torch.load
    text.write_text("hi\n")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        augment.SyntheticDataset(text, counts=3)


def test_write_synthetic_layout(tmp_path):
    images = torch.randint(0, 256, (5, 1, 8, 8), dtype=torch.uint8)
    labels = torch.tensor([0, 0, 1, 1, 1])
    manifest = write_synthetic(tmp_path / "syn", images, labels, ("zero", "T-shirt/top"))
    on_disk = pd.read_csv(tmp_path / "syn" / "manifest.csv")
    assert list(on_disk.columns) == ["path", "label", "class_name", "source"]
    assert on_disk.equals(manifest) and set(on_disk["source"]) == {"synthetic"}
    assert (on_disk["class_name"] == ["zero", "zero", "T-shirt/top", "T-shirt/top", "T-shirt/top"]).all()
    first = np.asarray(Image.open(tmp_path / "syn" / on_disk["path"][2]))
    assert np.array_equal(first, images[2, 0].numpy())  # PNG is lossless
    assert "/" not in safe_name("T-shirt/top")
    arrays = augment.load_synthetic(tmp_path / "syn")
    assert np.array_equal(arrays[0], images.numpy()) and arrays[1].tolist() == labels.tolist()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp leftovers


def test_nothing_to_synthesize_writes_an_empty_but_valid_output(tmp_path):
    images, labels = augment.synthesize(_generator(), 0)
    assert images.shape == (0, 1, 8, 8)
    manifest = write_synthetic(tmp_path / "syn", images, labels, ("a", "b", "c", "d"))
    assert manifest.empty and (tmp_path / "syn" / "manifest.csv").read_text().strip() == \
        "path,label,class_name,source"
    assert augment.load_synthetic(tmp_path / "syn")[0].shape == (0, 1, 8, 8)


def test_a_draw_too_big_for_the_machine_is_refused_before_drawing(prepared, checkpoint, judge,
                                                                   params, tmp_path):
    """synthesize.multiple 1e9 (meant as 1.0): billions of samples; the stage says what they
    would need against what the machine has, and writes nothing (it would have filled the
    memory or the disk first)."""
    params["synthesize"]["multiple"] = 1e9
    kw = dict(data=str(prepared), model=str(checkpoint), judge=str(judge),
              out=str(tmp_path / "syn"), metrics=str(tmp_path / "syn.json"))
    size = r"[\d,.]+ [kMGT]?B"
    with pytest.raises(ConfigError, match=rf"synthesize: [\d,]+ samples of 1×8×8 need about "
                                          rf"{size} on disk \({size} free in .*lower "
                                          r"synthesize.multiple"):
        stages.synthesize.run(params, **kw)
    assert not (tmp_path / "syn").exists() and not (tmp_path / "syn.json").exists()
