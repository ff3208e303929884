"""Patient-level properties on whole real extracts: the MIMIC-III demo and the no-show data.

Trains the patient-level synthesizer on each extract, samples, and prints what issue 4 asks of it: static attributes constant within every
synthetic patient, rows per patient (KS complement), date-order violations against the
real rate, constraint violations; optionally with patient-level DP (``--epsilon``).

    python benchmarks/patient_level.py [--epochs 60] [--epsilon 3] [--only noshow] [--factor 10]

It samples ten times as many rows as the extract has (``--factor``), so the KS statistic
measures the model rather than the noise of a small synthetic sample, and prints the
complement a perfect model would reach against a real extract of that many patients.

The no-show data (CC BY-NC-SA) is read from ../shared/data and never copied; without it the
script says where to get it and stops after the MIMIC-III demo.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import warnings
from pathlib import Path

import common
from synth.config import load_config, parse_config
from synth.demo.mimic import DEMO_CONFIG, DEMO_DATA_DIR, build_episode_table
from synth.evaluation.entities import entity_metrics
from synth.io.atomic import write_json_atomic
from synth.io.sources import read_table
from synth.models import synthesizer_for
from synth.schema import infer_schema

RESULTS = Path(__file__).resolve().parent / "results" / "patient_level.json"


def extracts(only: str | None):
    if only in (None, "mimic3-demo"):
        yield "mimic3-demo", build_episode_table(DEMO_DATA_DIR), load_config(DEMO_CONFIG)
    if only in (None, "noshow"):
        config = parse_config({"columns": {"PatientId": "identifier"}, "entity_key": "PatientId"})
        yield "noshow", read_table(common.dataset(common.NOSHOW, common.NOSHOW_ORIGIN), config), config


def run(name, table, config, epochs: int, epsilon: float | None, factor: int) -> dict:
    config = config.with_overrides(model={"epochs": epochs}, privacy={"epsilon": epsilon})
    schema = infer_schema(table, config)
    model = synthesizer_for(config, schema)
    start = time.perf_counter()
    model.fit(table, schema)
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    synthetic = model.sample(table.num_rows * factor, seed=1)
    sample_seconds = time.perf_counter() - start
    metrics = entity_metrics(table.to_pandas(), synthetic.to_pandas(), schema, config.constraints)
    return {
        "extract": name,
        "rows": table.num_rows,
        "synthetic_rows": synthetic.num_rows,
        # A perfect model still differs from a finite real sample: the mean one-sample KS
        # statistic of n draws is ~0.8687 / sqrt(n), so this is the complement to expect.
        "rows_per_entity_ks_noise_floor": round(1 - 0.8687 / metrics["entities"]["real"] ** 0.5, 3),
        "model": model.name,
        "epochs_run": model.training_.epochs_run,
        "fit_seconds": round(fit_seconds, 1),
        "sample_seconds": round(sample_seconds, 1),
        "epsilon": model.privacy_.epsilon_spent if model.privacy_.enabled else None,
        "privacy_parts": model.privacy_.parts,
        **{k: metrics[k] for k in ("entities", "rows_per_entity", "rows_per_entity_ks", "static_consistency")},
        "date_order": metrics["date_order"],
        "constraint_violations": metrics["constraint_violations"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--epsilon", type=float, default=None)
    parser.add_argument("--only", choices=["mimic3-demo", "noshow"], default=None)
    parser.add_argument(
        "--factor", type=int, default=10,
        help="sample FACTOR x the extract's rows: the synthetic side of the KS test then adds little noise",
    )
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    print(f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}")
    results = []
    for name, table, config in extracts(args.only):
        result = run(name, table, config, args.epochs, args.epsilon, args.factor)
        results.append(result)
        print(json.dumps(result, indent=1, default=str), flush=True)
        worst = max((v["synthetic"] - v["real"] for v in result["date_order"].values()), default=0.0)
        print(
            f"{name}: static consistency {result['static_consistency']:.3f} | rows/patient KS complement "
            f"{result['rows_per_entity_ks']:.3f} (a perfect model: ~{result['rows_per_entity_ks_noise_floor']:.3f}) | worst date-order excess over real {worst:+.5f} | "
            f"constraint violations {result['constraint_violations']['total']}"
        )
    write_json_atomic(RESULTS, results)


if __name__ == "__main__":
    main()
