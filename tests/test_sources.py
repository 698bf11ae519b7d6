"""Bring-your-own-data: image folders and CSV manifests, and every bad input a user can make.

Each case either skips the file and lists it (skipped.csv + a warning with the count) or stops
with a DataError/ConfigError that names the file or key and the fix. The stage leaves no
outputs behind when it stops.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from augment import stages
from augment.cli import main
from augment.data import load_prepared
from augment.errors import ConfigError, DataError
from augment.sources import load_csv, load_folder, load_source, read_rgb
from conftest import MNIST_ROOT


def _png(path, size=(12, 12), mode="RGB", value=None, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    array = rng.integers(0, 256, shape, dtype=np.uint8) if value is None else np.full(shape, value, np.uint8)
    Image.fromarray(array).convert(mode).save(path)
    return path


def make_folder(root, classes=("cat", "dog"), n=6, **kw):
    for c in classes:
        for i in range(n):
            _png(root / c / f"{i}.png", seed=hash((c, i)) % 1000, **kw)
    return root


def test_folder_rgb_any_size_and_mode(tmp_path):
    root = make_folder(tmp_path / "imgs")
    _png(root / "cat" / "big.jpg", size=(40, 30))
    _png(root / "dog" / "grey.png", mode="L")
    data, skipped, stats = load_folder(root, image_size=16)
    assert data.classes == ("cat", "dog") and skipped == []
    assert data.images.shape == (14, 3, 16, 16) and data.counts().tolist() == [7, 7]
    assert stats["upscaled"] == 13  # the 12×12 ones
    grey, _, _ = load_folder(root, image_size=8, channels=1)
    assert grey.images.shape == (14, 1, 8, 8)


def test_folder_greyscale_detected(tmp_path):
    root = make_folder(tmp_path / "g", mode="L")
    data, _, _ = load_folder(root)
    assert data.images.shape[1:] == (1, 12, 12)


def test_corrupt_truncated_and_non_image_files_are_listed(tmp_path):
    root = make_folder(tmp_path / "imgs")
    (root / "cat" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    good = (root / "dog" / "0.png").read_bytes()
    (root / "dog" / "truncated.png").write_bytes(good[: len(good) // 2])
    (root / "dog" / "notes.txt").write_text("hello")
    (root / "cat" / ".DS_Store").write_bytes(b"\0")
    data, skipped, _ = load_folder(root)
    reasons = {s["path"]: s["reason"] for s in skipped}
    assert set(reasons) == {"cat/broken.png", "dog/truncated.png", "dog/notes.txt"}
    assert "unreadable" in reasons["dog/truncated.png"] and "not an image" in reasons["dog/notes.txt"]
    assert data.counts().tolist() == [6, 6]


@pytest.mark.parametrize("setup,needle", [
    (lambda r: r.mkdir(), "no class folders found"),
    (lambda r: (make_folder(r), (r / "bird").mkdir()), "Found no valid file for the classes bird"),
    (lambda r: make_folder(r, classes=("only",)), "found 1 class"),
    (lambda r: (make_folder(r), _png(r / "cat" / "wide.png", size=(20, 12))),
     "different sizes"),
    (lambda r: None, "no such folder"),
])
def test_bad_folders(tmp_path, params, setup, needle):
    root = tmp_path / "imgs"
    setup(root)
    params["prepare"].update(source="folder", root=str(root), max_per_class=None)
    with pytest.raises(DataError, match=needle):
        stages.prepare.run(params, out=str(tmp_path / "out"), metrics=str(tmp_path / "m.json"))
    assert not (tmp_path / "out").exists() and not (tmp_path / "m.json").exists()


def test_folder_class_not_in_fixed_list(tmp_path):
    root = make_folder(tmp_path / "imgs", classes=("cat", "dog", "eel"))
    with pytest.raises(DataError, match=r"not in prepare.classes: eel"):
        load_folder(root, classes=["cat", "dog"])
    data, _, _ = load_folder(root, classes=["eel", "dog", "cat"])
    assert data.classes == ("eel", "dog", "cat")  # the user's order


NFC_CAFE, NFD_CAFE = "caf\u00e9", "cafe\u0301"  # one name as typed (NFC), as a Mac stores it (NFD)


def test_a_mac_named_folder_is_the_class_its_name_shows(tmp_path):
    """macOS writes "café" as e + a combining accent (NFD); params.yaml and CSVs hold é (NFC).
    Both are one class, named as prepare.classes spells it; the split layout's folders match
    across splits whichever way each was written."""
    root = make_folder(tmp_path / "imgs", classes=(NFD_CAFE, "tea"), n=3)
    data, _, _ = load_folder(root, classes=[NFC_CAFE, "tea"])
    assert data.classes == (NFC_CAFE, "tea") and data.counts().tolist() == [3, 3]
    rows = [(f"imgs/{NFD_CAFE}/{i}.png", NFD_CAFE) for i in range(3)]
    rows += [(f"imgs/tea/{i}.png", "tea") for i in range(3)]
    for classes in ([NFC_CAFE, "tea"], None):
        data, _, _ = load_csv(make_csv(tmp_path, rows), classes=classes)
        assert data.counts().tolist() == [3, 3]
    splits = tmp_path / "splits"
    for split, name in (("train", NFD_CAFE), ("test", NFC_CAFE)):
        for c in (name, "tea"):
            for i in range(3):
                _png(splits / split / c / f"{i}.png", seed=i)
    loaded = load_source("folder", root=str(splits))
    assert len(loaded.pool.classes) == 2 and loaded.test.counts().tolist() == [3, 3]


def test_builtin_source_keeps_only_the_fixed_classes_in_their_order():
    full = load_source("digits").pool
    pair, test = load_source("digits", classes=("3", "1"))[:2]
    assert pair.classes == ("3", "1") and test is None
    assert np.array_equal(pair.images[pair.labels == 0], full.images[full.labels == 3])
    assert np.array_equal(pair.images[pair.labels == 1], full.images[full.labels == 1])
    with pytest.raises(DataError, match=r"prepare.classes: x not among digits's classes"):
        load_source("digits", classes=("3", "x"))


@pytest.mark.parametrize("n,needle", [(1, r"too few images for the test split: cat \(1\), dog \(1\)"),
                                      (2, "cannot carve the test split from 4 images of 2 classes")])
def test_too_few_images_for_the_split(tmp_path, params, n, needle):
    root = make_folder(tmp_path / "imgs", n=n)
    params["prepare"].update(source="folder", root=str(root), max_per_class=None)
    with pytest.raises(DataError, match=needle):
        stages.prepare.run(params, out=str(tmp_path / "out"), metrics=str(tmp_path / "m.json"))


def test_a_small_class_is_named_with_its_count_in_all(tmp_path, params):
    """3 images, test and val carved at 0.25 each: the val split finds 2 left; the error gives
    the 3 the user has and what the class needs in all, not the count after the test split."""
    root = make_folder(tmp_path / "imgs", classes=("cat", "dog"), n=8)
    for i in range(3, 8):
        (root / "dog" / f"{i}.png").unlink()
    params["prepare"].update(source="folder", root=str(root), max_per_class=None,
                             test_fraction=0.25, val_fraction=0.25)
    params["seed"] = 0
    with pytest.raises(DataError, match=r"dog \(3 in all, 2 left\) get no image on one side of "
                                        r"the val split \(0.25\): .* about 6 images in all"):
        stages.prepare.run(params, out=str(tmp_path / "out"), metrics=str(tmp_path / "m.json"))
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------- photos as files store them
def test_sixteen_bit_grey_is_scaled_not_clipped(tmp_path):
    ramp = (np.arange(16 * 16, dtype=np.uint32).reshape(16, 16) * 257).astype(np.uint16)
    for c in ("a", "b"):
        for i in range(2):
            (tmp_path / "d" / c).mkdir(parents=True, exist_ok=True)
            Image.fromarray(ramp).save(tmp_path / "d" / c / f"{i}.png")
    assert Image.open(tmp_path / "d" / "a" / "0.png").mode.startswith("I")
    data, _, _ = load_folder(tmp_path / "d")
    assert np.array_equal(data.images[0, 0], np.arange(256).reshape(16, 16))  # v·257 → v


@pytest.mark.parametrize("mode,samples,scale", [("F", np.float32, 1 / 255),  # 0-1 floats
                                                 ("F", np.float32, 1),  # 0-255 floats
                                                 ("I", np.int32, 257)])  # 32-bit int, 16-bit range
def test_float_and_wide_tiffs_are_scaled_by_their_range(tmp_path, mode, samples, scale):
    ramp = np.arange(256, dtype=np.float64).reshape(16, 16)
    Image.fromarray((ramp * scale).astype(samples), mode=mode).save(tmp_path / "x.tif")
    assert Image.open(tmp_path / "x.tif").mode == mode
    assert np.array_equal(read_rgb(tmp_path / "x.tif")[0].numpy(), ramp)


def test_float_tiff_of_an_unknown_range_is_listed_not_guessed(tmp_path):
    Image.fromarray(np.full((4, 4), -3.5, np.float32), mode="F").save(tmp_path / "x.tif")
    assert read_rgb(tmp_path / "x.tif").startswith("unreadable image (ValueError: F-mode "
                                                   "samples -3.5..-3.5, outside 0-255")


def test_exif_orientation_turns_the_photo_upright(tmp_path):
    """A phone photo stored sideways with orientation 6 (rotate 90° clockwise to view)."""
    stored = np.zeros((8, 16, 3), np.uint8)
    stored[:, :8] = 255  # left half white as stored: top half white once upright
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(tmp_path / "sideways.jpg", exif=exif, quality=100)
    upright = read_rgb(tmp_path / "sideways.jpg").permute(1, 2, 0).numpy()
    assert upright.shape == (16, 8, 3)  # the size checks see the upright photo too
    assert (upright[:7] > 250).all() and (upright[9:] < 5).all()


def test_transparency_is_composited_onto_white(tmp_path):
    """Two copies of one icon whose files store black or white under the transparent pixels,
    and a palette image with a transparent index: one white background for all."""
    for c, hidden in (("a", 0), ("b", 255)):
        icon = np.full((8, 8, 4), hidden, np.uint8)
        icon[:, :, 3] = 0
        icon[2:6, 2:6] = (200, 10, 10, 255)
        (tmp_path / "d" / c).mkdir(parents=True)
        Image.fromarray(icon, "RGBA").save(tmp_path / "d" / c / "icon.png")
    palette = Image.fromarray(np.asarray([[0, 1], [1, 0]], np.uint8).repeat(4, 0).repeat(4, 1), "P")
    palette.putpalette([0, 0, 0, 10, 200, 10])
    palette.save(tmp_path / "d" / "a" / "p.png", transparency=0)
    data, _, _ = load_folder(tmp_path / "d", channels=3)
    a, b = data.images[data.labels == 0][0], data.images[data.labels == 1][0]
    assert np.array_equal(a, b) and (a[:, 0, 0] == 255).all() and (a[:, 3, 3] == (200, 10, 10)).all()
    p = data.images[data.labels == 0][1]
    assert (p[:, 0, 0] == 255).all() and (p[:, 0, 4] == (10, 200, 10)).all()


def test_hidden_folders_are_not_classes_nor_images(tmp_path):
    """.ipynb_checkpoints/ (Jupyter), .git/: at the root, in a split folder, in a class folder."""
    root = make_folder(tmp_path / "imgs")
    _png(root / ".ipynb_checkpoints" / "x.png")
    _png(root / "cat" / ".ipynb_checkpoints" / "0-checkpoint.png")
    data, skipped, _ = load_folder(root)
    assert data.classes == ("cat", "dog") and data.counts().tolist() == [6, 6] and not skipped
    split = tmp_path / "split"
    make_folder(split / "train")
    make_folder(split / "test", n=2)
    _png(split / "train" / ".ipynb_checkpoints" / "x.png")
    loaded = load_source("folder", root=str(split))
    assert loaded.pool.classes == ("cat", "dog") and len(loaded.test.labels) == 4


def test_linked_storage_of_duplicate_photos_is_read(tmp_path):
    """DVC's symlink cache, git-annex: two photos with the same bytes link to one blob."""
    root = make_folder(tmp_path / "imgs")
    blob = _png(tmp_path / "store" / "blob.png", seed=99)
    for name in ("same1.png", "same2.png"):
        (root / "cat" / name).symlink_to(blob)
    data, _, _ = load_folder(root)
    assert data.counts().tolist() == [8, 6]


def test_one_image_reached_twice_is_an_error(tmp_path):
    """A link loop (cat/loop -> ..) would read dog's images as cats, over and over."""
    root = make_folder(tmp_path / "imgs")
    (root / "cat" / "loop").symlink_to("..", target_is_directory=True)
    with pytest.raises(DataError, match=r"cat/loop/.*\.png is the same file as .*remove the link"):
        load_folder(root)


# ------------------------------------------------------------------------------------- csv
def make_csv(tmp_path, rows, columns=("path", "label")):
    make_folder(tmp_path / "imgs")
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame(rows, columns=list(columns)).to_csv(manifest, index=False)
    return manifest


GOOD = [(f"imgs/{c}/{i}.png", c) for c in ("cat", "dog") for i in range(6)]


def test_csv_windows_separators_and_spaces_are_the_same_paths(tmp_path):
    rows = [(f" imgs\\{c}\\{i}.png ", c) for c in ("cat", "dog") for i in range(6)]
    data, skipped, _ = load_csv(make_csv(tmp_path, rows), image_size=8)
    assert data.images.shape == (12, 3, 8, 8) and not skipped


def test_csv_of_missing_files_names_one_and_the_folder(tmp_path):
    rows = [(f"pics/{c}/{i}.png", c) for c in ("cat", "dog") for i in range(6)]
    with pytest.raises(DataError, match=r"none of the 12 files it lists exists \(e.g. .*pics/cat/0"
                                        r"\.png\); paths are relative to the CSV's folder"):
        load_csv(make_csv(tmp_path, rows))


def test_csv_manifest_loads_relative_paths(tmp_path):
    data, skipped, _ = load_csv(make_csv(tmp_path, GOOD), image_size=8)
    assert data.classes == ("cat", "dog") and data.images.shape == (12, 3, 8, 8) and not skipped


def test_csv_labels_are_stripped(tmp_path):
    data, _, _ = load_csv(make_csv(tmp_path, [(p, f" {c} ") for p, c in GOOD]))
    assert data.classes == ("cat", "dog")


def test_csv_custom_columns_and_missing_file(tmp_path):
    manifest = make_csv(tmp_path, GOOD + [("imgs/cat/gone.png", "cat")], columns=("file", "y"))
    data, skipped, _ = load_csv(manifest, path_column="file", label_column="y")
    assert skipped == [{"path": "imgs/cat/gone.png",
                        "reason": "file listed in the manifest does not exist"}]
    assert len(data.labels) == 12


@pytest.mark.parametrize("rows,columns,kwargs,needle", [
    (GOOD, ("file", "label"), {}, r"missing column\(s\) path; found file, label"),
    (GOOD + [("../../etc/passwd", "cat")], ("path", "label"), {}, r"outside the manifest's folder.*line\(s\) 14"),
    (GOOD + [("/etc/passwd", "cat")], ("path", "label"), {}, "outside the manifest's folder"),
    (GOOD + [("imgs/cat/0.png", "")], ("path", "label"), {}, r"empty 'label' on line\(s\) 14"),
    (GOOD + [("imgs/cat/new.png", "cow")], ("path", "label"), {"classes": ["cat", "dog"]},
     r"label\(s\) in .* not in prepare.classes: cow"),
    (GOOD + [("imgs/./cat/0.png", "cat")], ("path", "label"), {},
     r"line\(s\) 14 list an image an earlier line already lists"),
])
def test_bad_csv(tmp_path, rows, columns, kwargs, needle):
    with pytest.raises(DataError, match=needle):
        load_csv(make_csv(tmp_path, rows, columns), **kwargs)


def test_csv_stage_writes_skipped_csv_and_counts(tmp_path, params, capsys):
    more = [(f"imgs/{c}/{i}.png", c) for c in ("cat", "dog") for i in range(12)]
    make_folder(tmp_path / "imgs", n=12)
    manifest = make_csv(tmp_path, more + [("imgs/cat/gone.png", "cat")])
    params["prepare"].update(source="csv", manifest=str(manifest), max_per_class=None,
                             image_size=8, val_fraction=0.25, test_fraction=0.25)
    summary = stages.prepare.run(params, out=str(tmp_path / "out"), metrics=str(tmp_path / "m.json"))
    assert summary["skipped_files"] == 1
    assert "WARNING: skipped 1 file(s)" in capsys.readouterr().out
    skipped = pd.read_csv(tmp_path / "out" / "skipped.csv")
    assert skipped["path"].tolist() == ["imgs/cat/gone.png"]
    assert json.loads((tmp_path / "m.json").read_text())["image_shape"] == [3, 8, 8]


def test_csv_source_needs_manifest_key(tmp_path, params):
    params["prepare"].update(source="csv")
    with pytest.raises(DataError, match="needs prepare.manifest"):
        stages.prepare.run(params, out=str(tmp_path / "out"), metrics=str(tmp_path / "m.json"))


def test_unknown_source_via_cli_is_one_line_exit_2(tmp_path, params, capsys):
    import yaml

    params["prepare"]["source"] = "imagenet"
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(params))
    assert main(["prepare", "--params", str(tmp_path / "p.yaml"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "prepare.source: got 'imagenet'; allowed values are 'digits'" in err
    assert "'folder', 'csv'" in err and not (tmp_path / "o").exists()


def test_unknown_source_in_library_call():
    from augment.sources import load_source

    with pytest.raises(DataError, match="unknown source 'imagenet'"):
        load_source("imagenet")
    with pytest.raises(ConfigError):
        from augment.config import PrepareConfig, from_dict
        from_dict(PrepareConfig, {"source": "imagenet"}, section="prepare")


# ------------------------------------------------------------------------------ split layout
# Every image of a split is one grey level from that split's range: where a prepared image came
# from shows in its pixels (train < 100 <= val < 200 <= test).
BASE = {"train": 0, "val": 100, "valid": 100, "validation": 100, "test": 200}


def make_splits(root, counts, classes=("cat", "dog")):
    """``root/<split>/<class>/<i>.png`` with ``counts[split]`` images per class."""
    for split, n in counts.items():
        for c in classes:
            for i in range(n):
                _png(root / split / c / f"{i}.png", value=BASE[split] + i)
    return root


def _prepare(params, tmp_path, root, **settings):
    params["prepare"].update(source="folder", root=str(root), **{"max_per_class": None, **settings})
    summary = stages.prepare.run(params, out=str(tmp_path / "out"), metrics=str(tmp_path / "m.json"))
    return summary, load_prepared(tmp_path / "out")


def _levels(part):
    return part.images.min(), part.images.max()


def test_split_layout_reads_every_split_and_lists_skipped_files_from_root(tmp_path):
    root = make_splits(tmp_path / "imgs", {"train": 8, "val": 3, "test": 4})
    (root / "test" / "cat" / "notes.txt").write_text("hello")
    (root / "val" / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    loaded = load_source("folder", root=str(root))
    assert [part.counts().tolist() for part in loaded[:3]] == [[8, 8], [4, 4], [3, 3]]
    assert _levels(loaded.pool) == (0, 7) and _levels(loaded.test) == (200, 203)
    assert _levels(loaded.val) == (100, 102)
    assert {s["path"] for s in loaded.skipped} == {"test/cat/notes.txt", "val/dog/broken.png"}


def test_plain_layout_gives_no_split(tmp_path):
    loaded = load_source("folder", root=str(make_folder(tmp_path / "imgs")))
    assert loaded.test is None and loaded.val is None and loaded.pool.counts().tolist() == [6, 6]


@pytest.mark.parametrize("val_name", ["val", "valid", "validation"])
def test_prepare_uses_the_given_splits_and_tails_train_only(tmp_path, params, val_name):
    root = make_splits(tmp_path / "imgs", {"train": 20, val_name: 3, "test": 4},
                       classes=("a", "b", "c"))
    summary, out = _prepare(params, tmp_path, root, imbalance_ratio=4.0)
    assert summary["splits"] == {"val": "given", "test": "given"}
    assert out["train"].counts().tolist() == [20, 10, 5] and _levels(out["train"]) == (0, 19)
    assert out["val"].counts().tolist() == [3, 3, 3] and _levels(out["val"]) == (100, 102)
    assert out["test"].counts().tolist() == [4, 4, 4] and _levels(out["test"]) == (200, 203)


def test_held_out_splits_with_few_images_of_a_class_are_warned_of(tmp_path, params, capsys):
    root = make_splits(tmp_path / "imgs", {"train": 12, "val": 5, "test": 5})
    _prepare(params, tmp_path, root)
    assert "WARNING" not in capsys.readouterr().out
    for i in (2, 3, 4):
        (root / "test" / "dog" / f"{i}.png").unlink()
    _prepare(params, tmp_path, root)
    warned = [line for line in capsys.readouterr().out.splitlines() if "WARNING" in line]
    assert len(warned) == 1 and "test split holds under 5 images of dog (2):" in warned[0]


def test_prepare_carves_val_from_train_when_absent(tmp_path, params, capsys):
    root = make_splits(tmp_path / "imgs", {"train": 20, "test": 4})
    summary, out = _prepare(params, tmp_path, root, val_fraction=0.25)
    assert summary["splits"] == {"val": "carved", "test": "given"}
    assert out["val"].counts().tolist() == [5, 5] and out["val"].images.max() < 100
    assert out["train"].counts().tolist() == [15, 15] and _levels(out["test"]) == (200, 203)
    assert "val 10 (carved) / test 8 (given)" in capsys.readouterr().out


def test_prepare_carves_test_from_train_without_a_test_folder(tmp_path, params, capsys):
    root = make_splits(tmp_path / "imgs", {"train": 20, "val": 3})
    summary, out = _prepare(params, tmp_path, root, test_fraction=0.25)
    assert summary["splits"] == {"val": "given", "test": "carved"}
    assert out["test"].counts().tolist() == [5, 5] and out["test"].images.max() < 100
    assert _levels(out["val"]) == (100, 102)
    assert "test 10 (carved)" in capsys.readouterr().out


def test_max_per_class_caps_the_train_pool_not_the_given_splits(tmp_path, params):
    root = make_splits(tmp_path / "imgs", {"train": 20, "val": 6, "test": 8})
    _, out = _prepare(params, tmp_path, root, max_per_class=5)
    assert out["train"].counts().tolist() == [5, 5]
    assert out["val"].counts().tolist() == [6, 6] and out["test"].counts().tolist() == [8, 8]


def test_split_layout_class_list_and_order_from_prepare_classes(tmp_path):
    root = make_splits(tmp_path / "imgs", {"train": 3, "test": 2}, classes=("cat", "dog", "eel"))
    _png(root / "train" / "eel" / "more.png", value=50)
    _png(root / "test" / "eel" / "more.png", value=250)
    loaded = load_source("folder", root=str(root), classes=["eel", "cat", "dog"])
    assert loaded.pool.classes == loaded.test.classes == ("eel", "cat", "dog")
    assert loaded.pool.counts().tolist() == [4, 3, 3] and loaded.test.counts().tolist() == [3, 2, 2]
    with pytest.raises(DataError, match=r"class folder\(s\) in .* not in prepare.classes: eel"):
        load_source("folder", root=str(root), classes=["cat", "dog"])


def _split(counts, classes=("cat", "dog")):
    return lambda root: make_splits(root, counts, classes)


def _plus(setup, *extra):
    """``setup``, then each of ``extra`` (a function of the root)."""
    return lambda root: [setup(root), *(f(root) for f in extra)]


@pytest.mark.parametrize("setup,kwargs,needle", [
    (_plus(_split({"train": 3, "test": 2}), _split({"train": 3}, ["eel"])), {},
     r"class\(es\) missing from a split: eel \(in train; not in test\)"),
    (_plus(_split({"train": 3, "val": 2, "test": 2}), _split({"val": 2}, ["eel"])), {},
     r"eel \(in val; not in train, test\)"),
    (_split({"train": 3, "test": 2}), {"classes": ["cat", "dog", "eel"]},
     r"eel \(in no split; not in train, test\)"),
    (_plus(_split({"train": 3, "test": 2}), lambda r: make_folder(r, classes=("bird",))), {},
     r"mixed layout: .* but bird is not a split; move their classes into train/"),
    (_plus(_split({"train": 3, "test": 2}), lambda r: (r / "extra").mkdir(),
           lambda r: (r / "more").mkdir()), {}, "but extra, more are not a split"),
    (_plus(_split({"train": 3, "val": 2}), lambda r: (r / "test").mkdir()), {},
     r"imgs/test: empty split folder; .* remove test/ to carve that split from train"),
    (_plus(_split({"train": 3, "val": 2}), _split({"test": 1}),
           lambda r: [(r / "test" / c / "0.png").rename(r / "test" / c / "0.txt")
                      for c in ("cat", "dog")]), {}, r"imgs/test: empty split folder"),
    (_plus(_split({"train": 3, "test": 2}), lambda r: (r / "test" / "dog" / "0.png").unlink(),
           lambda r: (r / "test" / "dog" / "1.png").unlink()), {},
     r"imgs/test: Found no valid file for the classes dog"),
    (_plus(_split({"train": 3, "test": 2}),
           lambda r: [(r / "test" / "dog" / f"{i}.png").write_bytes(b"broken") for i in (0, 1)]),
     {}, r"imgs/test: no readable image of class\(es\) dog"),
    (_split({"train": 3, "val": 2, "valid": 2}), {}, r"2 validation folders \(val, valid\)"),
    (lambda r: make_folder(r, classes=("Training", "Testing")), {},
     r"folders Testing, Training look like splits, not classes; .* name them train/, test/"),
])
def test_bad_split_layouts(tmp_path, params, setup, kwargs, needle):
    root = tmp_path / "imgs"
    setup(root)
    params["prepare"].update(source="folder", root=str(root), max_per_class=None, **kwargs)
    with pytest.raises(DataError, match=needle):
        stages.prepare.run(params, out=str(tmp_path / "out"), metrics=str(tmp_path / "m.json"))
    assert not (tmp_path / "out").exists() and not (tmp_path / "m.json").exists()


def test_load_folder_refuses_the_split_layout(tmp_path):
    root = make_splits(tmp_path / "imgs", {"train": 2, "test": 2})
    with pytest.raises(DataError, match="split layout .* read it with load_split_folder"):
        load_folder(root)


CIFAR10 = MNIST_ROOT / "cifar10"  # train/<class>/*.jpg 2,000 each, test/<class>/*.jpg 500 each


def test_cifar10_folder_keeps_the_official_test_split(tmp_path, params):
    if not (CIFAR10 / "test").is_dir():
        pytest.skip("../shared/data/cifar10 absent")
    summary, out = _prepare(params, tmp_path, CIFAR10, max_per_class=50)
    files = sorted(CIFAR10.glob("test/*/*.jpg"))
    index = {c: i for i, c in enumerate(out["test"].classes)}
    official = sorted((index[p.parent.name], np.asarray(Image.open(p).convert("RGB"))
                       .transpose(2, 0, 1).tobytes()) for p in files)
    prepared = sorted(zip(out["test"].labels.tolist(), map(bytes, out["test"].images)))
    assert len(files) == 5000 and prepared == official
    assert out["test"].images.shape == (5000, 3, 32, 32) and summary["n_test"] == 5000
    assert summary["splits"] == {"val": "carved", "test": "given"}
    assert summary["n_train"] + summary["n_val"] == 500  # the cap: 50 of each class's 2,000
