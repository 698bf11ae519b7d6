"""Stage entry points, one module per stage: ``augment.stages.<stage>.run(params, **paths)``.

Each reads its section of the already-loaded params (:func:`augment.config.load_params`),
validates it into a frozen config, calls the library, writes its outputs atomically and returns
a small summary dict; the output paths default to those ``dvc.yaml`` uses. The CLI and the
Prefect flows call these; nothing else reads params. A stage module is imported on first use
(``augment.stages.train`` loads ``augment/stages/train.py`` alone), so a stage process loads,
and DVC reruns it for, only the code its own module imports.
"""

from __future__ import annotations

import importlib

STAGES = ("prepare", "judge", "train", "synthesize", "evaluate")


def __getattr__(name: str):
    if name not in STAGES:
        raise AttributeError(f"module 'augment.stages' has no attribute {name!r}")
    return importlib.import_module(f".{name}", __name__)
