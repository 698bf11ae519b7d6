"""augment.SyntheticDataset and augment.mix: synthetic samples in a user's own training loop."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, TensorDataset
from torchvision.datasets import ImageFolder
from torchvision.transforms import v2

import augment
from augment import stages
from augment.data import load_synthetic
from augment.datasets import SyntheticDataset, mix
from augment.errors import ConfigError, DataError
from conftest import ROOT, tiny_params


@pytest.fixture(scope="module")
def folder(prepared, checkpoint, judge, tmp_path_factory) -> str:
    """The synthesize stage's output for the tiny digits checkpoint."""
    d = tmp_path_factory.mktemp("synthetic")
    stages.synthesize.run(tiny_params(), data=str(prepared), model=str(checkpoint), judge=str(judge),
                          out=str(d / "synthetic"), metrics=str(d / "synthesize.json"))
    return str(d / "synthetic")


def stacked(items) -> tuple[torch.Tensor, list[int]]:
    items = list(items)
    return torch.stack([x for x, _ in items]), [int(y) for _, y in items]


def test_folder_items_are_the_stages_images_labels_and_classes(folder, prepared):
    ds = SyntheticDataset(folder)
    images, labels = load_synthetic(folder)
    got, targets = stacked(ds[i] for i in range(len(ds)))
    assert got.dtype == torch.uint8 and np.array_equal(got.numpy(), images)
    assert targets == labels.tolist() == ds.targets
    classes = tuple(json.loads((prepared / "classes.json").read_text()))
    assert ds.classes == classes and ds.class_to_idx == {c: i for i, c in enumerate(classes)}
    assert ds.is_synthetic.all() and len(ds.is_synthetic) == len(ds)


def test_transform_and_target_transform_apply(folder):
    ds = SyntheticDataset(folder, transform=lambda x: x.float() / 255,
                          target_transform=lambda y: f"class {y}")
    image, label = ds[0]
    assert image.dtype == torch.float32 and float(image.max()) <= 1.0
    assert label == f"class {SyntheticDataset(folder).targets[0]}"


def test_checkpoint_items_follow_seed_and_index_alone(checkpoint):
    ds = SyntheticDataset(checkpoint, counts={"3": 5, "7": 4}, seed=11)
    assert ds.targets == [3] * 5 + [7] * 4 and len(ds) == 9
    alone, _ = stacked(ds[i] for i in range(len(ds)))
    batch, _ = stacked(ds.__getitems__(list(range(len(ds)))[::-1]))
    assert torch.equal(alone, batch.flip(0))  # the same bytes fetched alone or in a batch
    again, _ = stacked(SyntheticDataset(checkpoint, counts={"3": 5, "7": 4}, seed=11)[i]
                       for i in range(9))
    assert torch.equal(alone, again)
    other, _ = stacked(SyntheticDataset(checkpoint, counts={"3": 5, "7": 4}, seed=12)[i]
                       for i in range(9))
    assert not torch.equal(alone, other)
    assert len({alone[i].numpy().tobytes() for i in range(9)}) == 9  # each index its own noise


def test_dataloader_workers_agree_with_the_main_process(checkpoint):
    """Spawned workers (a pickled dataset, fresh processes: macOS's and Windows' default; a
    forked worker after the suite's dask and ray clusters can die on their leftovers)."""
    ds = SyntheticDataset(checkpoint, counts=6, seed=3)

    def drawn(workers: int):
        loader = DataLoader(ds, batch_size=7, shuffle=True, num_workers=workers,
                            multiprocessing_context="spawn" if workers else None,
                            generator=torch.Generator().manual_seed(0))
        out = [(x, y) for _ in range(2) for x, y in loader]  # two epochs
        return torch.cat([x for x, _ in out]), torch.cat([y for _, y in out])

    (x0, y0), (x2, y2) = drawn(0), drawn(2)
    assert torch.equal(x0, x2) and torch.equal(y0, y2) and len(x0) == 2 * len(ds)


def test_items_are_the_same_in_another_process(checkpoint):
    code = ("import sys, hashlib, torch; from augment.datasets import SyntheticDataset as S; "
            "d = S(sys.argv[1], counts=3, seed=5); "
            "print(hashlib.sha256(torch.stack([d[i][0] for i in range(len(d))]).numpy()"
            ".tobytes()).hexdigest())")
    out = subprocess.run([sys.executable, "-c", code, str(checkpoint)], capture_output=True,
                         text=True, cwd=ROOT, check=True).stdout.strip()
    import hashlib

    d = SyntheticDataset(checkpoint, counts=3, seed=5)
    local = torch.stack([d[i][0] for i in range(len(d))]).numpy().tobytes()
    assert out == hashlib.sha256(local).hexdigest()


def test_relabelling_follows_the_real_sets_classes_and_keeps_the_images(checkpoint):
    ds = SyntheticDataset(checkpoint, counts={"1": 2, "2": 2}, seed=0)
    names = [str(c) for c in range(10)][::-1]  # the real set indexes classes in reverse
    mapping = {c: i for i, c in enumerate(names)}
    moved = SyntheticDataset(checkpoint, counts={"1": 2, "2": 2}, seed=0, class_to_idx=mapping)
    assert moved.targets == [8, 8, 7, 7] and moved.classes == tuple(names)
    assert torch.equal(stacked(moved[i] for i in range(4))[0], stacked(ds[i] for i in range(4))[0])
    assert ds.relabelled(mapping).targets == moved.targets and ds.targets == [1, 1, 2, 2]


def test_counts_by_index_are_read_in_the_real_sets_order_or_refused(checkpoint):
    """balance_counts(real.targets) keys counts by the real set's indices. Given class_to_idx,
    the synthetic set reads them so; without it they are the checkpoint's indices, which name
    other classes when the orders differ: mix refuses them (it had filled the wrong classes)."""
    names = [str(c) for c in range(10)][::-1]  # the real set indexes classes in reverse
    mapping = {c: i for i, c in enumerate(names)}
    right = SyntheticDataset(checkpoint, counts={1: 2, 3: 1}, class_to_idx=mapping)
    assert right.targets == [3, 1, 1]  # real index 1 is class "8", 3 is "6"
    by_name = SyntheticDataset(checkpoint, counts={"8": 2, "6": 1})
    assert torch.equal(stacked(right[i] for i in range(3))[0],
                       stacked(by_name[i] for i in range(3))[0])
    with pytest.raises(DataError, match=r"keyed by class index in the checkpoint's order .* "
                                        r"Pass class_to_idx=real.class_to_idx"):
        mix(ImageFolderLike(mapping), SyntheticDataset(checkpoint, counts={1: 2}))
    same_order = {str(c): c for c in range(10)}
    assert len(mix(ImageFolderLike(same_order), SyntheticDataset(checkpoint, counts={1: 2}))[0]) == 2
    with pytest.raises(DataError, match=r"class '8' is given twice"):
        SyntheticDataset(checkpoint, counts={1: 2, "8": 1}, class_to_idx=mapping)


def test_mix_refuses_real_and_synthetic_images_of_other_types(folder):
    """Real images through ToDtype(float32, scale=True), synthetic ones as drawn (uint8 0-255):
    a batch would hold both ranges; with DataLoader workers, a TypeError inside a worker."""
    real = TensorDataset(torch.rand(4, 1, 8, 8), torch.zeros(4).long())
    real.targets = [0] * 4
    with pytest.raises(DataError, match=r"real images come as Tensor of torch.float32 but "
                                        r"synthetic ones as Tensor of torch.uint8: give the "
                                        r"synthetic set the real set's transform"):
        mix(real, SyntheticDataset(folder))
    tf = v2.ToDtype(torch.float32, scale=True)
    data, _ = mix(real, SyntheticDataset(folder, transform=tf))
    assert data[len(real)][0].dtype == torch.float32 and data[len(real)][0].max() <= 1


def test_a_synthetic_class_missing_from_the_real_set_is_named(folder):
    ds = SyntheticDataset(folder)
    present = sorted({ds.classes[t] for t in ds.targets})
    real = {c: i for i, c in enumerate(present[:-1])}  # the real set lacks the last one drawn
    with pytest.raises(DataError, match=rf"class\(es\) '{present[-1]}' are not among the real"):
        SyntheticDataset(folder, class_to_idx=real)
    with pytest.raises(DataError, match=rf"'{present[-1]}' are not among the real"):
        mix(ImageFolderLike(real), ds)


def test_a_damaged_synthesize_folder_is_a_clear_error(folder, tmp_path):
    """Edited or half-copied folders: a line naming the file and "re-run the synthesize stage",
    at construction where it can be seen then, at item access for a missing or broken PNG."""
    import shutil

    def damaged(edit):
        copy = tmp_path / f"copy{len(list(tmp_path.iterdir()))}"
        shutil.copytree(folder, copy)
        edit(copy)
        return copy

    table = lambda d: pd.read_csv(d / "manifest.csv")  # noqa: E731
    put = lambda d, t: t.to_csv(d / "manifest.csv", index=False)  # noqa: E731
    edits = {
        r"KeyError: 'label'": lambda d: put(d, table(d).drop(columns="label")),
        r"ValueError: Unable to parse string 'cat'": lambda d: put(d, table(d).assign(label="cat")),
        r"labels must be whole numbers 0\.\.9": lambda d: put(d, table(d).assign(label=1.5)),
        r"an empty path on line\(s\) 2, 3": lambda d: put(d, table(d).assign(path="")),
        r"classes.json: expected a list of class names": lambda d: (d / "classes.json").write_text("5"),
    }
    for message, edit in edits.items():
        with pytest.raises(DataError, match=message + r".*re-run it"):
            SyntheticDataset(damaged(edit))
    gone = damaged(lambda d: (d / table(d)["path"][0]).unlink())
    with pytest.raises(DataError, match=r"cannot be read .* re-run the synthesize stage"):
        SyntheticDataset(gone)[0]
    with pytest.raises(DataError, match=r"class_to_idx must give each class its own index"):
        SyntheticDataset(folder, class_to_idx={c: 0 for c in SyntheticDataset(folder).classes})


class ImageFolderLike(TensorDataset):
    """An empty real set with ImageFolder's class attributes."""

    def __init__(self, class_to_idx):
        super().__init__(torch.zeros(0, 1, 8, 8, dtype=torch.uint8))
        self.class_to_idx, self.classes, self.targets = class_to_idx, sorted(class_to_idx), []


def test_bad_sources_and_arguments_are_clear_errors(folder, checkpoint, tmp_path):
    with pytest.raises(DataError, match="not a synthesize folder"):
        SyntheticDataset(tmp_path)
    with pytest.raises(DataError, match="counts apply to a checkpoint only"):
        SyntheticDataset(folder, counts=3)
    with pytest.raises(DataError, match="needs counts"):
        SyntheticDataset(checkpoint)
    with pytest.raises(DataError, match="unknown class 'cat'"):
        SyntheticDataset(checkpoint, counts={"cat": 3})
    with pytest.raises(DataError, match="missing.pt: not found; give the synthesize stage's"):
        SyntheticDataset(tmp_path / "missing.pt", counts=1)
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    with pytest.raises(augment.CheckpointError, match="not a readable checkpoint"):
        SyntheticDataset(tmp_path / "junk.pt", counts=1)
    with pytest.raises(IndexError):
        SyntheticDataset(folder)[10**6]
    ds = SyntheticDataset(folder)
    assert torch.equal(ds[-1][0], ds[len(ds) - 1][0])  # as a list or torchvision set indexes
    for bad, needle in [(dict(seed=2.5), r"seed: got 2.5; expected an integer in \[0, "),
                        (dict(seed=-1), "seed: got -1"), (dict(device="gpu"), "device: got 'gpu'"),
                        (dict(class_to_idx=["0", "1"]), "class_to_idx: got list; expected")]:
        with pytest.raises((DataError, ConfigError), match=needle):
            SyntheticDataset(checkpoint, counts=1, **bad)
    for device in ("auto", None):  # as augment.synthesize takes them
        assert SyntheticDataset(checkpoint, counts=1, device=device).device.type in ("cpu", "cuda")


def image_folder(root, images: np.ndarray, labels: np.ndarray, classes) -> ImageFolder:
    """Write uint8 N×C×H×W images as root/<class>/<i>.png and read them back as torchvision does."""
    for i, (image, label) in enumerate(zip(images, labels)):
        path = root / classes[label] / f"{i:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        array = image.transpose(1, 2, 0)
        Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array).save(path)
    mode = "L" if images.shape[1] == 1 else "RGB"
    return ImageFolder(root, loader=lambda f: Image.open(f).convert(mode),
                       transform=v2.PILToTensor())


def test_mix_joins_an_imagefolder_and_a_synthetic_folder(folder, prepared, tmp_path):
    from augment.data import load_prepared

    train = load_prepared(prepared, splits=("train",))["train"]
    real = image_folder(tmp_path / "real", train.images, train.labels, train.classes)
    fake = SyntheticDataset(folder)
    data, sampler = mix(real, fake, synthetic_weight=0.5, seed=0, return_source=True)
    assert len(data) == len(real) + len(fake) and len(data.targets) == len(data)
    assert data.is_synthetic.sum() == len(fake) and data.classes == real.classes
    loader = DataLoader(data, batch_size=16, sampler=sampler)
    seen = [(x.shape, y, s) for x, y, s in loader]
    assert sum(len(y) for _, y, _ in seen) == len(sampler)
    flags = torch.cat([s for _, _, s in seen])
    order = torch.as_tensor(list(iter(mix(real, fake, synthetic_weight=0.5, seed=0)[1])))
    assert torch.equal(flags, torch.as_tensor(data.is_synthetic[order]))  # same seed, same draws
    assert 0 < flags.float().mean() < len(fake) / len(data)  # weight 0.5: fewer than a full share


def test_mix_refuses_other_image_sizes_and_unlabelled_real_sets(folder, checkpoint):
    fake = SyntheticDataset(folder)  # 1×8×8 digits
    big = TensorDataset(torch.zeros(4, 3, 32, 32, dtype=torch.uint8), torch.zeros(4).long())
    big.targets = [0] * 4
    with pytest.raises(DataError, match=r"real images are 3×32×32 .* synthetic ones 1×8×8"):
        mix(big, fake)
    colour = TensorDataset(torch.zeros(4, 3, 8, 8, dtype=torch.uint8), torch.zeros(4).long())
    colour.targets = [0] * 4
    with pytest.raises(DataError, match=r"read the real ones as grey too"):
        mix(colour, fake)
    small = TensorDataset(torch.zeros(4, 1, 8, 8, dtype=torch.uint8), torch.zeros(4).long())
    with pytest.raises(DataError, match="no targets attribute; pass real_labels"):
        mix(small, fake)
    data, _ = mix(small, fake, real_labels=[0, 1, 2, 3])
    assert data.targets[:4] == [0, 1, 2, 3]
    with pytest.raises(ConfigError, match="synthetic_weight: got 1.5"):
        mix(small, fake, real_labels=[0] * 4, synthetic_weight=1.5)
    with pytest.raises(ConfigError, match="synthetic_weight: got 0"):
        mix(small, fake, real_labels=[0] * 4, synthetic_weight=0)


def test_the_readme_snippet_runs_as_pasted(tmp_path):
    """README's "Use it in your training loop" code, as a user runs it: in a fresh interpreter
    (its forked DataLoader workers inherit nothing of the suite's clusters), at its own
    relative paths, on colour photos and a synthesize folder, one whole epoch."""
    from augment.synthesis import write_synthetic
    from conftest import fabricate_images

    text = (ROOT / "README.md").read_text().split("## Use it in your training loop", 1)[1]
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    real = fabricate_images([30, 20, 10], size=8, channels=3)
    image_folder(tmp_path / "photos" / "train", real.images, real.labels, real.classes)
    fake = fabricate_images([0, 10, 20], size=8, channels=3, seed=1)
    write_synthetic(tmp_path / "data" / "synthetic", torch.as_tensor(fake.images),
                    torch.as_tensor(fake.labels), fake.classes)
    check = ("\nbatches = list(loader)\nx, y = batches[0]\n"
             "print(x.dtype, tuple(x.shape[1:]), len(y), float(x.max()) <= 1.0, "
             "int(data.is_synthetic.sum()), sum(len(b[1]) for b in batches) == len(sampler))\n")
    (tmp_path / "snippet.py").write_text(code + check)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "snippet.py"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["torch.float32", "(3,", "8,", "8)", "64", "True", "30", "True"]
