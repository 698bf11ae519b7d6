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
from typing import Any, Collection, Iterator

import numpy as np
from PIL import Image

from .errors import OutputError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, may_hold: Collection[str] | str = ()
                ) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only if the block succeeds.

    Works for files and directories alike (the caller decides what to create at the temp path).
    The temporary folder is named after this process; folders that a killed process left
    behind are removed first. Replacing never deletes what the output does not re-create: a
    file output is refused onto a folder, a folder output onto a file or onto a folder holding
    entries it does not write (the user's photos, a repository) beyond ``may_hold``, the names
    this kind of output writes at times (``"anything"``: a folder only this code names, whose
    entries change, e.g. one file per variant).
    """
    path = Path(path)
    if names_nothing(path):
        raise OutputError(f"output path {str(path)!r} names no file or folder: give the path "
                          "of the output itself (e.g. data/synthetic, metrics/judge.json)")
    path.parent.mkdir(parents=True, exist_ok=True)
    _sweep(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.{TEMP_TAG}{os.getpid()}.",
                                dir=path.parent)) / path.name
    try:
        yield tmp
        _replace(tmp, path, may_hold=may_hold)
    finally:
        shutil.rmtree(tmp.parent, ignore_errors=True)


ANYTHING = "anything"  # atomic_path(may_hold=ANYTHING): a folder whose entries are all ours


def names_nothing(path: str | os.PathLike) -> bool:
    """Whether ``path`` ("", ".", "..", "dir/.") names no file or folder of its own."""
    return Path(path).name in ("", ".", "..")


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


def _replace(src: Path, dst: Path, *, may_hold: Collection[str] | str) -> None:
    """Move ``src`` onto ``dst``; a directory ``dst`` is swapped out (rename is atomic per
    entry) once :func:`_check_replaceable` allows it."""
    _check_replaceable(src, dst, may_hold)
    if dst.is_dir() and not dst.is_symlink():
        trash = dst.with_name(f".{dst.name}.old")
        shutil.rmtree(trash, ignore_errors=True)
        os.replace(dst, trash)
        os.replace(src, dst)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(src, dst)


def _check_replaceable(src: Path, dst: Path, may_hold: Collection[str] | str) -> None:
    """A file replaces a file, a folder a folder holding only what ``src`` holds, what
    ``may_hold`` names, or hidden files (.DS_Store); anything else is an OutputError."""
    if dst.is_symlink() and src.is_dir():
        raise OutputError(f"{dst} is a link ({os.readlink(dst)}); give the output the folder "
                          "itself as its path (the link's target), the link is left as it is")
    if dst.is_dir() and not dst.is_symlink():
        if not src.is_dir():
            raise OutputError(f"{dst} is a folder, and this output is a file: give a file path "
                              "(e.g. metrics/judge.json); the folder is left as it is")
        if may_hold == ANYTHING:
            return
        ours = {p.name for p in src.iterdir()} | set(may_hold)
        foreign = sorted(p.name for p in dst.iterdir()
                         if p.name not in ours and not p.name.startswith("."))
        if foreign:
            raise OutputError(f"{dst} holds {', '.join(foreign[:5])}"
                              f"{' …' if len(foreign) > 5 else ''}, which this output does not "
                              "write; replacing the folder would delete them. Give the output "
                              "a folder of its own (e.g. data/synthetic), or empty this one")
    elif src.is_dir() and dst.exists():
        raise OutputError(f"{dst} is a file, and this output is a folder: give a folder path; "
                          "the file is left as it is")


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
