"""The sampling task: chunked, resumable, safe to retry (finished parts are skipped)."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from synth.config import SamplingOptions
from synth.models import load_synthesizer
from synth.sampling import SampleResult, model_fingerprint, sample_to_parquet
from tasks.progress import ChunkProgress
from tasks.user_errors import retry_unless_user_error


# Not cached: the parts on disk are the cache (finished parts are skipped), and a released
# staging folder no longer exists for a cached result to point to.
@task(
    name="sample-synthetic",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=exponential_backoff(backoff_factor=2),
    retry_jitter_factor=0.5,
    retry_condition_fn=retry_unless_user_error,
)
def sample_synthetic(
    model_dir: str, output_dir: str, sampling: SamplingOptions, seed: int, default_rows: int
) -> SampleResult:
    """Generate rows from the saved model into Parquet parts under ``output_dir``.

    ``sampling.rows`` rows, or ``default_rows`` (the extract's size) when it is unset.
    """
    synthesizer = load_synthesizer(model_dir)
    rows = sampling.rows or default_rows
    result = sample_to_parquet(
        synthesizer,
        rows,
        output_dir,
        seed=seed,
        chunk_rows=sampling.chunk_rows,
        fingerprint=model_fingerprint(model_dir),
        on_chunk=ChunkProgress(),
    )
    get_run_logger().info(
        f"sampled {rows:,} rows in {result.chunks} parts ({len(result.skipped)} already on disk) "
        f"in {result.seconds:.1f}s"
    )
    return result
