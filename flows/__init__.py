"""Prefect flows: one per pipeline stage (the cmd of each DVC stage), thin wrappers over
:mod:`augment.stages`."""
