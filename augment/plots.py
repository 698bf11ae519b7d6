"""Figures and plot tables for DVC: written atomically, deterministic bytes."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: stages run under DVC/Prefect without a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from .io import atomic_path, write_png  # noqa: E402


def save_png(path: str | Path, image: torch.Tensor) -> None:
    """Write a uint8 C×H×W tensor as PNG, atomically."""
    with atomic_path(path) as tmp:
        write_png(tmp, image)


def save_csv(path: str | Path, table: pd.DataFrame) -> None:
    """Write a table as CSV (no index), atomically."""
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")


def recall_chart(path: str | Path, recall: pd.DataFrame) -> None:
    """Grouped bar chart of per-class recall; ``recall`` has columns class, variant, recall."""
    wide = recall.pivot_table(index="class", columns="variant", values="recall", sort=False)
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(wide)), 3.5), dpi=100)
    wide.plot.bar(ax=ax, rot=0, width=0.8)
    ax.set(ylim=(0, 1.05), ylabel="test recall", xlabel="class",
           title="Per-class recall (mean over seeds)")
    ax.legend(loc="lower right", fontsize="small")
    _save_figure(fig, path)


def _save_figure(fig, path: str | Path) -> None:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        # No timestamps or software tag in the PNG metadata: same data -> same bytes.
        fig.savefig(tmp, format="png", metadata={"Software": None})
    plt.close(fig)


def ci_chart(path: str | Path, table: pd.DataFrame) -> None:
    """Bars of mean balanced accuracy and minority recall per variant, 95 % CI whiskers.

    ``table``: :func:`augment.analysis.summary_table` (columns ``<score>``, ``_lo``, ``_hi``).
    """
    scores = ("balanced_accuracy", "minority_recall")
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.45 * len(table) + 1.5), dpi=100, sharey=True)
    for ax, score in zip(axes, scores):
        mean = table[score].to_numpy(float)
        lo = table[f"{score}_lo"].fillna(table[score]).to_numpy(float)
        hi = table[f"{score}_hi"].fillna(table[score]).to_numpy(float)
        ax.barh(table["variant"], mean, xerr=[mean - lo, hi - mean], capsize=3, color="tab:blue")
        ax.set(xlim=(max(0.0, lo.min() - 0.05), min(1.0, hi.max() + 0.02)),
               xlabel=f"test {score.replace('_', ' ')} (mean, 95 % CI)")
    axes[0].invert_yaxis()  # shared y axis: first variant on top
    _save_figure(fig, path)


def class_grid(real: tuple, synthetic: tuple | None, num_classes: int, per_class: int = 8
               ) -> torch.Tensor:
    """uint8 grid: one row per class, ``per_class`` real images then as many synthetic ones."""
    from torchvision.utils import make_grid

    sources = [real] if synthetic is None else [real, synthetic]
    blank = np.full(real[0].shape[1:], 255, np.uint8)
    cells = []
    for c in range(num_classes):
        for images, labels in sources:
            picked = list(images[labels == c][:per_class])
            cells += picked + [blank] * (per_class - len(picked))
    grid = make_grid(torch.as_tensor(np.stack(cells)), nrow=per_class * len(sources), padding=1,
                     pad_value=128)
    k = max(1, 32 // blank.shape[-1])  # small images (digits: 8 px) enlarged, nearest-neighbour
    return grid.repeat_interleave(k, 1).repeat_interleave(k, 2)
