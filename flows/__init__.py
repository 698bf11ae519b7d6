"""Prefect flows: one per pipeline stage (the cmd of each DVC stage), thin wrappers over
:mod:`augment.stages` (``augment.stages.<stage>.run``)."""

# stage -> the module holding its flow, ``<stage>_flow`` (imported by that stage alone)
FLOW_MODULES = {"prepare": "flows.stages", "judge": "flows.stages", "train": "flows.stages",
                "synthesize": "flows.stages", "evaluate": "flows.evaluate"}
