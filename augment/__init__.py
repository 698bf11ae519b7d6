"""augment: conditional-GAN data augmentation with an honest with/without evaluation.

Public API (imported lazily, so ``import augment`` stays cheap until a name is used)::

    images, labels = augment.synthesize("models/gan.pt", {"cat": 100, "dog": 40}, seed=0)
    counts = augment.balance_counts(train_labels, num_classes=10)   # {class: n} to balance
    gan = augment.train_gan(image_set, augment.TrainConfig(epochs=50), seed=0)
    data, sampler = augment.mix(real_imagefolder, augment.SyntheticDataset("data/synthetic"))
    X_res, y_res = augment.GANResampler(sampling_strategy="auto").fit_resample(X, y)
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "synthesize": "synthesis", "balance_counts": "synthesis", "write_synthetic": "synthesis",
    "sample_grid": "synthesis",
    "load_generator": "checkpoint", "load_checkpoint": "checkpoint",
    "train_gan": "train", "GAN": "train",
    "ImageSet": "data", "load_source": "sources", "load_folder": "sources",
    "load_csv": "sources", "load_prepared": "data",
    "load_synthetic": "data",
    "evaluate_variant": "evaluate", "fit_classifier": "classifier",
    "train_judge": "judge", "load_judge": "judge", "confidence_filter": "judge",
    "fidelity_report": "fidelity", "frechet_distance": "fidelity",
    "PrepareConfig": "config", "JudgeConfig": "config", "TrainConfig": "config", "SynthesizeConfig": "config",
    "EvaluateConfig": "config",
    "SyntheticDataset": "datasets", "MixedDataset": "datasets", "mix": "datasets",
    "MixedSampler": "sampling", "GANResampler": "resample",
    "AugmentError": "errors", "ConfigError": "errors", "DataError": "errors",
    "CheckpointError": "errors",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'augment' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value  # cache: the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
