"""The sampling task: chunked, resumable, safe to retry (finished parts are skipped)."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from synth.config import SamplingOptions
from synth.models import load_synthesizer
from synth.pii.rules import drawn_fakes
from synth.sampling import SampleResult, fakes_to_avoid, model_fingerprint, sample_to_parquet
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
    model_dir: str,
    output_dir: str,
    sampling: SamplingOptions,
    seed: int,
    default_rows: int,
    real_dir: str | None = None,
) -> SampleResult:
    """Generate rows from the saved model into Parquet parts under ``output_dir``.

    ``sampling.rows`` rows, or ``default_rows`` (the extract's size) when it is unset.
    ``real_dir``, the clean dataset the model was trained from, gives the real values that
    fake names, phones, e-mails ... must not take (read here, held in memory only).
    """
    logger = get_run_logger()
    synthesizer = load_synthesizer(model_dir)
    drawn = drawn_fakes(synthesizer.schema_.direct_identifiers)
    avoid = fakes_to_avoid(synthesizer, real_dir)
    if drawn and synthesizer.config.privacy.enabled:
        logger.info(
            f"under DP, fake values of {', '.join(r.column for r in drawn)} come from namespaces real values do "
            "not reach (invented names, reserved numbers and domains), never from a comparison with the real data"
        )
    elif drawn and not real_dir:
        logger.warning(
            f"fake values of {', '.join(r.column for r in drawn)} are drawn without the real ones at hand: "
            "drawn independently of the data, a common name can still equal a real one by chance"
        )
    rows = sampling.rows or default_rows
    result = sample_to_parquet(
        synthesizer,
        rows,
        output_dir,
        seed=seed,
        chunk_rows=sampling.chunk_rows,
        fingerprint=model_fingerprint(model_dir),
        on_chunk=ChunkProgress(),
        avoid=avoid,
        workers=sampling.workers,
        dask_address=sampling.dask_address,
        model_dir=model_dir,
    )
    where = (
        f" on the Dask cluster at {sampling.dask_address}" if sampling.dask_address
        else f" by up to {sampling.workers} worker processes" if sampling.workers > 1 else ""
    )
    logger.info(
        f"sampled {rows:,} rows in {result.chunks} parts ({len(result.skipped)} already on disk){where} "
        f"in {result.seconds:.1f}s"
    )
    return result
