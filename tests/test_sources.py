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
from augment.errors import ConfigError, DataError
from augment.sources import load_csv, load_folder, load_source


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
        stages.prepare(params, out=str(tmp_path / "out"), metrics=str(tmp_path / "m.json"))
    assert not (tmp_path / "out").exists() and not (tmp_path / "m.json").exists()


def test_folder_class_not_in_fixed_list(tmp_path):
    root = make_folder(tmp_path / "imgs", classes=("cat", "dog", "eel"))
    with pytest.raises(DataError, match=r"not in prepare.classes: eel"):
        load_folder(root, classes=["cat", "dog"])
    data, _, _ = load_folder(root, classes=["eel", "dog", "cat"])
    assert data.classes == ("eel", "dog", "cat")  # the user's order


def test_builtin_source_keeps_only_the_fixed_classes_in_their_order():
    full, _, _, _ = load_source("digits")
    pair, test, _, _ = load_source("digits", classes=("3", "1"))
    assert pair.classes == ("3", "1") and test is None
    assert np.array_equal(pair.images[pair.labels == 0], full.images[full.labels == 3])
    assert np.array_equal(pair.images[pair.labels == 1], full.images[full.labels == 1])
    with pytest.raises(DataError, match=r"prepare.classes: x not among digits's classes"):
        load_source("digits", classes=("3", "x"))


@pytest.mark.parametrize("n,needle", [(1, r"too few images to split: cat \(1\), dog \(1\)"),
                                      (2, "cannot split 4 images of 2 classes")])
def test_too_few_images_for_the_split(tmp_path, params, n, needle):
    root = make_folder(tmp_path / "imgs", n=n)
    params["prepare"].update(source="folder", root=str(root), max_per_class=None)
    with pytest.raises(DataError, match=needle):
        stages.prepare(params, out=str(tmp_path / "out"), metrics=str(tmp_path / "m.json"))


# ------------------------------------------------------------------------------------- csv
def make_csv(tmp_path, rows, columns=("path", "label")):
    make_folder(tmp_path / "imgs")
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame(rows, columns=list(columns)).to_csv(manifest, index=False)
    return manifest


GOOD = [(f"imgs/{c}/{i}.png", c) for c in ("cat", "dog") for i in range(6)]


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
    summary = stages.prepare(params, out=str(tmp_path / "out"), metrics=str(tmp_path / "m.json"))
    assert summary["skipped_files"] == 1
    assert "WARNING: skipped 1 file(s)" in capsys.readouterr().out
    skipped = pd.read_csv(tmp_path / "out" / "skipped.csv")
    assert skipped["path"].tolist() == ["imgs/cat/gone.png"]
    assert json.loads((tmp_path / "m.json").read_text())["image_shape"] == [3, 8, 8]


def test_csv_source_needs_manifest_key(tmp_path, params):
    params["prepare"].update(source="csv")
    with pytest.raises(DataError, match="needs prepare.manifest"):
        stages.prepare(params, out=str(tmp_path / "out"), metrics=str(tmp_path / "m.json"))


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
