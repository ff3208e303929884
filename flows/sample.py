"""A new month's data from a saved model: no retraining, no real data read."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, runtime

from flows.parameters import SampleParameters, flow_timeout_seconds
from synth.config import SamplingOptions
from synth.runs import OutputLock
from tasks.sample import sample_synthetic


@flow(name="sample", description="Generate synthetic data from a saved model.", timeout_seconds=flow_timeout_seconds())
def sample(params: SampleParameters) -> dict:
    sampling = SamplingOptions(
        rows=params.rows, chunk_rows=params.chunk_rows, workers=params.workers, dask_address=params.dask_address
    )
    synthetic = str(Path(params.output) / "synthetic")
    with OutputLock(params.output, owner=f"flow run {runtime.flow_run.name} ({runtime.flow_run.id})"):
        result = sample_synthetic(params.model, synthetic, sampling, params.seed, params.rows)
    return result.to_dict()
