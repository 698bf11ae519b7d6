"""Typed, frozen stage configurations and their validation.

``params.yaml`` holds one section per stage plus a shared ``seed``. A stage entry point reads its
section and calls :func:`from_dict`, which rejects unknown keys, wrong types and out-of-range
values with a message that names the key and what is allowed. The library itself only ever sees
these frozen dataclasses (or plain keyword arguments), never the YAML file.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Optional, Union

import yaml

from .errors import ConfigError

SECTIONS = ("prepare", "judge", "train", "synthesize", "evaluate")
PRESETS = ("dcgan", "sngan", "classic")
LOSSES = ("hinge", "bce", "wgan-gp")
# A variant is "+"-joined parts, each of a kind: the data (real, synthetic); treatments of the
# training set (oversample: balance classes by resampling; classic: albumentations per epoch);
# of the training loss (balanced_softmax, logit_adjust, drw: at most one); of the prediction
# (posthoc); of the batch (mixup). augment/longtail.py implements the loss
# and prediction parts, augment/mixing.py the batch ones.
VARIANT_PARTS = {"real": "data", "synthetic": "data", "oversample": "set", "classic": "set",
                 "balanced_softmax": "loss", "logit_adjust": "loss", "drw": "loss",
                 "posthoc": "prediction", "mixup": "mixing"}
OMEGAS = (1.0, 0.5, 0.25, 0.1)  # synthetic*auto: the weights tried on val, preferred in order


def variant_parts(variant: str) -> tuple[str, ...]:
    """The part names of ``variant``, the synthetic part's weight dropped:
    ``real+synthetic*0.1+posthoc`` -> (real, synthetic, posthoc)."""
    return tuple(p.partition("*")[0] for p in variant.split("+"))


def variant_weight(variant: str) -> float | str:
    """How often ``variant`` draws a synthetic image relative to a real one: the ``W`` of its
    ``synthetic*W`` part (a number in (0, 1], or ``auto``: chosen on val from :data:`OMEGAS`);
    1 for a bare ``synthetic`` or no synthetic part. Raises ConfigError on a malformed weight."""
    for part in variant.split("+"):
        name, star, weight = part.partition("*")
        if not star:
            continue
        if name != "synthetic":
            raise ConfigError(f"evaluate.variants: {variant!r}: only the synthetic part takes a "
                              f"weight ('synthetic*0.1'), not {name!r}")
        if weight == "auto":
            return "auto"
        try:
            value = float(weight)
        except ValueError:
            value = None
        if value is None or not 0 < value <= 1:
            raise ConfigError(f"evaluate.variants: {variant!r}: the synthetic weight must be a "
                              f"number in (0, 1] or auto, e.g. synthetic*0.1; got {weight!r}")
        return value
    return 1.0
RUNNERS = ("threads", "dask", "ray")
Device = Literal["auto", "cpu", "cuda"]


def setting(default: Any, doc: str, *, lo: float | None = None, hi: float | None = None,
            lo_open: bool = False, hi_open: bool = False):
    """A config field: its default (the one place it is set), what it does (``--help``), and
    an optional numeric range (``None`` = unbounded), checked by :func:`from_dict`."""
    metadata = {"doc": doc}
    if lo is not None or hi is not None:
        metadata["range"] = (lo, hi, lo_open, hi_open)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class PrepareConfig:
    """Where the images come from and how they are split."""

    source: Literal["digits", "mnist", "fashion_mnist", "kmnist", "cifar10", "svhn",
                    "folder", "csv"] = setting(
        "digits", "digits (scikit-learn, embedded) | a torchvision set | folder | csv")
    root: str = setting("data/raw", "torchvision: the folder holding <Name>/raw; folder: "
                        "root/<class>/<image>, or root/train/<class>/<image> + root/test/... "
                        "(+ root/val/...) used as given")
    download: bool = setting(False, "torchvision sources: fetch missing files (needs internet)")
    manifest: Optional[str] = setting(None, "csv: the CSV file (paths relative to its folder)")
    path_column: str = setting("path", "csv: the column of image paths")
    label_column: str = setting("label", "csv: the column of class names")
    classes: Optional[tuple[str, ...]] = setting(
        None, "the class list and order (built-in sets: keep only these); null = as found")
    image_size: Optional[int] = setting(None, "resize to this side; null = native", lo=8, hi=256)
    channels: Optional[Literal[1, 3]] = setting(None, "1 (grey) or 3 (RGB); null = native")
    val_fraction: float = setting(0.15, "share of the non-test pool held out for validation "
                                  "(unless the source gives a val split)",
                                  lo=0, hi=1, lo_open=True, hi_open=True)
    test_fraction: float = setting(0.2, "share held out for test, for sources without a test "
                                   "split of their own", lo=0, hi=1, lo_open=True, hi_open=True)
    imbalance_ratio: float = setting(1.0, "long tail on train only (CIFAR-LT): largest / "
                                     "smallest class; 1 = as loaded", lo=1)
    max_per_class: Optional[int] = setting(
        None, "cap images per class of the pool that train (and any val or test not given by the "
        "source) is split from; null = all", lo=1)

    def __post_init__(self):
        twice = sorted({c for c in self.classes or () if self.classes.count(c) > 1})
        if twice:
            raise ConfigError(f"prepare.classes: {', '.join(twice)} listed more than once; "
                              "list each class once")


@dataclass(frozen=True)
class ClassifierConfig:
    """The small CNN's training budget (shared by the judge and the evaluate stage)."""

    epochs: int = setting(20, "training epochs (the best epoch on val is kept)", lo=1)
    batch_size: int = setting(64, "minibatch size", lo=1)
    lr: float = setting(1e-3, "Adam learning rate", lo=0, hi=1, lo_open=True)
    weight_decay: float = setting(5e-4, "Adam weight decay", lo=0)
    width: int = setting(32, "channels of the first conv layer (doubled per stage)", lo=4)
    device: Device = setting("auto", "auto (CUDA when present) | cpu | cuda")

    def fit_kwargs(self) -> dict:
        """Keyword arguments of :func:`augment.classifier.fit_classifier`."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(ClassifierConfig)}


@dataclass(frozen=True)
class JudgeConfig(ClassifierConfig):
    """The judge: a classifier fit on the real train split; scores synthetic data (FID, filter)."""


@dataclass(frozen=True)
class TrainConfig:
    """Conditional-GAN training. ``None`` means: filled by :func:`augment.train.resolve_config`
    from the preset, the device and the data; the train stage writes the result."""

    preset: Literal["dcgan", "sngan", "classic"] = setting(
        "dcgan", "dcgan (strided conv, conditional BN, SN projection D) | sngan (heavier conv "
        "blocks) | classic (textbook MLP cGAN)")
    loss: Optional[Literal["hinge", "bce", "wgan-gp"]] = setting(
        None, "hinge | bce | wgan-gp; null = the preset's")
    epochs: int = setting(50, "passes over the (class-balanced) training set", lo=1)
    minutes: Optional[float] = setting(
        None, "wall-clock budget of the training loop (checkpoint scoring on top): as many "
        "epochs as fit (re-planned each epoch; the rate decay ends at the budget); null = "
        "train.epochs. The epochs reached go to metrics/train_config.json: train.epochs set to "
        "them gives the same model",
        lo=0, lo_open=True)
    batch_size: Optional[int] = setting(
        None, "minibatch size (global over train.nproc ranks); null = the preset's", lo=1)
    z_dim: int = setting(64, "latent size", lo=1)
    width: Optional[int] = setting(
        None, "base channels of G and D; null = the preset's", lo=4)
    lr_g: Optional[float] = setting(None, "G's Adam learning rate; null = the preset's",
                                    lo=0, hi=1, lo_open=True)
    lr_d: Optional[float] = setting(None, "D's Adam learning rate; null = the preset's",
                                    lo=0, hi=1, lo_open=True)
    betas: Optional[tuple[float, float]] = setting(
        None, "Adam betas; null = the preset's",
        lo=0, hi=1, hi_open=True)
    lr_decay: Optional[float] = setting(
        None, "last fraction of the epochs over which both rates fall linearly towards 0 "
        "(0 = constant); null = the preset's", lo=0, hi=1)
    d_steps: int = setting(1, "D updates per G update", lo=1)
    balance: bool = setting(True, "class-balanced epochs: each class shown as often as the "
                            "largest (tail images repeated)")
    ema_decay: Optional[float] = setting(
        None, "EMA of G's weights (the sampling model); 0 = off; null = the preset's",
        lo=0, hi=1, hi_open=True)
    diffaug: Optional[str] = setting(
        None, "DiffAugment policy, e.g. 'translation,cutout'; '' = off; null = the preset's "
        "(dcgan: on for long tails)")
    r1_gamma: float = setting(0.0, "R1 penalty weight on real data (0 = off)", lo=0)
    cls_weight: Optional[float] = setting(
        None, "dual-projection class term (P2GAN), conv presets; null = the preset's", lo=0)
    ms_weight: Optional[float] = setting(
        None, "mode-seeking term (MSGAN): spread within a class; null = the preset's", lo=0)
    gp_weight: float = setting(10.0, "gradient-penalty weight (loss: wgan-gp only)", lo=0)
    amp: bool = setting(True, "bf16 autocast where the device runs it natively (CUDA, CPUs with "
                        "AMX / AVX512-BF16); fp32 elsewhere")
    device: Device = setting("auto", "auto (CUDA when present) | cpu | cuda")
    nproc: int = setting(
        1, "data-parallel training ranks on this machine, started with torchrun's launcher "
        "(CPU: gloo, the cores shared; CUDA: NCCL, one rank per GPU); batch_size is the global "
        "batch. Under your own torchrun (e.g. several nodes), torchrun's world size applies", lo=1)
    checkpoint_every: int = setting(10, "epochs between checkpoints, each scored by the judge "
                                    "(FID, judge accuracy, diversity)", lo=1)
    patience: Optional[int] = setting(
        None, "early stopping: end the run once the judge's domain FID has not improved for "
        "this many checkpoints (the best checkpoint is kept either way); null = off", lo=1)
    grid_per_class: int = setting(8, "samples per class in plots/train/samples.png", lo=1, hi=64)
    min_judge_ratio: float = setting(
        0.5, "quality guard: a checkpoint fails when the judge labels fewer of its samples as "
        "intended than this fraction of the judge's own val balanced accuracy (chance-level or "
        "class-blind G); 0 = off", lo=0, hi=1)
    min_diversity: float = setting(
        0.05, "quality guard: a checkpoint fails when any class's sample diversity (1 = as "
        "varied as its real images) is below this (mode collapse); 0 = off", lo=0)
    on_collapse: Literal["fail", "warn"] = setting(
        "fail", "when no checkpoint passes the guards: fail (exit 2, no models/gan.pt) | warn "
        "(keep the lowest-FID one, flagged; synthesize refuses it unless "
        "synthesize.accept_failed_gan)")

    def __post_init__(self):
        if self.preset == "classic" and self.cls_weight:
            raise ConfigError("train.cls_weight: the class term needs a projection "
                              "discriminator; use preset dcgan or sngan, or set cls_weight: 0")


@dataclass(frozen=True)
class SynthesizeConfig:
    """How many synthetic samples per class: fill each class up to ``target`` × ``multiple``."""

    target: Union[Literal["max"], int, dict[str, int]] = setting(
        "max", "real + synthetic per class: max (the largest class) | <int> | "
        "{class_name: count}")
    multiple: float = setting(1.0, "scale the target (2.0 = twice the largest class)",
                              lo=0, lo_open=True)
    batch_size: int = setting(256, "generator batch size", lo=1)
    filter_threshold: float = setting(
        0.0, "keep samples the judge assigns their label with at least this confidence "
        "(0 = off; rejects are redrawn)", lo=0, hi=1, hi_open=True)
    max_draws: float = setting(20.0, "with the filter: give up after this many times the "
                               "requested draws per class", lo=1)
    minority_only: bool = setting(False, "fill only the minority classes (bottom 30 % by train "
                                  "count)")
    amp: bool = setting(True, "bf16 autocast where native (as train.amp)")
    device: Device = setting("auto", "auto (CUDA when present) | cpu | cuda")
    accept_failed_gan: bool = setting(False, "draw from a checkpoint that failed the train "
                                      "stage's quality guards (train.on_collapse: warn)")

    def __post_init__(self):
        goals = self.target.values() if isinstance(self.target, dict) else [self.target]
        if any(isinstance(g, int) and g < 0 for g in goals):
            raise ConfigError(f"synthesize.target: got {self.target!r}; counts must be >= 0")


@dataclass(frozen=True)
class EvaluateConfig(ClassifierConfig):
    """Downstream classifier trained with and without synthetic samples."""

    variants: tuple[str, ...] = setting(
        ("real", "real+oversample", "real+balanced_softmax", "real+balanced_softmax+classic",
         "real+synthetic", "real+synthetic+classic", "real+synthetic*0.1+posthoc+classic"),
        "'+'-joined parts: real | synthetic (the data; synthetic*W draws a synthetic image W "
        "times as often as a real one, W in (0, 1] or auto: chosen on val from 1, 0.5, 0.25, "
        "0.1), oversample (resample every class to the largest), classic (albumentations, "
        "redrawn each epoch), balanced_softmax | logit_adjust | drw (one training loss), "
        "posthoc (prior-corrected prediction), mixup (batch mixing); prior-based parts use the "
        "class mass drawn")
    seeds: int = setting(5, "paired seeds seed, seed+1, ...: every variant trained once per seed",
                         lo=1)
    classic: Optional[str] = setting(
        None, "albumentations policy of the classic part: affine | elastic | noise | crop | "
        "flip | color, or none; null = by data (grey: affine,elastic,noise; colour: "
        "crop,flip,color); auto = chosen on val once per run among that default, none and "
        "each of its ops alone")
    equal_steps: bool = setting(True, "every variant trains for the same optimizer steps (epochs "
                                "x one pass over the largest variant's set); false = epochs "
                                "over its own set")
    runner: Literal["threads", "dask", "ray"] = setting(
        "threads", "Prefect task runner of the variant x seed grid: threads | dask | ray")
    workers: int = setting(1, "threads runner: concurrent fits (results do not depend on it)",
                           lo=1)
    address: Optional[str] = setting(None, "dask / ray: scheduler address; null = a local "
                                     "cluster")
    tau: float = setting(1.0, "logit_adjust: the loss's τ, cross-entropy on logits + τ·log prior "
                         "(1 = balanced_softmax)", lo=0)
    posthoc_taus: tuple[float, ...] = setting(
        (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0),
        "posthoc: the τ grid; predict argmax(logits − τ·log prior), τ and epoch chosen on val "
        "balanced accuracy (ties: the smallest τ)", lo=0)
    drw_beta: float = setting(0.9999, "drw: β of the class-balanced weights (1−β)/(1−β^n_c) "
                              "(Cui et al. 2019)", lo=0, hi=1, hi_open=True)
    drw_start: float = setting(0.75, "drw: the weights switch on after this fraction of the "
                               "epochs (0.75: the last quarter)", lo=0, hi=1, hi_open=True)
    mixup_alpha: float = setting(1.0, "mixup: λ ~ Beta(α, α) per batch (Zhang et al. 2018)",
                                 lo=0, lo_open=True)

    def __post_init__(self):
        for variant in self.variants:
            parts = variant_parts(variant)
            bad = [p for p in parts if p not in VARIANT_PARTS]
            if bad or len(set(parts)) != len(parts) or not {"real", "synthetic"} & set(parts):
                raise ConfigError(
                    f"evaluate.variants: {variant!r} is not a variant; join parts with '+' from "
                    f"{', '.join(VARIANT_PARTS)}, each once, with real and/or synthetic "
                    "(e.g. real+synthetic+classic; synthetic*0.1 draws synthetic images a tenth "
                    "as often as real ones)")
            for kind, what in (("loss", "training losses"), ("mixing", "batch mixings")):
                chosen = [p for p in parts if VARIANT_PARTS[p] == kind]
                if len(chosen) > 1:
                    raise ConfigError(f"evaluate.variants: {variant!r} combines the {what} "
                                      f"{' and '.join(chosen)}; a variant trains with one of "
                                      f"them, so keep one (e.g. real+{chosen[0]})")
            if variant_weight(variant) != 1 and "oversample" in parts:
                raise ConfigError(f"evaluate.variants: {variant!r} oversamples a set whose "
                                  "synthetic images its weight draws less often (which set is "
                                  "balanced is ambiguous); drop oversample or the weight")
        if len(set(self.variants)) != len(self.variants):
            raise ConfigError(f"evaluate.variants: {list(self.variants)} lists a variant twice")
        if self.classic is not None and not self.classic.replace(",", "").strip():
            raise ConfigError("evaluate.classic: got an empty policy; use null, auto, none or "
                              "a comma-separated list of albumentations ops")
        # the op names are checked where they are known, as the evaluate stage starts
        # (augment.evaluate.run_grid): importing augment.classic here would make every stage
        # depend on the classic policies

    def fit_kwargs(self) -> dict:
        """Classifier budget plus the classic policy: keyword arguments of evaluate_variant."""
        return {**super().fit_kwargs(), "classic": self.classic}


STAGE_CONFIGS = {"prepare": PrepareConfig, "judge": JudgeConfig, "train": TrainConfig,
                 "synthesize": SynthesizeConfig, "evaluate": EvaluateConfig}


MOVED = {"evaluate.synthetic_weight": "no longer a key: the weight is part of the variant; "
         "write synthetic*0.5 (or synthetic*auto) in evaluate.variants, e.g. "
         "real+synthetic*0.5+posthoc"}


def from_dict(cls: type, raw: Mapping[str, Any] | None, *, section: str):
    """Validate ``raw`` into the frozen dataclass ``cls``; errors name ``section.key``."""
    raw = {} if raw is None else raw
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{section}: expected a mapping of settings, got {raw!r}")
    allowed = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(raw) - set(allowed))
    for key in unknown:
        if f"{section}.{key}" in MOVED:
            raise ConfigError(f"{section}.{key}: {MOVED[f'{section}.{key}']}")
    if unknown:
        raise ConfigError(f"{section}: unknown key(s) {', '.join(unknown)}; "
                          f"allowed keys are: {', '.join(allowed)}")
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        if f.name in raw:
            key = f"{section}.{f.name}"
            values[f.name] = _check_range(_coerce(hints[f.name], raw[f.name], key), f.metadata, key)
    return cls(**values)


def _coerce(tp: Any, value: Any, key: str) -> Any:
    """Return ``value`` as type ``tp`` or raise ConfigError naming ``key`` and the allowed values."""
    if isinstance(value, float) and not math.isfinite(value):  # .nan passes every range check,
        raise ConfigError(f"{key}: got {value!r}; expected a finite number")  # .inf lower bounds
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        for option in args:
            try:
                return _coerce(option, value, key)
            except ConfigError:
                container = {dict: Mapping, tuple: (list, tuple)}.get(typing.get_origin(option))
                if container and isinstance(value, container) and value:
                    raise  # a mapping or list failing as one: its own message is the useful one
        raise ConfigError(f"{key}: got {value!r}; expected {describe_type(tp)}")
    if origin is Literal:
        if value in args and type(value) in {type(a) for a in args}:
            return value
        raise ConfigError(f"{key}: got {value!r}; allowed values are {', '.join(map(repr, args))}")
    if origin is tuple:
        return _coerce_sequence(tp, value, key)
    if origin is dict:
        if not isinstance(value, Mapping) or not value:
            raise ConfigError(f"{key}: got {value!r}; expected {describe_type(tp)}")
        bare = [k for k in value if args[0] is str and not isinstance(k, str)]
        if bare:  # YAML reads {0: 500} with an integer key; class names are strings
            raise ConfigError(f"{key}: key {bare[0]!r} is not a string; quote class names in "
                              f"YAML, e.g. '{bare[0]}': {value[bare[0]]!r}")
        return {_coerce(args[0], k, f"{key} key"): _coerce(args[1], v, f"{key}.{k}")
                for k, v in value.items()}
    return _coerce_scalar(tp, value, key)


def _coerce_sequence(tp: Any, value: Any, key: str) -> tuple:
    args = typing.get_args(tp)
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{key}: got {value!r}; expected {describe_type(tp)}")
    if len(args) == 2 and args[1] is Ellipsis:
        if not value:
            raise ConfigError(f"{key}: must not be empty; expected {describe_type(tp)}")
        bare = [v for v in value if args[0] is str and not isinstance(v, str)]
        if bare:  # YAML reads [3, 1] as integers; class names are strings
            raise ConfigError(f"{key}: {bare[0]!r} is not a string; quote class names in YAML, "
                              f"e.g. ['{bare[0]}']")
        return tuple(_coerce(args[0], v, key) for v in value)
    if len(value) != len(args):
        raise ConfigError(f"{key}: got {value!r}; expected {describe_type(tp)}")
    return tuple(_coerce(a, v, key) for a, v in zip(args, value))


def _coerce_scalar(tp: Any, value: Any, key: str) -> Any:
    if tp is type(None) and value is None:
        return None
    if tp is bool and isinstance(value, bool):
        return value
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp is str and isinstance(value, str):
        return value
    raise ConfigError(f"{key}: got {value!r}; expected {describe_type(tp)}")


def describe_type(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(describe_type(a) for a in args)
    if origin is Literal:
        return "one of " + ", ".join(map(repr, args))
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a non-empty list of ({describe_type(args[0])})"
        return f"a list of {len(args)} values ({', '.join(describe_type(a) for a in args)})"
    if origin is dict:
        return f"a non-empty mapping {{{describe_type(args[0])}: {describe_type(args[1])}}}"
    return {type(None): "null", bool: "true/false", int: "an integer", float: "a number",
            str: "a string"}.get(tp, str(tp))


def _check_range(value: Any, metadata: Mapping, key: str) -> Any:
    if isinstance(value, tuple):  # a range on a tuple field holds for each element
        return tuple(_check_range(v, metadata, key) for v in value)
    if "range" not in metadata or not isinstance(value, (int, float)) or isinstance(value, bool):
        return value
    lo, hi, lo_open, hi_open = metadata["range"]
    too_low = lo is not None and (value <= lo if lo_open else value < lo)
    too_high = hi is not None and (value >= hi if hi_open else value > hi)
    if too_low or too_high:
        left = "unbounded" if lo is None else f"{'(' if lo_open else '['}{lo}"
        right = "unbounded" if hi is None else f"{hi}{')' if hi_open else ']'}"
        raise ConfigError(f"{key}: got {value!r}; allowed range is {left}, {right}")
    return value


MAX_SEED = 2**31 - 1  # stages derive seeds from it (seed + k); torch takes 64-bit ones


class _Loader(yaml.SafeLoader):
    """YAML as DVC reads params.yaml (YAML 1.2 numbers): ``2e-4`` and ``1.0e4`` are floats, where
    PyYAML's YAML 1.1 rules would read them as strings (a float needs a dot and a signed
    exponent there), and ``dvc params diff`` would disagree with the stage."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


def _yaml(text: str):
    return yaml.load(text, Loader=_Loader)


def load_params(path: str | Path = "params.yaml") -> dict:
    """Read ``params.yaml``; reject unknown top-level sections and a non-integer seed."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: parameters file not found; pass --params PATH or create it "
                          "(see the README for every key)")
    try:
        params = _yaml(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text (byte {err.start}: {err.object[err.start:err.start + 1]!r}); "
                          "save it as UTF-8") from None
    if not isinstance(params, dict):
        raise ConfigError(f"{path}: expected a mapping with sections {', '.join(SECTIONS)}")
    unknown = sorted(set(params) - {"seed", *SECTIONS})
    if unknown:
        raise ConfigError(f"{path}: unknown top-level key(s) {', '.join(unknown)}; allowed: "
                          f"seed, {', '.join(SECTIONS)}")
    seed = params.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"{path}: seed: got {seed!r}; expected an integer in [0, {MAX_SEED}]")
    return params


def stage_config(params: Mapping, section: str):
    """The validated frozen config of one stage's section of ``params``."""
    return from_dict(STAGE_CONFIGS[section], params.get(section), section=section)


def override(params: Mapping, assignments: list[str]) -> dict:
    """A copy of ``params`` with ``section.key=value`` (or the top-level ``seed=value``)
    assignments applied, each value parsed as YAML, like ``dvc exp run -S``: the one parser of
    overrides the benchmarks use."""
    params = copy.deepcopy(dict(params))
    for item in assignments:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"override {item!r}: expected section.key=value or seed=value")
        *parents, leaf = key.split(".")
        node = params
        for name in parents:
            node = node.setdefault(name, {})
        node[leaf] = _yaml(value)
    return params
