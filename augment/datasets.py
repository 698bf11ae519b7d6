"""Synthetic samples as torch datasets, for your own training loop.

:class:`SyntheticDataset` reads the synthesize stage's folder (``manifest.csv``, ``classes.json``
and the PNGs it lists) or draws from a checkpoint: sample *i* comes from noise seeded by
(``seed``, *i*) alone, so it is the same image in every epoch, DataLoader worker and process.
Items are ``(image, label)`` as in torchvision's datasets, the image a uint8 C×H×W tensor
(``transforms.v2`` takes it, and PIL images, alike). :func:`mix` joins a real dataset and a
synthetic one and returns the dataset with the :class:`augment.sampling.MixedSampler` that draws
from it by the evaluate stage's rule::

    real = torchvision.datasets.ImageFolder("photos/train", transform=to_float)
    fake = augment.SyntheticDataset("data/synthetic", transform=to_float)
    data, sampler = augment.mix(real, fake, synthetic_weight=0.5, seed=0)
    loader = DataLoader(data, batch_size=64, sampler=sampler, num_workers=2)
"""

from __future__ import annotations

import copy
import json
import numbers
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import ConcatDataset, Dataset

from .checkpoint import load_generator
from .errors import DataError
from .runtime import resolve_device, to_uint8
from .sampling import MixedSampler
from .synthesis import TORCH_SEED_MAX, _labels, check_whole, class_counts


CHUNK = 16  # generator batch: fixed, so an item's bytes do not depend on its batch-mates


def item_seed(seed: int, index: int) -> int:
    """The noise seed of sample ``index``: from (seed, index) alone, well mixed."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


class SyntheticDataset(Dataset):
    """Synthetic ``(image, label)`` items from a synthesize folder or a checkpoint.

    ``source``: the synthesize stage's output folder (``data/synthetic``), or a checkpoint
    (``models/gan.pt``) with ``counts`` (``{class: n}`` by index or name, or one int for every
    class; e.g. :func:`augment.balance_counts` of your labels) and ``seed``. A checkpoint draws
    in fp32 on ``device`` (keep ``cpu`` with DataLoader workers), in generator batches of
    :data:`CHUNK` (padded): a batch's size changes a kernel's summation order and so, rarely, a
    pixel by 1; a fixed size keeps each item's bytes whatever it is fetched with. It draws
    other noise than the synthesize stage (per item, not one stream), and no judge filter
    applies.
    ``class_to_idx``: relabel to your real set's classes (e.g. ``ImageFolder.class_to_idx``);
    every synthetic class must be among them, and ``counts`` keyed by index are read in its
    order (as :func:`augment.balance_counts` of the real labels gives them). Counts by index
    without it are the checkpoint's class order: :func:`mix` refuses them for a real set that
    orders its classes otherwise, rather than fill other classes than those you counted.
    Attributes as torchvision's: ``classes``, ``class_to_idx``, ``targets``; ``is_synthetic``
    (one flag per item, all True) for :func:`mix`.
    """

    def __init__(self, source: str | Path, *, counts: Mapping[int | str, int] | int | None = None,
                 seed: int = 0, transform: Callable | None = None,
                 target_transform: Callable | None = None,
                 class_to_idx: Mapping[str, int] | None = None, device: str = "cpu",
                 accept_failed: bool = False):
        if class_to_idx is not None and not isinstance(class_to_idx, Mapping):
            raise DataError(f"class_to_idx: got {type(class_to_idx).__name__}; expected "
                            "{class name: index}, e.g. your ImageFolder's class_to_idx")
        source = Path(source)
        self.transform, self.target_transform = transform, target_transform
        self.source, self.seed = source, check_whole("seed", seed, 0, TORCH_SEED_MAX)
        self.generator = None
        if not source.exists():
            raise DataError(f"{source}: not found; give the synthesize stage's folder "
                            "(data/synthetic) or a checkpoint (models/gan.pt): run the pipeline "
                            "first (dvc repro synthesize)")
        if source.is_dir():
            if counts is not None:
                raise DataError(f"{source} is a folder of drawn samples: counts apply to a "
                                "checkpoint only; drop counts (or pass the checkpoint)")
            classes, labels, self.paths = _read_folder(source)
        else:
            device = resolve_device(device)
            self.generator, classes = load_generator(source, device, accept_failed=accept_failed)
            counts = _counts_by_name(counts, class_to_idx)
            labels, self.paths = _checkpoint_labels(self.generator, classes, counts, source), None
            self.device = device
        self._source_labels = torch.tensor(labels)  # the generator's own class indices
        # counts keyed by the checkpoint's class indices: they mean other classes under another order
        self._by_checkpoint_index = isinstance(counts, Mapping) and any(
            isinstance(k, numbers.Integral) for k in counts)
        self.classes, self.class_to_idx = tuple(classes), {c: i for i, c in enumerate(classes)}
        self.targets = labels.tolist()
        self.is_synthetic = np.ones(len(labels), dtype=bool)
        if class_to_idx is not None:
            self._relabel(class_to_idx)

    def _relabel(self, class_to_idx: Mapping[str, int]) -> None:
        """Labels and class names as ``class_to_idx`` gives them (the real set's)."""
        indices = list(class_to_idx.values())
        whole = all(isinstance(i, numbers.Integral) and not isinstance(i, bool) for i in indices)
        if not whole or sorted(indices) != list(range(len(indices))):
            raise DataError(f"class_to_idx must give each class its own index 0..{len(indices) - 1} "
                            f"(as ImageFolder's does); got {dict(class_to_idx)}")
        present = sorted({self.classes[t] for t in self.targets})
        missing = [c for c in present if c not in class_to_idx]
        if missing:
            raise DataError(f"{self.source}: synthetic class(es) {', '.join(map(repr, missing))} "
                            f"are not among the real classes {sorted(class_to_idx)}; draw only "
                            "the real set's classes (synthesize.target, counts) or add the class "
                            "to the real set")
        old = self.classes
        self.targets = [int(class_to_idx[old[t]]) for t in self.targets]
        self.class_to_idx = dict(class_to_idx)
        self.classes = tuple(sorted(class_to_idx, key=class_to_idx.get))

    def relabelled(self, class_to_idx: Mapping[str, int]) -> "SyntheticDataset":
        """A copy labelled as ``class_to_idx`` (see the class docstring)."""
        clone = copy.copy(self)
        clone._relabel(class_to_idx)
        return clone

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[tuple[Any, Any]]:
        """Items for ``indices`` (a DataLoader fetches a whole batch through this)."""
        indices = [int(i) for i in indices]
        if any(not -len(self) <= i < len(self) for i in indices):
            raise IndexError(f"index out of range for {len(self)} synthetic samples")
        indices = [i % len(self) for i in indices]  # -1: the last, as a list's
        images = (self._draw(indices) if self.generator is not None
                  else [_read_png(self.source / self.paths[i]) for i in indices])
        return [self._item(image, self.targets[i]) for image, i in zip(images, indices)]

    def _item(self, image: torch.Tensor, label: int) -> tuple[Any, Any]:
        image = image if self.transform is None else self.transform(image)
        return image, (label if self.target_transform is None else self.target_transform(label))

    @torch.no_grad()
    def _draw(self, indices: list[int]) -> torch.Tensor:
        """uint8 images of ``indices``: noise from (seed, i), the checkpoint's own labels."""
        z_dim = self.generator.hparams["z_dim"]
        noise = torch.zeros(-(-len(indices) // CHUNK) * CHUNK, z_dim)  # padded to whole chunks
        for row, i in enumerate(indices):
            noise[row] = torch.randn(z_dim, generator=torch.Generator().manual_seed(
                item_seed(self.seed, i)))
        labels = torch.zeros(len(noise), dtype=torch.int64)
        labels[:len(indices)] = self._source_labels[indices]
        images = [to_uint8(self.generator(z.to(self.device), y.to(self.device)))
                  for z, y in zip(noise.split(CHUNK), labels.split(CHUNK))]
        return torch.cat(images)[:len(indices)]


def _read_folder(folder: Path) -> tuple[tuple[str, ...], np.ndarray, list[str]]:
    """(classes, labels, relative paths) of a synthesize folder; a clear error when it is not."""
    import pandas as pd

    fix = ("expected manifest.csv (path, label) and classes.json as the synthesize stage writes "
           "them: re-run it (augment synthesize / dvc repro synthesize)")
    try:
        classes = json.loads((folder / "classes.json").read_text())
        table = pd.read_csv(folder / "manifest.csv", dtype={"path": str}, keep_default_na=False)
        paths, labels = table["path"], pd.to_numeric(table["label"], errors="raise")
    except (OSError, ValueError, KeyError, pd.errors.ParserError) as err:
        raise DataError(f"{folder}: not a synthesize folder ({err.__class__.__name__}: "
                        f"{str(err)[:120]}); {fix}") from None
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise DataError(f"{folder}/classes.json: expected a list of class names; {fix}")
    if len(labels) and ((labels % 1 != 0).any() or labels.min() < 0
                        or labels.max() >= len(classes)):
        raise DataError(f"{folder}/manifest.csv: labels must be whole numbers 0..{len(classes) - 1} "
                        f"(classes.json lists {len(classes)} classes); {fix}")
    empty = np.flatnonzero(paths.str.strip() == "")
    if len(empty):
        raise DataError(f"{folder}/manifest.csv: an empty path on line(s) "
                        f"{', '.join(str(i + 2) for i in empty[:5])}; {fix}")
    return tuple(classes), labels.to_numpy(dtype=np.int64), paths.tolist()


def _read_png(path: Path) -> torch.Tensor:
    """A uint8 C×H×W tensor of the image at ``path`` (1 channel for grey, 3 for colour)."""
    try:
        with Image.open(path) as image:
            array = np.array(image.convert("L" if image.mode in ("L", "I;16", "1") else "RGB"))
    except (OSError, ValueError) as err:  # missing, truncated, not an image
        raise DataError(f"{path}: a sample listed in manifest.csv cannot be read "
                        f"({err.__class__.__name__}); re-run the synthesize stage") from None
    return torch.from_numpy(array[None] if array.ndim == 2 else array.transpose(2, 0, 1).copy())


def _counts_by_name(counts, class_to_idx: Mapping[str, int] | None):
    """``counts`` keyed by index read in ``class_to_idx``'s order (the real set's), as names."""
    if class_to_idx is None or not isinstance(counts, Mapping):
        return counts
    name_of = {i: c for c, i in class_to_idx.items()}
    named = {}
    for key, n in counts.items():
        if isinstance(key, numbers.Integral) and not isinstance(key, bool):
            if int(key) not in name_of:
                raise DataError(f"counts: class index {key} is not in class_to_idx (indices "
                                f"{min(name_of, default=0)}..{max(name_of, default=-1)})")
            key = name_of[int(key)]
        if key in named:
            raise DataError(f"counts: class {key!r} is given twice (by index and by name); "
                            "give each class once")
        named[key] = n
    return named


def _checkpoint_labels(generator, classes, counts, source) -> np.ndarray:
    """Class-sorted labels, ``counts[c]`` of class ``c`` (as :func:`augment.synthesize`)."""
    if counts is None:
        raise DataError(f"{source}: a checkpoint needs counts ({{class: n}} or n per class), "
                        "e.g. augment.balance_counts(real_labels, num_classes=K)")
    per_class = class_counts(counts, tuple(classes), generator.hparams["num_classes"])
    return _labels(per_class).numpy()


class MixedDataset(ConcatDataset):
    """A real dataset followed by a synthetic one; ``targets`` and ``is_synthetic`` per index.
    With ``return_source``, items are ``(image, label, is_synthetic)``: log what a batch held."""

    def __init__(self, real: Dataset, synthetic: Dataset, *, real_labels=None,
                 return_source: bool = False):
        super().__init__([real, synthetic])
        self.targets = [*_targets(real, real_labels, "real"), *_targets(synthetic, None,
                                                                        "synthetic")]
        self.is_synthetic = np.concatenate([np.zeros(len(real), bool), np.ones(len(synthetic),
                                                                               bool)])
        named = real if hasattr(real, "class_to_idx") else synthetic
        self.classes = getattr(named, "classes", None)
        self.class_to_idx = getattr(named, "class_to_idx", None)
        self.return_source = return_source

    def __getitem__(self, index: int):
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: Sequence[int]) -> list:
        """Items in ``indices``' order, each part fetched at once (a checkpoint draws a batch)."""
        indices = [int(i) for i in indices]
        items: list = [None] * len(indices)
        for part, dataset in enumerate(self.datasets):
            offset = self.cumulative_sizes[part] - len(dataset)
            mine = [(k, i - offset) for k, i in enumerate(indices)
                    if offset <= i < self.cumulative_sizes[part]]
            if not mine:
                continue
            local = [i for _, i in mine]
            got = (dataset.__getitems__(local) if hasattr(dataset, "__getitems__")
                   else [dataset[i] for i in local])
            for (k, _), item in zip(mine, got):
                items[k] = item
        if any(item is None for item in items):
            raise IndexError(f"index out of range for {len(self)} items")
        if self.return_source:
            return [(*item, bool(self.is_synthetic[i])) for item, i in zip(items, indices)]
        return items


def _targets(dataset: Dataset, given, what: str) -> list[int]:
    """Integer labels of ``dataset``: ``given``, else its ``targets`` attribute."""
    labels = given if given is not None else getattr(dataset, "targets", None)
    if labels is None:
        raise DataError(f"the {what} dataset ({type(dataset).__name__}) has no targets "
                        "attribute; pass real_labels=[label of each item] (torchvision's "
                        "ImageFolder and augment.SyntheticDataset have one)")
    labels = [int(y) for y in (labels.tolist() if hasattr(labels, "tolist") else labels)]
    if len(labels) != len(dataset):
        raise DataError(f"{len(labels)} labels for the {len(dataset)} items of the {what} "
                        "dataset; give one label per item")
    return labels


def mix(real: Dataset, synthetic: Dataset, *, synthetic_weight: float = 1.0,
        synthetic_share: float | None = None, balance: bool = False,
        num_samples: int | None = None, seed: int = 0, real_labels=None,
        return_source: bool = False) -> tuple[MixedDataset, MixedSampler]:
    """``(dataset, sampler)`` to train on ``real`` plus ``synthetic`` by the evaluate stage's
    rule: pass both to a DataLoader (``sampler=``). The options are
    :class:`augment.sampling.MixedSampler`'s. A :class:`SyntheticDataset` is relabelled to the
    real set's ``class_to_idx`` when it has one; a synthetic class the real set lacks, or images
    of another size, is an error."""
    synthetic = _aligned(real, synthetic)
    _check_shapes(real, synthetic)
    data = MixedDataset(real, synthetic, real_labels=real_labels, return_source=return_source)
    sampler = MixedSampler(data.is_synthetic, synthetic_weight=synthetic_weight,
                           synthetic_share=synthetic_share, labels=data.targets,
                           balance=balance, num_samples=num_samples, seed=seed)
    return data, sampler


def _aligned(real: Dataset, synthetic: Dataset) -> Dataset:
    """``synthetic`` labelled by the real set's class indices."""
    want, have = getattr(real, "class_to_idx", None), getattr(synthetic, "class_to_idx", None)
    if want is None or have is None or dict(want) == dict(have):
        return synthetic
    if isinstance(synthetic, SyntheticDataset):
        if synthetic._by_checkpoint_index:
            raise DataError(
                f"the synthetic set's counts are keyed by class index in the checkpoint's order "
                f"{list(synthetic.classes)}, but the real set orders its classes "
                f"{sorted(want, key=want.get)}: an index names another class in each. Pass "
                "class_to_idx=real.class_to_idx to SyntheticDataset (its indices are then the "
                "real set's, as balance_counts(real.targets) gives them), or key counts by name")
        return synthetic.relabelled(want)
    raise DataError(f"the synthetic set's classes {have} differ from the real set's {want}; "
                    "relabel it (augment.SyntheticDataset(..., class_to_idx=real.class_to_idx))")


def _check_shapes(real: Dataset, synthetic: Dataset) -> None:
    """One item of each: images of other sizes or channels cannot share a batch."""
    if len(real) == 0 or len(synthetic) == 0:
        return
    images = [d[0][0] for d in (real, synthetic)]
    kinds = [_kind(image) for image in images]
    if kinds[0] != kinds[1]:  # uint8 0-255 beside float 0-1 would train on both, unnoticed
        raise DataError(f"real images come as {kinds[0]} but synthetic ones as {kinds[1]}: give "
                        "the synthetic set the real set's transform (SyntheticDataset(..., "
                        "transform=...)) so that both come as one type and value range")
    shapes = [_shape(image) for image in images]
    if None not in shapes and shapes[0] != shapes[1]:
        grey = ("; grey synthetic images: read the real ones as grey too (ImageFolder(..., "
                "loader=lambda f: PIL.Image.open(f).convert('L')))"
                if shapes[0][1:] == shapes[1][1:] and shapes[1][0] == 1 else "")
        raise DataError(f"real images are {'×'.join(map(str, shapes[0]))} (C×H×W) but synthetic "
                        f"ones {'×'.join(map(str, shapes[1]))}: use a checkpoint trained on "
                        "this data (prepare.image_size, channels) or resize in the synthetic "
                        f"set's transform{grey}")


def _kind(image) -> str:
    """What an item's image is, for a batch: a PIL image, or a tensor's or array's dtype."""
    if isinstance(image, Image.Image):
        return "PIL images"
    dtype = getattr(image, "dtype", None)
    return f"{type(image).__name__} of {dtype}" if dtype is not None else type(image).__name__


def _shape(image) -> tuple[int, ...] | None:
    """C×H×W of a tensor, array or PIL image; None for anything else."""
    if isinstance(image, Image.Image):
        return (len(image.getbands()), image.height, image.width)
    shape = getattr(image, "shape", None)
    return tuple(shape) if shape is not None and len(shape) == 3 else None
