"""Class-balanced sampling from a trained conditional generator.

:func:`balance_counts` says how many synthetic images each class needs; :func:`synthesize`
draws exactly that many, deterministically for a seed; :func:`write_synthetic` stores them as an
ImageFolder-style PNG tree, a ``manifest.csv`` and arrays for fast loading.
"""

from __future__ import annotations

import json
import numbers
import re
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import pandas as pd
import torch
from torch import nn

from .checkpoint import load_generator
from .config import SynthesizeConfig as Defaults
from .errors import DataError
from .io import atomic_path, save_arrays, write_png
from .runtime import mixed_precision, progress, resolve_device, to_uint8

Filter = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (images, labels) -> keep mask

Target = str | int | Mapping[str | int, int]


def class_counts(counts: Mapping[int | str, int] | int, classes: tuple[str, ...] | None,
                 num_classes: int) -> dict[int, int]:
    """``{class index: n}`` from ``counts``: one whole number for every class, or ``{class: n}``
    by index or name (numpy integers too); anything else is an error naming the fix."""
    if _whole(counts):
        counts = dict.fromkeys(range(num_classes), counts)
    if not isinstance(counts, Mapping):
        raise DataError(f"counts: got {counts!r}; expected a whole number for every class or "
                        "{class: n}, e.g. augment.balance_counts(real_labels, num_classes=K)")
    bad = {k: v for k, v in counts.items() if not _whole(v) or v < 0}
    if bad:
        raise DataError(f"counts must be whole numbers >= 0, got {bad}")
    per_class: dict[int, int] = {}
    for key, n in counts.items():
        index = _class_index(key, classes, num_classes)
        if index in per_class:
            raise DataError(f"counts: class {key!r} is given twice (by index and by name); give "
                            "each class once")
        per_class[index] = int(n)
    return per_class


def _whole(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def check_whole(name: str, value, lo: int, hi: int | None = None) -> int:
    """``value`` as an int in [lo, hi], else a DataError naming ``name`` (a float batch size or
    seed had failed deep inside torch)."""
    if not _whole(value) or value < lo or (hi is not None and value > hi):
        span = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise DataError(f"{name}: got {value!r}; expected an integer {span}")
    return int(value)


# what torch's generators take; the library's limit, above params.yaml's config.MAX_SEED
# (the stages derive seeds from it: seed + k)
TORCH_SEED_MAX = 2**63 - 1


def _class_index(key: str | int, classes: tuple[str, ...] | None, num_classes: int) -> int:
    """A class given by index or by name → its index; unknown classes are an error."""
    if classes is not None and isinstance(key, str) and key in classes:
        return classes.index(key)
    if _whole(key) and 0 <= key < num_classes:
        return int(key)
    known = ", ".join(classes) if classes is not None else f"0..{num_classes - 1}"
    fix = (f"an index 0..{num_classes - 1}" if _whole(key) or classes is None
           else "one of those names")
    raise DataError(f"unknown class {key!r} in the requested counts (synthesize.target, or the "
                    f"counts / target given); known classes: {known}; use {fix}")


def balance_counts(labels, *, num_classes: int, target: Target = Defaults.target,
                   multiple: float = Defaults.multiple,
                   classes: tuple[str, ...] | None = None) -> dict[int, int]:
    """Synthetic images per class so that real + synthetic reaches ``target × multiple``.

    ``target``: ``"max"`` (the largest class count), an int (the same goal for every class) or
    ``{class: goal}`` (only the classes listed; others get none). Classes already at or above
    their goal get 0. Returns ``{class_index: n}`` for every class.
    """
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes)
    if isinstance(target, Mapping):
        goals = {_class_index(k, classes, num_classes): int(v) for k, v in target.items()}
    elif target == "max":
        goals = dict.fromkeys(range(num_classes), int(counts.max()))
    elif isinstance(target, int) and not isinstance(target, bool):
        goals = dict.fromkeys(range(num_classes), target)
    else:
        raise DataError(f"target: got {target!r}; expected 'max', an integer or {{class: count}}")
    if any(g < 0 for g in goals.values()) or multiple <= 0:
        raise DataError("target counts must be >= 0 and multiple > 0")
    return {c: max(0, round(goals.get(c, 0) * multiple) - int(counts[c]))
            for c in range(num_classes)}


@torch.no_grad()
def synthesize(generator: nn.Module | str | Path, counts: Mapping[int | str, int] | int, *,
               batch_size: int = Defaults.batch_size, seed: int = 0,
               device: str | torch.device | None = None, amp: bool = Defaults.amp,
               keep: Filter | None = None, max_draws: float = Defaults.max_draws
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw exactly ``counts[c]`` images of every class ``c`` from a conditional generator.

    ``generator`` is a checkpoint path (its EMA generator is used) or a loaded model taking
    ``(z, y)``; ``counts`` is ``{class: n}`` (index, or name for checkpoints) or one int for
    every class. Returns ``(images uint8 N×C×H×W, labels int64 N)`` on the CPU, sorted by class.
    The same seed gives the same images whatever ``batch_size`` is (noise is drawn up front, one
    stream for the whole request: other ``counts`` give other images; :class:`augment.
    SyntheticDataset` seeds each item instead).
    ``device``: None draws a loaded model where it lives, a checkpoint on CUDA when present.
    ``amp``: bf16 autocast where the device runs it natively (CUDA; CPUs with AMX or
    AVX512-BF16); the images are rounded to uint8 anyway.
    ``keep(images, labels) -> bool mask`` filters samples (e.g. :func:`augment.judge.
    confidence_filter`); rejected ones are replaced by fresh draws so the counts stay exact, up
    to ``max_draws`` × the requested count per class (at least 100 draws), beyond which it
    raises :class:`DataError`.
    """
    check_whole("batch_size", batch_size, 1)
    check_whole("seed", seed, 0, TORCH_SEED_MAX)
    classes = None
    if isinstance(generator, (str, Path)):
        device = resolve_device(device)
        generator, classes = load_generator(generator, device)
    elif device is None and (weight := next(generator.parameters(), None)) is not None:
        device = weight.device  # a loaded model draws where it lives
    else:
        device = resolve_device(device)
    num_classes = generator.hparams["num_classes"]
    per_class = class_counts(counts, classes, num_classes)
    rng = torch.Generator().manual_seed(seed)
    was_training = generator.training
    generator.eval()  # BN uses running statistics: each sample independent of its batch
    draw = lambda labels: _generate(generator, labels, rng, batch_size=batch_size,  # noqa: E731
                                    device=device, amp=amp)
    try:
        if keep is None or not any(per_class.values()):
            labels = _labels(per_class)
            return draw(labels), labels
        return _draw_filtered(draw, per_class, keep, max_draws=max_draws, classes=classes)
    finally:
        generator.train(was_training)


def _labels(per_class: Mapping[int, int]) -> torch.Tensor:
    """Class-sorted label vector with ``per_class[c]`` copies of ``c``."""
    return torch.cat([torch.full((per_class[c],), c, dtype=torch.int64) for c in sorted(per_class)]
                     or [torch.empty(0, dtype=torch.int64)])


def _generate(generator: nn.Module, labels: torch.Tensor, rng: torch.Generator, *,
              batch_size: int, device: torch.device, amp: bool) -> torch.Tensor:
    """uint8 images for ``labels``; noise N×z_dim is drawn from ``rng`` up front, in order."""
    noise = torch.randn(len(labels), generator.hparams["z_dim"], generator=rng)
    with mixed_precision(device, amp)():
        chunks = [to_uint8(generator(z.to(device), y.to(device)))
                  for z, y in progress(zip(noise.split(batch_size), labels.split(batch_size)),
                                       desc="synthesize", total=-(-len(labels) // batch_size))]
    shape = tuple(generator.hparams["image_shape"])
    return torch.cat(chunks) if chunks else torch.empty((0, *shape), dtype=torch.uint8)


def _draw_filtered(draw, per_class: dict[int, int], keep: Filter, *, max_draws: float,
                   classes) -> tuple[torch.Tensor, torch.Tensor]:
    """Rounds of draws sized by each class's acceptance rate so far, until every count is met."""
    need, drawn, kept = dict(per_class), dict.fromkeys(per_class, 0), {c: [] for c in per_class}
    budget = {c: max(int(max_draws * n), 100) for c, n in per_class.items()}  # ≥ 100: small asks
    while any(need.values()):
        rate = {c: max(per_class[c] - need[c], 1) / max(drawn[c], 1) for c in need}
        ask = {c: min(int(need[c] / rate[c] * 1.2) + 8, budget[c] - drawn[c])
               for c in need if need[c] > 0}
        if not all(ask.values()):
            c = next(c for c, a in ask.items() if a <= 0)
            name = classes[c] if classes else c
            raise DataError(f"synthesize: class {name!r}: only {per_class[c] - need[c]} of "
                            f"{per_class[c]} samples passed the filter after {drawn[c]} draws "
                            f"(max_draws {max_draws} × requested); lower synthesize."
                            "filter_threshold, raise synthesize.max_draws or train longer")
        labels = _labels(ask)
        images = draw(labels)
        ok = _mask(keep(images, labels), len(labels))
        for c, n in ask.items():
            accepted = images[(labels == c) & ok][: need[c]]
            kept[c].append(accepted)
            drawn[c], need[c] = drawn[c] + n, need[c] - len(accepted)
    return torch.cat([x for c in sorted(kept) for x in kept[c]]), _labels(per_class)


def _mask(ok, n: int) -> torch.Tensor:
    """``keep``'s answer as a bool mask of ``n``; anything else is an error (an integer 0/1
    tensor would index images 0 and 1 instead of masking)."""
    ok = torch.as_tensor(ok) if isinstance(ok, (torch.Tensor, np.ndarray, list)) else ok
    if not isinstance(ok, torch.Tensor) or ok.dtype != torch.bool or ok.shape != (n,):
        got = (f"{ok.dtype} of shape {tuple(ok.shape)}" if isinstance(ok, torch.Tensor)
               else type(ok).__name__)
        raise DataError(f"keep(images, labels) must return a bool mask of shape ({n},), one "
                        f"flag per image; got {got} (e.g. return scores >= threshold)")
    return ok.cpu()


def sample_grid(generator: nn.Module, *, num_classes: int, per_class: int = 8, seed: int = 0,
                device: str | torch.device | None = None) -> torch.Tensor:
    """A uint8 C×H×W grid image: one row per class, ``per_class`` samples each."""
    from torchvision.utils import make_grid  # torchvision costs ~3 s to import: only here

    images, _ = synthesize(generator, per_class, seed=seed, device=device)
    return make_grid(images, nrow=per_class, padding=1, pad_value=255)


def safe_name(name: str) -> str:
    """A class name usable as a folder name (path separators and odd characters → '_')."""
    return re.sub(r"[^\w.\- ]", "_", name).strip(" .") or "_"


# what write_synthetic may put in its folder (images/ only with samples, generator.json only
# with a checkpoint): a rerun replaces a folder of these, and refuses one holding anything else
SYNTHETIC_FILES = ("images", "manifest.csv", "classes.json", "images.npy", "labels.npy",
                   "generator.json")


def write_synthetic(directory: str | Path, images: torch.Tensor, labels: torch.Tensor,
                    classes: tuple[str, ...], *, generator: dict | None = None) -> pd.DataFrame:
    """Write ``images/<class>/<class>_<i>.png``, ``manifest.csv``, ``classes.json`` (every
    class name, by label) and ``{images,labels}.npy``, and ``generator.json`` (which checkpoint
    drew them, its quality guards) when given. :class:`augment.SyntheticDataset` reads it.

    The directory is replaced atomically. Returns the manifest (paths relative to it).
    """
    rows = []
    with atomic_path(directory, may_hold=SYNTHETIC_FILES) as tmp:
        tmp.mkdir()  # even with nothing to draw: an empty manifest is a valid result
        for i, (image, label) in enumerate(zip(images, labels.tolist())):
            rel = Path("images") / safe_name(classes[label]) / f"{label:03d}_{i:06d}.png"
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            write_png(tmp / rel, image)
            rows.append({"path": rel.as_posix(), "label": label, "class_name": classes[label],
                         "source": "synthetic"})
        manifest = pd.DataFrame(rows, columns=["path", "label", "class_name", "source"])
        manifest.to_csv(tmp / "manifest.csv", index=False)
        (tmp / "classes.json").write_text(json.dumps(list(classes), indent=2) + "\n")
        save_arrays(tmp, images=images.numpy(), labels=labels.numpy())
        if generator is not None:
            (tmp / "generator.json").write_text(json.dumps(generator, indent=2, sort_keys=True))
    return manifest
