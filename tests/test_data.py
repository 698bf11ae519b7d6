import numpy as np
import pytest

from augment import data as D
from augment.errors import DataError
from augment.sources import load_source
from conftest import MNIST_ROOT, fabricate_images


def test_digits_source():
    pool, test, val, skipped, _ = load_source("digits")
    assert skipped == [] and val is None
    assert test is None and pool.images.dtype == np.uint8
    assert pool.images.shape == (1797, 1, 8, 8) and pool.images.max() == 255
    assert pool.classes == tuple("0123456789")


def test_long_tail_follows_cifar_lt_recipe():
    data = fabricate_images([100] * 5)
    tail = D.long_tail(data, 100.0, seed=0)
    assert tail.counts().tolist() == [int(100 * 100 ** (-c / 4)) for c in range(5)]
    assert tail.counts().tolist() == [100, 31, 10, 3, 1]
    assert D.long_tail(data, 1.0, seed=0) is data


def test_stratified_split_keeps_class_balance():
    data = fabricate_images([50, 30, 20])
    keep, held = D.stratified_split(data, 0.2, seed=0)
    assert held.counts().tolist() == [10, 6, 4] and keep.counts().tolist() == [40, 24, 16]
    with pytest.raises(DataError, match=r"too few images for the split: c1 \(1\)"):
        D.stratified_split(fabricate_images([10, 1]), 0.2, seed=0)
    # 3 images at a 0.15 split round to none held out: refused, not a val set without the class
    with pytest.raises(DataError, match=r"c2 \(3\) get no image on one side .* about 7 images"):
        D.stratified_split(fabricate_images([37, 36, 3]), 0.15, seed=0)


def test_conform_resizes_and_converts_channels():
    data = fabricate_images([3, 3], size=12, channels=3)
    out = D.conform(data, image_size=8, channels=1)
    assert out.images.shape == (6, 1, 8, 8) and out.images.dtype == np.uint8
    out = D.conform(fabricate_images([2, 2]), image_size=None, channels=3)
    assert out.images.shape == (4, 3, 8, 8)
    assert np.array_equal(out.images[:, 0], out.images[:, 2])


def test_check_classes():
    with pytest.raises(DataError, match="at least 2"):
        D.check_classes(fabricate_images([5]))
    with pytest.raises(DataError, match="no images: c1"):
        D.check_classes(fabricate_images([5, 0, 3]))


def test_prepared_roundtrip_and_missing(tmp_path):
    data = fabricate_images([4, 4])
    D.save_prepared(tmp_path / "p", {"train": data, "val": data, "test": data})
    back = D.load_prepared(tmp_path / "p")
    assert np.array_equal(back["val"].images, data.images) and back["test"].classes == data.classes
    with pytest.raises(DataError, match="run the prepare stage first"):
        D.load_prepared(tmp_path / "nothing")


def test_prepare_long_tail_touches_train_only(params, tmp_path):
    from augment import stages

    params["prepare"].update(max_per_class=None)
    stages.prepare.run(params, out=str(tmp_path / "flat"), metrics=str(tmp_path / "flat.json"))
    params["prepare"]["imbalance_ratio"] = 10.0
    summary = stages.prepare.run(params, out=str(tmp_path / "lt"), metrics=str(tmp_path / "lt.json"))
    flat, lt = D.load_prepared(tmp_path / "flat"), D.load_prepared(tmp_path / "lt")
    assert summary["train_imbalance"] == pytest.approx(10, rel=0.1)
    for split in ("val", "test"):  # identical to the balanced run, image for image
        assert np.array_equal(flat[split].images, lt[split].images)
    lt_counts, n_max = lt["train"].counts(), flat["train"].counts().max()
    assert lt_counts[0] == flat["train"].counts()[0]  # head class: all of its images
    assert lt_counts[-1] == int(n_max * 10 ** -1)  # tail class: n_max / ratio


@pytest.mark.skipif(not (MNIST_ROOT / "MNIST" / "raw").is_dir(), reason="../shared/data absent")
def test_mnist_offline_torchvision_source():
    pool, test, val, _, _ = load_source("mnist", root=str(MNIST_ROOT), download=False)
    assert pool.images.shape == (6000, 1, 28, 28) and test.images.shape == (2000, 1, 28, 28)
    assert len(pool.classes) == 10 and val is None


def test_torchvision_source_missing_files(tmp_path):
    with pytest.raises(DataError, match="prepare.download: true"):
        load_source("fashion_mnist", root=str(tmp_path), download=False)


def test_a_synthetic_set_of_other_data_is_refused(tmp_path):
    train = fabricate_images([3, 3])
    ok = (np.zeros((2, 1, 8, 8), np.uint8), np.array([0, 1]))
    D.check_synthetic(ok, train, "syn")
    with pytest.raises(DataError, match=r"syn: synthetic samples do not match .*3×8×8 vs 1×8×8"):
        D.check_synthetic((np.zeros((2, 3, 8, 8), np.uint8), ok[1]), train, "syn")
    with pytest.raises(DataError, match="labels must be 0..1"):
        D.check_synthetic((ok[0], np.array([0, 5])), train, "syn")
    # same shapes and classes, other order (prepare.classes reordered since): labels would swap
    (tmp_path / "manifest.csv").write_text("path,label,class_name,source\na.png,0,c1,gan\n"
                                           "b.png,1,c0,gan\n")
    with pytest.raises(DataError, match=r"the manifest has \[\(0, 'c1'\), \(1, 'c0'\)\]"):
        D.check_synthetic(ok, train, tmp_path)
    (tmp_path / "manifest.csv").write_text("path,label,class_name,source\na.png,0,c0,gan\n")
    D.check_synthetic(ok, train, tmp_path)
