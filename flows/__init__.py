"""Prefect flows: one per pipeline stage (the cmd of each DVC stage), thin wrappers over
:mod:`augment.stages` (``augment.stages.<stage>.run``)."""

import functools

from augment.errors import AugmentError

# stage -> the module holding its flow, ``<stage>_flow`` (imported by that stage alone)
FLOW_MODULES = {"prepare": "flows.stages", "judge": "flows.stages", "train": "flows.stages",
                "synthesize": "flows.stages", "evaluate": "flows.evaluate"}


def fails_cleanly(body):
    """A flow body whose user-fixable errors (:class:`AugmentError`: the message names the fix)
    end the run as Failed with that message, without Prefect's logged traceback of our own
    code; the caller still gets the exception. Any other exception is Prefect's to log, with its
    traceback."""
    @functools.wraps(body)
    def run(*args, **kwargs):
        try:
            return body(*args, **kwargs)
        except AugmentError as err:
            from prefect.states import Failed

            return Failed(message=f"{type(err).__name__}: {err}", data=err)
    return run
