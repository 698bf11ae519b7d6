"""Atomic, deterministic file output.

Every output of a stage is written to a temporary sibling and renamed into place, so a crash or a
bad-input error never leaves a half-written file that DVC (or a user) could mistake for a result.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from PIL import Image


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only if the block succeeds.

    Works for files and directories alike (the caller decides what to create at the temp path).
    The temporary folder is named after this process; folders that a killed process left
    behind are removed first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _sweep(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.{TEMP_TAG}{os.getpid()}.",
                                dir=path.parent)) / path.name
    try:
        yield tmp
        _replace(tmp, path)
    finally:
        shutil.rmtree(tmp.parent, ignore_errors=True)


TEMP_TAG = "augment-tmp-"  # in temp folder names: ".<name>.augment-tmp-<pid>.<random>"


def _sweep(path: Path) -> None:
    """Remove the ``atomic_path`` temp folders in ``path``'s folder whose process is gone
    (killed mid-write)."""
    for old in path.parent.glob(f".*.{TEMP_TAG}*.*"):
        pid = old.name.rsplit(TEMP_TAG, 1)[1].split(".", 1)[0]
        if old.is_dir() and pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (ours or another user's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` atomically; a full disk raises ``OSError`` (ENOSPC) naming ``path`` (torch
    reports it as a RuntimeError of its zip writer) and leaves nothing behind."""
    import torch

    with atomic_path(path) as tmp:
        try:
            torch.save(obj, tmp)
        except RuntimeError:
            if shutil.disk_usage(tmp.parent).free >= (1 << 20):
                raise
            raise OSError(errno.ENOSPC, "No space left on device", str(path)) from None


def _replace(src: Path, dst: Path) -> None:
    """Move ``src`` onto ``dst``; a directory ``dst`` is swapped out (rename is atomic per entry)."""
    if dst.is_dir() and not dst.is_symlink():
        trash = dst.with_name(f".{dst.name}.old")
        shutil.rmtree(trash, ignore_errors=True)
        os.replace(dst, trash)
        os.replace(src, dst)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(src, dst)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as pretty, key-sorted JSON (stable bytes for DVC), atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def save_arrays(directory: Path, **arrays: np.ndarray) -> None:
    """Save each array as ``<name>.npy`` in ``directory`` (``.npy`` bytes carry no timestamps)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        np.save(directory / f"{name}.npy", np.ascontiguousarray(array), allow_pickle=False)


def log(stage: str, message: str) -> None:
    """A stage's progress line on stdout: ``[stage] message``."""
    print(f"[{stage}] {message}", flush=True)


def write_png(path: str | os.PathLike, image) -> None:
    """Write a uint8 C×H×W tensor as a (lossless, timestamp-free) PNG."""
    array = image.permute(1, 2, 0).numpy()
    Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array).save(path, format="PNG")
