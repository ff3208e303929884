"""Deployments of the pipeline's flows: ``prefect.yaml`` for work pools, :mod:`deployments.serve` for one process."""
