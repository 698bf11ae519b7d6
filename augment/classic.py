"""Classic (non-generative) augmentation: the baseline a GAN must beat.

A policy is a comma-separated list of names from :data:`POLICIES` (as in DiffAugment), each an
albumentations transform sized to the image. ``affine,elastic,noise`` suits digits (small shifts,
rotations and Simard-style elastic warps, on a black background); ``crop,flip,color`` suits
natural photos. ``flip`` is left out of the digit policy on purpose: it changes what a digit is.
"""

from __future__ import annotations

from typing import Callable

import albumentations as A
import cv2
import numpy as np

from .errors import ConfigError

# name -> factory(image_size) -> albumentations transform
POLICIES: dict[str, Callable[[int], A.BasicTransform]] = {
    # ±10 % shift, ±10° rotation, ±10 % scale; the border is black like the digit background.
    "affine": lambda size: A.Affine(translate_percent=(-0.1, 0.1), rotate=(-10, 10),
                                    scale=(0.9, 1.1), border_mode=cv2.BORDER_CONSTANT, fill=0,
                                    p=0.8),
    # Simard et al. 2003: alpha 34, sigma 4 on 28 px MNIST. Smoothing white noise with sigma
    # scales its amplitude by ~1/sigma, so the displacement goes as alpha/sigma: sigma ∝ size
    # and alpha ∝ size² keep the warp the same fraction of the image at any size (8 px: 2.8, 1.1).
    "elastic": lambda size: A.ElasticTransform(alpha=34 * (size / 28) ** 2, sigma=4 * size / 28,
                                               p=0.3),
    "noise": lambda size: A.GaussNoise(std_range=(0.02, 0.08), p=0.3),
    # CIFAR's standard pad-4-and-crop, scaled: pad size/8 px by reflection, crop back.
    "crop": lambda size: A.Compose([A.PadIfNeeded(size + size // 4, size + size // 4,
                                                  border_mode=cv2.BORDER_REFLECT_101),
                                    A.RandomCrop(size, size)]),
    "flip": lambda size: A.HorizontalFlip(p=0.5),
    "color": lambda size: A.RandomBrightnessContrast(0.2, 0.2, p=0.5),
}


# The default policy by the data's channels: grey (digits, scans) or colour (photos).
POLICY_BY_CHANNELS = {1: "affine,elastic,noise", 3: "crop,flip,color"}


NONE = "none"  # the policy that changes nothing: a candidate of the choice on val


def policy_for(channels: int) -> str:
    """The default policy for images with ``channels`` channels (1: grey, 3: colour)."""
    return POLICY_BY_CHANNELS[channels]


def candidates(channels: int) -> tuple[str, ...]:
    """What ``auto`` chooses among: the channel default, nothing, and each of its ops alone
    (in this order, so a tie on val keeps the earlier)."""
    default = policy_for(channels)
    return (default, NONE, *default.split(","))


def check_policy(policy: str, *, key: str = "policy") -> tuple[str, ...]:
    """The policy's names (none for ``none``); ConfigError naming ``key`` for an empty or
    unknown name."""
    if policy == NONE:
        return ()
    names = tuple(n.strip() for n in policy.split(",") if n.strip())
    unknown = [n for n in names if n not in POLICIES]
    if unknown or not names:
        raise ConfigError(f"{key}: got {policy!r}; use {NONE!r} or a comma-separated list of "
                          f"{', '.join(POLICIES)}")
    return names


def classic_augment(policy: str, *, image_size: int, seed: int
                    ) -> Callable[[np.ndarray], np.ndarray] | None:
    """A function uint8 N×C×H×W → a freshly augmented uint8 copy, one random draw per image
    (None for ``none``).

    albumentations ignores global seeds, so the pipeline carries its own: the same ``seed``
    and the same calls give the same images.
    """
    names = check_policy(policy)
    if not names:
        return None
    pipeline = A.Compose([POLICIES[n](image_size) for n in names], seed=seed, strict=True)

    def apply(images: np.ndarray) -> np.ndarray:
        # albumentations works on H×W×C images; ours are C×H×W.
        hwc = images.transpose(0, 2, 3, 1)
        out = [pipeline(image=np.ascontiguousarray(im))["image"] for im in hwc]
        return np.stack(out).reshape(hwc.shape).transpose(0, 3, 1, 2).copy()

    return apply
