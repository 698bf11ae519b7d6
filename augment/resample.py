"""An imbalanced-learn style over-sampler that draws the new images from a conditional GAN.

:class:`GANResampler` takes image arrays (uint8, N×H×W or N×C×H×W) and labels of any sortable,
hashable kind, trains the cGAN on them (or loads a trained one from an augment checkpoint), and
returns the real images followed by as many synthetic ones per class as ``sampling_strategy``
asks, spelled as imbalanced-learn spells it (over-sampling semantics)::

    "auto" / "not majority"  every class but the majority, up to the majority's count
    "minority"               the smallest class only      "not minority"  all but the smallest
    "all"                    every class                  {label: total}  these classes' totals
    0.5 (two classes only)   the minority up to 0.5 × the majority's count
    callable(y) -> {label: total}

It is duck-typed to imbalanced-learn's sampler API (``fit_resample``; imblearn is not needed at
run time), so it drops into an ``imblearn.pipeline.Pipeline``, which resamples when fitting and
skips the sampler when predicting::

    from imblearn.pipeline import Pipeline
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import FunctionTransformer
    from augment import GANResampler, TrainConfig

    pipe = Pipeline([
        ("gan", GANResampler(config=TrainConfig(epochs=20), seed=0)),   # X: uint8 N×H×W
        ("flat", FunctionTransformer(lambda X: X.reshape(len(X), -1))),
        ("clf", LogisticRegression(max_iter=1000)),
    ])
    pipe.fit(X_train, y_train)      # trains the GAN on X_train, fits on real + synthetic
    pipe.predict(X_test)            # no resampling at predict time

    # or on its own, drawing from the pipeline's checkpoint instead of training:
    X_res, y_res = GANResampler(generator="models/gan.pt").fit_resample(X, y)

The same parameters give the same arrays (training and sampling are seeded by ``seed``).
"""

from __future__ import annotations

from collections.abc import Mapping
from numbers import Real
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator
from torch import nn

from .checkpoint import load_generator
from .config import TrainConfig, from_dict
from .data import ImageSet
from .errors import CheckpointError, ConfigError, DataError
from .runtime import resolve_device
from .synthesis import synthesize
from .train import train_gan

STRATEGIES = ("auto", "not majority", "minority", "not minority", "all")


class GANResampler(BaseEstimator):
    """Over-sample image classes with a conditional GAN (imbalanced-learn's sampler API).

    Parameters (stored as given, so ``sklearn.base.clone`` and ``get_params`` work):

    sampling_strategy : how many images each class should end with (see the module docstring).
    generator : path of an augment checkpoint (e.g. ``models/gan.pt``) to draw from instead of
        training; its image shape must be X's and its classes must include ``str(label)`` of
        every label.
    config : the GAN's :class:`augment.config.TrainConfig` (or a mapping of its fields, checked
        like ``params.yaml``'s ``train`` section); None = the defaults.
    seed : seeds training and sampling.
    device : ``"auto"`` (CUDA when present) | ``"cpu"`` | ``"cuda"``.
    accept_failed : draw from a checkpoint whose generator failed the train stage's quality
        guards (only with ``generator``).

    Fitted attributes: ``sampling_strategy_`` ({label: images added}, for the classes the
    strategy targets, as imbalanced-learn reports it), ``classes_`` (the sorted labels) and
    ``generator_`` (the generator sampled from: the trained GAN's EMA generator, or the
    checkpoint's).
    """

    def __init__(self, sampling_strategy="auto", *, generator: str | Path | None = None,
                 config: TrainConfig | Mapping | None = None, seed: int = 0,
                 device: str = "auto", accept_failed: bool = False):
        self.sampling_strategy = sampling_strategy
        self.generator = generator
        self.config = config
        self.seed = seed
        self.device = device
        self.accept_failed = accept_failed

    def fit(self, X, y) -> "GANResampler":
        """Fit the generator and the per-class counts on ``(X, y)``; returns ``self``."""
        self.fit_resample(X, y)
        return self

    def fit_resample(self, X, y) -> tuple[np.ndarray, np.ndarray]:
        """``(X_res, y_res)``: ``X`` and ``y`` unchanged, then the synthetic images (in X's rank
        and dtype) and their labels (in y's values), class by class."""
        cfg = self._config()
        X = np.asarray(X)
        images, flat = check_images(X)
        y = check_labels(y, len(images))
        self.classes_, index = unique_labels(y)
        names = class_names(self.classes_)
        counts = np.bincount(index, minlength=len(names))
        self.sampling_strategy_ = resolve_strategy(self.sampling_strategy, self.classes_,
                                                   counts, y)
        self.generator_, known = self._generator(images, index, names, cfg)
        wanted = {known.index(name): self.sampling_strategy_.get(label, 0)
                  for name, label in zip(names, self.classes_.tolist())}
        new, drawn = synthesize(self.generator_, wanted, seed=self.seed, device=self.device,
                                amp=cfg.amp)
        new = new.numpy()[:, 0] if flat else new.numpy()
        back = np.array([names.index(known[c]) for c in drawn.tolist()], dtype=np.int64)
        return np.concatenate([X, new]), np.concatenate([y, self.classes_[back]])

    # ---------------------------------------------------------------------------------- helpers
    def _config(self) -> TrainConfig:
        """``config`` as a TrainConfig (None: the defaults; a mapping: validated)."""
        if self.config is None:
            return TrainConfig()
        if isinstance(self.config, TrainConfig):
            return self.config
        if isinstance(self.config, Mapping):
            return from_dict(TrainConfig, self.config, section="config")
        raise ConfigError(f"config: got {type(self.config).__name__}; expected an "
                          "augment.config.TrainConfig, a mapping of its fields, or None")

    def _generator(self, images: np.ndarray, index: np.ndarray, names: tuple[str, ...],
                   cfg: TrainConfig) -> tuple[nn.Module, tuple[str, ...]]:
        """(generator in eval mode, the class names its labels index): trained on the data,
        or loaded from ``self.generator`` and checked against it."""
        if self.generator is None:
            data = ImageSet(np.ascontiguousarray(images), index.astype(np.int64), names)
            gan = train_gan(data, cfg, seed=self.seed, device=self.device)
            return gan.ema.module.eval(), names  # the EMA generator samples, as in the stages
        model, known = load_generator(self.generator, resolve_device(self.device),
                                      accept_failed=self.accept_failed)
        check_checkpoint(self.generator, model, known, images.shape[1:], names)
        return model, known


# -------------------------------------------------------------------------------- validation
def check_images(X) -> tuple[np.ndarray, bool]:
    """X as uint8 N×C×H×W (a view) and whether it came as N×H×W; DataError naming the fix."""
    X = np.asarray(X)
    if X.ndim not in (3, 4):
        shape = "×".join(map(str, X.shape)) or "a scalar"
        hint = (": reshape flattened rows with X.reshape(-1, H, W)" if X.ndim == 2 else "")
        raise DataError(f"X of rank {X.ndim} ({shape}): GANResampler takes images, N×H×W or "
                        f"N×C×H×W uint8{hint}")
    if X.dtype != np.uint8:
        raise DataError(f"X of dtype {X.dtype}: GANResampler takes uint8 images (0-255); "
                        "convert it, e.g. (X * 255).round().astype(np.uint8) for floats in "
                        "[0, 1]")
    images = X[:, None] if X.ndim == 3 else X
    if images.shape[1] not in (1, 3):
        fix = (" (channels last? use X.transpose(0, 3, 1, 2))" if images.shape[-1] in (1, 3)
               else "")
        raise DataError(f"X of shape {'×'.join(map(str, X.shape))} has {images.shape[1]} "
                        f"channels: GANResampler takes N×C×H×W with C = 1 or 3{fix}")
    if images.shape[2] != images.shape[3]:
        raise DataError(f"X holds {images.shape[2]}×{images.shape[3]} images: the GAN makes "
                        "square ones; resize or crop them to a square side first")
    if len(images) == 0:
        raise DataError("X holds no images")
    return images, X.ndim == 3


def check_labels(y, n: int) -> np.ndarray:
    """y as a 1-D array of n sortable labels (DataError otherwise)."""
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != n:
        raise DataError(f"y of shape {y.shape} for {n} images in X: give one label per image, "
                        "a 1-D array of length len(X)")
    return y


def unique_labels(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct labels, each label's index among them), as np.unique gives them."""
    try:
        return np.unique(y, return_inverse=True)
    except TypeError:  # e.g. ints and strings mixed in an object array
        kinds = sorted({type(v).__name__ for v in y.tolist()})
        raise DataError(f"y mixes labels of types {', '.join(kinds)} that do not sort together; "
                        "give labels of one type (e.g. all str)") from None


def class_names(classes: np.ndarray) -> tuple[str, ...]:
    """``str(label)`` per class; two labels printing alike (1 and '1') are an error."""
    names = tuple(str(c) for c in classes.tolist())
    if len(names) < 2:
        raise DataError(f"y holds {len(names)} class ({', '.join(names)}); over-sampling needs "
                        "at least 2 classes")
    if len(set(names)) != len(names):
        raise DataError(f"labels {list(classes.tolist())} print alike as strings; use labels "
                        "whose str() differ (class names of the GAN)")
    return names


def resolve_strategy(strategy, classes: np.ndarray, counts: np.ndarray, y) -> dict:
    """imbalanced-learn's over-sampling ``sampling_strategy_``: {label: images to add} for the
    targeted classes (ties for majority/minority go to the first label in sorted order)."""
    labels = classes.tolist()
    top, low = labels[int(np.argmax(counts))], labels[int(np.argmin(counts))]
    fill = {label: int(counts.max() - n) for label, n in zip(labels, counts)}
    if isinstance(strategy, str):
        chosen = {"auto": lambda c: c != top, "not majority": lambda c: c != top,
                  "minority": lambda c: c == low, "not minority": lambda c: c != low,
                  "all": lambda c: True}.get(strategy)
        if chosen is None:
            raise ConfigError(f"sampling_strategy: got {strategy!r}; allowed strings are "
                              f"{', '.join(map(repr, STRATEGIES))} ('majority' would "
                              "under-sample), or give {label: total} or a float")
        return {c: n for c, n in fill.items() if chosen(c)}
    if callable(strategy):
        return _from_totals(strategy(y), labels, counts)
    if isinstance(strategy, Mapping):
        return _from_totals(strategy, labels, counts)
    if isinstance(strategy, Real) and not isinstance(strategy, bool):
        return _from_ratio(float(strategy), labels, counts)
    raise ConfigError(f"sampling_strategy: got {type(strategy).__name__}; expected one of "
                      f"{', '.join(map(repr, STRATEGIES))}, {{label: total}}, a float "
                      "(two classes) or a callable(y) -> {label: total}")


def _from_totals(totals: Mapping, labels: list, counts: np.ndarray) -> dict:
    """{label: desired total} → {label: images to add}; each total ≥ the class's count."""
    have = dict(zip(labels, counts.tolist()))
    unknown = [k for k in totals if k not in have]
    if unknown:
        raise ConfigError(f"sampling_strategy: class(es) {', '.join(map(repr, unknown))} not in "
                          f"y (its classes: {', '.join(map(repr, labels))}); use y's label "
                          "values as keys")
    below = {k: (int(v), have[k]) for k, v in totals.items() if int(v) < have[k]}
    if below:
        what = ", ".join(f"{k!r}: {v} < {n}" for k, (v, n) in below.items())
        raise ConfigError(f"sampling_strategy: totals below the current counts ({what}); an "
                          "over-sampler only adds images: ask at least each class's count")
    return {k: int(v) - have[k] for k, v in totals.items()}


def _from_ratio(ratio: float, labels: list, counts: np.ndarray) -> dict:
    """A float, two classes only: the minority up to ``ratio`` × the majority (imblearn)."""
    if len(labels) != 2:
        raise ConfigError(f"sampling_strategy: a float is for two classes; y has {len(labels)}; "
                          "give {label: total} instead")
    if not 0 < ratio <= 1:
        raise ConfigError(f"sampling_strategy: got {ratio}; a float must be in (0, 1] "
                          "(the minority's desired share of the majority's count)")
    top = int(np.argmax(counts))
    added = {labels[i]: int(counts[top] * ratio - counts[i]) for i in range(2) if i != top}
    if any(n <= 0 for n in added.values()):  # imblearn refuses a ratio that adds nothing too
        raise ConfigError(f"sampling_strategy: {ratio} is at or below the current minority/"
                          f"majority ratio {counts.min() / counts.max():.3g}; raise it")
    return added


def check_checkpoint(path, model: nn.Module, known: tuple[str, ...], shape: tuple,
                     names: tuple[str, ...]) -> None:
    """The checkpoint draws X's image shape and knows every label's name, else say which not."""
    theirs = tuple(model.hparams["image_shape"])
    if theirs != tuple(shape):
        raise CheckpointError(f"{path}: its generator draws {'×'.join(map(str, theirs))} "
                              f"images (C×H×W) but X holds {'×'.join(map(str, shape))}; resize "
                              "X to match, or train on X instead (generator=None)")
    missing = [n for n in names if n not in known]
    if missing:
        raise DataError(f"labels {', '.join(map(repr, missing))} are not classes of {path} (its "
                        f"classes: {', '.join(known)}); name y's labels like its classes "
                        "(str(label) must match one), or train on X instead (generator=None)")
