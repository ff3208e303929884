"""synth: synthetic patient data from real health extracts (library; no Prefect import)."""

__version__ = "0.1.0"
