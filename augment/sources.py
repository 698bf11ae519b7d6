"""Where images come from: an image folder, a CSV manifest, a torchvision data set, or the
embedded digits. :func:`load_source` returns a :class:`Loaded`: the pool that train comes from,
the test and val splits the source gives (None: the prepare stage carves them from the pool),
and ``skipped``, the ``{"path", "reason"}`` of files left out on purpose (unreadable, not an
image): they are counted and written to ``skipped.csv``, never dropped silently.

Anything that would change the classes or read outside the data root is an error instead.
"""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .data import ImageSet, conform, resize_square
from .errors import DataError

Skipped = list[dict[str, str]]
_UNREADABLE = (OSError, UnidentifiedImageError, SyntaxError, ValueError,
               Image.DecompressionBombError)


class Loaded(NamedTuple):
    """A source's images: the pool train is drawn from, the test and val splits it gives (None:
    carve them from the pool), skipped files, and decoding stats (``upscaled``)."""

    pool: ImageSet
    test: ImageSet | None
    val: ImageSet | None
    skipped: Skipped
    stats: dict


# ---------------------------------------------------------------------------------- decoding
# Transparent pixels are composited onto white (what a viewer or a web page shows), not left
# with whatever colour a file stores under them (often black, often white: one icon set could
# come out on both backgrounds).
BACKGROUND = (255, 255, 255)


def read_rgb(path: Path) -> torch.Tensor | str:
    """The image at ``path`` as uint8 3×H×W, or a reason string if it cannot be decoded: turned
    upright by its EXIF orientation (as phones store photos), 16-bit and float samples scaled
    to 8 bits (not clipped to white or black), transparency composited onto white."""
    try:
        with Image.open(path) as image:
            image.load()  # decode now: a truncated file fails here, not later
            array = np.asarray(_to_rgb(ImageOps.exif_transpose(image)))
    except _UNREADABLE as err:
        return f"unreadable image ({err.__class__.__name__}: {str(err)[:120]})"
    return torch.from_numpy(array.copy()).permute(2, 0, 1)


def _to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB: wide grey scaled (:func:`_wide_to_8bit`), alpha (its own band or a palette's
    transparency) composited onto :data:`BACKGROUND`; other modes as Pillow converts them."""
    if image.mode.startswith("I") or image.mode == "F":
        return Image.fromarray(_wide_to_8bit(image)).convert("RGB")
    if image.mode == "La":  # premultiplied grey + alpha (TIFF): Pillow converts it via LA
        image = image.convert("LA")
    if "transparency" in image.info or image.mode in ("PA", "LA"):  # P, L, RGB keys
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        flat = Image.new("RGB", image.size, BACKGROUND)
        flat.paste(image, mask=image.getchannel("A"))
        return flat
    return image.convert("RGB")


def _wide_to_8bit(image: Image.Image) -> np.ndarray:
    """Grey samples wider than 8 bits as 8-bit, by the range they use: 16-bit ("I;16*", or
    32-bit "I" above 255: 16-bit PNGs and TIFFs) divided by 257; float ("F" TIFFs) in 0-1 times
    255; up to 255 as they are (Pillow would clip the first to white and floats to black).
    Another range is not guessed at: a ValueError (the file is listed as unreadable)."""
    wide = np.asarray(image, dtype=np.float64)
    limit = 255 if image.mode == "F" else 65535
    if not (wide.size and np.isfinite(wide).all() and 0 <= wide.min() and wide.max() <= limit):
        span = f"{wide.min():g}..{wide.max():g}" if wide.size else "none"
        raise ValueError(f"{image.mode}-mode samples {span}, outside 0-{limit}: convert the file "
                         "to 8-bit")
    if image.mode == "F" and wide.max() <= 1:
        wide = wide * 255
    elif image.mode.startswith("I;16") or wide.max() > 255:
        wide = wide / 257
    return np.rint(wide).astype(np.uint8)


def decode_all(items: Sequence[tuple[Path, int]], classes: tuple[str, ...], *,
               image_size: int | None, channels: int | None, root: Path
               ) -> tuple[ImageSet, Skipped, dict]:
    """Decode, size and colour-convert every (path, label); unreadable files go to ``skipped``."""
    data, skipped, stats, _ = _decode(items, classes, image_size=image_size, channels=channels,
                                      root=root)
    return data, skipped, stats


def _decode(items: Sequence[tuple[Path, int]], classes: tuple[str, ...], *,
            image_size: int | None, channels: int | None, root: Path
            ) -> tuple[ImageSet, Skipped, dict, np.ndarray]:
    """:func:`decode_all`, plus the indices of the ``items`` that were kept, in order. Each
    image is resized as it is read, so memory holds the data set at its prepared size, not
    every photo at full resolution."""
    images, kept, skipped, upscaled = [], [], [], 0
    for i, (path, _) in enumerate(items):
        image = read_rgb(path)
        if isinstance(image, str):
            skipped.append({"path": os.path.relpath(path, root), "reason": image})
            continue
        if image_size:
            upscaled += min(image.shape[-2:]) < image_size
            image = resize_square(image[None], image_size)[0]
        images.append(image)
        kept.append(i)
    if not images:
        reasons = "; ".join(f"{s['path']}: {s['reason']}" for s in skipped[:3])
        raise DataError(f"{root}: none of the {len(items)} image files could be read (e.g. "
                        f"{reasons}); check that they are images in a format Pillow reads")
    if not image_size:
        _check_one_size(images, root)  # native size: all must share one square size
    batch = torch.stack(images)  # N×3×S×S
    grey = bool((batch == batch[:, :1]).all())  # every pixel R = G = B: a greyscale data set
    channels = channels or (1 if grey else 3)
    if grey and channels == 1:
        batch = batch[:, :1].contiguous()  # exact; the luma weights would turn v into v - 1
    labels = np.asarray([items[i][1] for i in kept], dtype=np.int64)
    data = conform(ImageSet(batch.numpy(), labels, classes), image_size=None, channels=channels)
    return data, skipped, {"upscaled": upscaled}, np.asarray(kept, dtype=np.int64)


def _check_one_size(images: list[torch.Tensor], root: Path) -> None:
    """All images share one square size (when no prepare.image_size is given)."""
    sizes = sorted({tuple(im.shape[-2:]) for im in images})
    if len(sizes) > 1:
        raise DataError(f"{root}: images have {len(sizes)} different sizes (e.g. {sizes[:3]}); "
                        "set prepare.image_size to resize them all")
    if sizes[0][0] != sizes[0][1]:
        raise DataError(f"{root}: images are {sizes[0][0]}x{sizes[0][1]}, not square; set "
                        "prepare.image_size to resize and centre-crop them")


# ----------------------------------------------------------------------------------- folder
# The split layout's folder names and the split each one is (val has three common spellings).
SPLIT_NAMES = {"train": "train", "test": "test", "val": "val", "valid": "val",
               "validation": "val"}


def load_folder(root: str | Path, *, image_size: int | None = None, channels: int | None = None,
                classes: Sequence[str] | None = None) -> tuple[ImageSet, Skipped, dict]:
    """The plain layout ``root/<class>/**/<image>``; files that are not images are skipped.
    A root with a ``train`` folder is the split layout: :func:`load_split_folder` reads it."""
    root = _existing_folder(root)
    if split_folders(root) is not None:
        raise DataError(f"{root}: split layout (it has a train folder); read it with "
                        "load_split_folder, or prepare.source: folder (either layout)")
    found = class_folders(root)
    if not found:
        raise DataError(f"{root}: no class folders found; expected root/<class>/<image> "
                        "(ImageFolder layout)")
    _refuse_split_names(root, found)
    class_list = _fixed_classes(found, classes, what=f"class folder(s) in {root}")
    items, skipped = _image_files(root, class_list, base=root)
    _check_each_file_once(items, root)
    data, unreadable, stats = decode_all(items, tuple(class_list), image_size=image_size,
                                         channels=channels, root=root)
    return data, skipped + unreadable, stats


def load_split_folder(root: str | Path, *, image_size: int | None = None,
                      channels: int | None = None, classes: Sequence[str] | None = None
                      ) -> Loaded:
    """The split layout ``root/train/<class>/**/<image>`` plus ``root/test/…`` and ``root/val/…``
    (or ``valid``, ``validation``) when present: ``pool`` is train, ``test``/``val`` are the
    given splits or None (then :func:`augment.stages.prepare.run` carves them from train). Every
    split must have a folder for every class; skipped paths are relative to ``root``."""
    root = _existing_folder(root)
    folders = split_folders(root)
    if folders is None:
        raise DataError(f"{root}: no train folder; the split layout is root/train/<class>/<image> "
                        "(+ root/test/…, root/val/…); read root/<class>/<image> with load_folder")
    found = {split: _split_classes(folder) for split, folder in folders.items()}
    class_list = _fixed_classes([n for names in found.values() for n in names], classes,
                                what=f"class folder(s) in {root}")  # train's spelling first
    _check_same_classes(folders, found, class_list)
    items, split_of, skipped = [], [], []
    for split, folder in folders.items():
        files, listed = _image_files(folder, class_list, base=root, split=split)
        items += files
        split_of += [split] * len(files)
        skipped += listed
    _check_each_file_once(items, root)
    data, unreadable, stats, kept = _decode(items, tuple(class_list), image_size=image_size,
                                            channels=channels, root=root)
    split_of = np.asarray(split_of)[kept]
    parts = {split: data.subset(np.flatnonzero(split_of == split)) for split in folders}
    _check_readable(parts, folders)
    return Loaded(parts["train"], parts.get("test"), parts.get("val"), skipped + unreadable,
                  stats)


def split_folders(root: Path) -> dict[str, Path] | None:
    """``{split: folder}`` if ``root`` is in the split layout (it has a ``train`` folder), else
    None. In the split layout every (non-hidden) folder of ``root`` must name a split."""
    subs = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if "train" not in subs:
        return None
    other = [name for name in subs if name not in SPLIT_NAMES]
    if other:
        raise DataError(f"{root}: mixed layout: the train folder makes it the split layout "
                        f"(root/<split>/<class>/<image>, splits {', '.join(SPLIT_NAMES)}), but "
                        f"{', '.join(other)} {'is' if len(other) == 1 else 'are'} not a split; "
                        "move their classes into train/ (or test/, val/) or remove them. A class "
                        "called train: rename it")
    vals = [name for name in subs if SPLIT_NAMES[name] == "val"]
    if len(vals) > 1:
        raise DataError(f"{root}: {len(vals)} validation folders ({', '.join(vals)}); keep one")
    order = list(SPLIT_NAMES)
    return {SPLIT_NAMES[name]: root / name for name in sorted(subs, key=order.index)}


_SPLIT_LIKE = {"train", "training", "test", "testing", "val", "valid", "validation"}


def _refuse_split_names(root: Path, found: Sequence[str]) -> None:
    """Class folders that are all split names in another spelling (``Train/``, ``testing/``)
    are a split layout this reader does not recognise, not classes."""
    if len(found) >= 2 and all(name.lower() in _SPLIT_LIKE for name in found):
        raise DataError(f"{root}: its folders {', '.join(found)} look like splits, not classes; "
                        "for the split layout name them train/, test/ and val/ (lower case), "
                        "each holding <class>/<image>")


def _existing_folder(root: str | Path) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"prepare.root={str(root)!r}: no such folder; point it at a folder of "
                        "class sub-folders (root/<class>/<image>) or of split folders "
                        "(root/train/<class>/<image>, root/test/…)")
    return root


def class_folders(folder: Path) -> list[str]:
    """The class folders of ``folder``, sorted (ImageFolder's rule), hidden ones (``.git``,
    ``.ipynb_checkpoints``) left out as hidden files are."""
    return sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))


def _key(name) -> str:
    """A class name as names are compared: NFC, so that a folder named on a Mac (é stored as e +
    accent, NFD) is the class its name shows, as typed in prepare.classes or a CSV (NFC)."""
    return unicodedata.normalize("NFC", str(name))


def _split_classes(folder: Path) -> list[str]:
    """The class folders of one split folder; none is an error."""
    found = class_folders(folder)
    if not found:
        raise _empty_split(folder)
    return found


def _empty_split(folder: Path) -> DataError:
    fix = ("put the training images there" if folder.name == "train" else
           f"put images there or remove {folder.name}/ to carve that split from train")
    return DataError(f"{folder}: empty split folder; expected {folder.name}/<class>/<image>: "
                     f"{fix}")


def _check_same_classes(folders: dict[str, Path], found: dict[str, list[str]],
                        class_list: Sequence[str]) -> None:
    """Every split has a folder for every class (a class missing from test cannot be scored)."""
    gaps = []
    keys = {s: {_key(n) for n in names} for s, names in found.items()}
    for name in class_list:
        have = [folders[s].name for s in folders if _key(name) in keys[s]]
        lack = [folders[s].name for s in folders if _key(name) not in keys[s]]
        if lack:
            gaps.append(f"{name} (in {', '.join(have) or 'no split'}; not in {', '.join(lack)})")
    if gaps:
        root = folders["train"].parent
        raise DataError(f"{root}: class(es) missing from a split: {'; '.join(gaps)}. Every split "
                        "needs a folder of images for every class: add them, or remove the "
                        "class from every split (and from prepare.classes)")


def _check_readable(parts: dict[str, ImageSet], folders: dict[str, Path]) -> None:
    """A given split must keep an image of every class after the unreadable ones are skipped."""
    for split, part in parts.items():
        lost = [part.classes[c] for c in np.flatnonzero(part.counts() == 0)]
        if lost:
            raise DataError(f"{folders[split]}: no readable image of class(es) {', '.join(lost)} "
                            "(every one failed to decode); add readable images or remove the class")


def _image_files(folder: Path, class_list: Sequence[str], *, base: Path,
                 split: str | None = None) -> tuple[list[tuple[Path, int]], Skipped]:
    """(path, label) of the image files below ``folder/<class>/``, and the other files as
    skipped (paths relative to ``base``). A class folder without images is an error."""
    from torchvision.datasets.folder import IMG_EXTENSIONS, make_dataset

    skipped: Skipped = []

    def is_image(path: str) -> bool:
        name = os.path.basename(path)
        if any(part.startswith(".") for part in Path(os.path.relpath(path, folder)).parts):
            return False  # hidden, or below a hidden folder (.ipynb_checkpoints/ copies)
        ok = name.lower().endswith(IMG_EXTENSIONS)
        if not ok:
            skipped.append({"path": os.path.relpath(path, base), "reason": "not an image file "
                            f"(extensions: {' '.join(IMG_EXTENSIONS)})"})
        return ok

    index = {_key(c): i for i, c in enumerate(class_list)}
    on_disk = {d: index[_key(d)] for d in class_folders(folder) if _key(d) in index}
    items = make_dataset(folder, on_disk, is_valid_file=is_image, allow_empty=True)
    if not items and split is not None:
        raise _empty_split(folder)
    present = {label for _, label in items}
    empty = [c for i, c in enumerate(class_list) if i not in present]
    if empty:
        raise DataError(f"{folder}: Found no valid file for the classes {', '.join(empty)} "
                        f"(extensions: {' '.join(IMG_EXTENSIONS)}). Add images to those folders "
                        "or remove them.")
    return [(Path(p), y) for p, y in items], skipped


def _check_each_file_once(items: Sequence[tuple[Path, int]], base: Path) -> None:
    """One image reached through two folder paths (a link to a folder already read, a link
    loop) would be counted twice, could land in train and in test, or carry two labels: an
    error naming both paths."""
    seen: dict[tuple[str, str], Path] = {}
    for path, _ in items:  # by the real folder: linked storage (one blob per content) is fine
        first = seen.setdefault((os.path.realpath(path.parent), path.name), path)
        if first != path:
            raise DataError(f"{base}: {os.path.relpath(path, base)} is the same file as "
                            f"{os.path.relpath(first, base)} (a link to a folder already "
                            "read?); keep each image in one place: remove the link")


def _fixed_classes(found: Sequence[str], fixed: Sequence[str] | None, *, what: str) -> list[str]:
    """The class list: ``fixed`` if given (then every found class must be in it, by
    :func:`_key`), else found."""
    if fixed is None:  # one class per name as it shows (its first spelling on disk)
        return sorted({_key(c): str(c) for c in reversed(list(found))}.values())
    known = {_key(c) for c in fixed}
    extra = sorted({str(c) for c in found if _key(c) not in known})
    if extra:
        raise DataError(f"{what} not in prepare.classes: {', '.join(map(str, extra))}; add "
                        "them to prepare.classes or remove them from the data")
    return list(fixed)


# -------------------------------------------------------------------------------------- csv
def load_csv(manifest: str | Path, *, path_column: str = "path", label_column: str = "label",
             image_size: int | None = None, channels: int | None = None,
             classes: Sequence[str] | None = None) -> tuple[ImageSet, Skipped, dict]:
    """A CSV manifest with one row per image; paths are relative to the CSV's folder and must
    stay inside it. Missing files are skipped (listed); bad rows are errors."""
    import pandas as pd

    manifest = Path(manifest)
    try:
        table = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DataError(f"prepare.manifest={str(manifest)!r}: cannot read the CSV ({err})") from None
    missing = [c for c in (path_column, label_column) if c not in table.columns]
    if missing:
        raise DataError(f"{manifest}: missing column(s) {', '.join(missing)}; found "
                        f"{', '.join(table.columns) or 'none'}. Rename them or set "
                        "prepare.path_column / prepare.label_column")
    table[label_column] = table[label_column].str.strip()  # " cat" is cat, not a new class
    # "a, b" spacing and Windows separators (imgs\cat\1.jpg) are the same paths here
    table[path_column] = table[path_column].str.strip().str.replace("\\", "/", regex=False)
    _check_rows(table, manifest, path_column, label_column)
    root = manifest.parent.resolve()
    class_list = _fixed_classes(table[label_column].unique(), classes,
                                what=f"label(s) in {manifest}")
    index = {_key(c): i for i, c in enumerate(class_list)}
    items, skipped = [], []
    for rel, label in zip(table[path_column], table[label_column]):
        path = root / rel
        if path.is_file():
            items.append((path, index[_key(label)]))
        else:
            skipped.append({"path": rel, "reason": "file listed in the manifest does not exist"})
    if not skipped and not items:
        raise DataError(f"{manifest}: lists no images; add a row per image ({path_column}, "
                        f"{label_column})")
    if not items:
        raise DataError(f"{manifest}: none of the {len(skipped)} files it lists exists (e.g. "
                        f"{root / skipped[0]['path']}); paths are relative to the CSV's folder "
                        f"{root}: check prepare.path_column ({path_column!r}) and the paths")
    data, unreadable, stats = decode_all(items, tuple(class_list), image_size=image_size,
                                         channels=channels, root=root)
    return data, skipped + unreadable, stats


def _check_rows(table, manifest: Path, path_column: str, label_column: str) -> None:
    """Empty labels/paths and paths escaping the CSV's folder are errors naming the lines."""
    root = manifest.parent.resolve()
    line = lambda mask: ", ".join(str(i + 2) for i in np.flatnonzero(mask)[:10])  # noqa: E731
    empty = table[label_column].str.strip() == ""
    if empty.any():
        raise DataError(f"{manifest}: empty {label_column!r} on line(s) {line(empty)}; give every "
                        "row a label or remove the row")
    no_path = table[path_column].str.strip() == ""
    if no_path.any():
        raise DataError(f"{manifest}: empty {path_column!r} on line(s) {line(no_path)}")
    resolved = table[path_column].map(lambda p: (root / p).resolve())
    escapes = ~resolved.map(lambda p: p.is_relative_to(root))
    if escapes.any():
        raise DataError(f"{manifest}: path(s) outside the manifest's folder {root} on line(s) "
                        f"{line(escapes)} (e.g. {table[path_column][escapes].iloc[0]!r}); "
                        "paths must be relative to the CSV and stay below it")
    repeated = resolved.duplicated()
    if repeated.any():  # one image twice could land in train and in test
        raise DataError(f"{manifest}: line(s) {line(repeated)} list an image an earlier line "
                        f"already lists (e.g. {table[path_column][repeated].iloc[0]!r}); list "
                        "every image once")


# ------------------------------------------------------------------------ built-in data sets
def load_digits_source() -> tuple[ImageSet, None]:
    """scikit-learn's embedded 8×8 digits (1,797 images, 16 grey levels); no official test split."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None]  # N×1×8×8
    classes = tuple(str(c) for c in bunch.target_names)
    return ImageSet(images, bunch.target.astype(np.int64), classes), None


_TORCHVISION = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "kmnist": "KMNIST",
                "cifar10": "CIFAR10", "svhn": "SVHN"}


def load_torchvision_source(name: str, *, root: str, download: bool) -> tuple[ImageSet, ImageSet]:
    """A torchvision data set's official (train, test) splits, read from ``root``."""
    import torchvision.datasets as tvd

    cls = getattr(tvd, _TORCHVISION[name])
    parts = []
    for train in (True, False):
        kwargs = {"split": "train" if train else "test"} if name == "svhn" else {"train": train}
        try:
            ds = cls(root=root, download=download, **kwargs)
        except RuntimeError as err:  # torchvision: "Dataset not found or corrupted..."
            raise DataError(f"prepare.source={name}: no usable files under prepare.root={root!r} "
                            f"({err}). Put the data there or set prepare.download: true "
                            "(needs internet).") from None
        parts.append(_from_torchvision(ds, name))
    return parts[0], parts[1]


def _from_torchvision(ds, name: str) -> ImageSet:
    data = np.asarray(ds.data)
    if data.ndim == 3:  # MNIST family: N×H×W
        data = data[:, None]
    elif name == "cifar10":  # N×H×W×C
        data = data.transpose(0, 3, 1, 2)
    labels = np.asarray(getattr(ds, "targets", None) if name != "svhn" else ds.labels)
    classes = tuple(getattr(ds, "classes", None) or [str(i) for i in range(10)])
    return ImageSet(np.ascontiguousarray(data, dtype=np.uint8), labels.astype(np.int64), classes)


SOURCES = ("digits", *_TORCHVISION, "folder", "csv")


def load_source(source: str, *, root: str = "data/raw", download: bool = False,
                manifest: str | None = None, path_column: str = "path",
                label_column: str = "label", image_size: int | None = None,
                channels: int | None = None, classes: Sequence[str] | None = None) -> Loaded:
    """Load ``source`` (see :class:`Loaded`). A folder is read in either layout: split
    (``root/train/<class>/…``, :func:`load_split_folder`) or plain (:func:`load_folder`).

    Folder and CSV images are sized and converted while decoding; the caller conforms the
    built-in sets (:func:`augment.data.conform`).
    """
    sized = dict(image_size=image_size, channels=channels, classes=classes)
    if source == "folder":
        if split_folders(_existing_folder(root)) is not None:
            return load_split_folder(root, **sized)
        return _pool_only(load_folder(root, **sized))
    if source == "csv":
        if manifest is None:
            raise DataError("prepare.source=csv needs prepare.manifest: the CSV file's path")
        return _pool_only(load_csv(manifest, path_column=path_column,
                                   label_column=label_column, **sized))
    if source == "digits":
        pool, test = load_digits_source()
    elif source in _TORCHVISION:
        pool, test = load_torchvision_source(source, root=root, download=download)
    else:
        raise DataError(f"prepare.source: unknown source {source!r}; choose one of: "
                        f"{', '.join(SOURCES)}")
    if classes is not None:
        pool, test = (None if part is None else select_classes(part, classes, source=source)
                      for part in (pool, test))
    return Loaded(pool, test, None, [], {})


def select_classes(data: ImageSet, classes: Sequence[str], *, source: str) -> ImageSet:
    """The images of ``classes`` only, relabelled 0..len-1 in that order (a built-in set's
    subset, e.g. CIFAR-10's cat and dog)."""
    unknown = [str(c) for c in classes if c not in data.classes]
    if unknown:
        raise DataError(f"prepare.classes: {', '.join(unknown)} not among {source}'s classes "
                        f"({', '.join(data.classes)}); fix the names or set classes: null")
    new_label = {data.classes.index(c): i for i, c in enumerate(classes)}
    keep = np.flatnonzero(np.isin(data.labels, list(new_label)))
    labels = np.array([new_label[y] for y in data.labels[keep].tolist()], dtype=np.int64)
    return ImageSet(data.images[keep], labels, tuple(classes))


def _pool_only(loaded: tuple[ImageSet, Skipped, dict]) -> Loaded:
    pool, skipped, stats = loaded
    return Loaded(pool, None, None, skipped, stats)
