"""Figures and plot tables for DVC: written atomically, deterministic bytes."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: stages run under DVC/Prefect without a display
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from .io import atomic_path  # noqa: E402
from .synthesize import save_png as _save_png  # noqa: E402


def save_png(path: str | Path, image: torch.Tensor) -> None:
    """Write a uint8 C×H×W tensor as PNG, atomically."""
    with atomic_path(path) as tmp:
        _save_png(tmp, image)


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
    fig.tight_layout()
    with atomic_path(path) as tmp:
        # No timestamps or software tag in the PNG metadata: same data -> same bytes.
        fig.savefig(tmp, format="png", metadata={"Software": None})
    plt.close(fig)
