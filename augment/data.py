"""Loading image data sets, splitting them, and the prepared on-disk layout.

Images travel as ``uint8`` arrays of shape ``N×C×H×W`` with ``int64`` labels in ``[0, K)`` and a
tuple of K class names. The prepared layout (``<dir>/{train,val,test}/{images,labels}.npy`` and
``<dir>/classes.json``) is what every later stage reads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import DataError
from .io import atomic_path, save_arrays

SPLITS = ("train", "val", "test")
MINORITY_FRACTION = 0.3  # "minority classes": the bottom 30 % of classes by train count


@dataclass(frozen=True)
class ImageSet:
    """Images (uint8, N×C×H×W), integer labels (N,) and the class names they index."""

    images: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]

    def subset(self, index: np.ndarray) -> "ImageSet":
        return ImageSet(self.images[index], self.labels[index], self.classes)

    def counts(self) -> np.ndarray:
        """Images per class, shape (K,)."""
        return np.bincount(self.labels, minlength=len(self.classes))


def minority_classes(counts: np.ndarray, fraction: float = MINORITY_FRACTION) -> list[int]:
    """Indices of the ``ceil(fraction·K)`` classes with the fewest train images (ties: by index)."""
    k = max(1, int(np.ceil(fraction * len(counts) - 1e-9)))
    return sorted(np.argsort(counts, kind="stable")[:k].tolist())


def balanced_index(labels: np.ndarray, *, seed: int) -> np.ndarray:
    """Every index once, plus random repeats (with replacement) filling each class to the max."""
    rng = np.random.default_rng(seed)
    counts = np.bincount(labels)
    extra = [rng.choice(np.flatnonzero(labels == c), counts.max() - n)
             for c, n in enumerate(counts) if 0 < n < counts.max()]
    return np.concatenate([np.arange(len(labels)), *extra]).astype(np.int64)


# ------------------------------------------------------------------------------------ transforms
def resize_square(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize the shorter side to ``size`` (antialiased), then centre-crop to size×size."""
    from torchvision.transforms.v2 import functional as TF  # ~3 s import: only when needed

    if images.shape[-2:] == (size, size):
        return images
    return TF.center_crop(TF.resize(images, [size], antialias=True), [size, size])


def conform(data: ImageSet, *, image_size: int | None, channels: int | None) -> ImageSet:
    """Resize/crop to ``image_size`` and convert to ``channels`` (1: luma, 3: replicate)."""
    resize = image_size is not None and data.images.shape[-2:] != (image_size, image_size)
    recolour = channels is not None and data.images.shape[1] != channels
    if not (resize or recolour):
        return data
    images = torch.from_numpy(data.images)
    if resize:
        images = resize_square(images, image_size)
    if recolour:
        from torchvision.transforms.v2 import functional as TF

        images = (images.expand(-1, 3, -1, -1) if channels == 3
                  else TF.rgb_to_grayscale(images, num_output_channels=1))
    return ImageSet(images.contiguous().numpy(), data.labels, data.classes)


def cap_per_class(data: ImageSet, cap: int, *, seed: int) -> ImageSet:
    """Keep at most ``cap`` random images of each class (for quick runs on large sets)."""
    rng = np.random.default_rng(seed)
    keep = [rng.permutation(np.flatnonzero(data.labels == c))[:cap] for c in range(len(data.classes))]
    return data.subset(np.sort(np.concatenate(keep)))


def long_tail(data: ImageSet, ratio: float, *, seed: int) -> ImageSet:
    """CIFAR-LT recipe: class c keeps ``n_max · ratio^(−c/(K−1))`` random images (c = class index).

    ``ratio`` = 1 returns the data unchanged; the rarest class keeps at least one image.
    """
    if ratio == 1.0:
        return data
    counts, k = data.counts(), len(data.classes)
    keep_n = [max(1, int(counts.max() * ratio ** (-c / max(k - 1, 1)))) for c in range(k)]
    rng = np.random.default_rng(seed)
    keep = [rng.permutation(np.flatnonzero(data.labels == c))[: keep_n[c]] for c in range(k)]
    return data.subset(np.sort(np.concatenate(keep)))


def stratified_split(data: ImageSet, fraction: float, *, seed: int, what: str = "split",
                     before: np.ndarray | None = None) -> tuple[ImageSet, ImageSet]:
    """Split off ``fraction`` of ``data``, stratified by label (sklearn). ``what`` names the
    split and ``before`` gives the class counts before earlier splits were carved, for the
    errors (a class of 2 has 1 left after the test split: the fix is in the 2)."""
    from sklearn.model_selection import train_test_split  # ~2 s import: prepare stage only

    counts = data.counts()
    few = np.flatnonzero(counts < 2)
    if len(few):
        raise DataError(f"class(es) with too few images for the {what}: "
                        f"{_class_counts(data, few, before)}; every class needs images in "
                        "train, val and test: add images, or remove the class")
    index = np.arange(len(data.labels))
    try:
        keep, held = train_test_split(index, test_size=fraction, stratify=data.labels,
                                      random_state=seed)
    except ValueError as err:  # e.g. fewer held-out images than classes
        raise DataError(f"cannot carve the {what} from {len(index)} images of {len(counts)} "
                        f"classes with fraction {fraction}: {err}. Add images or raise "
                        "prepare.val_fraction / prepare.test_fraction.") from None
    _check_both_sides(data, keep, held, fraction, what, before)
    return data.subset(np.sort(keep)), data.subset(np.sort(held))


def _check_both_sides(data: ImageSet, keep: np.ndarray, held: np.ndarray, fraction: float,
                      what: str, before: np.ndarray | None) -> None:
    """Stratification rounds: a class of a few images can get none on one side, and a val or
    test split without a class scores its recall as 0 and selects models blind to it."""
    k = len(data.classes)
    sides = np.stack([np.bincount(data.labels[part], minlength=k) for part in (keep, held)])
    lost = np.flatnonzero((sides == 0).any(axis=0))
    if len(lost):
        need = 1 / min(fraction, 1 - fraction)  # of the images this split is carved from
        if before is not None:  # in all: earlier splits took their share first
            need *= before.sum() / len(data.labels)
        raise DataError(f"class(es) {_class_counts(data, lost, before)} get no image on one "
                        f"side of the {what} ({fraction:g}): each class needs about "
                        f"{int(np.ceil(need - 1e-9))} images{' in all' if before is not None else ''}"
                        "; add images, raise prepare.val_fraction / prepare.test_fraction, or "
                        "remove the class")


def _class_counts(data: ImageSet, classes: np.ndarray, before: np.ndarray | None) -> str:
    """"cat (1)", or with the counts before earlier splits "cat (2 in all, 1 left)"."""
    counts = data.counts()
    return ", ".join(f"{data.classes[c]} ({counts[c]})" if before is None else
                     f"{data.classes[c]} ({before[c]} in all, {counts[c]} left)" for c in classes)


def check_classes(data: ImageSet) -> None:
    """Refuse data sets that cannot train a conditional model: < 2 classes or an empty class."""
    counts = data.counts()
    if len(data.classes) < 2:
        raise DataError(f"found {len(data.classes)} class(es); a classifier needs at least 2")
    empty = [data.classes[c] for c in np.flatnonzero(counts == 0)]
    if empty:
        raise DataError(f"class(es) with no images: {', '.join(empty)}; add images or remove "
                        "the class")


# ---------------------------------------------------------------------------- prepared layout
def save_prepared(directory: str | Path, splits: dict[str, ImageSet],
                  skipped: list[dict] = ()) -> None:
    """Write the prepared splits atomically: the directory appears complete or not at all.

    ``skipped`` (files left out, with the reason) goes to ``skipped.csv``, header always present.
    """
    import pandas as pd

    with atomic_path(directory, may_hold=(*SPLITS, "classes.json", "skipped.csv")) as tmp:
        for name, part in splits.items():
            save_arrays(tmp / name, images=part.images, labels=part.labels)
        (tmp / "classes.json").write_text(json.dumps(list(splits["train"].classes), indent=2) + "\n")
        pd.DataFrame(list(skipped), columns=["path", "reason"]).to_csv(tmp / "skipped.csv",
                                                                       index=False)


def load_prepared(directory: str | Path, splits=SPLITS) -> dict[str, ImageSet]:
    """Read what :func:`save_prepared` wrote; a clear error if it is missing or inconsistent."""
    directory = Path(directory)
    try:
        classes = tuple(json.loads((directory / "classes.json").read_text()))
        out = {s: ImageSet(np.load(directory / s / "images.npy", allow_pickle=False),
                           np.load(directory / s / "labels.npy", allow_pickle=False), classes)
               for s in splits}
    except (OSError, ValueError) as err:
        raise DataError(f"{directory}: prepared data missing or unreadable ({err}); "
                        "run the prepare stage first (augment prepare / dvc repro prepare)") from None
    for name, part in out.items():
        if part.images.ndim != 4 or len(part.images) != len(part.labels):
            raise DataError(f"{directory}/{name}: images must be N×C×H×W with one label each")
    return out


def load_synthetic(directory: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """The arrays :func:`write_synthetic` stored: (images uint8 N×C×H×W, labels int64)."""
    directory = Path(directory)
    try:
        return (np.load(directory / "images.npy", allow_pickle=False),
                np.load(directory / "labels.npy", allow_pickle=False))
    except (OSError, ValueError) as err:
        raise DataError(f"{directory}: synthetic data missing or unreadable ({err}); run the "
                        "synthesize stage first (augment synthesize / dvc repro synthesize)") from None


def near_chance(balanced_accuracy: float, num_classes: int) -> bool:
    """Less than a quarter of the way from chance (1/K) to 1: a classifier (the judge, the
    evaluate stage's models) that has learned too little for its scores to mean much."""
    chance = 1 / num_classes
    return balanced_accuracy < chance + 0.25 * (1 - chance)


# why a synthesize folder can be empty, and the fix (the synthesize stage warns, evaluate refuses)
NOTHING_DRAWN = ("every class already has target x multiple images (balanced data at target: "
                 "max) or target is 0; raise synthesize.multiple (e.g. 2.0) or synthesize.target")


def check_synthetic(synthetic: tuple[np.ndarray, np.ndarray], train: ImageSet, directory) -> None:
    """Refuse a synthetic set of other data (a stale or foreign folder): other image shape,
    labels outside the prepared classes, or (by its manifest) other class names per label."""
    images, labels = synthetic
    shape, want = images.shape[1:], train.images.shape[1:]
    labels_ok = len(labels) == len(images) and (
        len(labels) == 0 or (labels.min() >= 0 and labels.max() < len(train.classes)))
    swapped = sorted(_manifest_names(directory).items() - dict(enumerate(train.classes)).items())
    if shape != want or not labels_ok or swapped:
        raise DataError(f"{directory}: synthetic samples do not match the prepared data (images "
                        f"{'×'.join(map(str, shape))} vs {'×'.join(map(str, want))}, labels must "
                        f"be 0..{len(train.classes) - 1}, one per image, naming the classes "
                        f"{', '.join(train.classes)}; the manifest has {swapped or 'those'}); "
                        "re-run the synthesize stage (augment synthesize / dvc repro synthesize)")


def _manifest_names(directory) -> dict[int, str]:
    """label -> class name as the synthesize stage's manifest.csv records them ({} without one)."""
    import pandas as pd

    path = Path(directory) / "manifest.csv"
    if not path.is_file():
        return {}
    table = pd.read_csv(path, usecols=["label", "class_name"], dtype={"class_name": str})
    return dict(zip(table["label"].astype(int), table["class_name"]))
