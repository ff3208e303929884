"""Benchmark: training and sampling rows/s on CUDA with bf16, against the same on the CPU (``make bench-gpu``).

    python benchmarks/gpu.py                  # CUDA (bf16 autocast) and CPU, diabetes_130; <= 5 minutes on one GPU
    python benchmarks/gpu.py --device cpu     # the CPU cases only (checks the script where there is no GPU)
    python benchmarks/gpu.py --smoke --device cpu   # tiny sizes (the test suite runs this)

Asked for CUDA (the default) where torch sees none, it stops before any work with one line
saying so and exit status 2: it never falls back to the CPU and reports CPU numbers as GPU ones.

Cases, each in a fresh process (``common.measure``), for each device:

* ``train`` - our row-level VAE (``model.name: vae``) on diabetes_130, ``--epochs`` epochs at
  ``--batch-size``, every row trains (``validation_fraction: 0``), bf16 autocast on CUDA
  (``model.mixed_precision``, the default); rows/s is rows x epochs / seconds of the epoch loop;
* ``sample`` - that model's network drawing rows on the device: latent draws, decoder,
  Gaussian values and inverse-CDF labels, copied to host memory, in batches of
  ``--sample-batch`` rows under the same autocast (on the CPU: the int8 copy sampling uses
  there, in the sampler's batches of ``DECODE_BATCH`` rows). This is the part of sampling a GPU can
  take; the reverse transform and the Parquet write stay on the CPU (see ``sample.py``,
  ``workers``, for those).

The CPU runs smaller sizes (``--cpu-train-rows``, ``--cpu-sample-rows``): rows/s is what is
compared, and the CPU would take most of the 5 minutes at the GPU's sizes.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import common

NO_CUDA_EXIT = 2


# -- child side ---------------------------------------------------------------------------------
def _config(case: dict):
    from synth.config import parse_config

    return parse_config({
        "source": {"na_values": ["?"]},
        "model": {
            "name": "vae", "epochs": case["epochs"], "batch_size": case["batch_size"], "patience": case["epochs"],
            "validation_fraction": 0.0, "device": case["device"], "mixed_precision": True,
        },
    })


def train_model(case: dict) -> dict:
    from synth.io.sources import read_table
    from synth.models import synthesizer_for
    from synth.schema import infer_schema

    warnings.simplefilter("ignore")
    config = _config(case)
    table = read_table(case["data"], config)
    table = table.slice(0, min(case["rows"], table.num_rows))
    schema = infer_schema(table, config)
    model = synthesizer_for(config, schema)
    model.fit(table, schema)
    report = model.training_
    if case.get("save"):
        model.save(case["save"])
    return {"rows": report.rows * report.epochs_run, "seconds": report.seconds, "device": report.device,
            "epochs": report.epochs_run}


def sample_network(case: dict) -> dict:
    import contextlib

    import torch

    from synth.models import load_synthesizer

    model = load_synthesizer(case["model"])
    device = torch.device(case["device"])
    # On the CPU the network draws as sampling does there: the int8 copy (model.int8_sampling).
    network = model.table_.network_.to(device).eval() if device.type == "cuda" else model.table_.sampling_network()
    generator = torch.Generator(device=device).manual_seed(0)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    rows, batch, done = case["rows"], case["sample_batch"], 0
    with torch.inference_mode(), autocast:
        network.generate(min(batch, rows), generator).cpu()  # warm-up (CUDA context, kernels): not timed
        start = time.perf_counter()
        while done < rows:
            n = min(batch, rows - done)
            matrix = network.generate(n, generator).cpu()  # (n, segments), on the host: synchronised
            done += n
        seconds = time.perf_counter() - start
    return {"rows": done, "seconds": seconds, "segments": int(matrix.shape[1])}


# -- parent side ----------------------------------------------------------------------------------
def main() -> None:
    if common.run_child({"train": train_model, "sample": sample_network}):
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda",
                        help="cuda: CUDA and CPU cases (fails when there is no CUDA); cpu: the CPU cases only")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=2_000, help="the same on both devices")
    parser.add_argument("--train-rows", type=int, default=10**9, help="rows trained on CUDA (default all 101,766)")
    parser.add_argument("--sample-rows", type=int, default=10_000_000, help="rows drawn on CUDA")
    parser.add_argument("--cpu-train-rows", type=int, default=20_000)
    parser.add_argument("--cpu-sample-rows", type=int, default=200_000)
    parser.add_argument("--sample-batch", type=int, default=262_144, help="rows per network call on CUDA")
    parser.add_argument("--threads", type=int, default=0, help="torch threads on the CPU (0: torch's default)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the script runs")
    parser.add_argument("--out", help="results folder (default benchmarks/results, smoke: benchmarks/results/smoke)")
    args = parser.parse_args()

    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        print(
            f"bench-gpu: CUDA was asked for, but torch {torch.__version__} ({build}) sees no CUDA device; nothing "
            "was measured. Run it on a machine with a GPU and a CUDA build of torch, or pass --device cpu for the "
            "CPU numbers alone.",
            file=sys.stderr,
        )
        sys.exit(NO_CUDA_EXIT)
    if args.smoke:
        args.epochs, args.batch_size, args.threads = 1, 200, args.threads or 1
        args.train_rows = args.cpu_train_rows = 1_000
        args.sample_rows = args.cpu_sample_rows = 5_000
    data = common.diabetes(args.smoke)

    info = common.machine()
    if torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name(0)
    report = common.Report("gpu", info)
    common.header("gpu", info, f"VAE on diabetes_130, {args.epochs} epochs at batch {args.batch_size}; "
                  "CUDA cases with bf16 autocast", threads=args.threads)
    work = common.DATA / ("gpu-smoke" if args.smoke else "gpu")
    base = {"epochs": args.epochs, "batch_size": args.batch_size, "threads": args.threads, "data": str(data)}
    from synth.models.table_vae import DECODE_BATCH

    sizes = {"cpu": (args.cpu_train_rows, args.cpu_sample_rows, DECODE_BATCH)}
    if args.device == "cuda":
        sizes["cuda"] = (args.train_rows, args.sample_rows, args.sample_batch)
    found: dict[str, dict] = {}
    for device, (train_rows, sample_rows, sample_batch) in sizes.items():
        model = work / f"model-{device}"
        trained = common.measure(__file__, {"kind": "train", "device": device, "rows": train_rows,
                                            "save": str(model), **base})
        found[f"train-{device}"] = report.add(f"train vae ({device}{', bf16' * (device == 'cuda')})", trained,
                                              found.get("train-cpu"))
        sampled = common.measure(__file__, {"kind": "sample", "device": device, "model": str(model),
                                            "rows": sample_rows, "sample_batch": sample_batch, **base})
        found[f"sample-{device}"] = report.add(f"sample network draws ({device}{', bf16' * (device == 'cuda')})",
                                               sampled, found.get("sample-cpu"))
    if "sample-cuda" in found:
        cuda = found["sample-cuda"]
        for stage in ("train", "sample"):
            report.targets.append(common.Target(
                f"{stage} rows/s on CUDA (bf16) vs CPU",
                f"{found[f'{stage}-cuda']['rows_per_second']:,.0f} vs {found[f'{stage}-cpu']['rows_per_second']:,.0f} "
                f"rows/s = {found[f'{stage}-cuda']['rows_per_second'] / found[f'{stage}-cpu']['rows_per_second']:.1f}x",
                None,
            ))
        seconds_10m = 10_000_000 / cuda["rows_per_second"]
        report.targets.append(common.Target(
            "network draws for 10M rows on the GPU in under 30 s",
            f"{seconds_10m:.1f} s at {cuda['rows_per_second']:,.0f} rows/s",
            seconds_10m < 30,
            "the reverse transform and the Parquet write (CPU) are not in this number",
        ))
    else:
        report.note("CPU cases only (--device cpu): no CUDA numbers")
    report.write(common.results_dir(args))


if __name__ == "__main__":
    main()
