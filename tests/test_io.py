"""Atomic outputs never delete what they do not re-create: the current folder, a folder given
where a file goes, a folder of the user's own files."""

from __future__ import annotations

import pytest

from augment.cli import main
from augment.errors import OutputError
from augment.io import atomic_path, write_json
from augment.synthesis import write_synthetic
from conftest import fabricate_images


def _tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("path", ["", ".", ".."])
def test_a_path_naming_no_file_is_refused_and_the_folder_kept(tmp_path, monkeypatch, path):
    """An unset $VAR as --metrics: once the current folder (and its .git) was removed."""
    work = tmp_path / "repo"
    (work / ".git").mkdir(parents=True)
    (work / "data.txt").write_text("mine")
    monkeypatch.chdir(work)
    before = _tree(tmp_path)
    with pytest.raises(OutputError, match="names no file or folder"):
        write_json(path, {"a": 1})
    assert _tree(tmp_path) == before


def test_a_file_output_onto_a_folder_is_refused(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "gan.pt").write_bytes(b"weights")
    with pytest.raises(OutputError, match="is a folder, and this output is a file"):
        write_json(tmp_path / "models", {"a": 1})
    assert (tmp_path / "models" / "gan.pt").read_bytes() == b"weights"
    assert _tree(tmp_path) == ["models", "models/gan.pt"]


def test_a_folder_output_replaces_its_own_kind_only(tmp_path):
    """A rerun replaces the synthetic folder (with fewer entries: no samples, no generator
    record); a folder of photos or a file in its place is refused, untouched."""
    data = fabricate_images([2, 2])
    images, labels = __import__("torch").as_tensor(data.images), __import__("torch").as_tensor(data.labels)
    out = tmp_path / "synthetic"
    write_synthetic(out, images, labels, data.classes, generator={"fid": 1.0})
    write_synthetic(out, images[:0], labels[:0], data.classes)  # images/, generator.json gone
    assert sorted(p.name for p in out.iterdir()) == ["classes.json", "images.npy", "labels.npy",
                                                     "manifest.csv"]
    photos = tmp_path / "photos"
    (photos / "cat").mkdir(parents=True)
    (photos / "cat" / "1.jpg").write_bytes(b"jpeg")
    with pytest.raises(OutputError, match=r"photos holds cat, which this output does not write"):
        write_synthetic(photos, images, labels, data.classes)
    assert _tree(photos) == ["cat", "cat/1.jpg"]
    (out / ".DS_Store").write_bytes(b"finder")  # hidden entries are no one's photos
    write_synthetic(out, images, labels, data.classes)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(OutputError, match=r"link is a link .*give the output the folder itself"):
        write_synthetic(tmp_path / "link", images, labels, data.classes)
    assert (tmp_path / "link").is_symlink()
    (tmp_path / "file").write_text("mine")
    with pytest.raises(OutputError, match="is a file, and this output is a folder"):
        write_synthetic(tmp_path / "file", images, labels, data.classes)
    assert (tmp_path / "file").read_text() == "mine"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left


def test_a_folder_only_the_code_names_may_change_its_entries(tmp_path):
    for names in (["a", "b"], ["c"]):  # one file per variant; the variants changed
        with atomic_path(tmp_path / "confusion", may_hold="anything") as tmp:
            tmp.mkdir()
            for name in names:
                (tmp / name).write_text(name)
    assert _tree(tmp_path) == ["confusion", "confusion/c"]


def test_the_cli_refuses_an_empty_output_path_with_exit_2(tmp_path, monkeypatch, capsys):
    """`augment prepare --metrics "$UNSET"`: exit 2, one line, the folder as it was."""
    (tmp_path / ".git").mkdir()
    (tmp_path / "params.yaml").write_text("prepare:\n  max_per_class: 20\n")
    monkeypatch.chdir(tmp_path)
    before = _tree(tmp_path)
    code = main(["prepare", "--params", "params.yaml", "--out", "p", "--metrics", ""])
    err = capsys.readouterr().err
    assert code == 2 and "--metrics '' names no file or folder" in err and "Traceback" not in err
    assert _tree(tmp_path) == before  # checked before any work: no prepared data either
