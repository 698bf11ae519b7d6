"""The judge: a classifier trained on the *real* train split, used to score synthetic data.

It plays two roles that need no download (unlike Inception-based FID):
- its penultimate activations are the feature space of the domain FID (:mod:`augment.fidelity`);
- its softmax confidence filters samples at synthesis time (:func:`confidence_filter`).

It is the same :class:`~augment.classifier.SmallCNN` the evaluate stage trains, selected on val.
The checkpoint holds plain tensors and primitives (``torch.load(..., weights_only=True)``).
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from .data import ImageSet
from .errors import CheckpointError
from .classifier import SmallCNN, fit_classifier
from .io import torch_save
from .runtime import resolve_device, to_unit

Filter = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (uint8 images, labels) -> keep


def train_judge(train: ImageSet, val: ImageSet, *, seed: int = 0,
                device: str | torch.device | None = None, **fit_kwargs) -> tuple[nn.Module, dict]:
    """Fit the judge on real ``train``, keep the epoch with the best val balanced accuracy."""
    return fit_classifier(train.images, train.labels, val, num_classes=len(train.classes),
                          seed=seed, device=device, **fit_kwargs)


def save_judge(path: str | Path, model: SmallCNN, *, classes: tuple[str, ...], width: int,
               info: dict) -> None:
    """Write the judge checkpoint atomically."""
    first = model.net[0]  # Conv2d(channels, width, ...): the input channels
    state = {"kind": "judge", "classes": list(classes), "channels": first.in_channels,
             "width": width, "info": info, "state_dict": model.state_dict()}
    torch_save(state, path)


def load_judge(path: str | Path, device: str | torch.device | None = None
               ) -> tuple[SmallCNN, tuple[str, ...]]:
    """The judge (eval mode, on ``device``) and its class names."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: judge not found; run the judge stage first "
                              "(augment judge / dvc repro judge)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model = SmallCNN(channels=state["channels"], num_classes=len(state["classes"]),
                         width=state["width"])
        model.load_state_dict(state["state_dict"])
    except (RuntimeError, KeyError, TypeError, pickle.UnpicklingError, zipfile.BadZipFile,
            EOFError) as err:
        raise CheckpointError(f"{path}: not a readable judge checkpoint "
                              f"({err.__class__.__name__}); re-run the judge stage") from None
    return model.to(resolve_device(device)).eval(), tuple(state["classes"])


def judge_info(path: str | Path) -> dict:
    """What the judge stage recorded about its fit (``val_balanced_accuracy``, ``epoch``, ...)."""
    try:
        return dict(torch.load(path, map_location="cpu", weights_only=True)["info"])
    except (RuntimeError, KeyError, TypeError, pickle.UnpicklingError, zipfile.BadZipFile,
            EOFError) as err:
        raise CheckpointError(f"{path}: not a readable judge checkpoint "
                              f"({err.__class__.__name__}); re-run the judge stage") from None


@torch.no_grad()
def judge_outputs(model: SmallCNN, images: np.ndarray | torch.Tensor, *, batch_size: int = 512
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(features N×D float64, class probabilities N×K float64) for uint8 images N×C×H×W."""
    device = next(model.parameters()).device
    feats, probs = [], []
    for batch in torch.as_tensor(images).split(batch_size):
        f = model.features(to_unit(batch, device))
        feats.append(f.double().cpu())
        probs.append(model.net[-1](f).softmax(dim=1).double().cpu())
    k = model.net[-1].out_features
    if not feats:
        return np.zeros((0, model.net[-1].in_features)), np.zeros((0, k))
    return torch.cat(feats).numpy(), torch.cat(probs).numpy()


def confidence_filter(model: SmallCNN, threshold: float) -> Filter:
    """Keep a sample when the judge predicts its label with probability ≥ ``threshold``."""
    def keep(images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        _, probs = judge_outputs(model, images)
        p = torch.as_tensor(probs)
        return (p.argmax(1) == labels) & (p.gather(1, labels[:, None]).squeeze(1) >= threshold)

    return keep
