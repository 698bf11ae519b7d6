"""Errors a user can fix. The CLI prints their message (no traceback) and exits with status 2."""


class AugmentError(Exception):
    """Base class: the message names the problem and how to fix it."""


class ConfigError(AugmentError, ValueError):
    """A setting is unknown, of the wrong type or out of range. The message names the key."""


class DataError(AugmentError, ValueError):
    """Input data is missing, unreadable or unusable (empty class, unknown label, ...)."""


class CheckpointError(AugmentError, ValueError):
    """A checkpoint is missing, corrupt or does not describe a model this version can rebuild."""


class TrainingError(AugmentError, RuntimeError):
    """Training diverged (a non-finite loss or weight) or no checkpoint passed the quality guards.
    The message names the epoch and the settings to change."""


class OutputError(AugmentError, ValueError):
    """An output path that would overwrite or delete what is not this output (a folder given
    for a file, a folder of other files, the current folder). Nothing is written."""
