"""Serve the pipeline's deployments from this one process: no work pool, no worker.

    python -m deployments.serve          # from the repository root; `make serve`

The same deployments as ``prefect.yaml`` (CPU only): each flow run is executed in a
subprocess of this one. The monthly schedule is active when ``SYNTH_MONTHLY_SOURCE``
and ``SYNTH_MONTHLY_OUTPUT`` name the extract and the output (``{month}`` allowed);
otherwise the deployment is created paused.
"""

from __future__ import annotations

import os

from prefect import serve
from prefect.deployments.runner import RunnerDeployment
from prefect.schedules import Cron

from flows.compare import compare, epsilon_sweep
from flows.evaluate import evaluate
from flows.generate import generate
from flows.relational import generate_relational
from flows.sample import sample
from flows.tune import tune

MONTHLY = Cron("0 2 1 * *", timezone="Europe/London")


def deployments() -> list[RunnerDeployment]:
    source, output = os.environ.get("SYNTH_MONTHLY_SOURCE"), os.environ.get("SYNTH_MONTHLY_OUTPUT")
    monthly = {"source": source, "output": output, "config_path": os.environ.get("SYNTH_MONTHLY_CONFIG"), "seed": 0}
    return [
        generate.to_deployment(
            name="monthly-regeneration",
            schedules=[MONTHLY],
            paused=not (source and output),
            parameters={"params": monthly} if source and output else None,
            concurrency_limit=1,
            tags=["synth", "monthly"],
        ),
        generate.to_deployment(name="on-demand", tags=["synth"]),
        generate_relational.to_deployment(name="relational", tags=["synth", "relational"]),
        evaluate.to_deployment(name="evaluation-only", tags=["synth", "evaluation"]),
        sample.to_deployment(name="resample", tags=["synth"]),
        tune.to_deployment(name="tuning", tags=["synth", "tuning"]),
        compare.to_deployment(name="compare", tags=["synth", "study"]),
        epsilon_sweep.to_deployment(name="epsilon-sweep", tags=["synth", "study"]),
    ]


if __name__ == "__main__":
    serve(*deployments())
